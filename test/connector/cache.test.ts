import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ComplianceCache, type FetchedRecords } from '../../src/connector/cache.js';
import type { DevicePosture } from '../../src/connector/posture.js';
import { GraphError } from '../../src/connector/graph/errors.js';
import { samplePosture } from '../helpers/posture.js';

// Unit tests of the cache's own rules over a counted fetch function; the same behaviour against
// the real Graph client and simulator is in connector.integration.test.ts.

const posture = (id: string): DevicePosture => samplePosture({ device_id: id, os_version: '14.6', model: null, manufacturer: null });

function setup(options: { ttlMs: number; staleMaxMs?: number; notFoundTtlMs?: number; maxEntries?: number }) {
  let now = 1_000_000;
  const cache = new ComplianceCache({ maxEntries: options.maxEntries ?? 100, staleMaxMs: options.staleMaxMs ?? 0, ttlMs: options.ttlMs, now: () => now, ...(options.notFoundTtlMs !== undefined ? { notFoundTtlMs: options.notFoundTtlMs } : {}) });
  let calls = 0;
  let fail = false;
  let records: DevicePosture[] = [posture('a')];
  const fetch = async (): Promise<FetchedRecords> => {
    calls += 1;
    await delay(1);
    if (fail) throw new GraphError('unavailable', 'Microsoft Graph is unavailable', { status: 503 });
    return { records, graphRequestId: `req-${calls}` };
  };
  return {
    cache,
    fetch,
    calls: () => calls,
    advance: (ms: number) => (now += ms),
    setFail: (v: boolean) => (fail = v),
    setRecords: (r: DevicePosture[]) => (records = r),
  };
}

describe('ComplianceCache', () => {
  it('serves hits until the TTL ends, then asks again', async () => {
    const t = setup({ ttlMs: 300_000 });
    const key = ComplianceCache.key('t', 'deviceId', 'A');
    const first = await t.cache.lookup(key, t.fetch);
    expect(first).toMatchObject({ ok: true, cacheHit: false, graphRequestId: 'req-1' });
    t.advance(299_999);
    expect(await t.cache.lookup(key, t.fetch)).toMatchObject({ ok: true, cacheHit: true, graphRequestId: null });
    t.advance(1);
    expect(await t.cache.lookup(key, t.fetch)).toMatchObject({ ok: true, cacheHit: false });
    expect(t.calls()).toBe(2);
    expect(t.cache.stats()).toMatchObject({ hits: 1, misses: 2, size: 1 });
  });

  it('keys per tenant and id kind, case-insensitively', async () => {
    const t = setup({ ttlMs: 60_000 });
    await t.cache.lookup(ComplianceCache.key('t1', 'deviceId', 'ABC'), t.fetch);
    await t.cache.lookup(ComplianceCache.key('t1', 'deviceId', 'abc'), t.fetch);
    await t.cache.lookup(ComplianceCache.key('t2', 'deviceId', 'abc'), t.fetch);
    await t.cache.lookup(ComplianceCache.key('t1', 'azureADDeviceId', 'abc'), t.fetch);
    expect(t.calls()).toBe(3);
  });

  it('coalesces concurrent misses into one fetch', async () => {
    const t = setup({ ttlMs: 60_000 });
    const key = ComplianceCache.key('t', 'deviceId', 'a');
    const results = await Promise.all(Array.from({ length: 1000 }, () => t.cache.lookup(key, t.fetch)));
    expect(t.calls()).toBe(1);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(t.cache.stats()).toMatchObject({ misses: 1, coalesced: 999 });
  });

  it('with TTL 0 caches nothing (but still shares an in-flight request)', async () => {
    const t = setup({ ttlMs: 0, staleMaxMs: 60_000 });
    const key = ComplianceCache.key('t', 'deviceId', 'a');
    await t.cache.lookup(key, t.fetch);
    await t.cache.lookup(key, t.fetch);
    expect(t.calls()).toBe(2);
    await Promise.all([t.cache.lookup(key, t.fetch), t.cache.lookup(key, t.fetch)]);
    expect(t.calls()).toBe(3);
    t.setFail(true);
    expect(await t.cache.lookup(key, t.fetch)).toMatchObject({ ok: false, failure: { reason: 'graph_unavailable' } });
    expect(t.cache.stats().size).toBe(0);
  });

  it('caches not-managed answers for the shorter not-found TTL', async () => {
    const t = setup({ ttlMs: 300_000 });
    t.setRecords([]);
    const key = ComplianceCache.key('t', 'azureADDeviceId', 'x');
    await t.cache.lookup(key, t.fetch);
    t.advance(59_000);
    expect(await t.cache.lookup(key, t.fetch)).toMatchObject({ ok: true, cacheHit: true, records: [] });
    t.advance(1_000);
    await t.cache.lookup(key, t.fetch);
    expect(t.calls()).toBe(2);
    expect(t.cache.stats().notFoundHits).toBe(1);
  });

  it('serves a stale answer while Graph fails, within the window only, and a caller may shorten it', async () => {
    const t = setup({ ttlMs: 60_000, staleMaxMs: 120_000 });
    const key = ComplianceCache.key('t', 'deviceId', 'a');
    await t.cache.lookup(key, t.fetch);
    t.setFail(true);
    t.advance(60_000 + 100_000); // 100 s past expiry
    expect(await t.cache.lookup(key, t.fetch)).toMatchObject({ ok: true, servedStale: true, cacheHit: true });
    expect(await t.cache.lookup(key, t.fetch, { maxStaleMs: 50_000 })).toMatchObject({ ok: false, failure: { reason: 'graph_unavailable' } });
    // a caller cannot widen the window beyond staleMaxMs
    t.advance(20_001);
    expect(await t.cache.lookup(key, t.fetch, { maxStaleMs: 10_000_000 })).toMatchObject({ ok: false });
    expect(t.cache.stats().staleServed).toBe(1);
  });

  it('never serves stale for a forbidden answer', async () => {
    const t = setup({ ttlMs: 1_000, staleMaxMs: 60_000 });
    const key = ComplianceCache.key('t', 'deviceId', 'a');
    await t.cache.lookup(key, t.fetch);
    t.advance(2_000);
    const forbidden = new GraphError('forbidden', 'refused', { status: 403 });
    const result = await t.cache.lookup(key, async () => {
      throw forbidden;
    });
    expect(result).toMatchObject({ ok: false, failure: { reason: 'graph_forbidden' } });
  });

  it('stays within its size bound', async () => {
    const t = setup({ ttlMs: 60_000, maxEntries: 10 });
    for (let i = 0; i < 50; i += 1) await t.cache.lookup(ComplianceCache.key('t', 'deviceId', `d${i}`), t.fetch);
    expect(t.cache.stats().size).toBe(10);
  });

  it('lets one waiter give up without cancelling the shared request', async () => {
    const t = setup({ ttlMs: 60_000 });
    const key = ComplianceCache.key('t', 'deviceId', 'a');
    const controller = new AbortController();
    const first = t.cache.lookup(key, t.fetch);
    const second = t.cache.lookup(key, t.fetch, { signal: controller.signal });
    controller.abort();
    expect(await second).toMatchObject({ ok: false, failure: { reason: 'cancelled' } });
    expect(await first).toMatchObject({ ok: true });
  });
});
