/**
 * The agent listener: HTTPS that requires a client certificate issued by a tenant's agent CA
 * (`requestCert`, `rejectUnauthorized`, the CAs recorded in the database as the only roots). The
 * TLS layer refuses no certificate, another CA's and an expired one; each request then checks the
 * certificate against the agent's record (revoked, replaced, wrong tenant) in the database, so a
 * revocation on any replica holds on every replica at the next request.
 *
 * The agent's identity and tenant come from the certificate only; bodies carry telemetry.
 */
import type { TLSSocket } from 'node:tls';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyError } from 'fastify';
import type { Logger } from '../log/index.js';
import { AgentError } from './errors.js';
import { createRateLimiter } from './rate-limit.js';
import { agentIdentityResponse, heartbeatAckResponse, heartbeatBody, renewBody, type RenewBodySchema } from './schemas.js';
import type { z } from 'zod';
import type { AgentService, AuthenticatedAgent, HeartbeatInput, PeerIdentity } from './types.js';
import type { ListenerTls } from './tls.js';
import { defined } from '../common/values.js';

const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

export const AGENTS_BASE = '/api/v1/agents';

export interface AgentListenerOptions {
  readonly service: AgentService;
  readonly logger: Logger;
  readonly tls: ListenerTls;
  readonly host: string;
  /** 0 for any free port. */
  readonly port: number;
  /** How often the trust list is reloaded, to pick up CAs other replicas made (default 5 s). */
  readonly trustRefreshMs?: number;
  readonly bodyLimitBytes?: number;
  /** Heartbeats and renewals per agent: burst, then one per refill interval (default 10, then one per 6 s). */
  readonly rateLimit?: { readonly burst: number; readonly refillMs: number };
}

export interface AgentListener {
  readonly app: FastifyInstance;
  /** https://HOST:PORT */
  readonly url: string;
  readonly port: number;
  readonly tls: ListenerTls;
  /** Every (method, path) registered; the OpenAPI drift test reads it. */
  readonly routes: ReadonlyArray<{ method: string; url: string }>;
  /** Reloads the trusted CAs from the database now. */
  refreshTrust(): Promise<void>;
  close(): Promise<void>;
}

function sendAgentError(reply: FastifyReply, err: AgentError): FastifyReply {
  for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
  return reply
    .code(err.statusCode)
    .type('application/json; charset=utf-8')
    .send({ error: { code: err.code, message: err.message, ...defined({ field: err.field }) } });
}

function toAgentError(err: unknown): AgentError | null {
  if (err instanceof AgentError) return err;
  const e = err as FastifyError;
  if (e?.validation !== undefined) {
    const first = e.validation[0];
    const path = first?.instancePath ? first.instancePath.replace(/^\//, '').replaceAll('/', '.') : '';
    let detail = first?.message ?? 'is invalid';
    if (first?.keyword === 'additionalProperties') {
      detail = `has an unknown field "${String((first.params as { additionalProperty?: unknown }).additionalProperty ?? '').slice(0, 64)}"; remove it (the certificate names the agent)`;
    }
    const field = path === '' ? 'body' : `body.${path}`;
    return new AgentError(400, 'invalid_body', `${field} ${detail}`.slice(0, 300), field);
  }
  switch (e?.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AgentError(415, 'unsupported_media_type', 'send the body as JSON with `Content-Type: application/json`');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AgentError(413, 'payload_too_large', 'the request body is too large; heartbeats are small JSON objects');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AgentError(400, 'invalid_json', 'the body is empty; send a JSON object');
    default:
      break;
  }
  if (err instanceof SyntaxError || (typeof e?.statusCode === 'number' && e.statusCode === 400)) return new AgentError(400, 'invalid_json', 'the body is not valid JSON');
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return new AgentError(e.statusCode, 'bad_request', 'the request was not accepted');
  return null;
}

/** What the verified client certificate says; null when there is none (TLS should have refused). */
export function peerIdentity(request: FastifyRequest): PeerIdentity | null {
  const socket = request.raw.socket as TLSSocket;
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return null;
  const peer = socket.getPeerCertificate(true);
  if (peer === null || typeof peer !== 'object' || peer.subject === undefined) return null;
  const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
  const agentId = first(peer.subject.CN as string | string[] | undefined);
  const tenant = first(peer.subject.O as string | string[] | undefined);
  const issuerFingerprint = peer.issuerCertificate?.fingerprint256;
  if (agentId === undefined || tenant === undefined || issuerFingerprint === undefined || typeof peer.serialNumber !== 'string') return null;
  return { agentId: agentId.toLowerCase(), tenant, serial: peer.serialNumber.toUpperCase(), issuerFingerprint };
}

export async function startAgentListener(options: AgentListenerOptions): Promise<AgentListener> {
  const { service, logger } = options;
  const limiter = createRateLimiter(options.rateLimit ?? { burst: 10, refillMs: 6_000 });
  let trusted = await service.cas.trusted();
  // With no tenant CA yet, trust only the listener's own CA, which never signs a client certificate:
  // an empty list would make Node fall back to the public roots.
  const caList = () => (trusted.length > 0 ? trusted.map((c) => c.certPem) : [options.tls.caPem ?? options.tls.certPem]);

  const app = Fastify({
    loggerInstance: logger as unknown as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? 8 * 1024,
    requestTimeout: 30_000,
    return503OnClosing: true,
    https: {
      key: options.tls.keyPem,
      cert: options.tls.certPem,
      ca: caList(),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    },
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 100 },
  });

  const routes: Array<{ method: string; url: string }> = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });
  const ajv = addFormats(new Ajv({ removeAdditional: false, useDefaults: true, allErrors: false, strict: false, coerceTypes: false }));
  app.setValidatorCompiler(({ schema }) => ajv.compile(schema));
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((err, request, reply) => {
    const mapped = toAgentError(err);
    if (mapped !== null) return sendAgentError(reply, mapped);
    request.log.error({ err }, 'agent listener: internal error');
    return sendAgentError(reply, new AgentError(500, 'internal_error', `internal error (request id ${request.id})`));
  });
  app.setNotFoundHandler((request, reply) =>
    sendAgentError(reply, new AgentError(404, 'not_found', `no route for ${request.method} at this path on the agent listener; see specs/openapi.yaml`)),
  );
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    reply.header('x-content-type-options', 'nosniff');
  });

  /** The certificate's agent, from its tenant's CA, within its rate limit (its record is checked by each route). */
  async function peerOf(request: FastifyRequest): Promise<PeerIdentity> {
    const peer = peerIdentity(request);
    if (peer === null) throw new AgentError(401, 'client_certificate_required', 'present the client certificate issued at enrollment');
    await service.checkIssuer(peer);
    const waitMs = limiter.take(`${peer.tenant}/${peer.agentId}`);
    if (waitMs > 0) {
      const seconds = String(Math.max(1, Math.ceil(waitMs / 1000)));
      throw new AgentError(429, 'rate_limited', `too many requests from this agent; retry after ${seconds} s`, undefined, { 'retry-after': seconds });
    }
    return peer;
  }

  app.post<{ Body: HeartbeatInput }>(`${AGENTS_BASE}/heartbeat`, { schema: { body: heartbeatBody, response: { 200: heartbeatAckResponse } } }, async (request) => {
    return service.heartbeat(await peerOf(request), request.body);
  });

  app.post<{ Body: z.infer<typeof RenewBodySchema> }>(`${AGENTS_BASE}/renew`, { schema: { body: renewBody, response: { 200: agentIdentityResponse } } }, async (request) => {
    const agent: AuthenticatedAgent = await service.authenticate(await peerOf(request));
    return service.renew(agent, request.body.csr, { requestId: request.id });
  });

  await app.ready();

  async function refreshTrust(): Promise<void> {
    const next = await service.cas.trusted();
    if (next.map((c) => c.fingerprint).join() === trusted.map((c) => c.fingerprint).join()) return;
    trusted = next;
    app.server.setSecureContext({ key: options.tls.keyPem, cert: options.tls.certPem, ca: caList(), minVersion: 'TLSv1.2' });
    logger.info({ cas: trusted.length }, 'agent listener trusts a new tenant CA');
  }
  service.onCaCreated(refreshTrust);
  const timer = setInterval(() => {
    refreshTrust().catch((err: unknown) => logger.warn({ err }, 'agent listener could not reload its CAs'));
  }, options.trustRefreshMs ?? 5_000);
  timer.unref();

  let address: string;
  try {
    address = await app.listen({ host: options.host, port: options.port });
  } catch (err) {
    clearInterval(timer);
    await app.close();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new Error(`${options.host}:${options.port} (the agent listener) is already in use: set INTUNE_AGENT_PORT to a free port, or 0 for any`, { cause: err });
    }
    throw err;
  }
  const url = new URL(address);
  return {
    app,
    url: `https://${url.host}`,
    port: Number(url.port),
    tls: options.tls,
    routes,
    refreshTrust,
    async close() {
      clearInterval(timer);
      await app.close();
    },
  };
}
