/**
 * The compliance cache's Redis tier and the shared Graph budget, in one process with several
 * caches standing for replicas, against the real Redis (each test under a prefix of its own).
 */
import crypto from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ComplianceCache, type FetchedRecords } from '../../src/connector/cache.js';
import type { DevicePosture } from '../../src/connector/posture.js';
import { samplePosture } from '../helpers/posture.js';
import { RedisLink } from '../../src/connector/replicas/link.js';
import { createRedisCacheTier } from '../../src/connector/replicas/shared-cache.js';
import { RedisGraphBudget, RedisWriteBudget } from '../../src/connector/replicas/shared-budget.js';
import { LocalGraphBudget } from '../../src/connector/graph/budget.js';

const redisAvailable = inject('redisAvailable');
if (!redisAvailable) process.stderr.write('\n!!! shared-cache.test.ts: Redis tests SKIPPED (Redis not reachable).\n\n');

const TENANT = 'contoso';
const DEVICE = crypto.randomUUID();
const ENTRA = crypto.randomUUID();

function posture(): DevicePosture {
  return samplePosture({
    device_id: DEVICE,
    azure_ad_device_id: ENTRA,
    enrolled_at: '2026-01-01T00:00:00.000Z',
    last_sync_at: '2026-12-01T00:00:00.000Z',
  });
}

const links: RedisLink[] = [];
afterEach(async () => {
  await Promise.all(links.splice(0).map((l) => l.close()));
});

async function replicas(count: number, prefix = `t-${crypto.randomBytes(6).toString('hex')}`, url = inject('testRedisUrl')) {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const link = new RedisLink({ url, keyPrefix: prefix, timeoutMs: 1_000, logger: undefined });
      links.push(link);
      await link.ready(2_000);
      const cache = new ComplianceCache({ ttlMs: 60_000, maxEntries: 100, staleMaxMs: 0, now: Date.now, shared: createRedisCacheTier(link) });
      return { link, cache };
    }),
  );
}

describe.skipIf(!redisAvailable)('ComplianceCache with a Redis tier [redis]', () => {
  it('asks Graph once for a device many replicas miss at the same moment, and serves the others from that answer', async () => {
    const caches = await replicas(3);
    // Subscriptions are in place before the burst.
    await delay(100);
    let fetches = 0;
    const fetch = async (): Promise<FetchedRecords> => {
      fetches += 1;
      await delay(100);
      return { records: [posture()], graphRequestId: 'req-1' };
    };
    const key = ComplianceCache.key(TENANT, 'azureADDeviceId', ENTRA);
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => caches[i % 3]!.cache.lookup(key, fetch)));
    expect(fetches).toBe(1);
    for (const answer of answers) expect(answer).toMatchObject({ ok: true, records: [{ device_id: DEVICE, compliance_state: 'compliant' }] });
    const stats = caches.map((c) => c.cache.stats());
    expect(stats.reduce((n, s) => n + s.misses, 0)).toBe(3);
    expect(stats.reduce((n, s) => n + s.sharedCoalesced + s.sharedHits, 0)).toBe(2);

    // Later misses of another replica's LRU read Redis, not Graph.
    const fresh = await replicas(1, caches[0]!.link.keyPrefix);
    expect(await fresh[0]!.cache.lookup(key, fetch)).toMatchObject({ ok: true, cacheHit: true });
    expect(fetches).toBe(1);
  });

  it('drops a device everywhere after a device action, found by its Entra id on the replica that cached it', async () => {
    const [a, b] = await replicas(2);
    await delay(100);
    let fetches = 0;
    const fetch = (): Promise<FetchedRecords> => {
      fetches += 1;
      return Promise.resolve({ records: [posture()], graphRequestId: null });
    };
    const key = ComplianceCache.key(TENANT, 'azureADDeviceId', ENTRA);
    await b!.cache.lookup(key, fetch);
    expect(fetches).toBe(1);
    // Replica a acts on the device by its Intune id; it never cached it.
    await a!.cache.invalidateDevices(TENANT, [DEVICE]);
    await delay(200);
    expect(await b!.cache.lookup(key, fetch)).toMatchObject({ ok: true, cacheHit: false });
    expect(fetches).toBe(2);

    await a!.cache.invalidateTenant(TENANT);
    await delay(200);
    await b!.cache.lookup(key, fetch);
    expect(fetches).toBe(3);
  });

  it('after a sync drops the devices it changed everywhere, under every Entra id they had, and keeps the others', async () => {
    const [a, b] = await replicas(2);
    await delay(100);
    let fetches = 0;
    const fetch = (records: DevicePosture[]) => (): Promise<FetchedRecords> => {
      fetches += 1;
      return Promise.resolve({ records, graphRequestId: null });
    };
    const changedKey = ComplianceCache.key(TENANT, 'azureADDeviceId', ENTRA);
    const otherEntra = crypto.randomUUID();
    const otherKey = ComplianceCache.key(TENANT, 'azureADDeviceId', otherEntra);
    // An Entra id not managed when it was asked: enrolled since, the sync lists it under that id.
    const enrolledEntra = crypto.randomUUID();
    const enrolledKey = ComplianceCache.key(TENANT, 'azureADDeviceId', enrolledEntra);
    await b!.cache.lookup(changedKey, fetch([posture()]));
    await b!.cache.lookup(otherKey, fetch([{ ...posture(), device_id: crypto.randomUUID(), azure_ad_device_id: otherEntra }]));
    await b!.cache.lookup(enrolledKey, fetch([]));
    expect(fetches).toBe(3);

    // The syncing process (a) never cached any of them.
    await a!.cache.invalidateSynced(TENANT, {
      all: false,
      devices: [
        { deviceId: DEVICE, azureADDeviceIds: [ENTRA] },
        { deviceId: crypto.randomUUID(), azureADDeviceIds: [enrolledEntra] },
      ],
    });
    await delay(200);
    expect(await b!.cache.lookup(otherKey, fetch([]))).toMatchObject({ ok: true, cacheHit: true });
    expect(await b!.cache.lookup(changedKey, fetch([posture()]))).toMatchObject({ ok: true, cacheHit: false });
    expect(await b!.cache.lookup(enrolledKey, fetch([posture()]))).toMatchObject({ ok: true, cacheHit: false, records: [{ device_id: DEVICE }] });
    expect(fetches).toBe(5);
    // Nor does Redis keep them: a replica that starts now asks Graph for the dropped key too.
    const fresh = await replicas(1, a!.link.keyPrefix);
    await b!.cache.invalidateSynced(TENANT, { all: false, devices: [{ deviceId: DEVICE, azureADDeviceIds: [ENTRA] }] });
    expect(await fresh[0]!.cache.lookup(changedKey, fetch([posture()]))).toMatchObject({ ok: true, cacheHit: false });
    expect(await fresh[0]!.cache.lookup(otherKey, fetch([]))).toMatchObject({ ok: true, cacheHit: true });

    // A sync that cannot say what changed drops the tenant.
    await a!.cache.invalidateSynced(TENANT, { all: true });
    await delay(200);
    expect(await b!.cache.lookup(otherKey, fetch([]))).toMatchObject({ ok: true, cacheHit: false });
  });

  it('asks Graph itself when Redis does not answer, and says so once', async () => {
    const warnings: string[] = [];
    const logger = { warn: (_o: unknown, msg: string) => warnings.push(msg), info: () => undefined } as never;
    const link = new RedisLink({ url: 'redis://127.0.0.1:1', keyPrefix: 'nowhere', timeoutMs: 100, logger });
    links.push(link);
    await link.ready(300);
    const cache = new ComplianceCache({ ttlMs: 60_000, maxEntries: 100, staleMaxMs: 0, now: Date.now, shared: createRedisCacheTier(link) });
    let fetches = 0;
    const fetch = (): Promise<FetchedRecords> => {
      fetches += 1;
      return Promise.resolve({ records: [posture()], graphRequestId: null });
    };
    for (let i = 0; i < 5; i++) expect(await cache.lookup(ComplianceCache.key(TENANT, 'deviceId', crypto.randomUUID()), fetch)).toMatchObject({ ok: true });
    expect(fetches).toBe(5);
    expect(cache.stats().sharedFallbacks).toBe(5);
    expect(warnings.filter((w) => /Redis does not answer/.test(w))).toHaveLength(1);
    expect(link.status()).toMatchObject({ up: false, outages: 1 });
  });
});

describe.skipIf(!redisAvailable)('the Graph budget shared through Redis [redis]', () => {
  it('admits the limit per window across replicas, then says how long to wait; a Retry-After pauses everyone', async () => {
    const prefix = `t-${crypto.randomBytes(6).toString('hex')}`;
    const [a, b] = await replicas(2, prefix);
    const limits = { requests: 4, writes: 2, windowMs: 2_000 };
    const budgetA = new RedisGraphBudget(a!.link, limits);
    const budgetB = new RedisGraphBudget(b!.link, limits);
    try {
      const waits = [];
      for (let i = 0; i < 3; i++) waits.push((await budgetA.reserve('tenant:app', false)).waitMs, (await budgetB.reserve('tenant:app', false)).waitMs);
      expect(waits.filter((w) => w === 0)).toHaveLength(4);
      expect(Math.min(...waits.filter((w) => w > 0))).toBeGreaterThan(1_000);
      // Another app's budget is its own.
      expect((await budgetB.reserve('tenant:other-app', true)).waitMs).toBe(0);

      budgetA.pause('tenant:other-app', 5_000);
      await delay(100);
      const paused = await budgetB.reserve('tenant:other-app', false);
      expect(paused.waitMs).toBeGreaterThan(4_000);
    } finally {
      budgetA.close();
      budgetB.close();
    }
  });
});

describe.skipIf(!redisAvailable)('the device-action budget shared through Redis [redis]', () => {
  it('admits the capacity per window across replicas, per tenant, then says how long to wait', async () => {
    const prefix = `t-${crypto.randomBytes(6).toString('hex')}`;
    const [a, b] = await replicas(2, prefix);
    const limits = { capacity: 3, windowMs: 2_000, now: Date.now, replicas: () => 2 };
    const budgetA = new RedisWriteBudget(a!.link, limits);
    const budgetB = new RedisWriteBudget(b!.link, limits);
    const taken = [];
    for (let i = 0; i < 3; i++) taken.push(await budgetA.take(TENANT), await budgetB.take(TENANT));
    expect(taken.filter((t) => t.ok)).toHaveLength(3);
    const refused = taken.filter((t): t is { ok: false; retryAfterMs: number } => !t.ok);
    expect(refused).toHaveLength(3);
    expect(Math.min(...refused.map((t) => t.retryAfterMs))).toBeGreaterThan(1_000);
    expect(Math.max(...refused.map((t) => t.retryAfterMs))).toBeLessThanOrEqual(2_000);
    // Another tenant's budget is its own.
    expect(await budgetB.take('fabrikam')).toEqual({ ok: true });
    expect(budgetA.localTakes() + budgetB.localTakes()).toBe(0);
  });

  it('keeps to its share of the capacity while Redis does not answer', async () => {
    const link = new RedisLink({ url: 'redis://127.0.0.1:1', keyPrefix: 'nowhere', timeoutMs: 100, logger: undefined });
    links.push(link);
    await link.ready(300);
    const budget = new RedisWriteBudget(link, { capacity: 6, windowMs: 20_000, now: () => 0, replicas: () => 3 });
    const taken = [];
    for (let i = 0; i < 4; i++) taken.push(await budget.take(TENANT));
    expect(taken.map((t) => t.ok)).toEqual([true, true, false, false]);
    expect(budget.localTakes()).toBe(4);
  });
});

describe('the local Graph budget', () => {
  it('keeps to a share of the budget when several processes split it', () => {
    let now = 1_000_000;
    let share = 1;
    const budget = new LocalGraphBudget({ requests: 6, writes: 6, windowMs: 1_000 }, () => now, () => share);
    share = 3;
    const waits = [0, 1, 2].map(() => budget.reserveNow('k', false).waitMs);
    expect(waits.slice(0, 2)).toEqual([0, 0]);
    expect(waits[2]).toBeGreaterThan(0);
    share = 1;
    expect(budget.reserveNow('k', false).waitMs).toBe(0);
    now += 5_000;
    expect(Array.from({ length: 7 }, () => budget.reserveNow('k', false).waitMs).filter((w) => w === 0)).toHaveLength(6);
  });

  it('counts a slot from the answer, so a request that travelled long does not let the next window in early', () => {
    let now = 1_000_000;
    const budget = new LocalGraphBudget({ requests: 1, writes: 1, windowMs: 1_000 }, () => now);
    const first = budget.reserveNow('k', false);
    expect(first.waitMs).toBe(0);
    now += 900;
    budget.sent('k', first.slot as string, false);
    now += 1_000;
    // 1,900 ms after admission, but only 1,000 after the answer: still within the window (plus margin).
    expect(budget.reserveNow('k', false).waitMs).toBeGreaterThan(0);
    now += 500;
    expect(budget.reserveNow('k', false).waitMs).toBe(0);
  });
});
