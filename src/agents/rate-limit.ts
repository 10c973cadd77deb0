/**
 * A token bucket per agent: `burst` requests at once, then one every `refillMs`. Per process, like
 * the other in-memory limits; with replicas behind a balancer each holds its own share.
 */
export interface RateLimiter {
  /** 0 when the request may go ahead, else the milliseconds until it could. */
  take(key: string): number;
}

export function createRateLimiter({ burst, refillMs, now = Date.now, maxKeys = 100_000 }: { burst: number; refillMs: number; now?: () => number; maxKeys?: number }): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(key) {
      const t = now();
      const bucket = buckets.get(key) ?? { tokens: burst, at: t };
      const refilled = Math.min(burst, bucket.tokens + (t - bucket.at) / refillMs);
      if (refilled < 1) {
        buckets.set(key, { tokens: refilled, at: t });
        return Math.ceil((1 - refilled) * refillMs);
      }
      buckets.delete(key);
      if (buckets.size >= maxKeys) {
        const oldest = buckets.keys().next();
        if (oldest.done !== true) buckets.delete(oldest.value);
      }
      buckets.set(key, { tokens: refilled - 1, at: t });
      return 0;
    },
  };
}
