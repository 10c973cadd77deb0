/**
 * Intune's Graph budget per app per tenant (2000 requests / 20 s, of which 200 writes), kept before
 * a request leaves, so the connector waits its turn instead of collecting 429s. Every attempt takes
 * a slot (a retry is a request Intune counts too). A 429 or 503 with Retry-After pauses the key:
 * nobody with that budget sends before it ends.
 *
 * `LocalGraphBudget` keeps the logs in this process (the default, and the fallback while a shared
 * budget is unreachable); with REDIS_URL the connector's Redis budget shares them between replicas.
 */
/**
 * One sliding log: slot -> when it counts from, oldest first. A slot counts from its admission, and
 * from the answer once that is in (re-inserted at the end: times only grow, so the order holds).
 */
class SlotLog {
  readonly #slots = new Map<string, number>();

  prune(now: number, windowMs: number): void {
    for (const [slot, at] of this.#slots) {
      if (at > now - windowMs) break;
      this.#slots.delete(slot);
    }
  }

  /** Ms until `limit` slots leave room for one more (0: now). */
  waitMs(now: number, windowMs: number, limit: number): number {
    const over = this.#slots.size - limit;
    if (over < 0) return 0;
    let i = 0;
    for (const at of this.#slots.values()) {
      if (i++ === over) return Math.max(1, Math.ceil(at + windowMs - now));
    }
    return 0;
  }

  add(slot: string, now: number): void {
    this.#slots.set(slot, now);
  }

  restamp(slot: string, now: number): void {
    if (!this.#slots.delete(slot)) return;
    this.#slots.set(slot, now);
  }
}

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
  readonly #requests = new Map<string, SlotLog>();
  readonly #writes = new Map<string, SlotLog>();
  readonly #pausedUntil = new Map<string, number>();
  #nextSlot = 0;

  readonly #share: () => number;

  /** `share`: how many processes split the budget (default 1: this process has all of it). */
  constructor(limits: BudgetLimits = INTUNE_GRAPH_BUDGET, now: () => number = Date.now, share: () => number = () => 1) {
    this.#limits = limits;
    this.#share = share;
    this.#windowMs = limits.windowMs + budgetMarginMs(limits.windowMs);
    this.#now = now;
  }

  reserve(key: string, write: boolean): Promise<{ readonly waitMs: number; readonly slot?: string }> {
    return Promise.resolve(this.reserveNow(key, write));
  }

  reserveNow(key: string, write: boolean): { readonly waitMs: number; readonly slot?: string } {
    const now = this.#now();
    const paused = (this.#pausedUntil.get(key) ?? 0) - now;
    if (paused > 0) return { waitMs: Math.ceil(paused) };
    const share = Math.max(1, this.#share());
    const requests = this.#log(this.#requests, key, now);
    const writes = write ? this.#log(this.#writes, key, now) : undefined;
    const waitMs = Math.max(
      requests.waitMs(now, this.#windowMs, Math.max(1, Math.floor(this.#limits.requests / share))),
      writes?.waitMs(now, this.#windowMs, Math.max(1, Math.floor(this.#limits.writes / share))) ?? 0,
    );
    if (waitMs > 0) return { waitMs };
    const slot = String((this.#nextSlot += 1));
    requests.add(slot, now);
    writes?.add(slot, now);
    return { waitMs: 0, slot };
  }

  sent(key: string, slot: string, write: boolean): void {
    const now = this.#now();
    this.#requests.get(key)?.restamp(slot, now);
    if (write) this.#writes.get(key)?.restamp(slot, now);
  }

  /** Counts a request a shared budget admitted (its slot there), so this log is current if it has to take over. */
  record(key: string, write: boolean, slot: string): void {
    const now = this.#now();
    this.#log(this.#requests, key, now).add(slot, now);
    if (write) this.#log(this.#writes, key, now).add(slot, now);
  }

  pause(key: string, retryAfterMs: number): void {
    const until = this.#now() + Math.max(0, retryAfterMs);
    if (until > (this.#pausedUntil.get(key) ?? 0)) this.#pausedUntil.set(key, until);
  }

  #log(map: Map<string, SlotLog>, key: string, now: number): SlotLog {
    let log = map.get(key);
    if (log === undefined) {
      log = new SlotLog();
      map.set(key, log);
    }
    log.prune(now, this.#windowMs);
    return log;
  }

}
