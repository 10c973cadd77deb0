/**
 * Intune's write budget (200 device actions per 20 s per app), kept as a token bucket per tenant so
 * the connector refuses a write it would be throttled for, before it reaches Graph, and says when
 * to try again. The bucket is per process: with several replicas, give each a share of the budget.
 */
export interface WriteBudgetOptions {
  /** Writes allowed per window (default 200). */
  readonly capacity?: number;
  /** The window in ms (default 20 000). */
  readonly windowMs?: number;
  readonly now: () => number;
}

export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

export class WriteBudget {
  readonly #capacity: number;
  readonly #refillPerMs: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: WriteBudgetOptions) {
    this.#capacity = Math.max(1, options.capacity ?? 200);
    this.#refillPerMs = this.#capacity / Math.max(1, options.windowMs ?? 20_000);
    this.#now = options.now;
  }

  take(tenant: string): TakeResult {
    const now = this.#now();
    const bucket = this.#buckets.get(tenant) ?? { tokens: this.#capacity, at: now };
    bucket.tokens = Math.min(this.#capacity, bucket.tokens + Math.max(0, now - bucket.at) * this.#refillPerMs);
    bucket.at = now;
    this.#buckets.set(tenant, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.max(1, Math.ceil((1 - bucket.tokens) / this.#refillPerMs)) };
  }

  /** Gives back a token taken for a write that did not happen (e.g. a device in its sync cooldown). */
  refund(tenant: string): void {
    const bucket = this.#buckets.get(tenant);
    if (bucket !== undefined) bucket.tokens = Math.min(this.#capacity, bucket.tokens + 1);
  }
}
