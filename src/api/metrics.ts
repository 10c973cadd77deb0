/**
 * Prometheus metrics on one registry per app (never the global one, so several apps in one
 * process, as in tests, do not collide). Counters owned by other modules (the compliance cache,
 * sync runs, Chronicle appends) are read from them at scrape time rather than counted twice.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SharingStatus } from '../connector/replicas/index.js';

export interface CacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly coalesced: number;
  readonly staleServed: number;
  readonly size: number;
  readonly sharedHits?: number;
  readonly sharedCoalesced?: number;
  readonly sharedFallbacks?: number;
}

export interface SyncRunStats {
  /** Runs recorded in the database, by status (running, succeeded, failed). */
  readonly byStatus: Readonly<Record<string, number>>;
  /** Duration of each connection's most recent finished run. */
  readonly lastDurations: ReadonlyArray<{ readonly connectionId: string; readonly status: string; readonly seconds: number }>;
}

export interface MetricsSources {
  readonly cacheStats?: () => CacheStats;
  /** What replicas share (REDIS_URL) and the Graph budget. */
  readonly sharing?: () => SharingStatus;
  readonly syncRuns?: () => Promise<SyncRunStats>;
  /** Chronicle's own counters (this process). */
  readonly chronicleStats?: () => {
    readonly appended: number;
    readonly failed: number;
    readonly batches: number;
    readonly pending: number;
    readonly witnessBacklog?: number;
    readonly witnessFailures?: number;
  };
}

export interface AppMetrics {
  readonly registry: Registry;
  observeRequest(method: string, route: string, status: number, seconds: number): void;
}

/** A counter whose value lives elsewhere: reset and re-set at each scrape. */
function mirroredCounter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  read: () => Promise<ReadonlyArray<{ labels: Partial<Record<L, string>>; value: number }>> | ReadonlyArray<{ labels: Partial<Record<L, string>>; value: number }>,
): void {
  new Counter<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      const values = await read();
      this.reset();
      for (const { labels, value } of values) if (value > 0) this.inc(labels, value);
    },
  });
}

function sharingMetrics(registry: Registry, sharing: () => SharingStatus): void {
  new Gauge({
    name: 'intune_redis_up',
    help: 'With REDIS_URL: 1 while Redis answers (replicas share cache and Graph budget), 0 while this replica works alone.',
    registers: [registry],
    collect() {
      const redis = sharing().redis;
      if (redis === undefined) this.reset();
      else this.set(redis.up ? 1 : 0);
    },
  });
  mirroredCounter(registry, 'intune_redis_outages_total', 'Times Redis stopped answering (each logged once, with its recovery).', [], () => [
    { labels: {}, value: sharing().redis?.outages ?? 0 },
  ]);
  mirroredCounter(registry, 'intune_redis_fallbacks_total', 'Operations done locally (cache, coalescing, Graph budget) because Redis did not answer.', [], () => [
    { labels: {}, value: sharing().redis?.fallbacks ?? 0 },
  ]);
  mirroredCounter(registry, 'intune_graph_budget_waits_total', "Graph requests that waited for a slot of Intune's per-app budget instead of being throttled.", [], () => [
    { labels: {}, value: sharing().budget.waits },
  ]);
}

export function createMetrics(sources: MetricsSources = {}): AppMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route template and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method, route template and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  const { cacheStats, syncRuns, chronicleStats } = sources;
  if (cacheStats !== undefined) {
    const cacheCounters: Array<[string, string, keyof CacheStats]> = [
      ['intune_compliance_cache_hits_total', 'Compliance lookups answered from the cache.', 'hits'],
      ['intune_compliance_cache_misses_total', 'Compliance lookups that went to Graph.', 'misses'],
      ['intune_compliance_cache_coalesced_total', 'Lookups that waited on a Graph request already in flight for the same device.', 'coalesced'],
      ['intune_compliance_cache_stale_served_total', 'Expired cached answers served while Graph failed (within the stale window).', 'staleServed'],
      ['intune_compliance_cache_shared_hits_total', 'Lookups answered from an entry another replica stored (REDIS_URL).', 'sharedHits'],
      ['intune_compliance_cache_shared_coalesced_total', "Lookups answered by another replica's Graph request for the same device (REDIS_URL).", 'sharedCoalesced'],
      ['intune_compliance_cache_shared_fallbacks_total', 'Lookups that asked Graph themselves because Redis did not answer in time.', 'sharedFallbacks'],
    ];
    for (const [name, help, field] of cacheCounters) {
      mirroredCounter(registry, name, help, [], () => [{ labels: {}, value: cacheStats()[field] ?? 0 }]);
    }
    new Gauge({
      name: 'intune_compliance_cache_entries',
      help: 'Entries held by the compliance cache.',
      registers: [registry],
      collect() {
        this.set(cacheStats().size);
      },
    });
  }
  if (sources.sharing !== undefined) sharingMetrics(registry, sources.sharing);
  if (syncRuns !== undefined) {
    let pending: Promise<SyncRunStats> | undefined;
    // Both metrics read the same query; one scrape runs it once.
    const read = (): Promise<SyncRunStats> => {
      pending ??= syncRuns().finally(() => {
        pending = undefined;
      });
      return pending;
    };
    new Gauge({
      name: 'intune_sync_runs',
      help: 'Posture sync runs recorded in the database (all replicas), by status.',
      labelNames: ['status'] as const,
      registers: [registry],
      async collect() {
        const stats = await read();
        this.reset();
        for (const [status, value] of Object.entries(stats.byStatus)) this.set({ status }, value);
      },
    });
    new Gauge({
      name: 'intune_sync_last_duration_seconds',
      help: "Duration of each connection's most recent finished sync run.",
      labelNames: ['connection_id', 'status'] as const,
      registers: [registry],
      async collect() {
        const stats = await read();
        this.reset();
        for (const run of stats.lastDurations) this.set({ connection_id: run.connectionId, status: run.status }, run.seconds);
      },
    });
  }
  if (chronicleStats !== undefined) {
    mirroredCounter(registry, 'chronicle_appends_total', 'Events this process appended to Chronicle (committed).', [], () => [
      { labels: {}, value: chronicleStats().appended },
    ]);
    mirroredCounter(registry, 'chronicle_append_failures_total', 'Appends Chronicle could not commit (the caller was told; nothing was recorded).', [], () => [
      { labels: {}, value: chronicleStats().failed },
    ]);
    mirroredCounter(registry, 'chronicle_batches_total', 'Group-commit transactions.', [], () => [{ labels: {}, value: chronicleStats().batches }]);
    new Gauge({
      name: 'chronicle_appends_pending',
      help: 'Appends waiting for their group commit.',
      registers: [registry],
      collect() {
        this.set(chronicleStats().pending);
      },
    });
    new Gauge({
      name: 'chronicle_witness_backlog_lines',
      help: 'Checkpoint lines not yet delivered to a witness (CHRONICLE_WITNESS_DIR / CHRONICLE_WITNESS_URL); retried in the background.',
      registers: [registry],
      collect() {
        this.set(chronicleStats().witnessBacklog ?? 0);
      },
    });
    mirroredCounter(registry, 'chronicle_witness_failures_total', 'Witness deliveries that failed (each is retried).', [], () => [
      { labels: {}, value: chronicleStats().witnessFailures ?? 0 },
    ]);
  }

  return {
    registry,
    observeRequest(method, route, status, seconds) {
      const labels = { method, route, status: String(status) };
      requests.inc(labels);
      duration.observe(labels, seconds);
    },
  };
}
