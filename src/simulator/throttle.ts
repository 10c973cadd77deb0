/**
 * Intune's throttling, modelled as a sliding log per app per tenant: at most `limit` admitted
 * requests in any `windowMs`. A refused request is not counted, so a client that waits as told
 * gets through. The log is a ring of the last `limit` admission times, O(1) per request.
 */
export class SlidingWindow {
  private readonly times: Float64Array;
  private head = 0;
  private size = 0;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
  ) {
    this.times = new Float64Array(Math.max(1, limit));
  }

  /** Milliseconds until a request would be admitted; 0 when it would be admitted now. */
  waitMs(nowMs: number): number {
    if (this.size < this.limit) return 0;
    const oldest = this.times[this.head] ?? 0;
    return Math.max(0, oldest + this.windowMs - nowMs);
  }

  admit(nowMs: number): void {
    if (this.size < this.limit) {
      this.times[(this.head + this.size) % this.times.length] = nowMs;
      this.size++;
      return;
    }
    this.times[this.head] = nowMs;
    this.head = (this.head + 1) % this.times.length;
  }
}

export interface ThrottleSettings {
  readonly requestsPer20s: number;
  readonly writesPer20s: number;
  readonly windowMs: number;
}

export const INTUNE_THROTTLE: ThrottleSettings = Object.freeze({ requestsPer20s: 2000, writesPer20s: 200, windowMs: 20_000 });

/** Budgets keyed by tenant and app, as Intune keeps them. */
export class Throttle {
  private readonly requests = new Map<string, SlidingWindow>();
  private readonly writes = new Map<string, SlidingWindow>();

  constructor(private readonly settings: ThrottleSettings) {}

  /** Admits the request (counting it) or says how long to wait. */
  check(key: string, isWrite: boolean, nowMs: number): { readonly admitted: true } | { readonly admitted: false; readonly retryAfterMs: number } {
    const requests = this.window(this.requests, key, this.settings.requestsPer20s);
    const writes = isWrite ? this.window(this.writes, key, this.settings.writesPer20s) : undefined;
    const waitMs = Math.max(requests.waitMs(nowMs), writes?.waitMs(nowMs) ?? 0);
    if (waitMs > 0) return { admitted: false, retryAfterMs: waitMs };
    requests.admit(nowMs);
    writes?.admit(nowMs);
    return { admitted: true };
  }

  private window(map: Map<string, SlidingWindow>, key: string, limit: number): SlidingWindow {
    let w = map.get(key);
    if (w === undefined) {
      w = new SlidingWindow(limit, this.settings.windowMs);
      map.set(key, w);
    }
    return w;
  }
}
