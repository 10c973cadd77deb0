/**
 * Intune's throttling model, a sliding log: at most `limit` admitted requests in any `windowMs`. A
 * refused request is not counted, so a client that waits as told gets through. The log is a ring of
 * the last `limit` admission times, O(1) per request. The simulator enforces it; the connector's
 * local Graph budget keeps to it.
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

  /**
   * Milliseconds until a request would be admitted; 0 when it would be admitted now. `limit` may be
   * lowered per call (a share of the budget): then the `limit`-th most recent admission decides.
   */
  waitMs(nowMs: number, limit: number = this.limit): number {
    const effective = Math.max(1, Math.min(this.limit, limit));
    if (this.size < effective) return 0;
    const decisive = this.times[(this.head + this.size - effective) % this.times.length] ?? 0;
    return Math.max(0, decisive + this.windowMs - nowMs);
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

