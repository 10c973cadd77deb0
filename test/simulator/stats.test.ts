/**
 * GET /_simulator/stats counts Graph requests from outside the process; the latency model and
 * check-ins during paging; the refuse-filter fault. All over real HTTPS with real tokens.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseFaultSpec, startSimulator, type SimulatorHandle, type SimulatorStats } from '../../src/simulator/index.js';
import { acquireToken, request } from './helpers.js';

const LIST = '/v1.0/deviceManagement/managedDevices';

describe('simulator stats, latency model and check-ins', () => {
  let sim: SimulatorHandle;
  let token: string;

  beforeAll(async () => {
    sim = await startSimulator({ devices: 300, seed: 'stats' });
    token = await acquireToken(sim);
  });
  afterAll(async () => {
    await sim.close();
  });
  beforeEach(async () => {
    sim.setFaults({});
    expect((await request(sim, '/_simulator/stats', { method: 'DELETE' })).status).toBe(204);
  });

  const stats = async (): Promise<SimulatorStats> => {
    const res = await request(sim, '/_simulator/stats');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    return res.json as SimulatorStats;
  };

  it('counts Graph requests by method and path template, with statuses, and resets', async () => {
    const id = String(sim.devices[0]?.['id']);
    const other = String(sim.devices[1]?.['id']);
    await request(sim, `${LIST}?$top=5`, { token });
    await request(sim, `${LIST}/${id}`, { token });
    await request(sim, `${LIST}/${other.toUpperCase()}`, { token });
    await request(sim, `${LIST}/${id}/syncDevice`, { method: 'POST', token });
    await request(sim, `${LIST}/00000000-0000-4000-8000-000000000000`, { token });
    await request(sim, `/v1.0/deviceManagement/somethingElse`, { token });
    // No token: still a Graph request the service received.
    await request(sim, `${LIST}?$top=1`);

    const s = await stats();
    expect(s.total).toBe(7);
    expect(s.requests).toEqual({
      'GET (unrouted)': 1,
      'GET /v1.0/deviceManagement/managedDevices': 2,
      'GET /v1.0/deviceManagement/managedDevices/{id}': 3,
      'POST /v1.0/deviceManagement/managedDevices/{id}/syncDevice': 1,
    });
    expect(s.statuses).toEqual({ '200': 3, '204': 1, '401': 1, '404': 2 });
    // The handle reads the same counters as the HTTP endpoint; the stats calls themselves are not counted.
    expect(sim.stats().total).toBe(7);

    expect((await request(sim, '/_simulator/stats', { method: 'DELETE' })).status).toBe(204);
    const after = await stats();
    expect(after).toEqual({ total: 0, requests: {}, statuses: {}, tokenRequests: 0, checkins: 0 });
  });

  it('refuses other methods on the stats path with 405 and a sentence', async () => {
    const res = await request(sim, '/_simulator/stats', { method: 'POST' });
    expect(res.status).toBe(405);
    expect(res.text).toMatch(/GET \/_simulator\/stats to read the counters or DELETE \/_simulator\/stats to reset/);
    expect((await stats()).total).toBe(0);
  });

  it('counts throttled answers as 429 and token requests apart from Graph requests', async () => {
    const throttled = await startSimulator({ devices: 20, seed: 'stats-429', throttle: { requestsPer20s: 3 } });
    try {
      const t = await acquireToken(throttled);
      for (let k = 0; k < 5; k++) await request(throttled, `${LIST}?$top=1`, { token: t });
      const res = await request(throttled, '/_simulator/stats');
      const s = res.json as SimulatorStats;
      expect(s.total).toBe(5);
      expect(s.statuses).toEqual({ '200': 3, '429': 2 });
      expect(s.tokenRequests).toBe(1);
    } finally {
      await throttled.close();
    }
  });

  it('holds each list page for the page latency drawn from its range', async () => {
    sim.setFaults(parseFaultSpec('page-latency=250-300'));
    const started = performance.now();
    const res = await request(sim, `${LIST}?$top=10`, { token });
    const elapsedMs = performance.now() - started;
    expect(res.status).toBe(200);
    expect(elapsedMs).toBeGreaterThanOrEqual(245);
    // GET by id is not a page: no page latency.
    const quick = performance.now();
    await request(sim, `${LIST}/${String(sim.devices[0]?.['id'])}`, { token });
    expect(performance.now() - quick).toBeLessThan(245);
  });

  it('moves lastSyncDateTime of devices forward while a client pages', async () => {
    sim.setFaults({ checkinsPerPage: 4 });
    const before = new Map(sim.devices.map((d) => [String(d['id']), String(d['lastSyncDateTime'])]));
    const startedIso = new Date(Date.now() - 1).toISOString();
    await request(sim, `${LIST}?$top=100`, { token });
    await request(sim, `${LIST}?$top=100`, { token });
    const moved = sim.devices.filter((d) => String(d['lastSyncDateTime']) !== before.get(String(d['id'])));
    expect(moved.length).toBeGreaterThan(0);
    expect(moved.length).toBeLessThanOrEqual(8);
    for (const d of moved) expect(Date.parse(String(d['lastSyncDateTime']))).toBeGreaterThanOrEqual(Date.parse(startedIso));
    expect((await stats()).checkins).toBe(8);

    // A filter on the new times finds exactly the devices that checked in.
    sim.setFaults({});
    const res = await request(sim, `${LIST}?$filter=${encodeURIComponent(`lastSyncDateTime ge ${startedIso}`)}&$select=id`, { token });
    const ids = ((res.json as { value: { id: string }[] }).value ?? []).map((d) => d.id).sort();
    expect(ids).toEqual(moved.map((d) => String(d['id'])).sort());
  });

  it('checkIn() moves the named count of devices and refuses a bad count', () => {
    const ids = sim.checkIn(3);
    expect(ids).toHaveLength(3);
    for (const id of ids) {
      const device = sim.devices.find((d) => d['id'] === id);
      expect(Date.now() - Date.parse(String(device?.['lastSyncDateTime']))).toBeLessThan(5_000);
    }
    expect(() => sim.checkIn(-1)).toThrow(/whole number from 0 to 1000000/);
  });

  it('refuse-filter answers 400 to a filtered list and serves the unfiltered one', async () => {
    sim.setFaults(parseFaultSpec('refuse-filter'));
    const refused = await request(sim, `${LIST}?$filter=${encodeURIComponent('lastSyncDateTime ge 2025-01-01T00:00:00Z')}`, { token });
    expect(refused.status).toBe(400);
    expect((refused.json as { error: { code: string; message: string } }).error.message).toMatch(/follow @odata.nextLink/);
    expect((await request(sim, `${LIST}?$top=2`, { token })).status).toBe(200);
  });

  it('parses and refuses the new fault keys with a sentence that says what to fix', () => {
    expect(parseFaultSpec('page-latency=800-2500,checkin=5,refuse-filter')).toEqual({
      pageLatencyMs: { minMs: 800, maxMs: 2500 },
      checkinsPerPage: 5,
      refuseFilter: true,
    });
    expect(parseFaultSpec('page-latency=1000')).toEqual({ pageLatencyMs: { minMs: 1000, maxMs: 1000 } });
    expect(() => parseFaultSpec('page-latency=2500-800')).toThrow(/MIN-MAX whole milliseconds up to 600000, e.g. page-latency=800-2500/);
    expect(() => parseFaultSpec('checkin=-2')).toThrow(/whole number from 0 to 100000/);
    expect(() => sim.setFaults({ pageLatencyMs: { minMs: 10, maxMs: 5 } })).toThrow(/pageLatencyMs \(page-latency\)/);
  });
});
