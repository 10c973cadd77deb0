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
}

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
}

const NOT_FOUND_TTL_CAP_MS = 60_000;
/** Failures that may be bridged by a stale answer; the rest (forbidden, cancelled, not_found) fail as they are. */
const STALE_SERVABLE = new Set<GraphFailure['reason']>(['throttled', 'graph_unavailable', 'graph_error', 'timeout']);

type FetchOutcome<T> = { readonly ok: true; readonly fetched: FetchedRecords<T>; readonly fetchedAt: number } | { readonly ok: false; readonly failure: GraphFailure };

/** T: what one key holds (device postures; or a device's compliance policy states, ./policy-states.ts). */
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

  constructor(options: CacheOptions) {
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
      pending = this.#fetchAndStore(key, fetch);
      this.#inFlight.set(key, pending);
      const started = pending;
      void started.finally(() => {
        if (this.#inFlight.get(key) === started) this.#inFlight.delete(key);
      });
    } else {
      this.#coalesced += 1;
    }

    const outcome = await raceAbort(pending, options.signal);
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
        this.#lru.set(key, { records: fetched.records, fetchedAt, freshUntil: fetchedAt + ttl }, { ttl: ttl + this.#staleMaxMs });
      }
      return { ok: true, fetched, fetchedAt };
    } catch (err) {
      return { ok: false, failure: classifyGraphError(err) };
    }
  }

  #staleFor(key: string, failure: GraphFailure, maxStaleMs: number | undefined): Entry<T> | undefined {
    if (this.#lru === undefined || !STALE_SERVABLE.has(failure.reason)) return undefined;
    const window = Math.min(this.#staleMaxMs, maxStaleMs === undefined ? Infinity : Math.max(0, maxStaleMs));
    if (window <= 0) return undefined;
    const entry = this.#lru.get(key, { allowStale: true });
    if (entry === undefined) return undefined;
    return this.#now() - entry.freshUntil <= window ? entry : undefined;
  }

  /** Forget one key (e.g. after a sync request makes a fresher answer likely). */
  delete(key: string): void {
    this.#lru?.delete(key);
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
    };
  }
}

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
