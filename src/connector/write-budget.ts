/**
 * Intune's write budget (200 device actions per 20 s per app), kept per tenant so the connector
 * refuses a write it would be throttled for, before it reaches Graph, and says when to try again.
 * `WriteBudget` is one process's token bucket (the default, and the fallback of a shared one);
 * with REDIS_URL, replicas keep one budget between them (replicas/shared-budget.ts,
 * RedisWriteBudget), so N replicas do not admit N times Intune's limit.
 */
export interface WriteBudgetOptions {
  /** Writes allowed per window (default 200). */
  readonly capacity?: number;
  /** The window in ms (default 20 000). */
  readonly windowMs?: number;
  readonly now: () => number;
  /** How many processes split the budget (default 1): a shared budget's fallback keeps to its share. */
  readonly share?: () => number;
}

export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

/** What the device-action runners ask before they call Graph. */
export interface DeviceWriteBudget {
  take(tenant: string): TakeResult | Promise<TakeResult>;
}

export class WriteBudget implements DeviceWriteBudget {
  readonly #capacity: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #share: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: WriteBudgetOptions) {
    this.#capacity = Math.max(1, options.capacity ?? 200);
    this.#windowMs = Math.max(1, options.windowMs ?? 20_000);
    this.#now = options.now;
    this.#share = options.share ?? (() => 1);
  }

  take(tenant: string): TakeResult {
    const capacity = Math.max(1, Math.floor(this.#capacity / Math.max(1, this.#share())));
    const refillPerMs = capacity / this.#windowMs;
    const now = this.#now();
    const bucket = this.#buckets.get(tenant) ?? { tokens: capacity, at: now };
    bucket.tokens = Math.min(capacity, bucket.tokens + Math.max(0, now - bucket.at) * refillPerMs);
    bucket.at = now;
    this.#buckets.set(tenant, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerMs)) };
  }

  /** Gives back a token taken for a write that did not happen (e.g. a device in its sync cooldown). */
  refund(tenant: string): void {
    const bucket = this.#buckets.get(tenant);
    if (bucket !== undefined) bucket.tokens = Math.min(this.#capacity, bucket.tokens + 1);
  }
}
