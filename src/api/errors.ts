/**
 * Every HTTP failure leaves as `{ error: { code, message } }`: a machine-readable code and a
 * sentence that says what to fix. Internal failures say "internal error" with the request id and
 * nothing else (no stack, no SQL, no host names); the details go to the operational log.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DATABASE_WORDS, DbError, dbUnavailableReason } from '../db/errors.js';
import { ChronicleError } from '../chronicle/types.js';
import { ApiError, databaseUnavailable, sendError } from '../auth/errors.js';
import { KeyInputError } from '../auth/keys.js';
import { issueInWords } from './validation-words.js';

export { ApiError, sendError };

export const notFound = (what: string): ApiError => new ApiError(404, 'not_found', `${what} not found in this tenant`);

/** The shapes other modules throw, mapped by name and code so this module need not import them all. */
function fromDomainError(err: Error & { code?: unknown; field?: unknown; runId?: unknown }): ApiError | null {
  if (err instanceof ApiError) return err;
  if (err instanceof KeyInputError) return new ApiError(400, err.code, err.message, { field: err.field });
  switch (err.name) {
    case 'PostureInputError':
    case 'AssetInputError': {
      const code = typeof err.code === 'string' && /^[a-z_]{1,64}$/.test(err.code) ? err.code : 'invalid_request';
      return new ApiError(400, code, err.message, typeof err.field === 'string' ? { field: err.field } : {});
    }
    case 'PostureNotFoundError':
      return new ApiError(404, 'not_found', err.code === 'run_not_found' ? 'sync run not found in this tenant' : 'connection not found in this tenant');
    case 'SecretRefError': {
      const code = typeof err.code === 'string' && /^[a-z_]{1,64}$/.test(err.code) ? err.code : 'secret_ref_invalid';
      return new ApiError(400, code, err.message, { field: 'secret_ref' });
    }
    case 'SyncInProgressError':
      return new ApiError(409, 'sync_in_progress', 'a sync of this connection is already running; wait for it to finish (see run_id)', {
        run_id: err.runId,
      });
    default:
      break;
  }
  if (err instanceof DbError && err.code === 'db_unavailable') return databaseUnavailable(err);
  if (err instanceof ChronicleError && err.code === 'invalid_query') {
    const field = err.field ?? 'query';
    return new ApiError(400, field === 'cursor' ? 'invalid_cursor' : 'invalid_request', err.message.slice(0, 300), { field });
  }
  if (err instanceof ChronicleError && (err.code === 'unavailable' || err.code === 'closed')) {
    const reason = dbUnavailableReason(err);
    if (reason === undefined) return new ApiError(503, 'audit_unavailable', 'the audit trail cannot record right now, so nothing was done; retry shortly', {}, { 'retry-after': '5' });
    return new ApiError(503, 'audit_unavailable', `the audit trail cannot record, so nothing was done: ${DATABASE_WORDS[reason]}`, { database: reason }, { 'retry-after': '5' });
  }
  return null;
}

/** Fastify's own 4xx errors (parsing, validation, routing), with our codes. */
function fromFastifyError(err: FastifyError): ApiError | null {
  if (err.validation !== undefined) {
    const where = err.validationContext ?? 'request';
    const first = err.validation[0];
    // Array positions (type.0) name the parameter, not the position: `type` is what the caller typed.
    const path = first?.instancePath ? first.instancePath.replace(/^\//, '').replaceAll('/', '.').replace(/\.\d+$/, '') : '';
    const detail = first !== undefined ? issueInWords({ keyword: first.keyword, params: first.params as Record<string, unknown> }) : 'is invalid';
    const field = path === '' ? where : `${where}.${path}`;
    return new ApiError(400, where === 'body' ? 'invalid_body' : 'invalid_request', `${field} ${detail}`.slice(0, 300), { field });
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported_media_type', 'send the body as JSON with `Content-Type: application/json`');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'payload_too_large', 'the request body is too large; bodies here are small JSON objects');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'invalid_json', 'the body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError(400, 'invalid_json', 'the body is not valid JSON');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError(400, 'bad_request', 'the Content-Length header does not match the body');
    default:
      break;
  }
  // JSON.parse failures surface as a SyntaxError with status 400.
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message))) {
    return new ApiError(400, 'invalid_json', 'the body is not valid JSON');
  }
  const status = err.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : status === 413 ? 'payload_too_large' : 'bad_request';
    // Fastify's own messages are about the request, never about internals.
    const message = typeof err.code === 'string' && err.code.startsWith('FST_') ? err.message.slice(0, 200) : 'the request was not accepted';
    return new ApiError(status, code, message);
  }
  return null;
}

export function toApiError(err: unknown): ApiError | null {
  if (!(err instanceof Error)) return null;
  return fromDomainError(err) ?? fromFastifyError(err as FastifyError);
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const mapped = toApiError(err);
  if (mapped !== null) {
    if (mapped.statusCode >= 500) request.log.warn({ code: mapped.code, err }, 'request failed: dependency unavailable');
    else request.log.debug({ code: mapped.code }, 'request refused');
    return sendError(reply, mapped);
  }
  request.log.error({ err }, 'internal error');
  return sendError(reply, new ApiError(500, 'internal_error', `internal error (request id ${request.id})`, { request_id: request.id }));
}
