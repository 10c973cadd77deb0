/**
 * Intune's per-app budget in the Graph client: requests beyond it wait for their slot instead of
 * drawing 429s, and a Retry-After Graph sends anyway pauses every request of that budget.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { LocalGraphBudget } from '../../src/connector/graph/budget.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { clientFor, simulator, type TestClient } from './helpers.js';

let sim: SimulatorHandle | undefined;
let clients: TestClient[] = [];
afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  await sim?.close();
  sim = undefined;
});

describe('the Graph budget', () => {
  it('smooths a burst of twice the budget over two windows: no 429 from Graph', async () => {
    sim = await simulator({ devices: 40, throttle: { requestsPer20s: 10, windowMs: 1_000 } });
    const budget = new LocalGraphBudget({ requests: 10, writes: 5, windowMs: 1_000 });
    // Two clients of one app in one process keep to one budget.
    clients = [clientFor(sim, { budget }), clientFor(sim, { budget })];
    const ids = sim.devices.slice(0, 20).map((d) => d['id'] as string);
    const results = await Promise.all(ids.map((id, i) => clients[i % 2]!.getDevice(id)));
    expect(results.map((r) => r.value.id)).toEqual(ids);
    expect(sim.stats().statuses['429'] ?? 0).toBe(0);
    expect(sim.stats().total).toBe(20);
  });

  it('without a budget, the same burst is throttled by Graph (the test above can fail)', async () => {
    sim = await simulator({ devices: 40, throttle: { requestsPer20s: 10, windowMs: 1_000 } });
    clients = [clientFor(sim, { graph: { maxRetries: 5 } })];
    const ids = sim.devices.slice(0, 20).map((d) => d['id'] as string);
    await Promise.all(ids.map((id) => clients[0]!.getDevice(id)));
    expect(sim.stats().statuses['429'] ?? 0).toBeGreaterThan(0);
  });

  it('pauses every request of the budget for the Retry-After Graph sent', async () => {
    const budget = new LocalGraphBudget({ requests: 100, writes: 10, windowMs: 1_000 });
    budget.pause('t:a', 2_000);
    expect(await budget.reserve('t:a', false)).toEqual({ waitMs: expect.any(Number) });
    expect((await budget.reserve('t:a', false)).waitMs).toBeGreaterThan(1_500);
    expect((await budget.reserve('t:other', false)).waitMs).toBe(0);
  });
});
