/**
 * The connector's typed errors, and the one place Graph failures become the reasons callers see.
 */
import { ChronicleError } from '../chronicle/types.js';
import type { FailureReason } from './contract.js';
import { isGraphError } from './graph/errors.js';
import { defined } from '../common/values.js';

/**
 * Thrown by invoke when the CONNECTOR_INVOKED record could not be appended: the caller gets this
 * instead of the data, so nothing happens unaudited. It is a ChronicleError (code 'unavailable'
 * unless Chronicle said otherwise), so hosts that already handle Chronicle outages need nothing new.
 */
export class AuditUnavailableError extends ChronicleError {
  readonly auditUnavailable = true;
  constructor(message: string, code: ChronicleError['code'] = 'unavailable', options?: { cause?: unknown }) {
    super(message, code, undefined, options);
  }
}

/** A mistake of the host, not of the caller: an invalid tenant or context, a contradictory option. */
export class ConnectorUsageError extends Error {
  override readonly name = 'ConnectorUsageError';
  constructor(
    message: string,
    readonly code: 'invalid_context' | 'invalid_options',
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface GraphFailure {
  readonly reason: Exclude<FailureReason, 'not_found'> | 'not_found';
  /** A sentence for the caller. Never the Graph body: it may carry PII. */
  readonly message: string;
  readonly retryAfterMs?: number;
  readonly graphRequestId: string | null;
  readonly status: number | null;
}

const REQUEST_ID_PATTERN = /^[A-Za-z0-9-]{1,64}$/;

/** Graph request ids are GUIDs; anything else is not recorded (the audit field is bounded). */
export function safeRequestId(value: unknown): string | null {
  return typeof value === 'string' && REQUEST_ID_PATTERN.test(value) ? value : null;
}

function isAbort(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === 'AbortError';
}

/** Maps any error thrown by the Graph client to a failure reason and a safe sentence. */
export function classifyGraphError(err: unknown): GraphFailure {
  const graphError = isGraphError(err) ? err : undefined;
  const kind = graphError?.kind ?? (isAbort(err) ? 'aborted' : undefined);
  // GraphError uses status 0 for "no answer received"; here that is null.
  const status = graphError !== undefined && graphError.status > 0 ? graphError.status : null;
  const graphRequestId = safeRequestId(graphError?.requestId);
  const retryAfterMs =
    graphError?.retryAfterMs !== undefined && Number.isFinite(graphError.retryAfterMs) && graphError.retryAfterMs >= 0 ? Math.ceil(graphError.retryAfterMs) : undefined;
  const base = { graphRequestId, status, ...defined({ retryAfterMs }) };
  switch (kind) {
    case 'throttled':
      return {
        ...base,
        reason: 'throttled',
        message: `Microsoft Graph is throttling this connector; try again${retryAfterMs !== undefined ? ` in ${Math.ceil(retryAfterMs / 1000)} s` : ' shortly'}.`,
      };
    case 'unavailable':
    case 'network':
      return { ...base, reason: 'graph_unavailable', message: 'Microsoft Graph is unavailable right now; try again shortly.' };
    case 'timeout':
      return { ...base, reason: 'timeout', message: 'Microsoft Graph did not answer in time; try again shortly.' };
    case 'aborted':
      return { ...base, reason: 'cancelled', message: 'The call was cancelled before Microsoft Graph answered.' };
    case 'forbidden':
      return {
        ...base,
        reason: 'graph_forbidden',
        message: 'Microsoft Graph refused the request: the app registration lacks the Intune permission it needs (see the connector guide) or admin consent.',
      };
    case 'unauthorized':
    case 'auth_failed':
      return {
        ...base,
        reason: 'graph_forbidden',
        message: 'The connector could not authenticate to Microsoft Entra: check the tenant id, client id and secret or certificate of the Intune connection.',
      };
    case 'not_found':
      return { ...base, reason: 'not_found', message: 'Intune has no managed device with that id.' };
    default:
      return { ...base, reason: 'graph_error', message: 'Microsoft Graph answered with an error; the details are in the connector log.' };
  }
}
