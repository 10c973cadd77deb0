/**
 * createGraphClient: the GraphClient (types.ts) over MSAL, @microsoft/microsoft-graph-client with
 * our own middleware chain (pipeline.ts), and zod schemas at the boundary (schemas.ts).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import {
  AuthenticationHandler,
  AuthenticationHandlerOptions,
  Client,
  ResponseType,
  type GraphRequest,
} from '@microsoft/microsoft-graph-client';
import { ConfigError, type Config } from '../../config/index.js';
import type { Logger } from '../../log/index.js';
import { createTokenSource, splitCertificateFile, type ClientCredential } from './auth.js';
import { GraphError, abortedError, badRequest, malformedError } from './errors.js';
import { buildDeviceFilter, requireAction, requireGuid, requirePageSize, requireSelect } from './filter.js';
import type { GraphBudget } from './budget.js';
import {
  AttemptMiddleware,
  BudgetMiddleware,
  CallState,
  RetryMiddleware,
  TransportMiddleware,
  defaultSleep,
  foreignNextLinkError,
  isUnderApiRoot,
  requestIdOf,
  type MutableStats,
  type Sleep,
} from './pipeline.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
import {
  CORE_PROPERTIES,
  CompliancePolicyStateSchema,
  createManagedDeviceSchema,
  parseCollectionPage,
  parseManagedDevice,
  type CoercionReason,
} from './schemas.js';
import { createMsalNetworkModule, createTransport, readCaFile } from './transport.js';
import { CollectionStream } from './collection-stream.js';
import type {
  CompliancePolicyState,
  DeviceAction,
  DevicePage,
  GraphClient,
  GraphClientStats,
  GraphProbe,
  GraphResult,
  ListDevicesRequest,
  ManagedDevice,
} from './types.js';
import { defined } from '../../common/values.js';

export interface GraphClientOptions {
  readonly tenantId: string;
  readonly clientId: string;
  readonly credential: ClientCredential;
  readonly graph: Config['graph'];
  readonly logger?: Logger;
  /** Injectable for tests with fake timers or recorded waits. */
  readonly sleep?: Sleep;
  /** Jitter source, [0, 1). */
  readonly random?: () => number;
  /** Overrides of the retry policy beyond config.graph.maxRetries (see RetryPolicy). */
  readonly retry?: Partial<Omit<RetryPolicy, 'maxRetries'>>;
  /** Intune's per-app budget, shared by every client of the process (or, with REDIS_URL, of every replica); unset: none. */
  readonly budget?: GraphBudget;
}

const DEVICES_PATH = '/deviceManagement/managedDevices';
const TOKEN_TIMEOUT_FLOOR_MS = 10_000;

const TENANT_ID = /^[A-Za-z0-9.-]{1,253}$/;
const CLIENT_ID = /^[A-Za-z0-9-]{1,100}$/;

function validateOptions(options: GraphClientOptions): { graphUrl: URL; loginUrl: URL } {
  const problems: string[] = [];
  if (typeof options.tenantId !== 'string' || !TENANT_ID.test(options.tenantId)) {
    problems.push("ENTRA_TENANT_ID must be the tenant's GUID or primary domain");
  }
  if (typeof options.clientId !== 'string' || !CLIENT_ID.test(options.clientId)) {
    problems.push('ENTRA_CLIENT_ID must be the application (client) id of the app registration');
  }
  const credential = options.credential as Partial<Record<'clientSecret' | 'certificatePem' | 'privateKeyPem', unknown>> | undefined;
  const hasSecret = typeof credential?.clientSecret === 'string' && credential.clientSecret !== '';
  const hasCert = typeof credential?.certificatePem === 'string' && typeof credential.privateKeyPem === 'string';
  if (!hasSecret && !hasCert) {
    problems.push('a client secret (ENTRA_CLIENT_SECRET) or a certificate with its private key (ENTRA_CLIENT_CERT_FILE) is needed');
  }
  const parse = (raw: string, name: string): URL | undefined => {
    try {
      const url = new URL(raw);
      if (url.protocol !== 'https:') {
        problems.push(`${name} must be an https:// URL (msal-node and the Graph client refuse plain http)`);
        return undefined;
      }
      return url;
    } catch {
      problems.push(`${name} is not a URL; set it to the https base URL of the host`);
      return undefined;
    }
  };
  const graphUrl = parse(options.graph.graphUrl, 'INTUNE_GRAPH_URL');
  const loginUrl = parse(options.graph.loginUrl, 'INTUNE_LOGIN_URL');
  if (!Number.isInteger(options.graph.timeoutMs) || options.graph.timeoutMs < 1) {
    problems.push('INTUNE_GRAPH_TIMEOUT_MS must be a positive whole number of milliseconds');
  }
  if (!Number.isInteger(options.graph.maxRetries) || options.graph.maxRetries < 0) {
    problems.push('INTUNE_GRAPH_MAX_RETRIES must be a whole number from 0');
  }
  if (problems.length > 0 || graphUrl === undefined || loginUrl === undefined) throw new ConfigError(problems);
  return { graphUrl, loginUrl };
}

/** Intune keeps one budget per app per tenant. */
export const graphBudgetKey = (tenantId: string, clientId: string): string => `${tenantId.toLowerCase()}:${clientId.toLowerCase()}`;

const stripTrailingSlash = (s: string): string => s.replace(/\/+$/, '');

/** Sends one Graph call through MSAL and the middleware chain (auth, retry, attempt, transport); counts what it does. */
interface Sender {
  send(method: 'GET' | 'POST', target: string, pathForLog: string, signal: AbortSignal | undefined, stream?: CallState['stream']): Promise<CallState>;
  token(signal: AbortSignal | undefined): Promise<string>;
  readonly stats: MutableStats;
  close(): Promise<void>;
}

function createSender(
  options: GraphClientOptions,
  urls: { readonly graphUrl: URL; readonly loginUrl: URL; readonly graphBase: string; readonly loginBase: string; readonly apiRoot: string },
  logger: Logger | undefined,
): Sender {
  const { graphUrl, loginUrl, graphBase, loginBase, apiRoot } = urls;
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry, maxRetries: options.graph.maxRetries };
  const stats: MutableStats = {
    requests: 0,
    retries: 0,
    throttledWaits: 0,
    throttledWaitMs: 0,
    retryWaitMs: 0,
    tokenRequests: 0,
    coercedValues: 0,
  };

  const caPem = options.graph.caFile !== undefined ? readCaFile(options.graph.caFile) : undefined;
  const transport = createTransport({ ...defined({ caPem }), connectTimeoutMs: options.graph.timeoutMs });
  const tokens = createTokenSource({
    tenantId: options.tenantId,
    clientId: options.clientId,
    credential: options.credential,
    loginUrl: loginBase,
    graphUrl: graphBase,
    networkClient: createMsalNetworkModule({
      transport,
      loginOrigin: loginUrl.origin,
      // INTUNE_GRAPH_TIMEOUT_MS is about Graph; a tight one (for the gate) must not starve the
      // token request, which happens once an hour. Callers bound the whole call with their signal.
      timeoutMs: Math.max(options.graph.timeoutMs, TOKEN_TIMEOUT_FLOOR_MS),
      onTokenRequest: () => {
        stats.tokenRequests++;
      },
    }),
    // Entra's temporary refusals get the same number of retries as Graph's.
    transientRetries: options.graph.maxRetries,
    ...defined({
      transientBaseDelayMs: options.retry?.baseDelayMs,
      sleep: options.sleep,
      random: options.random,
      logger,
    }),
  });

  // The handler's default provider is never used: every call brings its own, bound to its state.
  const authHandler = new AuthenticationHandler({ getAccessToken: () => Promise.reject(new Error('no per-call token provider')) });
  const retry = new RetryMiddleware(policy, options.sleep ?? defaultSleep, options.random ?? Math.random, stats, logger);
  const attempt = new AttemptMiddleware(options.graph.timeoutMs, logger);
  const transportMiddleware = new TransportMiddleware(transport.dispatcher, graphUrl.origin, apiRoot, stats);
  const budget =
    options.budget !== undefined ? [new BudgetMiddleware(options.budget, graphBudgetKey(options.tenantId, options.clientId), options.sleep ?? defaultSleep)] : [];
  const library = Client.initWithMiddleware({
    middleware: [authHandler, retry, ...budget, attempt, transportMiddleware],
    baseUrl: graphBase,
    defaultVersion: 'v1.0',
    // The library attaches the token only to hosts it knows; add the configured one. It compares
    // host names without ports, which is why TransportMiddleware checks the full origin again.
    customHosts: new Set([graphUrl.hostname]),
  });

  const send = async (method: 'GET' | 'POST', target: string, pathForLog: string, signal: AbortSignal | undefined, stream?: CallState['stream']): Promise<CallState> => {
    if (signal?.aborted === true) throw abortedError();
    const state = new CallState(method, pathForLog, crypto.randomUUID(), signal);
    state.stream = stream;
    const tokenProvider = {
      getAccessToken: async (): Promise<string> => {
        try {
          return await tokens.getToken(signal);
        } catch (err) {
          throw state.fail(err instanceof GraphError ? err : new GraphError('auth_failed', 'MSAL could not acquire a token.', { graphCode: 'auth_failed' }));
        }
      },
    };
    let request: GraphRequest = library
      .api(target)
      .header('client-request-id', state.clientRequestId)
      .responseType(ResponseType.RAW)
      .middlewareOptions([state, new AuthenticationHandlerOptions(tokenProvider)]);
    try {
      if (method === 'GET') {
        await request.get();
      } else {
        request = request.header('Content-Type', 'application/json');
        await request.post(undefined);
      }
    } catch (err) {
      throw state.failure ?? new GraphError('network', 'The Graph request failed before it was sent; retry shortly.', { graphCode: 'client_error' }, { cause: err });
    }
    if (state.failure !== undefined) throw state.failure;
    return state;
  };

  return { send, token: (signal) => tokens.getToken(signal), stats, close: () => transport.close() };
}

/** The claims a pre-flight reads from an access token; the token itself goes nowhere. */
function tokenClaims(token: string): { roles: string[]; issuedAt: string | null; expiresAt: string | null } {
  let payload: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    if (parsed !== null && typeof parsed === 'object') payload = parsed as Record<string, unknown>;
  } catch {
    // an opaque token: no claims to read
  }
  const time = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? new Date(value * 1000).toISOString() : null);
  const roles = Array.isArray(payload['roles']) ? payload['roles'].filter((r): r is string => typeof r === 'string') : [];
  return { roles, issuedAt: time(payload['iat']), expiresAt: time(payload['exp']) };
}

/**
 * The managedDevice schema with its coercion counter: coercions are collected per parsed payload
 * and logged once, by property name and count.
 */
function coercionLogging(stats: MutableStats, logger: Logger | undefined) {
  let coercions: Map<string, number> | undefined;
  const deviceSchema = createManagedDeviceSchema((property: string, reason: CoercionReason) => {
    stats.coercedValues++;
    if (coercions !== undefined) {
      const key = `${property}:${reason}`;
      coercions.set(key, (coercions.get(key) ?? 0) + 1);
    }
  });
  const report = (path: string, seen: Map<string, number>): void => {
    if (seen.size > 0) logger?.warn({ path, coerced: Object.fromEntries(seen) }, 'graph values replaced by fail-closed defaults');
  };
  const withCoercionLog = <T>(path: string, parse: () => T): T => {
    const seen = new Map<string, number>();
    try {
      return collectingInto(seen, parse);
    } finally {
      report(path, seen);
    }
  };
  /**
   * Counts into `seen` while `parse` runs (synchronously). Pages read item by item interleave, so
   * each keeps its own map and parses each item inside this.
   */
  const collectingInto = <T>(seen: Map<string, number>, parse: () => T): T => {
    const outer = coercions;
    coercions = seen;
    try {
      return parse();
    } finally {
      coercions = outer;
    }
  };
  return { deviceSchema, withCoercionLog, collectingInto, report };
}

/** The first page's URL of a device listing: page size, filter and $select, each checked. */
function firstPageTarget(request: ListDevicesRequest<unknown>, select: string | undefined): string {
  const query: string[] = [`$top=${requirePageSize(request.top)}`];
  const filter = buildDeviceFilter(request.filter);
  if (filter !== undefined) query.push(`$filter=${encodeURIComponent(filter)}`);
  if (select !== undefined) query.push(`$select=${select}`);
  return `${DEVICES_PATH}?${query.join('&')}`;
}

/**
 * The items of a collection read as it arrives (CallState.stream), with their coercion counts. Per
 * attempt: a retried page starts over with an empty list.
 */
function itemCollector<T>(
  parseItem: (item: unknown, index: number, requestId: string) => T,
  collectingInto: <R>(seen: Map<string, number>, parse: () => R) => R,
  onStart?: () => void,
): { stream: (requestId: string) => CollectionStream; items: () => T[]; seen: () => Map<string, number> } {
  let items: T[] = [];
  let seen = new Map<string, number>();
  return {
    stream: (requestId) => {
      onStart?.();
      const list: T[] = [];
      const counts = new Map<string, number>();
      items = list;
      seen = counts;
      return new CollectionStream((item, index) => {
        list.push(collectingInto(counts, () => parseItem(item, index, requestId)));
      });
    },
    items: () => items,
    seen: () => seen,
  };
}

/** An untyped caller's mapDevice or onPageStart that is not a function is refused before any request. */
function requireCallbacks(request: ListDevicesRequest<unknown>): void {
  for (const name of ['mapDevice', 'onPageStart'] as const) {
    if (request[name] !== undefined && typeof request[name] !== 'function') throw badRequest(`${name} must be a function.`);
  }
}

const resultRequestId = (state: CallState): string => requestIdOf(state.exchange) ?? state.clientRequestId;

/** What a nextLink may be, and the error for one that loops back. */
function nextLinkRules(origin: string, apiRoot: string, logger: Logger | undefined) {
  /** Validates a nextLink to be followed: the configured origin, API root and the same collection. */
  const checkNextLink = (nextLink: unknown, collectionPath: string): string => {
    if (typeof nextLink !== 'string' || nextLink.length === 0 || nextLink.length > 8192) {
      throw badRequest('nextLink must be the @odata.nextLink string of an earlier page.');
    }
    if (!isUnderApiRoot(nextLink, origin, apiRoot) || new URL(nextLink).pathname !== `${apiRoot}${collectionPath}`) {
      logger?.warn({ collectionPath }, 'refused a nextLink outside the configured Graph host');
      throw foreignNextLinkError();
    }
    return nextLink;
  };

  /** Graph answered a page with a nextLink already followed: following it would never end. */
  const circularNextLink = (collectionPath: string): GraphError => {
    logger?.warn({ collectionPath }, 'Graph sent a nextLink that was already followed; stopped paging');
    return malformedError('a page links back to an earlier page, so the listing would never end');
  };
  return { checkNextLink, circularNextLink };
}

export function createGraphClient(options: GraphClientOptions): GraphClient {
  const { graphUrl, loginUrl } = validateOptions(options);
  const logger = options.logger?.child({ component: 'graph' });
  const graphBase = stripTrailingSlash(graphUrl.origin + graphUrl.pathname);
  const loginBase = stripTrailingSlash(loginUrl.origin + loginUrl.pathname);
  const apiRoot = `${stripTrailingSlash(graphUrl.pathname)}/v1.0`;
  const { send, token, stats, close } = createSender(options, { graphUrl, loginUrl, graphBase, loginBase, apiRoot }, logger);
  const { deviceSchema, withCoercionLog, collectingInto, report } = coercionLogging(stats, logger);

  const { checkNextLink, circularNextLink } = nextLinkRules(graphUrl.origin, apiRoot, logger);

  const parseCollection = <T>(
    state: CallState,
    collectionPath: string,
    parseItem: (item: unknown, index: number, requestId: string) => T,
  ): { items: T[]; nextLink?: string; requestId: string } => {
    const requestId = resultRequestId(state);
    const page = withCoercionLog(collectionPath, () =>
      parseCollectionPage(state.json, (item, index) => parseItem(item, index, requestId), { requestId, status: state.exchange?.status ?? 0 }),
    );
    // Checked on arrival, not only when followed: a listing that cannot be completed fails now.
    if (page.nextLink !== undefined) checkNextLink(page.nextLink, collectionPath);
    return { ...page, requestId };
  };

  const parseDevice = (item: unknown, index: number | undefined, requestId: string): ManagedDevice => parseManagedDevice(deviceSchema, item, index, { requestId });

  const selectQuery = (select: unknown): string | undefined => {
    const names = requireSelect(select, CORE_PROPERTIES);
    return names === undefined ? undefined : names.join(',');
  };

  /**
   * One page of devices, each parsed (and mapped) as its bytes arrive: the page's body is never one
   * string nor one object graph (collection-stream.ts). The structural checks are those of a page
   * parsed whole: the same errors for the same bodies.
   */
  const listDevicesPage = async <T = ManagedDevice>(request: ListDevicesRequest<T>): Promise<DevicePage<T>> => {
    if (request === null || typeof request !== 'object') throw badRequest('listDevicesPage needs a request object.');
    requireCallbacks(request);
    const target = request.nextLink !== undefined ? checkNextLink(request.nextLink, DEVICES_PATH) : firstPageTarget(request, selectQuery(request.select));
    const map = request.mapDevice ?? ((device: ManagedDevice) => device as unknown as T);
    const { onPageStart } = request;
    const collector = itemCollector((item, index, id) => map(parseDevice(item, index, id)), collectingInto, onPageStart);
    const state = await send('GET', target, DEVICES_PATH, request.signal, collector.stream);
    report(DEVICES_PATH, collector.seen());
    const requestId = resultRequestId(state);
    const { streamed } = state;
    if (streamed === undefined) onPageStart?.(); // a body read whole: its devices are mapped below, from the first
    // The skeleton (value: []) gets the checks of a whole page; a body read whole gets them all.
    const page = parseCollectionPage(state.json, (item, index) => map(parseDevice(item, index, requestId)), { requestId, status: state.exchange?.status ?? 0 });
    if (streamed?.ok === true && streamed.itemError !== undefined) throw streamed.itemError; // a device without a usable id
    if (page.nextLink !== undefined) checkNextLink(page.nextLink, DEVICES_PATH);
    const devices = streamed?.ok === true ? collector.items() : page.items;
    return { devices, ...defined({ nextLink: page.nextLink }), requestId };
  };

  async function* listDevices<T = ManagedDevice>(request: Omit<ListDevicesRequest<T>, 'nextLink'> = {}): AsyncGenerator<DevicePage<T>> {
    // A nextLink smuggled in by an untyped caller is dropped: listing starts from the first page.
    const { nextLink: _dropped, ...first } = request as ListDevicesRequest<T>;
    const follow = defined({ signal: request.signal, mapDevice: request.mapDevice, onPageStart: request.onPageStart });
    let nextLink: string | undefined;
    {
      const page = await listDevicesPage<T>(first);
      nextLink = page.nextLink;
      yield page;
    }
    // The generator keeps only the links between pages, so the previous page can be collected
    // while the next one downloads.
    const followed = new Set<string>();
    while (nextLink !== undefined) {
      if (followed.has(nextLink)) throw circularNextLink(DEVICES_PATH);
      followed.add(nextLink);
      const page: DevicePage<T> = await listDevicesPage<T>({ nextLink, ...follow });
      nextLink = page.nextLink;
      yield page;
    }
  }

  const collectAll = async <T>(
    firstTarget: string,
    collectionPath: string,
    pathForLog: string,
    signal: AbortSignal | undefined,
    parseItem: (item: unknown, index: number, requestId: string) => T,
  ): Promise<GraphResult<T[]>> => {
    const all: T[] = [];
    let target: string | undefined = firstTarget;
    let requestId = '';
    const followed = new Set<string>();
    while (target !== undefined) {
      if (followed.has(target)) throw circularNextLink(collectionPath);
      followed.add(target);
      const state = await send('GET', target, pathForLog, signal);
      const page = parseCollection(state, collectionPath, parseItem);
      all.push(...page.items);
      requestId = page.requestId;
      target = page.nextLink;
    }
    return { value: all, requestId };
  };

  return {
    listDevicesPage,
    listDevices,

    async getDevice(id, getOptions = {}) {
      const guid = requireGuid(id, 'id');
      const select = selectQuery(getOptions.select);
      const path = `${DEVICES_PATH}/${guid}`;
      const state = await send('GET', select !== undefined ? `${path}?$select=${select}` : path, `${DEVICES_PATH}/{id}`, getOptions.signal);
      const requestId = resultRequestId(state);
      const device = withCoercionLog(`${DEVICES_PATH}/{id}`, () => parseDevice(state.json, undefined, requestId));
      return { value: device, requestId };
    },

    async findDevicesByAzureADDeviceId(azureADDeviceId, findOptions = {}) {
      const guid = requireGuid(azureADDeviceId, 'azureADDeviceId');
      const filter = buildDeviceFilter({ azureADDeviceId: guid }) as string;
      return collectAll(`${DEVICES_PATH}?$top=1000&$filter=${encodeURIComponent(filter)}`, DEVICES_PATH, DEVICES_PATH, findOptions.signal, (item, index, id) =>
        parseDevice(item, index, id),
      );
    },

    async getCompliancePolicyStates(id, policyOptions = {}): Promise<GraphResult<readonly CompliancePolicyState[]>> {
      const guid = requireGuid(id, 'id');
      const path = `${DEVICES_PATH}/${guid}/deviceCompliancePolicyStates`;
      return collectAll(path, path, `${DEVICES_PATH}/{id}/deviceCompliancePolicyStates`, policyOptions.signal, (item, index, requestId) => {
        const parsed = CompliancePolicyStateSchema.safeParse(item);
        if (!parsed.success) throw malformedError(`the compliance policy state at position ${index} has no usable id`, { requestId });
        return parsed.data;
      });
    },

    async performDeviceAction(id, action: DeviceAction, actionOptions = {}) {
      const guid = requireGuid(id, 'id');
      const verb = requireAction(action);
      const state = await send('POST', `${DEVICES_PATH}/${guid}/${verb}`, `${DEVICES_PATH}/{id}/${verb}`, actionOptions.signal);
      return { value: null, requestId: resultRequestId(state) };
    },

    stats(): GraphClientStats {
      return { ...stats };
    },

    async probe(probeOptions = {}): Promise<GraphProbe> {
      const tokenStarted = performance.now();
      const claims = tokenClaims(await token(probeOptions.signal));
      const probeToken = { acquiredMs: Math.round(performance.now() - tokenStarted), ...claims };
      const started = performance.now();
      let state: CallState;
      try {
        state = await send('GET', `${DEVICES_PATH}?$top=1&$select=id&$count=true`, DEVICES_PATH, probeOptions.signal);
      } catch (err) {
        if (err instanceof GraphError) Object.assign(err, { probeToken });
        throw err;
      }
      const latencyMs = Math.round(performance.now() - started);
      const json = state.json as Record<string, unknown> | undefined;
      const count = json?.['@odata.count'];
      return {
        token: probeToken,
        graph: {
          latencyMs,
          requestId: resultRequestId(state),
          deviceCount: typeof count === 'number' && Number.isSafeInteger(count) ? count : null,
          serverDate: state.exchange?.header('date') ?? null,
        },
      };
    },

    close,
  };
}

/**
 * The client for the tenant named by ENTRA_* (a secret, or ENTRA_CLIENT_CERT_FILE holding the
 * certificate and its key) and the cloud named by INTUNE_CLOUD.
 */
export function graphClientFromConfig(config: Config, logger?: Logger, budget?: GraphBudget): GraphClient {
  const entra = config.entra;
  if (entra === undefined) {
    throw new ConfigError([
      'no Entra credentials are configured: set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_CERT_FILE) to reach a tenant, or run against the simulator (`intune-connector simulator` prints the variables)',
    ]);
  }
  let credential: ClientCredential;
  if (entra.clientSecret !== undefined) {
    credential = { clientSecret: entra.clientSecret };
  } else if (entra.clientCertFile !== undefined) {
    let pem: string;
    try {
      pem = fs.readFileSync(entra.clientCertFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new ConfigError([`ENTRA_CLIENT_CERT_FILE names ${entra.clientCertFile}, which cannot be read (${code}); point it at the PEM file with the certificate and its private key`]);
    }
    credential = splitCertificateFile(pem);
  } else {
    throw new ConfigError(['ENTRA_CLIENT_SECRET or ENTRA_CLIENT_CERT_FILE must be set']);
  }
  return createGraphClient({
    tenantId: entra.tenantId,
    clientId: entra.clientId,
    credential,
    graph: config.graph,
    ...defined({ logger, budget }),
  });
}
