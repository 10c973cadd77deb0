/**
 * The partitioned sync against the simulator over real HTTPS: every device exactly once while
 * devices check in during the run, ranges split when they overflow a page, fallback to sequential
 * paging when Graph refuses the filter or a range cannot be split, failures leave the previous
 * snapshot current. The pure partition rule is checked as a property.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Connection, SnapshotDevice, SyncRunSummary } from '../../src/posture/index.js';
import { createPacer, planRanges, splitRange, type SyncRange } from '../../src/posture/partitions.js';
import { insertPage } from '../../src/posture/snapshots.js';
import { forEachDatabase } from '../helpers/db.js';
import { ADMIN, openWorld, type World } from './helpers.js';

const DEVICES = 1_500;
const PAGE = 100;
const LIST = 'GET /v1.0/deviceManagement/managedDevices';

const contains = (r: SyncRange, t: number) => (r.fromMs === undefined || t >= r.fromMs) && (r.toMs === undefined || t < r.toMs);

describe('the partition rule', () => {
  it('every instant falls in exactly one range, whatever the boundaries and the cut-off', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 30 }), fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: -100, max: 20_000 }), (boundaries, cutoff, t) => {
        const plan = planRanges(boundaries, cutoff);
        const all = [...plan.closed, plan.open];
        expect(all.filter((r) => contains(r, t))).toHaveLength(1);
        // The closed ranges end at the cut-off; the open range starts there.
        expect(plan.closed.at(-1)?.toMs).toBe(cutoff);
        expect(plan.open).toEqual({ fromMs: cutoff });
      }),
    );
  });

  it('a split range is exactly its two halves, also when it is unbounded below', () => {
    fc.assert(
      fc.property(fc.option(fc.integer({ min: 0, max: 1_000_000 }), { nil: undefined }), fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: -2_000_000, max: 3_000_000 }), (from, width, t) => {
        const range: SyncRange = from === undefined ? { toMs: width } : { fromMs: from, toMs: from + width };
        const halves = splitRange(range, 1_000);
        if (halves === undefined) {
          expect(from !== undefined && width < 2).toBe(true);
          return;
        }
        expect(halves.filter((h) => contains(h, t)).length).toBe(contains(range, t) ? 1 : 0);
        for (const h of halves) if (h.fromMs !== undefined && h.toMs !== undefined) expect(h.toMs).toBeGreaterThan(h.fromMs);
      }),
    );
    // The open range is never split: it is paged.
    expect(splitRange({ fromMs: 5 }, 1_000)).toBeUndefined();
  });

  it('the pacer starts at most its budget of requests per window', async () => {
    vi.useFakeTimers();
    try {
      const pace = createPacer(3, 1_000, () => Date.now());
      const started: number[] = [];
      const t0 = Date.now();
      const all = Promise.all(Array.from({ length: 7 }, () => pace(new AbortController().signal).then(() => started.push(Date.now() - t0))));
      await vi.advanceTimersByTimeAsync(5_000);
      await all;
      expect(started.sort((a, b) => a - b)).toEqual([0, 0, 0, 1_000, 1_000, 1_000, 2_000]);
    } finally {
      vi.useRealTimers();
    }
  });
});

forEachDatabase('partitioned sync', (create) => {
  let world: World;
  let connection: Connection;

  const allDevices = async (): Promise<SnapshotDevice[]> => {
    const devices: SnapshotDevice[] = [];
    let cursor: string | null = null;
    do {
      const page = await world.service.listDevices('default', { limit: 500, ...(cursor !== null ? { cursor } : {}) });
      devices.push(...page.devices);
      cursor = page.next_cursor;
    } while (cursor !== null);
    return devices;
  };
  const sync = async (): Promise<SyncRunSummary> => (await world.service.startSync('default', connection.id, ADMIN)).done;
  const lastStrategy = () => {
    const line = world.logs.filter((l) => l.includes('"sync run finished"')).at(-1);
    return line === undefined ? undefined : (JSON.parse(line) as { strategy?: string }).strategy;
  };
  const served = () => new Map(world.sim.devices.map((d) => [String(d['id']).toLowerCase(), Date.parse(String(d['lastSyncDateTime']))]));
  const expectExactlyTheTenant = (devices: readonly SnapshotDevice[]) => {
    const ids = devices.map((d) => d.device_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(ids)).toEqual(new Set(served().keys()));
  };

  beforeAll(async () => {
    world = await openWorld(await create(), { devices: DEVICES, seed: 'posture-partitioned', options: { pageSize: PAGE } });
    connection = (await world.service.bootstrapFromConfig(world.config)) as Connection;
    // The first sync has no previous snapshot to take ranges from: it pages sequentially.
    const first = await sync();
    expect(first).toMatchObject({ status: 'succeeded', devices: DEVICES });
    expect(lastStrategy()).toBe('sequential');
  });
  afterAll(async () => {
    await world?.close();
  });

  it('reads every device exactly once while devices check in during the run, with no 429', async () => {
    const before = served();
    world.sim.resetStats();
    world.sim.clearRequests();
    // Slow pages so the ranges overlap in time, and 15 check-ins per page served.
    world.sim.setFaults({ pageLatencyMs: { minMs: 20, maxMs: 120 }, checkinsPerPage: 15 });
    const startedMs = Date.now();
    const run = await sync();
    world.sim.setFaults({});
    expect(run).toMatchObject({ status: 'succeeded', devices: DEVICES });
    expect(lastStrategy()).toBe('partitioned');

    const stats = world.sim.stats();
    expect(stats.checkins).toBeGreaterThan(100);
    expect(stats.statuses['429'] ?? 0).toBe(0);
    // One request per range (about DEVICES / 80) plus the open range's pages; far fewer than one per device.
    expect(stats.requests[LIST]).toBeGreaterThanOrEqual(Math.floor(DEVICES / (PAGE * 0.8)));
    expect(stats.requests[LIST]).toBeLessThan(DEVICES / 10);
    const filters = world.sim.requests().filter((r) => r.kind === 'graph').map((r) => decodeURIComponent(new URL(r.url, 'https://x').searchParams.get('$filter') ?? ''));
    expect(filters.some((f) => /^lastSyncDateTime ge \S+ and lastSyncDateTime lt \S+$/.test(f))).toBe(true);
    expect(filters.some((f) => /^lastSyncDateTime lt \S+$/.test(f))).toBe(true);
    expect(filters.some((f) => /^lastSyncDateTime ge \S+$/.test(f))).toBe(true);

    const devices = await allDevices();
    expectExactlyTheTenant(devices);
    // Each record is one the device really had during the run: not older than before it, not newer than now.
    const now = served();
    let caughtCheckingIn = 0;
    for (const d of devices) {
      const at = Date.parse(String(d.last_sync_at));
      expect(at).toBeGreaterThanOrEqual(Math.floor((before.get(d.device_id) as number) / 1000) * 1000);
      expect(at).toBeLessThanOrEqual(now.get(d.device_id) as number);
      if (at >= startedMs) caughtCheckingIn += 1;
    }
    // Devices that checked in before their range was read were found in the open range, read last.
    expect(caughtCheckingIn).toBeGreaterThan(0);
  });

  it('splits a range that outgrew a page since the previous snapshot, and still reads each device once', async () => {
    // 300 devices moved into one 5-minute window an hour ago: far more than one range of 80 holds.
    const hourAgo = Date.now() - 3_600_000;
    const moved = world.sim.devices.slice(0, 300).map((d) => String(d['id']));
    moved.forEach((id, k) => world.sim.updateDevice(id, { lastSyncDateTime: new Date(hourAgo + k * 1_000).toISOString() }));
    const run = await sync();
    expect(run).toMatchObject({ status: 'succeeded', devices: DEVICES });
    expect(lastStrategy()).toBe('partitioned');
    const partitionLine = world.logs.filter((l) => l.includes('"partitioned read complete"')).at(-1) as string;
    expect((JSON.parse(partitionLine) as { splits: number }).splits).toBeGreaterThan(0);
    expectExactlyTheTenant(await allDevices());
  });

  it('falls back to sequential paging when more than a page of devices share one instant', async () => {
    const instant = new Date(Date.now() - 7_200_000).toISOString();
    for (const d of world.sim.devices.slice(400, 400 + PAGE + 20)) world.sim.updateDevice(String(d['id']), { lastSyncDateTime: instant });
    // The previous snapshot spreads these devices over several ranges; now they all fall in one.
    const run = await sync();
    expect(run).toMatchObject({ status: 'succeeded', devices: DEVICES });
    expect(lastStrategy()).toBe('sequential_after_unsplittable_range');
    expectExactlyTheTenant(await allDevices());
  });

  it('falls back to sequential paging when Graph refuses the filter (400)', async () => {
    world.sim.resetStats();
    world.sim.setFaults({ refuseFilter: true, checkinsPerPage: 10 });
    const run = await sync();
    world.sim.setFaults({});
    expect(run).toMatchObject({ status: 'succeeded', devices: DEVICES });
    expect(lastStrategy()).toBe('sequential_after_filter_refused');
    expect(world.sim.stats().statuses['400']).toBeGreaterThanOrEqual(1);
    expectExactlyTheTenant(await allDevices());
  });

  it('a partitioned run that fails leaves the previous snapshot current', async () => {
    const previous = await world.service.summary('default');
    const { done } = await world.service.startSync('default', connection.id, ADMIN, {
      onProgress: (p) => {
        if (p.pages === 2) world.sim.setFaults({ errorRate: 1 });
      },
    });
    const failed = await done;
    world.sim.setFaults({});
    expect(failed).toMatchObject({ status: 'failed', error_code: 'graph_unavailable' });
    expect((await world.service.summary('default')).devices).toBe(previous.devices);
    expectExactlyTheTenant(await allDevices());
  });

  it('keeps the most recently synced record of a device written twice in a run', async () => {
    const snapshot = { snapshotId: '00000000-0000-4000-8000-0000000000aa', connectionId: connection.id, tenant: 'default' };
    const row = (at: string, state: string) => ({ device_id: 'dup-device', os_family: 'macos', compliance_state: state, ownership: 'company', last_sync_at: at });
    await insertPage(world.db, snapshot, JSON.stringify([row('2026-01-02T00:00:00.000Z', 'compliant')]));
    await insertPage(world.db, snapshot, JSON.stringify([row('2026-01-01T00:00:00.000Z', 'noncompliant')]));
    await insertPage(world.db, snapshot, JSON.stringify([row('2026-01-03T00:00:00.000Z', 'error')]));
    const { rows } = await world.db.query<{ compliance_state: string; n: number }>(
      `SELECT compliance_state, count(*) OVER ()::int AS n FROM intune_device_postures WHERE snapshot_id = $1`,
      [snapshot.snapshotId],
    );
    expect(rows).toEqual([{ compliance_state: 'error', n: 1 }]);
    await world.db.query('DELETE FROM intune_device_postures WHERE snapshot_id = $1', [snapshot.snapshotId]);
  });
});
