/**
 * The HTTP app: the runtime contract's posture routes, the gate, MCP over Streamable HTTP, the
 * chronicle API for reviewers, API key administration, health and metrics, and the Settings panel.
 * Built from injected parts; it opens nothing itself, so tests and `serve` compose it the same way.
 */
import crypto from 'node:crypto';
import { Ajv, type Options as AjvOptions } from 'ajv';
import addFormatsModule from 'ajv-formats';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { lazyChildLoggerFactory, type Logger } from '../log/index.js';
import type { Db } from '../db/index.js';
import type { Migration } from '../db/migrate.js';
import { MIGRATIONS } from '../db/migrations/index.js';
import type { IntuneConnector } from '../connector/index.js';
import type { Gate } from '../gate/index.js';
import { gateRoutes, type GateJwtOptions } from '../gate/http.js';
import { mcpRoutes } from '../mcp/http.js';
import type { PostureService } from '../posture/types.js';
import type { Authenticator } from '../auth/types.js';
import type { KeyStore } from '../auth/keys.js';
import { ApiError, errorHandler, sendError } from './errors.js';
import { createMetrics, type MetricsSources } from './metrics.js';
import type { SharingStatus } from '../connector/replicas/index.js';
import { chronicleRoutes, type ChronicleReader } from './routes/chronicle.js';
import { healthRoutes } from './routes/health.js';
import { keyRoutes } from './routes/keys.js';
import { agentRoutes, type AgentRouteDeps } from './routes/agents.js';
import { panelRoutes } from './routes/panel.js';
import { postureRoutes } from './routes/posture.js';
import { createPostureReadAudit } from './read-audit.js';
import type { ChronicleWriter } from '../chronicle/types.js';
import type { PreflightReport } from '../posture/preflight.js';
import { assetRoutes } from './routes/assets.js';
import type { AssetService } from '../assets/index.js';
import { defined } from '../common/values.js';

// ajv-formats is CommonJS with a default export; under NodeNext it arrives as the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

/** The parts of the runtime the app uses (src/runtime's Runtime satisfies it). */
export interface AppRuntime {
  readonly db: Db;
  readonly logger: Logger;
  readonly chronicle: ChronicleReader & Pick<ChronicleWriter, 'append'> & { stats(): { appended: number; failed: number; batches: number; pending: number; witnessBacklog?: number; witnessFailures?: number } };
  readonly connector: IntuneConnector;
  /** What replicas share (REDIS_URL), for /readyz and /metrics; absent: nothing shared. */
  readonly sharing?: { status(): SharingStatus };
}

export interface AppOptions {
  readonly runtime: AppRuntime;
  readonly posture: PostureService;
  readonly gate: Gate;
  readonly authenticator: Authenticator;
  /** Enables /api/v1/keys (admin keys manage their tenant's keys). */
  readonly keys?: KeyStore;
  /** Verifies user tokens sent to the gate instead of claims (Config.gateJwt). */
  readonly gateJwt?: GateJwtOptions;
  /** Capabilities every MCP caller gets beside its key's own (Config.mcp.defaultCapabilities). */
  readonly mcpDefaultCapabilities?: readonly ('READ' | 'PROPOSE' | 'MUTATE')[];
  /** Enables POST …/connections/{id}/test: the connection's pre-flight (src/posture/preflight.ts). */
  readonly preflight?: (tenant: string, connectionId: string) => Promise<PreflightReport>;
  /** Extra metric sources (sync runs); the cache and Chronicle figures come from the runtime. */
  readonly metrics?: Omit<MetricsSources, 'cacheStats' | 'chronicleStats' | 'sharing'>;
  readonly migrations?: readonly Migration[];
  /** Enables /api/v1/agents: enrollment, identity summaries, revocation (the mTLS side is its own listener). */
  readonly agents?: Omit<AgentRouteDeps, 'authenticator'>;
  /** Largest accepted request body (default 64 KiB; the gate route keeps its own smaller limit). */
  readonly bodyLimitBytes?: number;
  /** How long a posture read waits before its audit event is written (default 500 ms; see ./read-audit.ts). */
  readonly readAuditFlushMs?: number;
  /** Enables /api/v1/assets: asset identity over Intune records and agents. */
  readonly assets?: AssetService;
}

/** A registered route: its method, path and the request schema Fastify validates (absent when none). */
export interface RegisteredRoute {
  readonly method: string;
  readonly url: string;
  readonly schema?: Readonly<Record<string, unknown>>;
}

const ROUTES = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Every (method, path) the app registered, plugins included; the OpenAPI drift test and the validation-words test read it. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return ROUTES.get(app) ?? [];
}

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{8,64}$/;

function requestValidators(): { body: Ajv; other: Ajv } {
  const base: AjvOptions = { removeAdditional: false, useDefaults: true, allErrors: false, strict: false };
  // Bodies are JSON: a number where a string belongs is an error, not something to convert.
  const body = addFormats(new Ajv({ ...base, coerceTypes: false }));
  // Query strings and path parameters are text: integers and repeated keys need coercion.
  const other = addFormats(new Ajv({ ...base, coerceTypes: 'array' }));
  return { body, other };
}

/**
 * The default readiness check for Chronicle: its database session accepts writes (not a read-only
 * replica or session) and may insert into the event table; otherwise which of the two it is not.
 */
async function chronicleTableWritable(db: Db): Promise<true | string> {
  const { rows } = await db.query<{ writable: boolean; insert: boolean }>(
    `SELECT current_setting('transaction_read_only') = 'off' AS writable, has_table_privilege('chronicle_event', 'INSERT') AS insert`,
  );
  const row = rows[0];
  if (row?.writable !== true) return 'Chronicle cannot append: the database is read-only (a standby, or default_transaction_read_only is on)';
  if (row.insert !== true) return 'Chronicle cannot append: this database role may not INSERT into chronicle_event';
  return true;
}

export async function createApp(options: AppOptions): Promise<FastifyInstance> {
  const { runtime, posture, gate, authenticator, keys } = options;
  const metrics = createMetrics({
    cacheStats: () => {
      const s = runtime.connector.cacheStats();
      return {
        hits: s.hits,
        misses: s.misses,
        coalesced: s.coalesced,
        staleServed: s.staleServed,
        size: s.size,
        sharedHits: s.sharedHits,
        sharedCoalesced: s.sharedCoalesced,
        sharedFallbacks: s.sharedFallbacks,
      };
    },
    ...defined({ sharing: runtime.sharing === undefined ? undefined : () => (runtime.sharing as { status(): SharingStatus }).status() }),
    chronicleStats: () => runtime.chronicle.stats(),
    ...options.metrics,
  });

  const app = Fastify({
    // pino's Logger is Fastify's logger; the generic parameters differ only in declared custom levels.
    loggerInstance: runtime.logger as unknown as FastifyBaseLogger,
    // One line per request at info would dominate the logs and the gate's hot path; see onResponse.
    logController: new LogController({ disableRequestLogging: true }),
    // The request's child logger (and the redaction of its bindings) is made only when a line is written.
    childLoggerFactory: (logger, bindings, options) =>
      lazyChildLoggerFactory(logger as unknown as Logger, bindings, options as Parameters<Logger['child']>[1]) as unknown as FastifyBaseLogger,
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024,
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID_PATTERN.test(incoming) ? incoming : crypto.randomUUID();
    },
    requestTimeout: 60_000,
    return503OnClosing: true,
    // Errors the router raises before any route runs (bad URL encoding, oversized path segments):
    // answered in the same shape as every other error, without echoing the URL.
    frameworkErrors: (error, _request, reply) => {
      sendError(
        reply as unknown as FastifyReply,
        error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? new ApiError(414, 'uri_too_long', 'a path segment is too long; ids here are GUIDs')
          : new ApiError(400, 'bad_request', 'the URL is not valid (bad percent-encoding)'),
      );
    },
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
  });

  const routes: RegisteredRoute[] = [];
  ROUTES.set(app, routes);
  app.addHook('onRoute', (route) => {
    const schema = route.schema as Record<string, unknown> | undefined;
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, ...defined({ schema }) });
  });

  const validators = requestValidators();
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? validators.body : validators.other).compile(schema));
  // JSON only: text/plain bodies are refused with 415 rather than parsed as strings.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new ApiError(404, 'not_found', `no route for ${request.method} at this path; see specs/openapi.yaml`)),
  );

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    if (request.url.startsWith('/api/')) reply.header('cache-control', 'no-store');
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    request.log.debug({ method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request');
  });

  healthRoutes(app, {
    db: runtime.db,
    migrations: options.migrations ?? MIGRATIONS,
    metrics,
    chronicleWritable: () => chronicleTableWritable(runtime.db),
    ...defined({ sharing: runtime.sharing === undefined ? undefined : () => (runtime.sharing as { status(): SharingStatus }).status() }),
  });
  app.get('/', async (_request, reply) => reply.redirect('/settings', 302));
  panelRoutes(app);
  // Closed with the app (after in-flight requests, before Chronicle), so a clean stop writes every read.
  const readAudit = createPostureReadAudit({
    chronicle: runtime.chronicle,
    logger: runtime.logger,
    ...defined({ flushIntervalMs: options.readAuditFlushMs }),
  });
  app.addHook('onClose', () => readAudit.close());
  postureRoutes(app, { posture, authenticator, readAudit, connector: runtime.connector, ...defined({ preflight: options.preflight }) });
  chronicleRoutes(app, { chronicle: runtime.chronicle, authenticator });
  if (keys !== undefined) keyRoutes(app, { keys, authenticator });
  if (options.agents !== undefined) agentRoutes(app, { ...options.agents, authenticator });
  if (options.assets !== undefined) assetRoutes(app, { assets: options.assets, authenticator });

  await app.register(gateRoutes, { gate, authenticator, ...defined({ jwt: options.gateJwt }) });
  await app.register(mcpRoutes, {
    connector: runtime.connector,
    authenticator,
    logger: runtime.logger,
    ...defined({ defaultCapabilities: options.mcpDefaultCapabilities }),
  });

  await app.ready();
  return app;
}
