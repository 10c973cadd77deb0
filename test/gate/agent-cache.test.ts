/**
 * The gate's cache of agent measurements: reads counted, not timed. What a heartbeat or a
 * revocation does end to end is in test/assets (a real server, agents over mTLS).
 */
import { describe, expect, it } from 'vitest';
import { createAgentCache, type AgentRead } from '../../src/gate/agent-cache.js';

const DEVICE_A = '0f0e1d2c-3b4a-4958-8776-a5b4c3d2e1f0';
const DEVICE_B = '1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d';

/** A read whose answers the test releases by hand, counting what was asked. */
function controlledRead(agentsOf: (tenant: string, device: string) => string[]) {
  const asked: Array<{ tenant: string; device: string; release: () => void; fail: (err: Error) => void }> = [];
  const read = (tenant: string, device: string): Promise<AgentRead<string[]>> =>
    new Promise((resolve, reject) => {
      const agentIds = agentsOf(tenant, device);
      const n = asked.length + 1;
      asked.push({ tenant, device, release: () => resolve({ agentIds, value: agentIds.map((a) => `${a}@read${n}`) }), fail: reject });
    });
  return { asked, read };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('agent measurement cache', () => {
  it('coalesces concurrent misses for one device into one read, and reuses the answer', async () => {
    const { asked, read } = controlledRead(() => ['agent-1']);
    const cache = createAgentCache({ read, ttlMs: 60_000, maxEntries: 100 });
    const waiting = Array.from({ length: 10 }, () => cache.get('default', DEVICE_A));
    expect(asked).toHaveLength(1);
    asked[0]!.release();
    const answers = await Promise.all(waiting);
    expect(new Set(answers.map((a) => a.join()))).toEqual(new Set(['agent-1@read1']));
    expect(await cache.get('default', DEVICE_A.toUpperCase())).toEqual(['agent-1@read1']);
    expect(cache.reads).toBe(1);
    // Another device, another tenant: their own reads.
    void cache.get('default', DEVICE_B);
    void cache.get('acme', DEVICE_A);
    expect(asked.map((a) => `${a.tenant}/${a.device}`)).toEqual([`default/${DEVICE_A}`, `default/${DEVICE_B}`, `acme/${DEVICE_A}`]);
  });

  it("forgets what one agent was read for, and the tenant's reads still in flight, and nothing of other tenants", async () => {
    const { asked, read } = controlledRead((_tenant, device) => (device === DEVICE_A ? ['agent-1'] : ['agent-2']));
    const cache = createAgentCache({ read, ttlMs: 60_000, maxEntries: 100 });
    const first = [cache.get('default', DEVICE_A), cache.get('default', DEVICE_B), cache.get('acme', DEVICE_A)];
    for (const a of asked) a.release();
    await Promise.all(first);
    expect(cache.reads).toBe(3);

    cache.forget('default', 'agent-1');
    await cache.get('default', DEVICE_B);
    await cache.get('acme', DEVICE_A);
    expect(cache.reads).toBe(3);
    const reread = cache.get('default', DEVICE_A);
    expect(cache.reads).toBe(4);
    // A read in flight may have started before the heartbeat committed: forgetting any agent of the tenant drops it.
    cache.forget('default', 'agent-unrelated');
    const after = cache.get('default', DEVICE_A);
    expect(cache.reads).toBe(5);
    asked[3]!.release();
    asked[4]!.release();
    expect(await reread).toEqual(['agent-1@read4']);
    expect(await after).toEqual(['agent-1@read5']);
    // The forgotten read's answer did not come back into the cache.
    await cache.get('default', DEVICE_A);
    expect(cache.reads).toBe(5);
  });

  it("forgets a whole tenant (a new agent may have joined a machine read with none), and keeps other tenants'", async () => {
    const { asked, read } = controlledRead(() => []);
    const cache = createAgentCache({ read, ttlMs: 60_000, maxEntries: 100 });
    const first = [cache.get('default', DEVICE_A), cache.get('default', DEVICE_B), cache.get('acme', DEVICE_A)];
    for (const a of asked) a.release();
    await Promise.all(first);
    cache.forget('default');
    void cache.get('default', DEVICE_A);
    void cache.get('default', DEVICE_B);
    void cache.get('acme', DEVICE_A);
    expect(cache.reads).toBe(5);
  });

  it('keeps no failed read: the checks that waited get the error, the next check reads again', async () => {
    const { asked, read } = controlledRead(() => ['agent-1']);
    const cache = createAgentCache({ read, ttlMs: 60_000, maxEntries: 100 });
    const failing = [cache.get('default', DEVICE_A), cache.get('default', DEVICE_A)];
    asked[0]!.fail(new Error('database unavailable'));
    for (const p of failing) await expect(p).rejects.toThrow('database unavailable');
    const next = cache.get('default', DEVICE_A);
    expect(cache.reads).toBe(2);
    asked[1]!.release();
    expect(await next).toEqual(['agent-1@read2']);
  });

  it('reads again once the TTL has passed, and on every check with a TTL of 0', async () => {
    const { asked, read } = controlledRead(() => ['agent-1']);
    const cache = createAgentCache({ read, ttlMs: 30, maxEntries: 100 });
    const first = cache.get('default', DEVICE_A);
    asked[0]!.release();
    await first;
    await new Promise((r) => setTimeout(r, 80));
    void cache.get('default', DEVICE_A);
    expect(cache.reads).toBe(2);

    const uncached = controlledRead(() => ['agent-1']);
    const none = createAgentCache({ read: uncached.read, ttlMs: 0, maxEntries: 100 });
    const answers = [none.get('default', DEVICE_A), none.get('default', DEVICE_A)];
    for (const a of uncached.asked) a.release();
    await Promise.all(answers);
    expect(none.reads).toBe(2);
    none.forget('default');
  });

  it('stays within its size bound, and forgetting an evicted entry is harmless', async () => {
    const { asked, read } = controlledRead((_t, device) => [`agent-${device.slice(0, 4)}`]);
    const cache = createAgentCache({ read, ttlMs: 60_000, maxEntries: 2 });
    const devices = [DEVICE_A, DEVICE_B, '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e'];
    for (const d of devices) {
      const p = cache.get('default', d);
      asked[asked.length - 1]!.release();
      await p;
    }
    await settle();
    cache.forget('default', `agent-${DEVICE_A.slice(0, 4)}`);
    await cache.get('default', devices[2]!);
    expect(cache.reads).toBe(3);
    const p = cache.get('default', DEVICE_A);
    expect(cache.reads).toBe(4);
    asked[3]!.release();
    await p;
  });
});
