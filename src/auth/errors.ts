/**
 * Every HTTP surface (the REST API, the gate, /mcp) refuses a request the same way:
 * `{ error: { code, message } }`, a machine-readable code and a sentence that says what to fix,
 * with any headers the refusal needs (WWW-Authenticate, Retry-After).
 */
import type { FastifyReply } from 'fastify';
import { DATABASE_WORDS, dbUnavailableReason } from '../db/errors.js';

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string; readonly [extra: string]: unknown };
}

/** A failure the caller can act on, with its HTTP status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** Extra fields beside code and message, e.g. `run_id` of the sync already running. */
    readonly extra: Readonly<Record<string, unknown>> = {},
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

export function sendError(reply: FastifyReply, err: ApiError): FastifyReply {
  for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
  return reply.code(err.statusCode).type('application/json; charset=utf-8').send({ error: { code: err.code, message: err.message, ...err.extra } });
}

/**
 * 503 service_unavailable for a database that cannot serve: why (from err or the errors it wraps;
 * unreachable when nothing says) as `database` and in the sentence, after `lead` when given.
 */
export function databaseUnavailable(err: unknown, lead?: string): ApiError {
  const reason = dbUnavailableReason(err) ?? 'unreachable';
  const words = DATABASE_WORDS[reason];
  return new ApiError(503, 'service_unavailable', lead === undefined ? words : `${lead}: ${words}`, { database: reason }, { 'retry-after': '5' });
}
