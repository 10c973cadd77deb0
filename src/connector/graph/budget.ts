/**
 * Intune's Graph budget per app per tenant (2000 requests / 20 s, of which 200 writes), kept before
 * a request leaves, so the connector waits its turn instead of collecting 429s. Every attempt takes
 * a slot (a retry is a request Intune counts too). A 429 or 503 with Retry-After pauses the key:
 * nobody with that budget sends before it ends.
 *
 * `LocalGraphBudget` keeps the logs in this process (the default, and the fallback while a shared
 * budget is unreachable); with REDIS_URL the connector's Redis budget shares them between replicas.
 */
import { SlidingWindow } from '../../common/sliding-window.js';

export interface BudgetLimits {
  /** Requests admitted per window (Intune: 2000). */
  readonly requests: number;
  /** Device actions (POSTs) admitted per window (Intune: 200). */
  readonly writes: number;
  readonly windowMs: number;
}

export const INTUNE_GRAPH_BUDGET: BudgetLimits = Object.freeze({ requests: 2000, writes: 200, windowMs: 20_000 });

/**
 * The connector admits a request when it decides to send it; Intune counts it when it arrives. The
 * window the connector keeps is this much longer, so a request that travels a little slower than the
 * one after it still finds Intune's window free.
 */
export function budgetMarginMs(windowMs: number): number {
  return Math.min(1_000, Math.max(250, Math.round(windowMs / 10)));
}

export interface GraphBudget {
  /**
   * `waitMs` 0 when the request may go now (it is counted), else how many ms to wait before asking
   * again. A `slot` is the admission to pass back to `sent` once the answer is in.
   */
  reserve(key: string, write: boolean): Promise<{ readonly waitMs: number; readonly slot?: string }>;
  /**
   * The answer of an admitted request is in: the slot now counts from this moment, which is after
   * Intune counted the request, however long it travelled (a connection set up under load, say).
   */
  sent?(key: string, slot: string, write: boolean): void;
  /** Graph asked this app to wait (Retry-After): every request of `key` waits until then. */
  pause(key: string, retryAfterMs: number): void;
}

/** The budget of one process: sliding logs per key, as Intune keeps them, plus the Retry-After pause. */
export class LocalGraphBudget implements GraphBudget {
  readonly #limits: BudgetLimits;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #requests = new Map<string, SlidingWindow>();
  readonly #writes = new Map<string, SlidingWindow>();
  readonly #pausedUntil = new Map<string, number>();

  readonly #share: () => number;

  /** `share`: how many processes split the budget (default 1: this process has all of it). */
  constructor(limits: BudgetLimits = INTUNE_GRAPH_BUDGET, now: () => number = Date.now, share: () => number = () => 1) {
    this.#limits = limits;
    this.#share = share;
    this.#windowMs = limits.windowMs + budgetMarginMs(limits.windowMs);
    this.#now = now;
  }

  reserve(key: string, write: boolean): Promise<{ readonly waitMs: number }> {
    return Promise.resolve({ waitMs: this.reserveNow(key, write) });
  }

  reserveNow(key: string, write: boolean): number {
    const now = this.#now();
    const paused = (this.#pausedUntil.get(key) ?? 0) - now;
    if (paused > 0) return Math.ceil(paused);
    const requests = this.#window(this.#requests, key, this.#limits.requests);
    const writes = write ? this.#window(this.#writes, key, this.#limits.writes) : undefined;
    const share = Math.max(1, this.#share());
    const waitMs = Math.max(
      requests.waitMs(now, Math.floor(this.#limits.requests / share)),
      writes?.waitMs(now, Math.floor(this.#limits.writes / share)) ?? 0,
    );
    if (waitMs > 0) return Math.max(1, Math.ceil(waitMs));
    requests.admit(now);
    writes?.admit(now);
    return 0;
  }

  /** Counts a request a shared budget admitted, so this log is current if it has to take over. */
  record(key: string, write: boolean): void {
    const now = this.#now();
    this.#window(this.#requests, key, this.#limits.requests).admit(now);
    if (write) this.#window(this.#writes, key, this.#limits.writes).admit(now);
  }

  pause(key: string, retryAfterMs: number): void {
    const until = this.#now() + Math.max(0, retryAfterMs);
    if (until > (this.#pausedUntil.get(key) ?? 0)) this.#pausedUntil.set(key, until);
  }

  #window(map: Map<string, SlidingWindow>, key: string, limit: number): SlidingWindow {
    let w = map.get(key);
    if (w === undefined) {
      w = new SlidingWindow(limit, this.#windowMs);
      map.set(key, w);
    }
    return w;
  }
}
