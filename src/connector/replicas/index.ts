/**
 * What replicas share, and how this process shares it: with REDIS_URL, the compliance cache's tier
 * behind the LRU (./shared-cache.ts), the coalescing of Graph lookups across replicas, and Intune's
 * per-app Graph budget (./shared-budget.ts); without it, a budget of this process alone and no
 * shared tier. `status()` feeds /readyz and /metrics.
 */
import type { Logger } from '../../log/index.js';
import type { SharedCacheTier } from '../cache.js';
import type { BudgetLimits, GraphBudget } from '../graph/budget.js';
import { RedisLink, type RedisLinkStatus } from './link.js';
import { createRedisCacheTier } from './shared-cache.js';
import { CountingLocalBudget, RedisGraphBudget, RedisWriteBudget, type BudgetStats } from './shared-budget.js';
import type { DeviceWriteBudget } from '../write-budget.js';

export { RedisLink, UNAVAILABLE, type RedisLinkStatus } from './link.js';

export interface SharingStatus {
  /** 'redis' with REDIS_URL, else 'process'. */
  readonly mode: 'redis' | 'process';
  /** With REDIS_URL: whether it answers, since when, outages and local fallbacks. */
  readonly redis?: RedisLinkStatus;
  readonly budget: BudgetStats;
}

export interface ReplicaSharing {
  /** The compliance cache's shared tier (undefined: this process alone). */
  readonly cacheTier: SharedCacheTier | undefined;
  /** Intune's per-app budget every Graph client of this process keeps to. */
  readonly graphBudget: GraphBudget;
  /** The device-action budget replicas share (undefined: the connector keeps its own, per process). */
  readonly writeBudget: ((limits: { readonly capacity?: number; readonly windowMs?: number; readonly now: () => number }) => DeviceWriteBudget) | undefined;
  status(): SharingStatus;
  close(): Promise<void>;
}

export interface ReplicaSharingOptions {
  readonly redis?: { readonly url: string; readonly keyPrefix: string; readonly timeoutMs: number } | undefined;
  readonly graphBudget: BudgetLimits;
  readonly logger?: Logger | undefined;
  /** How long start-up waits for Redis before it goes on with local fallbacks (default 2000 ms). */
  readonly connectWaitMs?: number;
}

export async function openReplicaSharing(options: ReplicaSharingOptions): Promise<ReplicaSharing> {
  if (options.redis === undefined) {
    const budget = new CountingLocalBudget(options.graphBudget);
    return {
      cacheTier: undefined,
      graphBudget: budget,
      writeBudget: undefined,
      status: () => ({ mode: 'process', budget: budget.stats() }),
      close: () => Promise.resolve(),
    };
  }
  const link = new RedisLink({ ...options.redis, logger: options.logger });
  const cacheTier = createRedisCacheTier(link);
  const budget = new RedisGraphBudget(link, options.graphBudget);
  if (await link.ready(options.connectWaitMs ?? 2_000)) {
    await budget.heartbeat();
    options.logger?.info({ redis: 'up' }, 'Redis connected: replicas share the compliance cache and the Graph budget');
  }
  return {
    cacheTier,
    graphBudget: budget,
    writeBudget: (limits) => new RedisWriteBudget(link, { ...limits, replicas: () => budget.replicas() }),
    status: () => ({ mode: 'redis', redis: link.status(), budget: budget.stats() }),
    close: () => {
      budget.close();
      return link.close();
    },
  };
}
