/**
 * Turning the connector's outcomes into tool results. What a model can act on (a bad id, an
 * unknown device, throttling, a refused capability) is a result with isError and one sentence
 * that says what to do next; one exhaustive switch holds every sentence.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Capability, DenialReason, FailureReason, InvokeOutcome } from '../connector/contract.js';
import { defined } from '../common/values.js';

export type Refusal = Extract<InvokeOutcome<unknown>, { readonly ok: false }>;

/** Key of the machine-readable part of a result's _meta, for clients that branch on codes. */
export const META_KEY = 'intune-connector/outcome';

export interface RefusalSubject {
  /** The tool's own name; for a name this server does not have, a fixed stand-in (the caller's text is never echoed). */
  readonly tool: string;
  /** The capability the tool needs; null for a tool this server does not have. */
  readonly capability: Capability | null;
  readonly granted: readonly Capability[];
  /** The tools this session lists, offered instead of an unknown one. */
  readonly listed: readonly string[];
}

/** The connector's messages are sentences, some without their full stop; ours follow them. */
function sentence(text: string): string {
  const trimmed = text.trim();
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

export function retryAfterSeconds(retryAfterMs: number | undefined, fallbackSeconds: number): number {
  return retryAfterMs === undefined ? fallbackSeconds : Math.max(1, Math.ceil(retryAfterMs / 1000));
}

/** The sentence a model reads, for every reason the connector can give. */
export function explainRefusal(outcome: Refusal, subject: RefusalSubject): string {
  const { tool } = subject;
  const reason: DenialReason | FailureReason = outcome.reason;
  switch (reason) {
    case 'unknown_operation':
      // The caller's text is never repeated back: it may be anything, including a prompt injection.
      return `This server has no tool by that name. Call one of the tools this server lists: ${subject.listed.join(', ') || 'none'}.`;
    case 'invalid_input':
      return `Invalid arguments for ${tool}: ${sentence(outcome.message)} Fix the arguments and call ${tool} again.`;
    case 'capability_not_granted':
      return (
        `${tool} needs the ${subject.capability ?? 'unknown'} capability, and this session's delegation scope grants ` +
        `${subject.granted.join(', ') || 'none'}. Do not retry; an administrator can grant it with an agent key created ` +
        `with --scope READ,${subject.capability ?? ''} (HTTP) or with --capabilities (stdio).`
      );
    case 'operation_not_granted':
      return `${tool} is not among the operations this session's delegation scope allows. Do not retry.`;
    case 'operation_disabled':
      return `${tool} is disabled in Phase 1: MUTATE operations are not enabled in this deployment, so nothing was sent to Intune and the refusal was recorded. Do not retry; a human administrator can act in the Intune admin center if it is needed.`;
    case 'ceremony_required':
      return `${tool} needs a human-approved ceremony, which an MCP call cannot carry. Do not retry; ask a human to approve and perform it.`;
    case 'intune_disabled':
      return `Intune is not enabled or not connected for this tenant, so ${tool} cannot run. Do not retry; an administrator must configure an Intune connection.`;
    case 'not_found':
      return `${sentence(outcome.message)} Check the id (list_devices shows valid Intune ids) and call ${tool} again.`;
    case 'throttled':
      return `Intune is throttling requests. Retry after ${retryAfterSeconds(outcome.kind === 'failed' ? outcome.retryAfterMs : undefined, 20)} s.`;
    case 'graph_unavailable':
      return `Intune is temporarily unavailable. Retry after ${retryAfterSeconds(outcome.kind === 'failed' ? outcome.retryAfterMs : undefined, 30)} s.`;
    case 'timeout':
      return `Intune did not answer in time. Retry after ${retryAfterSeconds(outcome.kind === 'failed' ? outcome.retryAfterMs : undefined, 30)} s.`;
    case 'graph_forbidden':
      return `The connector's app registration is not permitted to do this in Intune (a Microsoft Graph permission or admin consent is missing). Do not retry; an administrator must grant it.`;
    case 'graph_error': {
      const ref = outcome.kind === 'failed' && outcome.graphRequestId !== undefined ? ` (Graph request id ${outcome.graphRequestId})` : '';
      return `Intune answered ${tool} with an error${ref}. Retry once in a minute; if it persists, report the request id to an administrator.`;
    }
    case 'cancelled':
      return `${tool} was cancelled before it finished; nothing more will happen. Call it again if you still need it.`;
  }
}

export function refusalResult(outcome: Refusal, subject: RefusalSubject): CallToolResult {
  const retryAfterMs = outcome.kind === 'failed' ? outcome.retryAfterMs : undefined;
  return {
    isError: true,
    content: [{ type: 'text', text: explainRefusal(outcome, subject) }],
    _meta: {
      [META_KEY]: {
        kind: outcome.kind,
        reason: outcome.reason,
        ...defined({
          field: outcome.kind === 'denied' ? outcome.field : undefined,
          retry_after_seconds: retryAfterMs === undefined ? undefined : retryAfterSeconds(retryAfterMs, 1),
        }),
        audit_seq: outcome.audit.seq,
      },
    },
  };
}

export function successResult(value: unknown, text: string, auditSeq: number): CallToolResult {
  return {
    content: [{ type: 'text', text }],
    structuredContent: value as Record<string, unknown>,
    _meta: { [META_KEY]: { kind: 'succeeded', audit_seq: auditSeq } },
  };
}
