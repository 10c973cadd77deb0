/**
 * The compliance cache's shared tier in Redis (see ../cache.ts for how the LRU uses it).
 *
 * - Entries: one hash per tenant, `<prefix>:cc:<tenant>`, field `<kind>:<id>`, value the entry as
 *   JSON (redacted postures, fetch and freshness times). A device action deletes its fields; a sync
 *   deletes the tenant's hash (one command, whatever the tenant's size). The hash expires after the
 *   longest entry life written into it.
 * - The one Graph request per key: `SET <prefix>:claim:<tenant>:<kind>:<id> <token> NX PX`. The
 *   claimant publishes the outcome on `<prefix>:cc:settled`; the others wait for it (after
 *   subscribing they read the hash once more, so an outcome published just before is not missed).
 * - Invalidations are published on `<prefix>:cc:invalidated` and drop other replicas' LRU entries;
 *   for a device action, each replica also deletes the shared fields it knows hold that device (an
 *   entry by Entra id is found through the replica that stored it).
 */
import crypto from 'node:crypto';
import type { SharedCacheTier, SharedEntry, SharedOutcome } from '../cache.js';
import { DevicePostureSchema, type DevicePosture } from '../posture.js';
import { UNAVAILABLE, type RedisLink } from './link.js';

const RELEASE_CLAIM = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

type InvalidateListener = Parameters<SharedCacheTier['onInvalidate']>[0];

/** `tenant\0kind\0id` (ComplianceCache.key) -> its parts. */
function partsOf(key: string): { tenant: string; field: string } {
  const [tenant = '', kind = '', id = ''] = key.split('\u0000');
  return { tenant, field: `${kind}:${id}` };
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** An entry read back from Redis or a message: every record must be a redacted posture, or the entry is ignored. */
function parseEntry(value: unknown): SharedEntry | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (!Array.isArray(v['records']) || !isNumber(v['fetchedAt']) || !isNumber(v['freshUntil'])) return undefined;
  const records: DevicePosture[] = [];
  for (const record of v['records'] as unknown[]) {
    const parsed = DevicePostureSchema.safeParse(record);
    if (!parsed.success) return undefined;
    records.push(Object.freeze(parsed.data));
  }
  const requestId = typeof v['graphRequestId'] === 'string' ? v['graphRequestId'] : null;
  return { records: Object.freeze(records), fetchedAt: v['fetchedAt'], freshUntil: v['freshUntil'], graphRequestId: requestId };
}

function parseOutcome(value: unknown): SharedOutcome | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (v['ok'] === true) {
    const entry = parseEntry(v['entry']);
    return entry === undefined ? undefined : { ok: true, entry };
  }
  const failure = v['failure'] as Record<string, unknown> | undefined;
  if (v['ok'] !== false || typeof failure !== 'object' || typeof failure['reason'] !== 'string' || typeof failure['message'] !== 'string') return undefined;
  return {
    ok: false,
    failure: {
      reason: failure['reason'] as never,
      message: failure['message'],
      graphRequestId: typeof failure['graphRequestId'] === 'string' ? failure['graphRequestId'] : null,
      status: isNumber(failure['status']) ? failure['status'] : null,
      ...(isNumber(failure['retryAfterMs']) ? { retryAfterMs: failure['retryAfterMs'] } : {}),
    },
  };
}

function parseJson(text: string | null): unknown {
  if (text === null) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function createRedisCacheTier(link: RedisLink): SharedCacheTier {
  const settledChannel = link.key('cc', 'settled');
  const invalidatedChannel = link.key('cc', 'invalidated');
  const hashOf = (tenant: string) => link.key('cc', tenant);
  const claimOf = (key: string) => {
    const { tenant, field } = partsOf(key);
    return link.key('claim', tenant, field);
  };
  /** key -> resolvers of the lookups waiting for its outcome. */
  const waiters = new Map<string, Set<(outcome: SharedOutcome | undefined) => void>>();
  /** key -> the claim token this replica holds. */
  const claims = new Map<string, string>();
  const listeners: InvalidateListener[] = [];

  const settleWaiters = (key: string, outcome: SharedOutcome | undefined): void => {
    const set = waiters.get(key);
    if (set === undefined) return;
    waiters.delete(key);
    for (const resolve of set) resolve(outcome);
  };

  void link.subscriber.subscribe(settledChannel, invalidatedChannel).catch(() => undefined);
  link.subscriber.on('message', (channel: string, text: string) => {
    const message = parseJson(text) as Record<string, unknown> | undefined;
    if (message === undefined || message === null || typeof message !== 'object') return;
    if (channel === settledChannel && typeof message['key'] === 'string') {
      const outcome = parseOutcome(message['outcome']);
      if (outcome !== undefined) settleWaiters(message['key'], outcome);
    } else if (channel === invalidatedChannel) {
      const tenant = message['tenant'];
      const devices = message['devices'];
      if (typeof tenant !== 'string') return;
      if (Array.isArray(devices)) {
        const deviceIds = devices.filter((d): d is string => typeof d === 'string');
        const keys = Array.isArray(message['keys']) ? message['keys'].filter((k): k is string => typeof k === 'string') : [];
        const dropped = listeners.flatMap((listener) => listener({ tenant, deviceIds, keys }));
        void deleteFields(dropped);
      } else {
        for (const listener of listeners) listener({ tenant });
      }
    }
  });
  link.onReconnect(() => {
    for (const listener of listeners) listener({ all: true });
  });

  const deleteFields = async (keys: readonly string[]): Promise<void> => {
    if (keys.length === 0) return;
    await link.run(async (r) => {
      const tx = r.multi();
      for (const key of keys) {
        const { tenant, field } = partsOf(key);
        tx.hdel(hashOf(tenant), field);
      }
      return tx.exec();
    });
  };

  const get = async (key: string): Promise<SharedEntry | undefined> => {
    const { tenant, field } = partsOf(key);
    const text = await link.run((r) => r.hget(hashOf(tenant), field));
    return text === UNAVAILABLE ? undefined : parseEntry(parseJson(text));
  };

  return {
    get,

    async claim(key, ttlMs) {
      const token = crypto.randomUUID();
      const result = await link.run((r) => r.set(claimOf(key), token, 'PX', Math.max(1, ttlMs), 'NX'));
      if (result === UNAVAILABLE) return 'unavailable';
      if (result !== 'OK') return 'taken';
      claims.set(key, token);
      return 'claimed';
    },

    async awaitOutcome(key, waitMs) {
      if (!link.up) return undefined;
      let resolveWait: (outcome: SharedOutcome | undefined) => void = () => undefined;
      const waited = new Promise<SharedOutcome | undefined>((resolve) => {
        resolveWait = resolve;
      });
      const set = waiters.get(key) ?? new Set();
      set.add(resolveWait);
      waiters.set(key, set);
      const timer = setTimeout(() => {
        set.delete(resolveWait);
        if (set.size === 0 && waiters.get(key) === set) waiters.delete(key);
        resolveWait(undefined);
      }, waitMs);
      // The claimant may have settled between our claim attempt and our subscription.
      void (async () => {
        const stored = await get(key);
        if (stored !== undefined && Date.now() < stored.freshUntil) return resolveWait({ ok: true, entry: stored });
        const claimed = await link.run((r) => r.exists(claimOf(key)));
        if (claimed === UNAVAILABLE || claimed === 0) resolveWait(undefined);
        return undefined;
      })();
      try {
        return await waited;
      } finally {
        clearTimeout(timer);
        set.delete(resolveWait);
      }
    },

    async settle(key, outcome, keepMs) {
      const { tenant, field } = partsOf(key);
      const token = claims.get(key);
      claims.delete(key);
      await link.run(async (r) => {
        const tx = r.multi();
        if (outcome.ok && keepMs > 0) {
          tx.hset(hashOf(tenant), field, JSON.stringify(outcome.entry));
          tx.pexpire(hashOf(tenant), keepMs, 'NX');
          tx.pexpire(hashOf(tenant), keepMs, 'GT');
        }
        tx.publish(settledChannel, JSON.stringify({ key, outcome }));
        if (token !== undefined) tx.eval(RELEASE_CLAIM, 1, claimOf(key), token);
        return tx.exec();
      });
    },

    async invalidateDevices(tenant, deviceIds, keys) {
      if (deviceIds.length === 0) return;
      await deleteFields(keys);
      await link.run((r) => r.publish(invalidatedChannel, JSON.stringify({ tenant, devices: deviceIds, keys })));
    },

    async invalidateTenant(tenant) {
      await link.run((r) => r.multi().del(hashOf(tenant)).publish(invalidatedChannel, JSON.stringify({ tenant })).exec());
    },

    onInvalidate(listener) {
      listeners.push(listener);
    },
  };
}
