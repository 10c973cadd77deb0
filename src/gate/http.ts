/**
 * The gate over HTTP, for authorize endpoints written in other languages:
 *
 *   POST /api/v1/gate/device-compliance
 *   Authorization: Bearer <API key with role gate or admin>     (the service's key, not the user's)
 *   Content-Type: application/json
 *   { "accord": "device-management", "claims": { "deviceid": "<Entra device id>" } }
 *   or { "accord": "...", "user_token": "<the user's JWT>" }   (verified against INTUNE_GATE_JWKS_URL)
 *
 * 200 for allow and for deny (the decision is the answer): { decision, reason, evaluated, message,
 * device, event }. Every refusal of the request itself is 4xx `{ error: { code, message } }`; a
 * deviceid claim that is not a GUID is one of those (400 device_id_invalid), and its deny is still
 * recorded in Chronicle, with the event named in the error body.
 * The tenant (Chronicle chain) is the key's tenant.
 *
 * A Fastify plugin: `app.register(gateRoutes, options)`. Registered that way it keeps its error
 * handler, body limit and parsers to itself. Authentication runs in onRequest, before the body is
 * read, so an unauthenticated caller cannot make the server parse anything.
 */
import fs from 'node:fs';
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type FetchImplementation, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey, type RemoteJWKSetOptions } from 'jose';
import { Agent, fetch as undiciFetch, type RequestInit as UndiciRequestInit } from 'undici';
import { ApiError, sendError } from '../auth/errors.js';
import { requirePermission } from '../auth/permissions.js';
import type { Authenticator, Principal } from '../auth/types.js';
import type { Config } from '../config/index.js';
import { GateInputError, type Gate } from './gate.js';
import { ACCORD_NAME_PATTERN } from './types.js';
import { GATE_ERROR_JSON_SCHEMA, GATE_REQUEST_JSON_SCHEMA, GATE_RESPONSE_SERIALIZER_SCHEMA, GateRequestSchema, type GateRequest, type GateResponse } from './schemas.js';
import { defined } from '../common/values.js';

export const GATE_PATH = '/api/v1/gate/device-compliance';
export const GATE_BODY_LIMIT_BYTES = 16 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** How user tokens sent as `user_token` are verified. One of jwksUrl or jwks. */
export interface GateJwtOptions {
  /** The issuer's JWKS endpoint (INTUNE_GATE_JWKS_URL); keys are fetched and cached by jose. */
  readonly jwksUrl?: string;
  /** A fixed key set, for hosts that pin their issuer's keys. */
  readonly jwks?: JSONWebKeySet;
  /** Expected `iss` (INTUNE_GATE_JWT_ISSUER). */
  readonly issuer?: string;
  /** Expected `aud` (INTUNE_GATE_JWT_AUDIENCE). */
  readonly audience?: string;
  /** Extra CA (PEM) to trust when fetching jwksUrl, e.g. the simulator's or a TLS-inspecting proxy's. */
  readonly caPem?: string;
}

export interface GateRoutesOptions {
  readonly gate: Gate;
  readonly authenticator: Authenticator;
  readonly jwt?: GateJwtOptions;
  readonly bodyLimitBytes?: number;
}

/** Config.gateJwt with INTUNE_CA_FILE trusted for the JWKS fetch (the same login host it serves). */
export function gateJwtOptions(config: Pick<Config, 'gateJwt' | 'graph'>): GateJwtOptions | undefined {
  if (config.gateJwt === undefined) return undefined;
  return {
    ...config.gateJwt,
    ...defined({ caPem: config.graph.caFile === undefined ? undefined : fs.readFileSync(config.graph.caFile, 'utf8') }),
  };
}

/** Fastify's parsing errors and anything unexpected, in the gate's error shape; never a stack or internals. */
function toGateError(err: FastifyError | Error): ApiError {
  if (err instanceof ApiError) return err;
  const code = (err as FastifyError).code;
  switch (code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported_media_type', 'send the body as JSON with `Content-Type: application/json`');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'payload_too_large', `the body is larger than ${GATE_BODY_LIMIT_BYTES / 1024} KiB; send the accord and only the claims the gate reads (deviceid)`);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'invalid_json', 'the body is empty; send a JSON object { accord, claims }');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError(400, 'invalid_body', 'the Content-Length header does not match the body');
    default:
      break;
  }
  const status = (err as FastifyError).statusCode;
  if (err instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (status === 400 && /JSON|prototype/i.test(err.message))) {
    return new ApiError(400, 'invalid_json', 'the body is not valid JSON; send a JSON object { accord, claims }');
  }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new ApiError(status, 'bad_request', 'the request was not accepted; send POST with a JSON object { accord, claims }');
  }
  return new ApiError(500, 'internal_error', 'internal error');
}

/**
 * Fastify's body validator for the gate route: the zod schema the route's JSON Schema is derived
 * from, so the messages are the schema's own. The first issue decides, in the order a caller fixes
 * them: the body's shape, then the accord, then unknown fields, then the rest.
 */
function validateGateBody(body: unknown): { value: GateRequest } | { error: ApiError } {
  const common = commonGateBody(body);
  if (common !== undefined) return { value: common };
  const parsed = GateRequestSchema.safeParse(body);
  if (parsed.success) return { value: parsed.data };
  const rank = (issue: z.core.$ZodIssue): number =>
    issue.path.length === 0 && issue.code === 'invalid_type' ? 0 : issue.path[0] === 'accord' ? 1 : issue.code === 'unrecognized_keys' ? 2 : 3;
  const first = parsed.error.issues.reduce((best, issue) => (rank(issue) < rank(best) ? issue : best));
  const malformedAccord = first.path[0] === 'accord' && (body as { accord?: unknown }).accord !== undefined;
  return { error: new ApiError(400, malformedAccord ? 'invalid_accord' : 'invalid_body', first.message) };
}

/**
 * The body almost every call sends, `{ "accord": "<name>", "claims": { … } }` parsed from JSON,
 * recognised without running the schema: exactly those two own fields, a well-formed accord and a
 * plain object of claims. The schema accepts every such body and answers the same value (the
 * claims are passed on as sent; the gate reads only their own `deviceid`). Anything else goes
 * through the schema, which words the refusal.
 */
function commonGateBody(body: unknown): GateRequest | undefined {
  if (typeof body !== 'object' || body === null || Object.getPrototypeOf(body) !== Object.prototype) return undefined;
  const keys = Object.keys(body);
  if (keys.length !== 2 || !Object.hasOwn(body, 'accord') || !Object.hasOwn(body, 'claims')) return undefined;
  const { accord, claims } = body as { accord: unknown; claims: unknown };
  if (typeof accord !== 'string' || !ACCORD_NAME_PATTERN.test(accord)) return undefined;
  if (typeof claims !== 'object' || claims === null || Object.getPrototypeOf(claims) !== Object.prototype) return undefined;
  return { accord, claims: claims as Record<string, unknown> };
}

const TOKEN_PROBLEMS = new Set([
  'ERR_JWT_EXPIRED',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JWT_INVALID',
  'ERR_JWS_INVALID',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JWKS_NO_MATCHING_KEY',
  'ERR_JWKS_MULTIPLE_MATCHING_KEYS',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JOSE_NOT_SUPPORTED',
]);

/** Asymmetric algorithms only: a shared-secret (HS*) or unsigned token is never accepted. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

function createTokenVerifier(options: GateJwtOptions): (token: string) => Promise<JWTPayload> {
  let keys: JWTVerifyGetKey;
  if (options.jwks !== undefined) {
    keys = createLocalJWKSet(options.jwks);
  } else if (options.jwksUrl !== undefined) {
    const remoteOptions: RemoteJWKSetOptions = { timeoutDuration: 5_000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 };
    if (options.caPem !== undefined) {
      const dispatcher = new Agent({ connect: { ca: options.caPem } });
      const fetchWithCa: FetchImplementation = (url, init) => undiciFetch(url, { ...(init as unknown as UndiciRequestInit), dispatcher }) as unknown as Promise<Response>;
      remoteOptions[customFetch] = fetchWithCa;
    }
    keys = createRemoteJWKSet(new URL(options.jwksUrl), remoteOptions);
  } else {
    throw new TypeError('gateRoutes: jwt needs jwksUrl or jwks');
  }
  const verifyOptions = {
    algorithms: ALGORITHMS,
    clockTolerance: 60,
    ...defined({ issuer: options.issuer, audience: options.audience }),
  };

  return async (token) => {
    try {
      return (await jwtVerify(token, keys, verifyOptions)).payload;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && TOKEN_PROBLEMS.has(code)) {
        let why = 'its signature or format is not valid';
        if (err instanceof joseErrors.JWTExpired) why = 'it has expired';
        else if (err instanceof joseErrors.JWTClaimValidationFailed) why = `its "${err.claim.replace(/[^a-z_]/gi, '')}" claim is not accepted (${err.reason.replace(/[^a-z_]/gi, '')})`;
        else if (code === 'ERR_JWKS_NO_MATCHING_KEY') why = 'it is not signed by a key of the configured issuer';
        else if (code === 'ERR_JOSE_ALG_NOT_ALLOWED') why = 'its signing algorithm is not accepted';
        throw new ApiError(400, 'invalid_token', `user_token was not accepted: ${why}`);
      }
      // The key set could not be fetched: not the caller's fault, and not a decision either.
      throw new ApiError(503, 'jwks_unavailable', "the issuer's signing keys (INTUNE_GATE_JWKS_URL) could not be fetched; retry shortly, or send claims", {}, { 'retry-after': '5' });
    }
  };
}

export async function gateRoutes(app: FastifyInstance, options: GateRoutesOptions): Promise<void> {
  const { gate, authenticator } = options;
  const verifyToken = options.jwt !== undefined ? createTokenVerifier(options.jwt) : undefined;
  const bodyLimit = options.bodyLimitBytes ?? GATE_BODY_LIMIT_BYTES;
  const principals = new WeakMap<FastifyRequest, Principal>();

  // JSON only; a text body is refused with 415, not parsed into a string.
  if (app.hasContentTypeParser('text/plain')) app.removeContentTypeParser('text/plain');
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const mapped = toGateError(err);
    if (mapped.statusCode >= 500) request.log.error({ err }, 'gate request failed');
    return sendError(reply, mapped);
  });

  app.post<{ Body: GateRequest }>(
    GATE_PATH,
    {
      bodyLimit,
      schema: { body: GATE_REQUEST_JSON_SCHEMA, response: { 200: GATE_RESPONSE_SERIALIZER_SCHEMA, 400: GATE_ERROR_JSON_SCHEMA } },
      validatorCompiler: ({ httpPart }) => (httpPart === 'body' ? validateGateBody : () => true),
      onRequest: async (request) => {
        principals.set(request, await requirePermission(authenticator, request, 'gate:check'));
      },
    },
    async (request, reply): Promise<GateResponse> => {
      const principal = principals.get(request) as Principal;
      const body = request.body;
      let claims = body.claims;
      if (body.user_token !== undefined) {
        if (verifyToken === undefined) {
          throw new ApiError(400, 'user_token_not_accepted', 'this server verifies no user tokens (INTUNE_GATE_JWKS_URL is unset): send the token\'s claims as claims instead');
        }
        claims = await verifyToken(body.user_token);
      }
      try {
        const result = await gate.check({
          accord: body.accord,
          claims,
          tenant: principal.tenant,
          actor: { kind: 'service', id: principal.actorId },
          channel: 'api',
          ...(REQUEST_ID.test(request.id) ? { requestId: request.id } : {}),
        });
        reply.header('cache-control', 'no-store');
        if (result.reason === 'device_id_invalid') {
          // The claim cannot name a device: the request is at fault, so it is a 4xx, and the deny
          // it stands for is recorded all the same (the event is named in the error).
          return sendError(reply, new ApiError(400, 'device_id_invalid', result.message, { field: 'claims.deviceid', decision: 'deny', event: result.event }));
        }
        return result;
      } catch (err) {
        if (err instanceof GateInputError) throw new ApiError(400, err.code, err.message);
        throw err;
      }
    },
  );
}
