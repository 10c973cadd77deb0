/**
 * Intune's throttling per app per tenant, as sliding logs (../common/sliding-window.ts).
 */
import { SlidingWindow } from '../common/sliding-window.js';

export { SlidingWindow };

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
