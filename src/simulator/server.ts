/**
 * startSimulator: one HTTPS listener on loopback that is both the Entra login host and the Graph
 * host (the connector gets the same base URL for INTUNE_LOGIN_URL and INTUNE_GRAPH_URL), with a
 * CA generated at start and written to a file the connector trusts through INTUNE_CA_FILE.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { DEFAULT_ROLES, EntraTenant } from './entra.js';
import { SimulatorError } from './errors.js';
import { validateFaults } from './faults.js';
import { generateTenant } from './generator.js';
import { GraphService, routeTemplate } from './graph.js';
import { send, sendGraphError, type Exchange, type MutableRecord } from './http.js';
import { createRandom } from './random.js';
import { DeviceStore } from './store.js';
import { loadTenantFile } from './tenant-file.js';
import { INTUNE_THROTTLE, Throttle } from './throttle.js';
import { createTlsMaterial } from './tls.js';
import type { FaultSpec, RecordedRequest, SimulatorHandle, SimulatorOptions, SimulatorStats } from './types.js';
import { defined } from '../common/values.js';

export const DEFAULT_DEVICES = 200;
export const DEFAULT_SEED = 'intune-connector';
const DEFAULT_REQUEST_LOG_LIMIT = 100_000;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1']);
/** The control path on the Graph host; not a Graph path, so never counted among Graph requests. */
const STATS_PATH = '_simulator';

/** Counters behind GET /_simulator/stats. */
class StatsCounter {
  total = 0;
  tokenRequests = 0;
  checkins = 0;
  requests = new Map<string, number>();
  statuses = new Map<string, number>();
  /** Bumped by reset(), so an exchange that closes after a reset is not counted into the new period. */
  private generation = 0;

  countGraph(template: string, res: ServerResponse, record: MutableRecord): void {
    this.total += 1;
    this.requests.set(template, (this.requests.get(template) ?? 0) + 1);
    const generation = this.generation;
    // 'close' fires for answered and for reset exchanges alike; a reset leaves status 0.
    res.once('close', () => {
      if (generation !== this.generation) return;
      const key = String(record.status);
      this.statuses.set(key, (this.statuses.get(key) ?? 0) + 1);
    });
  }

  reset(): void {
    this.generation += 1;
    this.total = 0;
    this.tokenRequests = 0;
    this.checkins = 0;
    this.requests = new Map();
    this.statuses = new Map();
  }

  snapshot(): SimulatorStats {
    const sorted = (m: Map<string, number>) => Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return { total: this.total, requests: sorted(this.requests), statuses: sorted(this.statuses), tokenRequests: this.tokenRequests, checkins: this.checkins };
  }
}

function invalid(message: string): SimulatorError {
  return new SimulatorError('invalid_options', message);
}

function positiveInt(value: unknown, name: string, { min, max }: { min: number; max: number }): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} is ${JSON.stringify(value)}; set it to a whole number from ${min} to ${max}`);
  }
  return value;
}

function checkOptions(options: SimulatorOptions): void {
  positiveInt(options.port, 'port', { min: 0, max: 65_535 });
  positiveInt(options.devices, 'devices', { min: 0, max: 1_000_000 });
  positiveInt(options.tokenLifetimeSeconds, 'tokenLifetimeSeconds', { min: 1, max: 86_400 });
  positiveInt(options.requestLogLimit, 'requestLogLimit', { min: 1, max: 10_000_000 });
  positiveInt(options.throttle?.requestsPer20s, 'throttle.requestsPer20s', { min: 1, max: 1_000_000 });
  positiveInt(options.throttle?.writesPer20s, 'throttle.writesPer20s', { min: 1, max: 1_000_000 });
  positiveInt(options.throttle?.windowMs, 'throttle.windowMs', { min: 1, max: 3_600_000 });
  if (options.host !== undefined && !LOOPBACK_HOSTS.has(options.host)) {
    throw invalid(`host is "${options.host}"; the simulator listens on loopback only: use 127.0.0.1, localhost or ::1`);
  }
  for (const [name, value] of [['tenantId', options.tenantId], ['clientId', options.clientId]] as const) {
    if (value !== undefined && !/^[A-Za-z0-9.-]{1,253}$/.test(value)) throw invalid(`${name} is "${value}"; use a GUID or a domain name`);
  }
  if (options.clientSecret !== undefined && (typeof options.clientSecret !== 'string' || options.clientSecret === '')) {
    throw invalid('clientSecret must be a non-empty string');
  }
  if (options.roles !== undefined && (!Array.isArray(options.roles) || !options.roles.every((r) => typeof r === 'string'))) {
    throw invalid('roles must be an array of role names, e.g. ["DeviceManagementManagedDevices.Read.All"]');
  }
}

/** Shell-safe `export NAME=value`; values are quoted only when they need it. */
export function exportLine(name: string, value: string): string {
  return /^[A-Za-z0-9_@%+=:,./~-]+$/.test(value) ? `export ${name}=${value}` : `export ${name}='${value.replace(/'/g, `'\\''`)}'`;
}

/** The parts of a simulator that change while it runs: the fault spec and, once listening, its base URL. */
interface LiveState {
  faults: FaultSpec;
  baseUrl: string;
}

interface Identity {
  readonly seed: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly host: string;
}

function resolveIdentity(options: SimulatorOptions): Identity {
  const seed = options.seed ?? DEFAULT_SEED;
  const ids = createRandom(`identity:${seed}`);
  const tenantId = options.tenantId ?? ids.guid();
  const clientId = options.clientId ?? ids.guid();
  const clientSecret = options.clientSecret ?? `sim8Q~${randomBytes(30).toString('base64url')}`;
  return { seed, tenantId, clientId, clientSecret, host: options.host ?? '127.0.0.1' };
}

/** TLS material, the Entra tenant and the devices, built side by side. */
async function prepareTenant(
  options: SimulatorOptions,
  identity: Identity,
): Promise<{ tls: Awaited<ReturnType<typeof createTlsMaterial>>; entra: EntraTenant; devices: Record<string, unknown>[] }> {
  // Key generation runs on libuv's thread pool, so it overlaps with building the tenant.
  const keys = Promise.all([
    createTlsMaterial([identity.host]),
    EntraTenant.create({
      tenantId: identity.tenantId,
      clientId: identity.clientId,
      clientSecret: identity.clientSecret,
      roles: options.roles ?? DEFAULT_ROLES,
      tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 3600,
      clientCertificatePems: (options.clientCertificates ?? []).map((c) => c.pem),
    }),
  ]);
  // Marked handled now: a failure surfaces at the await below, not as an unhandled rejection meanwhile.
  keys.catch(() => undefined);
  let devices: Record<string, unknown>[];
  try {
    devices =
      options.tenantFile !== undefined
        ? await loadTenantFile(options.tenantFile)
        : generateTenant(options.devices ?? DEFAULT_DEVICES, identity.seed, { now: options.now });
  } catch (err) {
    await keys.catch(() => undefined);
    throw err;
  }
  const [tls, entra] = await keys;
  return { tls, entra, devices };
}

interface RouterDeps {
  readonly graph: GraphService;
  readonly entra: EntraTenant;
  readonly stats: StatsCounter;
  readonly dice: ReturnType<typeof createRandom>;
  readonly state: LiveState;
}

/** Dispatches a request by its path segments: Graph, the stats control path, or Entra's endpoints. */
function createRouter({ graph, entra, stats, dice, state }: RouterDeps): (ex: Exchange, segments: readonly string[]) => Promise<void> {
  return async (ex, segments) => {
    const method = ex.req.method ?? 'GET';
    const [first, second, third, fourth] = segments;
    if (first === 'v1.0' || first === 'beta') {
      stats.countGraph(routeTemplate(method, segments), ex.res, ex.record);
      return graph.handle(ex, segments);
    }
    if (first === STATS_PATH && second === 'stats' && segments.length === 2) {
      ex.record.kind = 'metadata';
      if (method === 'GET') return send(ex, 200, JSON.stringify(stats.snapshot()), { 'content-type': 'application/json', 'cache-control': 'no-store' });
      if (method === 'DELETE') {
        stats.reset();
        return send(ex, 204, '');
      }
      return sendGraphError(ex, 405, 'BadRequest', 'Use GET /_simulator/stats to read the counters or DELETE /_simulator/stats to reset them.', { allow: 'GET, DELETE' });
    }
    if (segments.length === 3 && first === 'common' && second === 'discovery' && third === 'instance' && method === 'GET') {
      ex.record.kind = 'metadata';
      return entra.instanceDiscovery(ex);
    }
    if (first !== undefined && segments.length === 4 && second === 'v2.0' && third === '.well-known' && fourth === 'openid-configuration' && method === 'GET') {
      ex.record.kind = 'metadata';
      return entra.openIdConfiguration(ex, first);
    }
    if (first !== undefined && second === 'discovery' && segments.at(-1) === 'keys' && segments.length <= 4 && method === 'GET') {
      ex.record.kind = 'metadata';
      return entra.jwks(ex);
    }
    if (first !== undefined && segments.length === 4 && second === 'oauth2' && third === 'v2.0' && fourth === 'token') {
      ex.record.kind = 'token';
      stats.tokenRequests += 1;
      if (method !== 'POST') return entra.error(ex, 405, 'invalid_request', 900561, 'The endpoint only accepts POST requests.');
      const tokenErrorRate = state.faults.tokenErrorRate ?? 0;
      if (tokenErrorRate > 0 && dice.chance(tokenErrorRate)) {
        return entra.error(ex, 503, 'temporarily_unavailable', 90033, 'A transient error has occurred. Please try again.');
      }
      return entra.token(ex, first);
    }
    return sendGraphError(ex, 404, 'ResourceNotFound', `Resource not found for the segment '${segments.join('/').slice(0, 120)}'.`);
  };
}

/** The HTTPS request listener: records the request in the bounded log, parses the path, routes it. */
function createRequestListener(deps: {
  readonly log: RecordedRequest[];
  readonly logLimit: number;
  readonly state: LiveState;
  readonly route: (ex: Exchange, segments: readonly string[]) => Promise<void>;
}): (req: IncomingMessage, res: ServerResponse) => void {
  const { log, logLimit, state, route } = deps;
  return (req, res) => {
    const clientRequestIdHeader = req.headers['client-request-id'];
    const clientRequestId = typeof clientRequestIdHeader === 'string' && clientRequestIdHeader.length <= 200 ? clientRequestIdHeader : undefined;
    const record: MutableRecord = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      status: 0,
      time: new Date().toISOString(),
      authorization: req.headers.authorization !== undefined,
      ...defined({ clientRequestId }),
    };
    log.push(record);
    // Trimmed in batches so a long-running demo does not pay for a shift on every request.
    if (log.length > logLimit + Math.ceil(logLimit / 10)) log.splice(0, log.length - logLimit);
    let url: URL;
    let segments: string[] | undefined;
    try {
      url = new URL(req.url ?? '/', state.baseUrl);
      segments = url.pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
    } catch {
      url = new URL(state.baseUrl);
    }
    const ex: Exchange = { req, res, url, requestId: randomUUID(), clientRequestId, record };
    if (segments === undefined) return sendGraphError(ex, 400, 'BadRequest', 'The request URL is malformed.');
    route(ex, segments).catch((err: unknown) => {
      // A defect in the simulator, not a fault it was asked for: answer 500 so the test sees it.
      if (!res.headersSent && !res.destroyed) sendGraphError(ex, 500, 'InternalServerError', `Simulator defect: ${(err as Error).message}`);
      else res.destroy();
    });
  };
}

async function listen(server: https.Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? invalid(`port ${port} is already in use; pick another with --port or use 0 for a free one`) : err),
    );
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return `https://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

/** Writes the CA where asked, else into a fresh temp directory; closes the server if it cannot. */
async function writeCaFile(server: https.Server, caPem: string, requested: string | undefined): Promise<{ caFile: string; caDir: string | undefined }> {
  let caDir: string | undefined;
  let caFile: string;
  if (requested !== undefined) {
    caFile = path.resolve(requested);
  } else {
    caDir = await mkdtemp(path.join(os.tmpdir(), 'intune-simulator-'));
    caFile = path.join(caDir, 'ca.pem');
  }
  try {
    await writeFile(caFile, caPem, { mode: 0o644 });
  } catch (err) {
    server.closeAllConnections();
    server.close();
    throw invalid(`cannot write the CA file ${caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return { caFile, caDir };
}

function connectorEnv(identity: Identity, baseUrl: string, caFile: string): SimulatorHandle['env'] {
  return Object.freeze({
    ENTRA_TENANT_ID: identity.tenantId,
    ENTRA_CLIENT_ID: identity.clientId,
    ENTRA_CLIENT_SECRET: identity.clientSecret,
    INTUNE_CLOUD: 'custom',
    INTUNE_LOGIN_URL: baseUrl,
    INTUNE_GRAPH_URL: baseUrl,
    INTUNE_CA_FILE: caFile,
  });
}

export async function startSimulator(options: SimulatorOptions = {}): Promise<SimulatorHandle> {
  checkOptions(options);
  const identity = resolveIdentity(options);
  const state: LiveState = { faults: validateFaults(options.faults ?? {}), baseUrl: '' };
  const { tls, entra, devices } = await prepareTenant(options, identity);

  const store = new DeviceStore(devices);
  const log: RecordedRequest[] = [];
  const logLimit = options.requestLogLimit ?? DEFAULT_REQUEST_LOG_LIMIT;
  const dice = createRandom(`faults:${identity.seed}`);
  const stats = new StatsCounter();
  const checkIn = (count: number): string[] => {
    const ids = store.checkIn(count, (size) => dice.int(0, size - 1), new Date().toISOString());
    stats.checkins += ids.length;
    return ids;
  };
  const graph = new GraphService({
    store,
    entra,
    throttle: new Throttle({ ...INTUNE_THROTTLE, ...options.throttle }),
    faults: () => state.faults,
    dice,
    baseUrl: () => state.baseUrl,
    // node:timers/promises, not the global: a test's fake timers must not stall the simulator.
    sleep: (ms) => delay(ms),
    checkIn,
  });
  const route = createRouter({ graph, entra, stats, dice, state });
  const server = https.createServer({ key: tls.keyPem, cert: tls.certPem, keepAliveTimeout: 10_000 }, createRequestListener({ log, logLimit, state, route }));
  server.on('clientError', (_err, socket) => socket.destroy());

  const baseUrl = await listen(server, options.port ?? 0, identity.host);
  state.baseUrl = baseUrl;
  entra.setBaseUrl(baseUrl);
  const { caFile, caDir } = await writeCaFile(server, tls.caPem, options.caFile);

  let closing: Promise<void> | undefined;
  const handle: SimulatorHandle = {
    tenantId: identity.tenantId,
    clientId: identity.clientId,
    clientSecret: identity.clientSecret,
    loginUrl: baseUrl,
    graphUrl: baseUrl,
    caFile,
    caPem: tls.caPem,
    env: connectorEnv(identity, baseUrl, caFile),
    get devices() {
      return store.all();
    },
    requests: () => log.slice(Math.max(0, log.length - logLimit)).map((r) => ({ ...r })),
    clearRequests: () => {
      log.length = 0;
    },
    stats: () => stats.snapshot(),
    resetStats: () => stats.reset(),
    checkIn: (count: number) => {
      if (!Number.isInteger(count) || count < 0 || count > 1_000_000) {
        throw invalid(`checkIn count is ${JSON.stringify(count)}; set it to a whole number from 0 to 1000000`);
      }
      return checkIn(count);
    },
    setFaults: (next: FaultSpec) => {
      state.faults = validateFaults(next);
    },
    updateDevice: (id, patch) => store.update(id, patch),
    mintToken: (mintOptions = {}) => entra.mint(mintOptions),
    close: () => {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        if (caDir !== undefined) await rm(caDir, { recursive: true, force: true });
        else await rm(caFile, { force: true });
      })();
      return closing;
    },
  };
  return handle;
}
