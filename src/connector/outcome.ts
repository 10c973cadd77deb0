/**
 * How one invocation ended, before it is audited and returned: invoke's own outcome type
 * (SettledOutcome) plus the facts only the CONNECTOR_INVOKED record carries. The decide step and
 * every runner return one; none throws for Graph failures (they become 'failed'), so the audit step
 * always sees how the call ended.
 */
import type { DenialReason, SettledOutcome } from './contract.js';
import type { GraphFailure } from './errors.js';
import { defined } from '../common/values.js';

/** Recorded in CONNECTOR_INVOKED, never returned to the caller. */
export interface RecordOnly {
  /** Graph's request id of a call that succeeded (a failed outcome carries its own). */
  readonly graphRequestId?: string | null;
  readonly resultCount?: number;
  readonly cache?: { readonly hit: boolean; readonly stale: boolean };
  /** More precise than the outcome's reason when the cause is not Graph. */
  readonly auditReason?: string;
}

export type RunOutcome<O = unknown> = SettledOutcome<O> & { readonly recordOnly?: RecordOnly };

export function denied(reason: DenialReason, message: string, field?: string): RunOutcome<never> {
  return { ok: false, kind: 'denied', reason, message, ...defined({ field }) };
}

export function succeeded<O>(value: O, recordOnly: RecordOnly): RunOutcome<O> {
  return { ok: true, value, recordOnly };
}

export function failedFrom(failure: GraphFailure, recordOnly: RecordOnly = {}): RunOutcome<never> {
  return {
    ok: false,
    kind: 'failed',
    reason: failure.reason,
    message: failure.message,
    ...defined({ retryAfterMs: failure.retryAfterMs, graphRequestId: failure.graphRequestId ?? undefined }),
    recordOnly,
  };
}

/** Cancelled before anything started: Intune was certainly not asked. */
export function notStarted(): RunOutcome<never> {
  return { ok: false, kind: 'failed', reason: 'cancelled', message: 'The call was cancelled before it started; nothing was sent to Intune.' };
}

export function throttledByBudget(retryAfterMs: number): RunOutcome<never> {
  return {
    ok: false,
    kind: 'failed',
    reason: 'throttled',
    message: `This tenant's Intune write budget is used up for now; try again in ${Math.ceil(retryAfterMs / 1000)} s. Nothing was sent to Intune.`,
    retryAfterMs,
    recordOnly: { auditReason: 'write_budget_exhausted' },
  };
}
