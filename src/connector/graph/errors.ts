import { defined } from '../../common/values.js';
/**
 * The one error type the Graph client throws. Its message is written for a caller (an operator,
 * an agent, an HTTP response): it names what happened and what to do, and carries identifiers
 * only (status, Graph error code, request-id). Raw response bodies, Graph's own free-text
 * messages, Entra's error descriptions and tokens stay out of it: they can echo filter values
 * (serial numbers) or tenant details, and the message travels further than the log does.
 */

export const GRAPH_ERROR_KINDS = [
  'throttled',
  'unavailable',
  'not_found',
  'forbidden',
  'unauthorized',
  'bad_request',
  'timeout',
  'network',
  'malformed_response',
  'foreign_next_link',
  'aborted',
  'auth_failed',
] as const;
export type GraphErrorKind = (typeof GRAPH_ERROR_KINDS)[number];

export interface GraphErrorDetails {
  /** HTTP status of the last exchange; 0 when no response was received. */
  readonly status?: number;
  /** Graph's (or Entra's) machine code, e.g. ResourceNotFound, TooManyRequests, invalid_client. */
  readonly graphCode?: string;
  readonly requestId?: string;
  readonly retryAfterMs?: number;
  /** HTTP attempts made for this call (1 when nothing was retried). */
  readonly attempts?: number;
  /**
   * True when a device action (POST) may or may not have been carried out: the request was sent
   * and the answer was lost (timeout, reset) or was a 5xx. Such calls are never retried.
   */
  readonly ambiguous?: boolean;
}

const SAFE_CODE = /^[A-Za-z0-9_.:-]{1,80}$/;

/** Keeps a code only if it looks like an identifier, so a hostile body cannot smuggle text in. */
export function safeCode(code: unknown, fallback = 'unknown'): string {
  return typeof code === 'string' && SAFE_CODE.test(code) ? code : fallback;
}

const SAFE_REQUEST_ID = /^[A-Za-z0-9-]{1,80}$/;

export function safeRequestId(value: unknown): string | undefined {
  return typeof value === 'string' && SAFE_REQUEST_ID.test(value) ? value : undefined;
}

export class GraphError extends Error {
  override readonly name = 'GraphError';
  readonly kind: GraphErrorKind;
  readonly status: number;
  readonly graphCode: string;
  readonly requestId?: string;
  readonly retryAfterMs?: number;
  readonly attempts: number;
  readonly ambiguous: boolean;

  constructor(kind: GraphErrorKind, message: string, details: GraphErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.status = details.status ?? 0;
    this.graphCode = safeCode(details.graphCode, kind);
    if (details.requestId !== undefined) this.requestId = details.requestId;
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
    this.attempts = details.attempts ?? 1;
    this.ambiguous = details.ambiguous ?? false;
  }

  /** A copy with more facts filled in (attempt count, ambiguity), same kind and message. */
  with(details: GraphErrorDetails): GraphError {
    const requestId = details.requestId ?? this.requestId;
    const retryAfterMs = details.retryAfterMs ?? this.retryAfterMs;
    const merged: GraphErrorDetails = {
      status: details.status ?? this.status,
      graphCode: details.graphCode ?? this.graphCode,
      attempts: details.attempts ?? this.attempts,
      ambiguous: details.ambiguous ?? this.ambiguous,
      ...defined({ requestId, retryAfterMs }),
    };
    return new GraphError(this.kind, this.message, merged, { cause: this.cause });
  }

  /** The fields worth logging or recording; never the cause. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      kind: this.kind,
      message: this.message,
      status: this.status,
      graphCode: this.graphCode,
      ...defined({ requestId: this.requestId, retryAfterMs: this.retryAfterMs }),
      attempts: this.attempts,
      ambiguous: this.ambiguous,
    };
  }
}

export function isGraphError(value: unknown): value is GraphError {
  return value instanceof GraphError;
}

const seconds = (ms: number): string => {
  const s = ms / 1000;
  return Number.isInteger(s) ? `${s} s` : `${s.toFixed(1)} s`;
};

/** Maps a non-2xx Graph answer to a typed error with a sentence for the caller. */
export function graphErrorFromStatus(
  status: number,
  details: Omit<GraphErrorDetails, 'status'> & { readonly method?: string } = {},
): GraphError {
  const code = safeCode(details.graphCode, `http_${status}`);
  const ref = details.requestId !== undefined ? ` (Graph request-id ${details.requestId})` : '';
  const base: GraphErrorDetails = { ...details, status, graphCode: code };
  if (status === 429) {
    const wait = details.retryAfterMs !== undefined ? `; retry after ${seconds(details.retryAfterMs)}` : '; retry later';
    return new GraphError('throttled', `Microsoft Graph throttled the request (429 ${code})${wait}${ref}.`, base);
  }
  if (status === 401) {
    return new GraphError(
      'unauthorized',
      `Microsoft Graph rejected the access token (401 ${code})${ref}: check that the app registration belongs to this tenant and the token audience matches the Graph URL.`,
      base,
    );
  }
  if (status === 403) {
    return new GraphError(
      'forbidden',
      `Microsoft Graph refused the request (403 ${code})${ref}: grant the app registration DeviceManagementManagedDevices.Read.All for reads (.ReadWrite.All and .PrivilegedOperations.All for device actions) and give admin consent.`,
      base,
    );
  }
  if (status === 404) {
    return new GraphError('not_found', `Microsoft Graph found no such resource (404 ${code})${ref}.`, base);
  }
  if (status >= 500) {
    const wait = details.retryAfterMs !== undefined ? `; retry after ${seconds(details.retryAfterMs)}` : '; retry later';
    const action = details.ambiguous === true ? ' The device action may or may not have been carried out: check the device before asking again.' : '';
    return new GraphError('unavailable', `Microsoft Graph is unavailable (${status} ${code})${wait}${ref}.${action}`, base);
  }
  return new GraphError('bad_request', `Microsoft Graph refused the request as invalid (${status} ${code})${ref}.`, base);
}

export function badRequest(message: string): GraphError {
  return new GraphError('bad_request', message, { graphCode: 'invalid_input' });
}

export function abortedError(): GraphError {
  return new GraphError('aborted', 'The Graph request was cancelled by the caller.', { graphCode: 'aborted' });
}

export function malformedError(what: string, details: GraphErrorDetails = {}): GraphError {
  const ref = details.requestId !== undefined ? ` (Graph request-id ${details.requestId})` : '';
  return new GraphError(
    'malformed_response',
    `Microsoft Graph sent a response the connector cannot read (${what})${ref}; it was not used. Retry later; if it persists, the Graph endpoint (or a proxy in front of it) is answering in an unexpected shape.`,
    { graphCode: 'malformed_response', ...details },
  );
}

/** The same failure of a device action, marked as possibly carried out. */
export function markAmbiguous(error: GraphError): GraphError {
  if (error.ambiguous) return error;
  const message = `${error.message.replace(/\.$/, '')}. The device action may or may not have been carried out: check the device before asking again.`;
  return new GraphError(
    error.kind,
    message,
    {
      status: error.status,
      graphCode: error.graphCode,
      attempts: error.attempts,
      ambiguous: true,
      ...defined({ requestId: error.requestId, retryAfterMs: error.retryAfterMs }),
    },
    { cause: error.cause },
  );
}
