/**
 * The compliance cache: redacted postures per (tenant, id kind, id), in a bounded LRU.
 *
 * - A fresh entry answers without Graph (hit). Entries live `ttlMs` (0 disables caching);
 *   "not managed" answers ([]) live `notFoundTtlMs` (default min(ttl, 60 s)) so a device enrolled a
 *   minute ago is found soon.
 * - Concurrent misses for one key share one Graph request (the in-flight promise map): a burst of
 *   a thousand lookups for a cold device is one request, not a thousand. This holds with ttl 0
 *   too: callers that arrive while a request is in flight get its answer.
 * - When Graph fails (throttled, unavailable, timeout, error, but not forbidden: a revoked
 *   permission must not keep answering), an entry up to `staleMaxMs` past its expiry may answer,
 *   marked servedStale. A caller may shorten that window per call (maxStaleMs), never widen it.
 *   Entries are therefore kept ttl + staleMaxMs in the LRU, and freshness is judged here.
 *
 * - With a shared tier (REDIS_URL: ./replicas/shared-cache.ts) the LRU sits in front of it: a local
 *   miss reads the entry another replica stored; a shared miss claims the one Graph request for the
 *   key across replicas, and the others wait (bounded) for its outcome, published to all. Whenever
 *   the tier does not answer, the lookup goes on as if there were none: this process asks Graph.
 *
 * The clock is injected (`now`), also into the LRU, so tests move time without waiting.
 */
import { LRUCache } from 'lru-cache';
import type { DevicePosture } from './posture.js';
import { classifyGraphError, type GraphFailure } from './errors.js';

export type CacheKeyKind = 'azureADDeviceId' | 'deviceId';

export interface CacheOptions {
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly staleMaxMs: number;
  readonly notFoundTtlMs?: number;
  readonly now: () => number;
  /** What replicas share; unset: this process alone. */
  readonly shared?: SharedCacheTier;
}

/** An entry as replicas share it. */
export interface SharedEntry {
  readonly records: readonly DevicePosture[];
  readonly fetchedAt: number;
  readonly freshUntil: number;
  readonly graphRequestId: string | null;
}

/** What the replica that asked Graph publishes for the others waiting on the same key. */
export type SharedOutcome = { readonly ok: true; readonly entry: SharedEntry } | { readonly ok: false; readonly failure: GraphFailure };

/**
 * The tier behind the LRU that replicas share. Every method answers even when the store does not
 * (undefined, 'unavailable' or nothing happens), so the cache falls back to its own work.
 */
export interface SharedCacheTier {
  /** The entry another replica stored (fresh or within its stale window), if any. */
  get(key: string): Promise<SharedEntry | undefined>;
  /** Claims the Graph request for `key` for `ttlMs`: 'claimed' (ask Graph), 'taken' (another replica is asking). */
  claim(key: string, ttlMs: number): Promise<'claimed' | 'taken' | 'unavailable'>;
  /** The outcome the claimant publishes, or undefined after `waitMs` (or when the claim ended without one). */
  awaitOutcome(key: string, waitMs: number): Promise<SharedOutcome | undefined>;
  /** Stores an answer for `keepMs` (0: not at all), publishes the outcome, releases the claim. */
  settle(key: string, outcome: SharedOutcome, keepMs: number): Promise<void>;
  /**
   * Drops the entries of these devices (Intune ids) everywhere; `keys` are the ones this replica
   * knows, dropped on every replica too (an Entra id's "not managed" answer names no device).
   */
  invalidateDevices(tenant: string, deviceIds: readonly string[], keys: readonly string[]): Promise<void>;
  /** Drops a tenant's entries everywhere. */
  invalidateTenant(tenant: string): Promise<void>;
  /**
   * Called when any replica invalidated devices or a whole tenant; `all` after invalidations may have
   * been missed. For devices, the listener returns the keys it dropped (the tier deletes them too).
   */
  onInvalidate(
    listener: (
      what: { readonly tenant: string; readonly deviceIds: readonly string[]; readonly keys?: readonly string[] } | { readonly tenant: string } | { readonly all: true },
    ) => readonly string[],
  ): void;
}

/** A device a sync found changed (or enrolled, or gone), with every Entra id it had in either snapshot. */
export interface SyncedDevice {
  readonly deviceId: string;
  readonly azureADDeviceIds: readonly string[];
}

/** What a succeeded posture sync changed: these devices, or `all` when it cannot say (a first sync, a mass change). */
export type SyncInvalidation = { readonly all: true } | { readonly all: false; readonly devices: readonly SyncedDevice[] };

export interface FetchedRecords<T = DevicePosture> {
  readonly records: readonly T[];
  readonly graphRequestId: string | null;
}

export type CachedLookup<T = DevicePosture> =
  | { readonly ok: true; readonly records: readonly T[]; readonly cacheHit: boolean; readonly servedStale: boolean; readonly fetchedAt: number; readonly graphRequestId: string | null }
  | { readonly ok: false; readonly failure: GraphFailure };

interface Entry<T> {
  readonly records: readonly T[];
  readonly fetchedAt: number;
  readonly freshUntil: number;
}

export interface CacheStats {
  /** Answers from a fresh entry (including cached "not managed" answers). */
  readonly hits: number;
  /** Lookups that started a Graph request. */
  readonly misses: number;
  /** Lookups that waited for a request another lookup had started. */
  readonly coalesced: number;
  /** Answers served past their TTL because Graph failed. */
  readonly staleServed: number;
  /** The subset of hits that were a cached "not managed". */
  readonly notFoundHits: number;
  readonly size: number;
  /** Answers from an entry another replica stored (REDIS_URL). */
  readonly sharedHits: number;
  /** Lookups answered by the Graph request another replica was making for the same key. */
  readonly sharedCoalesced: number;
  /** Lookups that asked Graph themselves because the shared tier did not answer in time. */
  readonly sharedFallbacks: number;
}

const NOT_FOUND_TTL_CAP_MS = 60_000;
/** Failures that may be bridged by a stale answer; the rest (forbidden, cancelled, not_found) fail as they are. */
const STALE_SERVABLE = new Set<GraphFailure['reason']>(['throttled', 'graph_unavailable', 'graph_error', 'timeout']);

type FetchOutcome<T> =
  | { readonly ok: true; readonly fetched: FetchedRecords<T>; readonly fetchedAt: number; readonly sharedHit?: boolean }
  | { readonly ok: false; readonly failure: GraphFailure };

/** How long a replica waits for another's Graph request before asking Graph itself. */
export const SHARED_WAIT_MS = 10_000;

/**
 * T: what one key holds (device postures; or a device's compliance policy states, ./policy-states.ts).
 * A shared tier is given only to the cache of device postures (its entries are parsed as postures).
 */
export class ComplianceCache<T = DevicePosture> {
  readonly #ttlMs: number;
  readonly #notFoundTtlMs: number;
  readonly #staleMaxMs: number;
  readonly #now: () => number;
  readonly #lru: LRUCache<string, Entry<T>> | undefined;
  readonly #inFlight = new Map<string, Promise<FetchOutcome<T>>>();
  #hits = 0;
  #misses = 0;
  #coalesced = 0;
  #staleServed = 0;
  #notFoundHits = 0;
  #sharedHits = 0;
  #sharedCoalesced = 0;
  #sharedFallbacks = 0;
  readonly #shared: SharedCacheTier | undefined;
  /** tenant + Intune device id -> the keys whose entries hold that device (a device action drops them all). */
  readonly #byDevice = new Map<string, Set<string>>();

  constructor(options: CacheOptions) {
    this.#shared = options.shared;
    this.#shared?.onInvalidate((what) => {
      if ('deviceIds' in what) return [...this.#dropDevices(what.tenant, what.deviceIds), ...this.#dropKeys(what.tenant, what.keys ?? [])];
      if ('tenant' in what) this.#dropTenant(what.tenant);
      else this.#lru?.clear();
      return [];
    });
    this.#ttlMs = Math.max(0, options.ttlMs);
    this.#notFoundTtlMs = Math.max(0, Math.min(options.notFoundTtlMs ?? Math.min(this.#ttlMs, NOT_FOUND_TTL_CAP_MS), this.#ttlMs));
    this.#staleMaxMs = this.#ttlMs === 0 ? 0 : Math.max(0, options.staleMaxMs);
    this.#now = options.now;
    this.#lru =
      this.#ttlMs === 0
        ? undefined
        : new LRUCache<string, Entry<T>>({
            max: Math.max(1, options.maxEntries),
            ttl: this.#ttlMs + this.#staleMaxMs,
            ttlResolution: 0,
            ttlAutopurge: false,
            perf: { now: options.now },
            // Keeps the device index to what the LRU holds.
            dispose: (entry, key) => {
              for (const id of deviceIdsOf(entry.records)) this.#unindex(id, key);
            },
          });
  }

  static key(tenant: string, kind: CacheKeyKind | 'policyStates', id: string): string {
    return `${tenant}\u0000${kind}\u0000${id.toLowerCase()}`;
  }

  /**
   * The answer for `key`: a fresh entry, else the result of `fetch` (shared with concurrent callers
   * of the same key), else, when that fails, a stale entry within the window.
   */
  async lookup(key: string, fetch: () => Promise<FetchedRecords<T>>, options: { maxStaleMs?: number; signal?: AbortSignal } = {}): Promise<CachedLookup<T>> {
    const now = this.#now();
    const entry = this.#lru?.get(key, { allowStale: false });
    if (entry !== undefined && now < entry.freshUntil) {
      this.#hits += 1;
      if (entry.records.length === 0) this.#notFoundHits += 1;
      return { ok: true, records: entry.records, cacheHit: true, servedStale: false, fetchedAt: entry.fetchedAt, graphRequestId: null };
    }

    let pending = this.#inFlight.get(key);
    if (pending === undefined) {
      this.#misses += 1;
      pending = this.#shared === undefined ? this.#fetchAndStore(key, fetch) : this.#resolveShared(this.#shared, key, fetch);
      this.#inFlight.set(key, pending);
      const started = pending;
      void started.finally(() => {
        if (this.#inFlight.get(key) === started) this.#inFlight.delete(key);
      });
    } else {
      this.#coalesced += 1;
    }

    const outcome = await raceAbort(pending, options.signal);
    if (outcome.ok && outcome.sharedHit === true) {
      return { ok: true, records: outcome.fetched.records, cacheHit: true, servedStale: false, fetchedAt: outcome.fetchedAt, graphRequestId: null };
    }
    if (outcome.ok) {
      return { ok: true, records: outcome.fetched.records, cacheHit: false, servedStale: false, fetchedAt: outcome.fetchedAt, graphRequestId: outcome.fetched.graphRequestId };
    }
    const stale = this.#staleFor(key, outcome.failure, options.maxStaleMs);
    if (stale !== undefined) {
      this.#staleServed += 1;
      return { ok: true, records: stale.records, cacheHit: true, servedStale: true, fetchedAt: stale.fetchedAt, graphRequestId: null };
    }
    return outcome;
  }

  async #fetchAndStore(key: string, fetch: () => Promise<FetchedRecords<T>>): Promise<FetchOutcome<T>> {
    try {
      const fetched = await fetch();
      const fetchedAt = this.#now();
      const ttl = fetched.records.length === 0 ? this.#notFoundTtlMs : this.#ttlMs;
      if (this.#lru !== undefined && ttl > 0) {
        this.#store(key, { records: fetched.records, fetchedAt, freshUntil: fetchedAt + ttl }, ttl + this.#staleMaxMs);
      }
      return { ok: true, fetched, fetchedAt };
    } catch (err) {
      return { ok: false, failure: classifyGraphError(err) };
    }
  }

  /**
   * A local miss with a shared tier: the entry another replica stored; else the claim of the one
   * Graph request (or the wait for the replica that holds it); else, when the tier does not answer
   * in time, this process's own request.
   */
  async #resolveShared(shared: SharedCacheTier, key: string, fetch: () => Promise<FetchedRecords<T>>): Promise<FetchOutcome<T>> {
    const fromShared = (entry: SharedEntry): { ok: true; fetched: FetchedRecords<T>; fetchedAt: number } | undefined => {
      this.#keepLocally(key, entry);
      return this.#now() < entry.freshUntil ? { ok: true, fetched: { records: entry.records as unknown as readonly T[], graphRequestId: entry.graphRequestId }, fetchedAt: entry.fetchedAt } : undefined;
    };
    if (this.#lru !== undefined) {
      const stored = await shared.get(key);
      const fresh = stored !== undefined ? fromShared(stored) : undefined;
      if (fresh !== undefined) {
        this.#sharedHits += 1;
        return { ...fresh, sharedHit: true };
      }
    }
    const claim = await shared.claim(key, SHARED_WAIT_MS);
    if (claim === 'taken') {
      const outcome = await shared.awaitOutcome(key, SHARED_WAIT_MS);
      if (outcome !== undefined) {
        this.#sharedCoalesced += 1;
        if (!outcome.ok) return outcome;
        return (
          fromShared(outcome.entry) ?? {
            ok: true,
            fetched: { records: outcome.entry.records as unknown as readonly T[], graphRequestId: outcome.entry.graphRequestId },
            fetchedAt: outcome.entry.fetchedAt,
          }
        );
      }
    }
    if (claim !== 'claimed') this.#sharedFallbacks += 1;
    const outcome = await this.#fetchAndStore(key, fetch);
    if (claim === 'claimed') {
      if (outcome.ok) {
        const ttl = outcome.fetched.records.length === 0 ? this.#notFoundTtlMs : this.#ttlMs;
        const entry: SharedEntry = { records: outcome.fetched.records as unknown as readonly DevicePosture[], fetchedAt: outcome.fetchedAt, freshUntil: outcome.fetchedAt + ttl, graphRequestId: outcome.fetched.graphRequestId };
        await shared.settle(key, { ok: true, entry }, ttl > 0 ? ttl + this.#staleMaxMs : 0);
      } else {
        await shared.settle(key, outcome, 0);
      }
    }
    return outcome;
  }

  /** Holds another replica's entry in the LRU for what is left of its life (fresh, then stale). */
  #keepLocally(key: string, entry: SharedEntry): void {
    if (this.#lru === undefined) return;
    const keepMs = entry.freshUntil + this.#staleMaxMs - this.#now();
    if (keepMs <= 0) return;
    this.#store(key, { records: entry.records as unknown as readonly T[], fetchedAt: entry.fetchedAt, freshUntil: entry.freshUntil }, keepMs);
  }

  #store(key: string, entry: Entry<T>, keepMs: number): void {
    if (this.#lru === undefined) return;
    this.#lru.set(key, entry, { ttl: keepMs });
    const tenant = tenantOf(key);
    for (const id of deviceIdsOf(entry.records)) {
      const indexKey = `${tenant}\u0000${id.toLowerCase()}`;
      const keys = this.#byDevice.get(indexKey) ?? new Set<string>();
      keys.add(key);
      this.#byDevice.set(indexKey, keys);
    }
  }

  #unindex(deviceId: string, key: string): void {
    const indexKey = `${tenantOf(key)}\u0000${deviceId.toLowerCase()}`;
    const keys = this.#byDevice.get(indexKey);
    keys?.delete(key);
    if (keys?.size === 0) this.#byDevice.delete(indexKey);
  }

  /** Drops every entry holding one of these devices, with the Intune-id keys of the devices themselves; returns the keys. */
  #dropDevices(tenant: string, deviceIds: readonly string[]): string[] {
    const dropped = new Set<string>();
    for (const id of deviceIds) {
      dropped.add(ComplianceCache.key(tenant, 'deviceId', id));
      for (const key of this.#byDevice.get(`${tenant}\u0000${id.toLowerCase()}`) ?? []) dropped.add(key);
    }
    for (const key of dropped) this.#lru?.delete(key);
    return [...dropped];
  }

  /** Drops these keys of the tenant (a key of another tenant is ignored); returns the ones dropped. */
  #dropKeys(tenant: string, keys: readonly string[]): string[] {
    const prefix = `${tenant}\u0000`;
    const dropped = keys.filter((key) => typeof key === 'string' && key.startsWith(prefix));
    for (const key of dropped) this.#lru?.delete(key);
    return dropped;
  }

  #dropTenant(tenant: string): void {
    if (this.#lru === undefined) return;
    const prefix = `${tenant}\u0000`;
    for (const key of [...this.#lru.keys()]) if (key.startsWith(prefix)) this.#lru.delete(key);
  }

  #staleFor(key: string, failure: GraphFailure, maxStaleMs: number | undefined): Entry<T> | undefined {
    if (this.#lru === undefined || !STALE_SERVABLE.has(failure.reason)) return undefined;
    const window = Math.min(this.#staleMaxMs, maxStaleMs === undefined ? Infinity : Math.max(0, maxStaleMs));
    if (window <= 0) return undefined;
    const entry = this.#lru.get(key, { allowStale: true });
    if (entry === undefined) return undefined;
    return this.#now() - entry.freshUntil <= window ? entry : undefined;
  }

  /** Forget what is cached about these devices (Intune ids) here and, with a shared tier, on every replica: a device action changed them. */
  async invalidateDevices(tenant: string, deviceIds: readonly string[]): Promise<void> {
    const keys = this.#dropDevices(tenant, deviceIds);
    await this.#shared?.invalidateDevices(tenant, deviceIds, keys);
  }

  /**
   * Forget what a posture sync changed, here and on every replica: the devices it lists, by Intune
   * id and by every Entra id they had (a device enrolled since may be cached as "not managed"
   * under its Entra id), or the whole tenant when the sync cannot say.
   */
  async invalidateSynced(tenant: string, changed: SyncInvalidation): Promise<void> {
    if (changed.all) return this.invalidateTenant(tenant);
    if (changed.devices.length === 0) return;
    const deviceIds = changed.devices.map((d) => d.deviceId);
    const entraKeys = changed.devices.flatMap((d) => d.azureADDeviceIds.map((id) => ComplianceCache.key(tenant, 'azureADDeviceId', id)));
    const keys = new Set([...this.#dropDevices(tenant, deviceIds), ...this.#dropKeys(tenant, entraKeys), ...entraKeys]);
    await this.#shared?.invalidateDevices(tenant, deviceIds, [...keys]);
  }

  /** Forget a tenant's entries everywhere (a sync may have changed any of its devices). */
  async invalidateTenant(tenant: string): Promise<void> {
    this.#dropTenant(tenant);
    await this.#shared?.invalidateTenant(tenant);
  }

  clear(): void {
    this.#lru?.clear();
  }

  stats(): CacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      coalesced: this.#coalesced,
      staleServed: this.#staleServed,
      notFoundHits: this.#notFoundHits,
      size: this.#lru?.size ?? 0,
      sharedHits: this.#sharedHits,
      sharedCoalesced: this.#sharedCoalesced,
      sharedFallbacks: this.#sharedFallbacks,
    };
  }
}

/** The Intune device ids of cached records that are postures (other record kinds hold none). */
function deviceIdsOf(records: readonly unknown[]): string[] {
  const ids: string[] = [];
  for (const record of records) {
    const id = (record as { device_id?: unknown } | null)?.device_id;
    if (typeof id === 'string') ids.push(id);
  }
  return ids;
}

const tenantOf = (key: string): string => key.slice(0, Math.max(0, key.indexOf('\u0000')));

/** Resolves with the shared promise, or with a 'cancelled' failure as soon as this caller's signal aborts (the shared request goes on for the others). */
function raceAbort<T>(pending: Promise<FetchOutcome<T>>, signal: AbortSignal | undefined): Promise<FetchOutcome<T>> {
  if (signal === undefined) return pending;
  const cancelled: FetchOutcome<T> = {
    ok: false,
    failure: { reason: 'cancelled', message: 'The lookup was cancelled before Microsoft Graph answered.', graphRequestId: null, status: null },
  };
  if (signal.aborted) return Promise.resolve(cancelled);
  return new Promise((resolve) => {
    const onAbort = () => resolve(cancelled);
    signal.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (outcome) => {
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      },
      () => undefined,
    );
  });
}
