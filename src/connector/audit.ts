/**
 * The audit step: one CONNECTOR_INVOKED per invocation, appended before the answer leaves. Only
 * allow-listed facts are recorded: operation, capability, decision, reason, GUID target ids,
 * counts, timings, Graph's request id; never the input's free text or a device.
 */
import type { ChronicleWriter } from '../chronicle/types.js';
import { ChronicleError } from '../chronicle/types.js';
import type { Logger } from '../log/index.js';
import { INVOCATION_CHANNELS, type InvocationContext, type InvokeOutcome, type OperationDescriptor } from './contract.js';
import { AuditUnavailableError } from './errors.js';
import { isGuid } from '../common/ids.js';
import type { RunOutcome } from './outcome.js';
import { defined } from '../common/values.js';

export type Target = { device_id?: string; azure_ad_device_id?: string };

/** Ids from the input that are GUIDs (the only input the audit record takes). */
export function targetOf(input: unknown): Target {
  if (typeof input !== 'object' || input === null) return {};
  const i = input as Record<string, unknown>;
  return {
    ...(isGuid(i['device_id']) ? { device_id: i['device_id'].toLowerCase() } : {}),
    ...(isGuid(i['azure_ad_device_id']) ? { azure_ad_device_id: i['azure_ad_device_id'].toLowerCase() } : {}),
  };
}

/** Chronicle refuses control characters and long ids; an agent's self-chosen name must not make the audit fail. */
function sanitizeActorId(id: unknown): string {
  // Lone surrogates have no canonical JSON (UTF-8) form (toWellFormed makes each U+FFFD); the cut
  // at 200 must not split a pair either, so a high surrogate left at the end is dropped.
  const clean =
    typeof id === 'string'
      ? id
          .replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
          .toWellFormed()
          .slice(0, 200)
          .replace(/[\uD800-\uDBFF]$/, '')
      : '';
  return clean === '' ? 'unknown' : clean;
}

function sanitizeRequestId(id: unknown): string | undefined {
  return typeof id === 'string' && /^[\x21-\x7e]{1,128}$/.test(id) ? id : undefined;
}

export interface AuditDeps {
  readonly chronicle: ChronicleWriter;
  readonly logger: Logger | undefined;
}

export interface Invocation {
  readonly context: InvocationContext;
  readonly descriptor: OperationDescriptor | undefined;
  readonly target: Target;
  /** performance.now() when invoke was called. */
  readonly startedAt: number;
}

/** The CONNECTOR_INVOKED data of one invocation. */
function invokedData(invocation: Invocation, run: RunOutcome) {
  const { context, descriptor, target, startedAt } = invocation;
  const kind = run.ok ? 'succeeded' : run.kind;
  const extra = run.recordOnly ?? {};
  const channel = (INVOCATION_CHANNELS as readonly unknown[]).includes(context.channel) ? context.channel : undefined;
  return {
    operation: descriptor?.name ?? 'unknown',
    capability: descriptor?.capability ?? null,
    decision: kind === 'denied' ? 'denied' : 'allowed',
    reason: run.ok ? 'allowed' : run.kind === 'failed' ? (extra.auditReason ?? run.reason) : run.reason,
    outcome: kind,
    target,
    ...defined({ result_count: run.ok ? extra.resultCount : undefined }),
    duration_ms: Math.max(0, Math.round((performance.now() - startedAt) * 1000) / 1000),
    graph_request_id: run.ok ? (extra.graphRequestId ?? null) : run.kind === 'failed' ? (run.graphRequestId ?? null) : null,
    ...defined({ cache: kind === 'denied' ? undefined : extra.cache, channel }),
  };
}

/** Appends CONNECTOR_INVOKED and answers with its receipt; throws AuditUnavailableError when it cannot be recorded. */
export async function recordInvocation<O>(deps: AuditDeps, invocation: Invocation, run: RunOutcome<O>): Promise<InvokeOutcome<O>> {
  const { chronicle, logger } = deps;
  const { context } = invocation;
  const data = invokedData(invocation, run);
  const requestId = sanitizeRequestId(context.requestId);
  let seq: number;
  try {
    const receipt = await chronicle.append({
      tenant: context.tenant,
      type: 'CONNECTOR_INVOKED',
      actor: { kind: context.actor.kind, id: sanitizeActorId(context.actor.id) },
      ...defined({ requestId }),
      data,
    });
    seq = receipt.seq;
  } catch (err) {
    logger?.error(
      { err: err instanceof Error ? { name: err.name, message: err.message, code: (err as { code?: unknown }).code } : undefined, operation: data.operation, decision: data.decision, reason: data.reason },
      'CONNECTOR_INVOKED could not be recorded; the call fails',
    );
    throw new AuditUnavailableError(
      `The call was not answered because the audit trail could not record it (${err instanceof Error ? err.message : 'unknown error'}); try again when Chronicle is available.`,
      err instanceof ChronicleError ? err.code : 'unavailable',
      { cause: err },
    );
  }
  logger?.debug({ operation: data.operation, decision: data.decision, reason: data.reason, outcome: data.outcome, durationMs: data.duration_ms, seq }, 'connector invocation');
  const { recordOnly: _recordOnly, ...settled } = run;
  return { ...settled, audit: { seq } };
}
