/**
 * The retry policy as pure functions of (attempt, response, random, policy, now): no clock reads
 * unless `now` is left to default, no shared mutable state, so a test can pin every branch.
 */

export interface RetryPolicy {
  /** Retries after the first attempt (INTUNE_GRAPH_MAX_RETRIES). 0 disables retrying. */
  readonly maxRetries: number;
  /** First backoff ceiling; each retry doubles it (full jitter picks a delay below it). */
  readonly baseDelayMs: number;
  /** Ceiling of one backoff delay. */
  readonly maxDelayMs: number;
  /**
   * Longest Retry-After the client waits for. A longer one is not slept through: the call fails
   * with kind 'throttled' (or 'unavailable') and carries retryAfterMs, so the caller decides.
   */
  readonly maxRetryAfterMs: number;
  /** Total time one call may spend waiting between attempts. */
  readonly maxTotalWaitMs: number;
  /**
   * Extra attempts for a read whose body arrived truncated or as broken JSON (bounded by
   * maxRetries): reads are idempotent and those faults are transient. A body that is valid JSON
   * in the wrong shape (`value` not an array, a device without an id) is not asked for again:
   * the same answer would come back, so it fails at once as 'malformed_response'.
   */
  readonly maxMalformedRetries: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  maxRetries: 4,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 60_000,
  maxTotalWaitMs: 120_000,
  maxMalformedRetries: 2,
});

/** Statuses worth asking again: throttled, or the service (or its gateway) failing. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);

/**
 * Retry-After as milliseconds: delta-seconds (Graph sends integers, and sometimes decimals like
 * "1.5") or an HTTP-date. Undefined when absent or unreadable (the caller falls back to backoff).
 */
export function parseRetryAfterMs(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) {
    const ms = Math.ceil(Number(text) * 1000);
    return Number.isFinite(ms) ? ms : undefined;
  }
  // Every HTTP-date form (IMF-fixdate, RFC 850, asctime) starts with a weekday; insisting on it
  // keeps values like "-1" away from Date.parse, which would read them as a year.
  if (!/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Exponential backoff with full jitter: uniform in [0, min(maxDelayMs, baseDelayMs * 2^(attempt-1))). */
export function backoffDelayMs(attempt: number, random: () => number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** exponent);
  const r = random();
  const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0.5;
  return Math.floor(unit * ceiling);
}

/**
 * How long to wait before retry number `attempt` (1 for the first retry), or undefined when the
 * call must not be retried: attempts exhausted, a status that will not change by asking again, or
 * a Retry-After longer than the policy waits for.
 *
 * `response` undefined means no answer arrived (timeout, connection reset, unreadable body): that
 * is retried with backoff. Whether the method allows retrying at all (a device action after an
 * ambiguous failure does not) is the caller's decision, made before this is asked.
 */
export function computeRetryDelayMs(
  attempt: number,
  response: { status: number; retryAfter?: string | null } | undefined,
  random: () => number,
  policy: RetryPolicy,
  now: number = Date.now(),
): number | undefined {
  if (!Number.isInteger(attempt) || attempt < 1 || attempt > policy.maxRetries) return undefined;
  if (response === undefined) return backoffDelayMs(attempt, random, policy);
  if (!RETRYABLE_STATUSES.has(response.status)) return undefined;
  const retryAfterMs = parseRetryAfterMs(response.retryAfter, now);
  if (retryAfterMs !== undefined) return retryAfterMs <= policy.maxRetryAfterMs ? retryAfterMs : undefined;
  return backoffDelayMs(attempt, random, policy);
}

/** The decision the client's retry loop makes after one failed attempt. */
export type RetryDecision =
  | { readonly retry: true; readonly delayMs: number; readonly throttled: boolean }
  | { readonly retry: false; readonly reason: 'not_retryable' | 'ambiguous_action' | 'exhausted' | 'retry_after_too_long' | 'wait_budget_spent' };

/**
 * Adds to computeRetryDelayMs what depends on the call rather than the attempt: the method (a
 * POST is retried only on 429, which Graph answers before doing anything), the malformed-body
 * allowance and the total wait budget.
 */
export function decideRetry(input: {
  readonly attempt: number;
  readonly method: string;
  /** The answer, when one arrived; `malformed` marks a 2xx whose body could not be read. */
  readonly response?: { readonly status: number; readonly retryAfter?: string | null };
  readonly failure: 'status' | 'no_response' | 'malformed';
  readonly malformedRetriesSoFar: number;
  readonly waitedMs: number;
  readonly random: () => number;
  readonly policy: RetryPolicy;
  readonly now?: number;
}): RetryDecision {
  const { attempt, method, response, failure, policy } = input;
  const idempotent = method === 'GET' || method === 'HEAD';
  if (!idempotent && !(failure === 'status' && response?.status === 429)) {
    return { retry: false, reason: failure === 'status' && response !== undefined && !RETRYABLE_STATUSES.has(response.status) ? 'not_retryable' : 'ambiguous_action' };
  }
  if (failure === 'status' && response !== undefined && !RETRYABLE_STATUSES.has(response.status)) {
    return { retry: false, reason: 'not_retryable' };
  }
  if (failure === 'malformed' && input.malformedRetriesSoFar >= policy.maxMalformedRetries) {
    return { retry: false, reason: 'exhausted' };
  }
  if (attempt > policy.maxRetries) return { retry: false, reason: 'exhausted' };
  const delayMs = computeRetryDelayMs(attempt, failure === 'status' ? response : undefined, input.random, policy, input.now);
  if (delayMs === undefined) return { retry: false, reason: 'retry_after_too_long' };
  if (input.waitedMs + delayMs > policy.maxTotalWaitMs) return { retry: false, reason: 'wait_budget_spent' };
  const throttled =
    failure === 'status' &&
    response !== undefined &&
    (response.status === 429 || ((response.status === 503 || response.status === 504) && parseRetryAfterMs(response.retryAfter, input.now) !== undefined));
  return { retry: true, delayMs, throttled };
}
