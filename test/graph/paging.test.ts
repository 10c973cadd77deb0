/**
 * Listing through real HTTPS: paging over a large tenant, filters as Graph evaluates them (the
 * simulator parses $filter like Graph does), $select, resuming from a nextLink, and Intune's
 * throttling with the client waiting as told.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedDevice } from '../../src/connector/graph/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { capturingLogger, clientFor, failureOf, graphRequests, simulator, type TestClient } from './helpers.js';

describe('a 5,000-device tenant', () => {
  let sim: SimulatorHandle;
  let client: TestClient;

  beforeAll(async () => {
    sim = await simulator({ devices: 5_000, seed: 'paging' });
    client = clientFor(sim);
  });
  afterAll(async () => {
    await client.close();
    await sim.close();
  });

  it('lists every device exactly once in pages of 1,000', async () => {
    sim.clearRequests();
    const counts = new Map<string, number>();
    const pageSizes: number[] = [];
    for await (const page of client.listDevices({ top: 1000 })) {
      pageSizes.push(page.devices.length);
      expect(page.requestId).toMatch(/^[0-9a-f-]{36}$/);
      for (const device of page.devices) counts.set(device.id, (counts.get(device.id) ?? 0) + 1);
    }
    expect(pageSizes).toEqual([1000, 1000, 1000, 1000, 1000]);
    expect(counts.size).toBe(5_000);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(counts.keys())).toEqual(new Set(sim.devices.map((d) => d['id'] as string)));
    expect(graphRequests(sim)).toHaveLength(5);
  });

  it('resumes from the nextLink of an earlier page', async () => {
    const first = await client.listDevicesPage({ top: 700 });
    expect(first.nextLink).toBeDefined();
    const second = await client.listDevicesPage({ nextLink: first.nextLink as string });
    expect(second.devices).toHaveLength(700);
    const firstIds = new Set(first.devices.map((d) => d.id));
    expect(second.devices.some((d) => firstIds.has(d.id))).toBe(false);
    expect(second.devices[0]?.id).toBe(sim.devices[700]?.['id']);
  });

  it('filters by compliance state, OS and last check-in as Graph evaluates them', async () => {
    const collect = async (filter: Parameters<TestClient['listDevices']>[0]): Promise<ManagedDevice[]> => {
      const all: ManagedDevice[] = [];
      for await (const page of client.listDevices(filter)) all.push(...page.devices);
      return all;
    };
    const noncompliantMacs = await collect({ filter: { complianceState: 'noncompliant', operatingSystem: 'macOS' } });
    const expected = sim.devices.filter((d) => d['complianceState'] === 'noncompliant' && d['operatingSystem'] === 'macOS');
    expect(expected.length).toBeGreaterThan(0);
    expect(noncompliantMacs.map((d) => d.id).sort()).toEqual(expected.map((d) => d['id'] as string).sort());

    const cutoff = new Date(Date.now() - 14 * 24 * 3600 * 1000).toISOString();
    const stale = await collect({ filter: { lastSyncBefore: cutoff } });
    const expectedStale = sim.devices.filter((d) => Date.parse(d['lastSyncDateTime'] as string) < Date.parse(cutoff));
    expect(expectedStale.length).toBeGreaterThan(0);
    expect(stale).toHaveLength(expectedStale.length);
  });

  it('keeps an injection attempt inside one string literal: it matches nothing instead of everything', async () => {
    const page = await client.listDevicesPage({ filter: { operatingSystem: "macOS' or operatingSystem ne 'x" } });
    expect(page.devices).toEqual([]);
    const serial = await client.listDevicesPage({ filter: { serialNumber: "' or 1 eq 1 or serialNumber eq '" } });
    expect(serial.devices).toEqual([]);
  });

  it('finds every record of an Entra device id, including re-enrolments', async () => {
    const byEntraId = new Map<string, number>();
    for (const d of sim.devices) {
      const entraId = d['azureADDeviceId'];
      if (typeof entraId === 'string') byEntraId.set(entraId, (byEntraId.get(entraId) ?? 0) + 1);
    }
    const [reenrolled] = [...byEntraId.entries()].find(([, n]) => n > 1) ?? [];
    expect(reenrolled).toBeDefined();
    const result = await client.findDevicesByAzureADDeviceId((reenrolled as string).toUpperCase());
    expect(result.value.length).toBe(byEntraId.get(reenrolled as string));
    expect(result.value.every((d) => d.azureADDeviceId === reenrolled)).toBe(true);
    const none = await client.findDevicesByAzureADDeviceId('0fa4e5e1-0000-4000-8000-00000000ffff');
    expect(none.value).toEqual([]);
  });

  it('asks only for the selected properties, and always for the ones the gate reads', async () => {
    sim.clearRequests();
    const page = await client.listDevicesPage({ top: 2, select: ['model'] });
    const url = decodeURIComponent(graphRequests(sim)[0]?.url ?? '');
    expect(url).toContain('$select=id,azureADDeviceId,complianceState,complianceGracePeriodExpirationDateTime,lastSyncDateTime,operatingSystem,model');
    expect(Object.keys(page.devices[0] ?? {}).sort()).toEqual(
      ['azureADDeviceId', 'complianceGracePeriodExpirationDateTime', 'complianceState', 'id', 'lastSyncDateTime', 'model', 'operatingSystem'].sort(),
    );
    expect(page.devices[0]).not.toHaveProperty('serialNumber');
  });

  it('logs every exchange at debug level without tokens, secrets or device PII', async () => {
    const { logger, lines } = capturingLogger();
    const logged = clientFor(sim, { logger });
    try {
      const device = sim.devices.find((d) => typeof d['serialNumber'] === 'string' && d['serialNumber'] !== '') as Record<string, unknown>;
      const found = await logged.listDevicesPage({ filter: { serialNumber: device['serialNumber'] as string } });
      expect(found.devices.map((d) => d.id)).toContain(device['id']);
      await logged.getDevice(device['id'] as string);
      for await (const page of logged.listDevices({ top: 1000 })) expect(page.devices.length).toBeGreaterThan(0);
      const text = lines();
      expect(text).toContain('graph exchange');
      expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/); // no JWT
      expect(text).not.toContain(sim.clientSecret);
      for (const d of sim.devices.slice(0, 200)) {
        for (const field of ['serialNumber', 'userPrincipalName', 'deviceName', 'emailAddress', 'imei', 'wiFiMacAddress']) {
          const value = d[field];
          if (typeof value === 'string' && value.length > 3) expect(text).not.toContain(value);
        }
      }
    } finally {
      await logged.close();
    }
  });

  it('refuses a page size Graph would refuse, before sending anything', async () => {
    sim.clearRequests();
    await expect(client.listDevicesPage({ top: 1001 })).rejects.toMatchObject({ kind: 'bad_request' });
    await expect(client.listDevicesPage({ top: 0 })).rejects.toMatchObject({ kind: 'bad_request' });
    await expect(client.listDevicesPage({ select: ['deviceName,userPrincipalName&$top=5'] })).rejects.toMatchObject({ kind: 'bad_request' });
    expect(sim.requests()).toEqual([]);
  });
});

describe('Intune throttling', () => {
  it('waits as Graph says on 429 (decimal Retry-After) and still lists every device once', async () => {
    const sim = await simulator({ devices: 1_200, seed: 'throttle', throttle: { requestsPer20s: 3, windowMs: 600 } });
    sim.setFaults({ decimalRetryAfter: true });
    const client = clientFor(sim, { graph: { maxRetries: 6 } });
    try {
      const ids = new Set<string>();
      let pages = 0;
      for await (const page of client.listDevices({ top: 150 })) {
        pages++;
        for (const d of page.devices) ids.add(d.id);
      }
      expect(pages).toBe(8);
      expect(ids.size).toBe(1_200);
      const statuses = graphRequests(sim).map((r) => r.status);
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
      expect(statuses.filter((s) => s === 200)).toHaveLength(8);
      const stats = client.stats();
      expect(stats.throttledWaits).toBe(statuses.filter((s) => s === 429).length);
      // Decimal Retry-After values ("0.4") are honoured in milliseconds, not rounded to seconds.
      expect(stats.throttledWaitMs % 100).toBe(0);
      expect(stats.throttledWaitMs).toBeGreaterThan(0);
      expect(stats.throttledWaitMs / stats.throttledWaits).toBeLessThanOrEqual(600);
    } finally {
      await client.close();
      await sim.close();
    }
  });

  it('gives up with a throttled error carrying retryAfterMs when the budget stays spent', async () => {
    const sim = await simulator({ devices: 10, throttle: { requestsPer20s: 1, windowMs: 60_000 } });
    const waits: number[] = [];
    const client = clientFor(sim, {
      graph: { maxRetries: 2 },
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    try {
      await client.listDevicesPage({ top: 1 });
      const error = await failureOf(() => client.listDevicesPage({ top: 1 }));
      expect(error).toMatchObject({ kind: 'throttled', status: 429, graphCode: 'TooManyRequests', attempts: 3 });
      expect(error['retryAfterMs']).toBeGreaterThan(50_000);
      expect(waits).toHaveLength(2);
    } finally {
      await client.close();
      await sim.close();
    }
  });
});
