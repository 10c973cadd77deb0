import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY_POLICY,
  backoffDelayMs,
  computeRetryDelayMs,
  decideRetry,
  parseRetryAfterMs,
  type RetryPolicy,
} from '../../src/connector/graph/index.js';
import { defaultSleep } from '../../src/connector/graph/pipeline.js';

const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, maxRetries: 4, baseDelayMs: 500, maxDelayMs: 8_000, maxRetryAfterMs: 60_000 };
const NOW = Date.parse('2025-06-02T08:00:00Z');

describe('Retry-After', () => {
  it('reads whole seconds, decimal seconds and HTTP-dates', () => {
    expect(parseRetryAfterMs('2', NOW)).toBe(2_000);
    expect(parseRetryAfterMs('1.5', NOW)).toBe(1_500);
    expect(parseRetryAfterMs('0', NOW)).toBe(0);
    expect(parseRetryAfterMs(' 3 ', NOW)).toBe(3_000);
    expect(parseRetryAfterMs('Mon, 02 Jun 2025 08:00:07 GMT', NOW)).toBe(7_000);
    expect(parseRetryAfterMs('Monday, 02-Jun-25 08:00:04 GMT', NOW)).toBe(4_000);
  });

  it('treats a date in the past as "now" and ignores what it cannot read', () => {
    expect(parseRetryAfterMs('Mon, 02 Jun 2025 07:59:00 GMT', NOW)).toBe(0);
    for (const bad of [undefined, null, '', '-1', 'soon', '1e3', '2,5', 'Mon, 99 Foo 2025']) {
      expect(parseRetryAfterMs(bad, NOW)).toBeUndefined();
    }
  });
});

describe('computeRetryDelayMs', () => {
  it('honours Retry-After on 429, 503 and 504 exactly, without jitter', () => {
    expect(computeRetryDelayMs(1, { status: 429, retryAfter: '2' }, () => 0.9, policy, NOW)).toBe(2_000);
    expect(computeRetryDelayMs(1, { status: 429, retryAfter: '1.5' }, () => 0.9, policy, NOW)).toBe(1_500);
    expect(computeRetryDelayMs(2, { status: 503, retryAfter: 'Mon, 02 Jun 2025 08:00:10 GMT' }, () => 0.9, policy, NOW)).toBe(10_000);
    expect(computeRetryDelayMs(3, { status: 504, retryAfter: '4' }, () => 0.1, policy, NOW)).toBe(4_000);
  });

  it('falls back to exponential backoff with full jitter when Retry-After is missing or unreadable', () => {
    // Ceiling doubles per attempt: 500, 1000, 2000, 4000 (capped at maxDelayMs 8000).
    expect(computeRetryDelayMs(1, { status: 503 }, () => 0.999, policy, NOW)).toBe(499);
    expect(computeRetryDelayMs(2, { status: 500 }, () => 0.5, policy, NOW)).toBe(500);
    expect(computeRetryDelayMs(3, { status: 429, retryAfter: 'garbage' }, () => 0.5, policy, NOW)).toBe(1_000);
    expect(computeRetryDelayMs(4, undefined, () => 0.5, policy, NOW)).toBe(2_000);
    expect(computeRetryDelayMs(1, undefined, () => 0, policy, NOW)).toBe(0);
  });

  it('keeps every jittered delay within [0, ceiling) over many draws', () => {
    let seed = 7;
    const random = (): number => {
      seed = (seed * 16807) % 2147483647;
      return (seed - 1) / 2147483646;
    };
    for (let attempt = 1; attempt <= policy.maxRetries; attempt++) {
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      const delays = Array.from({ length: 500 }, () => computeRetryDelayMs(attempt, { status: 502 }, random, policy, NOW) as number);
      expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...delays)).toBeLessThan(ceiling);
      // Full jitter spreads the delays, it does not cluster them at the ceiling.
      expect(new Set(delays).size).toBeGreaterThan(50);
    }
  });

  it('caps a single backoff delay at maxDelayMs however many attempts', () => {
    const big = { ...policy, maxRetries: 40 };
    expect(computeRetryDelayMs(40, undefined, () => 0.999999, big, NOW)).toBeLessThan(policy.maxDelayMs);
    expect(backoffDelayMs(1_000, () => 1, policy)).toBe(policy.maxDelayMs);
    // A broken random source cannot push the delay outside its bounds.
    expect(backoffDelayMs(2, () => Number.NaN, policy)).toBe(500);
    expect(backoffDelayMs(2, () => 7, policy)).toBe(1_000);
  });

  it('stops after maxRetries, for statuses that will not change, and for a Retry-After longer than the policy waits', () => {
    expect(computeRetryDelayMs(5, { status: 503, retryAfter: '1' }, () => 0.5, policy, NOW)).toBeUndefined();
    expect(computeRetryDelayMs(0, { status: 503 }, () => 0.5, policy, NOW)).toBeUndefined();
    expect(computeRetryDelayMs(1, { status: 503 }, () => 0.5, { ...policy, maxRetries: 0 }, NOW)).toBeUndefined();
    for (const status of [200, 400, 401, 403, 404, 409, 501]) {
      expect(computeRetryDelayMs(1, { status }, () => 0.5, policy, NOW)).toBeUndefined();
    }
    expect(computeRetryDelayMs(1, { status: 429, retryAfter: '61' }, () => 0.5, policy, NOW)).toBeUndefined();
    expect(computeRetryDelayMs(1, { status: 429, retryAfter: '60' }, () => 0.5, policy, NOW)).toBe(60_000);
  });
});

describe('decideRetry', () => {
  const base = { attempt: 1, malformedRetriesSoFar: 0, waitedMs: 0, random: () => 0.5, policy, now: NOW };

  it('retries a read after a timeout or reset, but never a device action', () => {
    expect(decideRetry({ ...base, method: 'GET', failure: 'no_response' })).toEqual({ retry: true, delayMs: 250, throttled: false });
    expect(decideRetry({ ...base, method: 'POST', failure: 'no_response' })).toEqual({ retry: false, reason: 'ambiguous_action' });
    expect(decideRetry({ ...base, method: 'POST', failure: 'status', response: { status: 503, retryAfter: '1' } })).toEqual({
      retry: false,
      reason: 'ambiguous_action',
    });
    expect(decideRetry({ ...base, method: 'POST', failure: 'status', response: { status: 500 } })).toEqual({ retry: false, reason: 'ambiguous_action' });
  });

  it('retries a device action on 429: Graph refused it before doing anything', () => {
    expect(decideRetry({ ...base, method: 'POST', failure: 'status', response: { status: 429, retryAfter: '2' } })).toEqual({
      retry: true,
      delayMs: 2_000,
      throttled: true,
    });
  });

  it('counts 429, and 503/504 with Retry-After, as throttling', () => {
    expect(decideRetry({ ...base, method: 'GET', failure: 'status', response: { status: 503, retryAfter: '1' } })).toMatchObject({ throttled: true });
    expect(decideRetry({ ...base, method: 'GET', failure: 'status', response: { status: 503 } })).toMatchObject({ throttled: false });
    expect(decideRetry({ ...base, method: 'GET', failure: 'status', response: { status: 500, retryAfter: '1' } })).toMatchObject({ throttled: false });
  });

  it('gives a malformed read only maxMalformedRetries more tries', () => {
    expect(decideRetry({ ...base, method: 'GET', failure: 'malformed', malformedRetriesSoFar: 1 })).toMatchObject({ retry: true });
    expect(decideRetry({ ...base, method: 'GET', failure: 'malformed', malformedRetriesSoFar: 2 })).toEqual({ retry: false, reason: 'exhausted' });
  });

  it('respects the total wait budget', () => {
    expect(
      decideRetry({ ...base, method: 'GET', failure: 'status', response: { status: 429, retryAfter: '30' }, waitedMs: policy.maxTotalWaitMs - 10_000 }),
    ).toEqual({ retry: false, reason: 'wait_budget_spent' });
  });

  it('does not retry client errors', () => {
    expect(decideRetry({ ...base, method: 'GET', failure: 'status', response: { status: 404 } })).toEqual({ retry: false, reason: 'not_retryable' });
    expect(decideRetry({ ...base, method: 'POST', failure: 'status', response: { status: 403 } })).toEqual({ retry: false, reason: 'not_retryable' });
  });
});

describe('the default sleep', () => {
  it('waits the time asked for and no less', async () => {
    // The sleep is node:timers/promises, which vitest's fake timers do not drive: this runs on the real clock.
    const started = performance.now();
    let done = false;
    const sleeping = defaultSleep(300).then(() => {
      done = true;
    });
    await delay(250);
    expect(done).toBe(false);
    await sleeping;
    expect(done).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(299);
  });

  it('stops waiting as soon as the caller aborts, with a typed error', async () => {
    const controller = new AbortController();
    const sleeping = defaultSleep(60_000, controller.signal);
    await delay(100);
    controller.abort();
    await expect(sleeping).rejects.toMatchObject({ name: 'GraphError', kind: 'aborted' });
    await expect(defaultSleep(10, controller.signal)).rejects.toMatchObject({ kind: 'aborted' });
  });
});
