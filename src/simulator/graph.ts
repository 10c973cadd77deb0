/**
 * Graph v1.0 deviceManagement/managedDevices: list (with $top, $skiptoken, $select, $count,
 * $filter), get by id, deviceCompliancePolicyStates, and the four device actions. Every answer
 * has Graph's shape: `@odata.context`, request-id and client-request-id headers, Graph's error
 * body. Tokens are checked on every request, Intune's throttling applies per app per tenant,
 * and the configured faults are injected here (never on the token endpoint).
 *
 * Decisions where Graph leaves room:
 * - $count=true adds `@odata.count` (all matches, on every page) with or without
 *   `ConsistencyLevel: eventual`: that header belongs to Entra directory objects, and Intune
 *   counts without it. Combining $count with an azureADDeviceId filter is refused, as the
 *   metadata says ("not combine with count").
 * - GET by id returns the real values of the properties a LIST leaves at their defaults
 *   (activationLockBypassCode, ethernetMacAddress, iccid, udid, notes, physicalMemoryInBytes,
 *   remoteAssistanceSessionUrl), with or without $select naming them.
 * - Device actions need DeviceManagementManagedDevices.PrivilegedOperations.All, as Microsoft
 *   documents for syncDevice, remoteLock, retire and wipe (ReadWrite.All alone gets 403); reads
 *   need Read.All or ReadWrite.All.
 * - A connection reset on a device action happens after the action was recorded: the caller
 *   cannot know whether it ran, which is the case a client must never retry blindly.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { EntraTenant } from './entra.js';
import { ROLE_PRIVILEGED, ROLE_READ, ROLE_READ_WRITE } from './entra.js';
import { compileFilter, FilterError, type CompiledFilter } from './filter.js';
import { generatePolicyStates } from './compliance-settings.js';
import { POLICY_STATES } from './tenant-file.js';
import { BodyTooLargeError, GRAPH_JSON, graphHeaders, readBody, send, sendGraphError, type Exchange } from './http.js';
import { MANAGED_DEVICE_PROPERTIES } from './properties.js';
import { GUID_PATTERN } from '../common/ids.js';
import type { Random } from './random.js';
import type { DeviceStore } from './store.js';
import type { Throttle } from './throttle.js';
import type { FaultSpec } from './types.js';
import { isPlainObject } from '../common/values.js';

export const MAX_PAGE_SIZE = 1000;
const DEVICE_ACTIONS = ['syncDevice', 'remoteLock', 'retire', 'wipe'] as const;
type DeviceAction = (typeof DEVICE_ACTIONS)[number];
const UNSUPPORTED_OPTIONS = new Set(['$orderby', '$expand', '$search', '$skip', '$format', '$apply', '$compute', '$levels', '$deltatoken']);
const PROPERTY_NAMES = new Map(MANAGED_DEVICE_PROPERTIES.map((p) => [p.name.toLowerCase(), p.name]));
const READ_ROLES = [ROLE_READ, ROLE_READ_WRITE];
const DEFAULT_FOREIGN_BASE = 'https://graph.foreign.invalid';

type Route =
  | { readonly kind: 'list' }
  | { readonly kind: 'count' }
  | { readonly kind: 'device'; readonly id: string }
  | { readonly kind: 'policyStates'; readonly id: string }
  | { readonly kind: 'action'; readonly id: string; readonly action: DeviceAction };

class BadRequest extends Error {}

export interface GraphDeps {
  readonly store: DeviceStore;
  readonly entra: EntraTenant;
  readonly throttle: Throttle;
  readonly faults: () => FaultSpec;
  readonly dice: Random;
  readonly baseUrl: () => string;
  readonly sleep: (ms: number) => Promise<void>;
  /** Random devices check in now (see SimulatorHandle.checkIn). */
  readonly checkIn: (count: number) => void;
}

function segmentIs(segment: string | undefined, name: string): boolean {
  return segment !== undefined && segment.toLowerCase() === name.toLowerCase();
}

function matchRoute(segments: readonly string[]): Route | undefined {
  if (segments.length < 3 || segments[0] !== 'v1.0' || !segmentIs(segments[1], 'deviceManagement') || !segmentIs(segments[2], 'managedDevices')) {
    return undefined;
  }
  const [, , , id, sub, ...rest] = segments;
  if (id === undefined) return { kind: 'list' };
  if (rest.length > 0) return undefined;
  if (sub === undefined) return id === '$count' ? { kind: 'count' } : { kind: 'device', id };
  if (segmentIs(sub, 'deviceCompliancePolicyStates')) return { kind: 'policyStates', id };
  const action = DEVICE_ACTIONS.find((a) => segmentIs(sub, a));
  return action === undefined ? undefined : { kind: 'action', id, action };
}

/**
 * "METHOD /path-template" for the stats counters: ids become {id}, names take Graph's casing, and
 * anything unrouted is one bucket, so the key set stays small whatever callers send.
 */
export function routeTemplate(method: string, segments: readonly string[]): string {
  const route = matchRoute(segments);
  const base = '/v1.0/deviceManagement/managedDevices';
  if (route === undefined) return `${method} (unrouted)`;
  switch (route.kind) {
    case 'list':
      return `${method} ${base}`;
    case 'count':
      return `${method} ${base}/$count`;
    case 'device':
      return `${method} ${base}/{id}`;
    case 'policyStates':
      return `${method} ${base}/{id}/deviceCompliancePolicyStates`;
    case 'action':
      return `${method} ${base}/{id}/${route.action}`;
  }
}

function formatRetryAfter(ms: number, decimal: boolean): string {
  if (decimal) return (Math.max(100, Math.ceil(ms / 100) * 100) / 1000).toFixed(1);
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

interface QueryOptions {
  readonly top?: number;
  readonly select?: readonly string[];
  readonly filter?: CompiledFilter;
  readonly filterText?: string;
  readonly count?: boolean;
  readonly skiptoken?: string;
}

function parseSelect(raw: string): string[] {
  const names: string[] = [];
  for (const part of raw.split(',')) {
    const name = part.trim();
    if (name === '') throw new BadRequest("Invalid $select: a property name is missing between commas.");
    if (name === '*') return MANAGED_DEVICE_PROPERTIES.map((p) => p.name);
    const canonical = PROPERTY_NAMES.get(name.toLowerCase());
    if (canonical === undefined) throw new BadRequest(`Could not find a property named '${name.slice(0, 100)}' on type 'microsoft.graph.managedDevice'.`);
    if (!names.includes(canonical)) names.push(canonical);
  }
  return names;
}

function parseQuery(url: URL, allowed: ReadonlySet<string>): QueryOptions {
  const seen = new Map<string, string>();
  for (const [rawKey, value] of url.searchParams) {
    const key = rawKey.trim().toLowerCase();
    if (!key.startsWith('$')) continue; // Graph ignores parameters that are not query options
    if (seen.has(key)) throw new BadRequest(`Query option '${key}' was specified more than once, but it must be specified at most once.`);
    if (UNSUPPORTED_OPTIONS.has(key) || (!allowed.has(key) && ['$top', '$skiptoken', '$select', '$filter', '$count'].includes(key))) {
      throw new BadRequest(`Query option '${key}' is not supported on this resource.`);
    }
    if (!allowed.has(key)) throw new BadRequest(`The query parameter '${rawKey.slice(0, 60)}' is not supported.`);
    seen.set(key, value);
  }
  const out: { -readonly [K in keyof QueryOptions]: QueryOptions[K] } = {};
  const top = seen.get('$top');
  if (top !== undefined) {
    if (!/^\d{1,9}$/.test(top.trim())) throw new BadRequest(`Invalid value '${top.slice(0, 40)}' for $top query option found. The $top query option requires a whole number from 1 to ${MAX_PAGE_SIZE}.`);
    const n = Number(top.trim());
    if (n > MAX_PAGE_SIZE) throw new BadRequest(`The limit of '${MAX_PAGE_SIZE}' for Top query has been exceeded. The value from the incoming request is '${n}'.`);
    if (n < 1) throw new BadRequest(`Invalid value '${n}' for $top query option found. The $top query option requires a whole number from 1 to ${MAX_PAGE_SIZE}.`);
    out.top = n;
  }
  const count = seen.get('$count');
  if (count !== undefined) {
    const v = count.trim().toLowerCase();
    if (v !== 'true' && v !== 'false') throw new BadRequest(`Invalid value '${count.slice(0, 40)}' for $count query option found. Valid values are 'true' and 'false'.`);
    out.count = v === 'true';
  }
  const select = seen.get('$select');
  if (select !== undefined) out.select = parseSelect(select);
  const filter = seen.get('$filter');
  if (filter !== undefined) {
    try {
      out.filter = compileFilter(filter);
      out.filterText = filter;
    } catch (err) {
      if (err instanceof FilterError) throw new BadRequest(err.message);
      throw err;
    }
  }
  const skiptoken = seen.get('$skiptoken');
  if (skiptoken !== undefined) out.skiptoken = skiptoken;
  return out;
}

function project(device: Readonly<Record<string, unknown>>, select: readonly string[] | undefined): Readonly<Record<string, unknown>> {
  if (select === undefined) return device;
  const out: Record<string, unknown> = { '@odata.type': device['@odata.type'] };
  for (const name of select) out[name] = device[name];
  return out;
}

export class GraphService {
  private readonly skiptokenKey = randomBytes(32);

  constructor(private readonly deps: GraphDeps) {}

  async handle(ex: Exchange, segments: readonly string[]): Promise<void> {
    ex.record.kind = 'graph';
    const faults = this.deps.faults();
    if ((faults.latencyMs ?? 0) > 0) await this.deps.sleep(faults.latencyMs ?? 0);
    if (ex.res.destroyed) return;

    const route = matchRoute(segments);
    const roll = this.rollFault(faults);
    if (roll === 'reset' && route?.kind !== 'action') return this.reset(ex);
    if (roll === 'error') {
      const status = this.deps.dice.chance(0.5) ? 500 : 502;
      return sendGraphError(ex, status, status === 500 ? 'InternalServerError' : 'BadGateway', 'The service encountered an internal error. Retry the request.');
    }
    if (roll === 'unavailable') {
      const seconds = faults.retryAfterSeconds ?? 1;
      return sendGraphError(ex, 503, 'ServiceUnavailable', 'The service is temporarily unavailable. Retry after the time in the Retry-After header.', {
        'retry-after': String(seconds),
      });
    }

    const check = await this.deps.entra.checkAccessToken(ex.req.headers.authorization);
    if (!check.ok) {
      const host = new URL(this.deps.baseUrl()).host;
      return sendGraphError(ex, 401, 'InvalidAuthenticationToken', check.message, {
        'www-authenticate': `Bearer realm="", authorization_uri="https://${host}/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`,
      });
    }

    if (route === undefined) {
      const segment = segments[0] === 'v1.0' ? segments.slice(1).join('/') : segments.join('/');
      const hint = segments[0] === 'beta' ? ' Only the v1.0 endpoint is served.' : '';
      return sendGraphError(ex, 404, 'ResourceNotFound', `Resource not found for the segment '${segment.slice(0, 120)}'.${hint}`);
    }
    const method = ex.req.method ?? 'GET';
    const expected = route.kind === 'action' ? 'POST' : 'GET';
    if (method !== expected) {
      return sendGraphError(ex, 405, 'BadRequest', `Specified HTTP method is not allowed for the request target; use ${expected}.`, { allow: expected });
    }

    const needed = route.kind === 'action' ? [ROLE_PRIVILEGED] : READ_ROLES;
    if (!needed.some((role) => check.claims.roles.includes(role))) {
      return sendGraphError(
        ex,
        403,
        'Forbidden',
        `Application is not authorized to perform this operation. Application must have one of the following scopes: ${needed.join(', ')} - Operation ID (for customer support): ${ex.requestId}`,
      );
    }

    const verdict = this.deps.throttle.check(`${check.claims.tid}:${check.claims.appid}`, route.kind === 'action', Date.now());
    if (!verdict.admitted) {
      return sendGraphError(ex, 429, 'TooManyRequests', 'Too many requests are being made to this tenant by this application. Retry after the time in the Retry-After header.', {
        'retry-after': formatRetryAfter(verdict.retryAfterMs, faults.decimalRetryAfter === true),
      });
    }

    try {
      switch (route.kind) {
        case 'list':
          return await this.list(ex, faults);
        case 'count':
          return this.count(ex);
        case 'device':
          return this.device(ex, route.id);
        case 'policyStates':
          return this.policyStates(ex, route.id);
        case 'action':
          return await this.action(ex, route.id, route.action, roll === 'reset');
      }
    } catch (err) {
      if (err instanceof BadRequest) return sendGraphError(ex, 400, 'BadRequest', err.message);
      throw err;
    }
  }

  private rollFault(faults: FaultSpec): 'reset' | 'error' | 'unavailable' | undefined {
    const { dice } = this.deps;
    if ((faults.resetRate ?? 0) > 0 && dice.chance(faults.resetRate ?? 0)) return 'reset';
    if ((faults.errorRate ?? 0) > 0 && dice.chance(faults.errorRate ?? 0)) return 'error';
    if ((faults.unavailableRate ?? 0) > 0 && dice.chance(faults.unavailableRate ?? 0)) return 'unavailable';
    return undefined;
  }

  private reset(ex: Exchange): void {
    ex.record.status = 0;
    ex.req.socket.destroy();
  }

  private async list(ex: Exchange, faults: FaultSpec): Promise<void> {
    const q = parseQuery(ex.url, new Set(['$top', '$skiptoken', '$select', '$filter', '$count']));
    if (q.count === true && q.filter?.properties.has('azureADDeviceId') === true) {
      throw new BadRequest("$count cannot be combined with a filter on 'azureADDeviceId'; drop $count and count the returned records.");
    }
    if (faults.refuseFilter === true && q.filter !== undefined) {
      throw new BadRequest('Filtering managedDevices is not supported for this request; list without $filter and follow @odata.nextLink.');
    }
    const latency = faults.pageLatencyMs;
    if (latency !== undefined && latency.maxMs > 0) {
      await this.deps.sleep(this.deps.dice.int(latency.minMs, latency.maxMs));
      if (ex.res.destroyed) return;
    }
    const filterHash = createHash('sha256').update(q.filter?.canonical ?? '').digest('base64url').slice(0, 16);
    const offset = q.skiptoken === undefined ? 0 : this.readSkiptoken(q.skiptoken, filterHash);
    const top = q.top ?? MAX_PAGE_SIZE;
    const matches = this.deps.store.matching(q.filter);
    const total = matches?.length ?? this.deps.store.size;
    const end = Math.min(total, offset + top);
    const page: Readonly<Record<string, unknown>>[] = [];
    for (let k = offset; k < end; k++) {
      page.push(project(this.deps.store.listedAt(matches === undefined ? k : (matches[k] as number)), q.select));
    }

    const base = this.deps.baseUrl();
    let head = `{"@odata.context":${JSON.stringify(`${base}/v1.0/$metadata#deviceManagement/managedDevices${q.select === undefined ? '' : `(${q.select.join(',')})`}`)}`;
    if (q.count === true) head += `,"@odata.count":${total}`;
    if (end < total) {
      const linkBase = faults.foreignNextLink === true ? (faults.foreignNextLinkBase ?? DEFAULT_FOREIGN_BASE) : base;
      const params: string[] = [];
      if (q.filterText !== undefined) params.push(`$filter=${encodeURIComponent(q.filterText)}`);
      if (q.select !== undefined) params.push(`$select=${encodeURIComponent(q.select.join(','))}`);
      if (q.count !== undefined) params.push(`$count=${String(q.count)}`);
      if (q.top !== undefined) params.push(`$top=${q.top}`);
      params.push(`$skiptoken=${this.writeSkiptoken(end, filterHash)}`);
      head += `,"@odata.nextLink":${JSON.stringify(`${linkBase}/v1.0/deviceManagement/managedDevices?${params.join('&')}`)}`;
    }
    const body = `${head},"value":${JSON.stringify(page)}}`;
    const headers = graphHeaders(ex, { 'content-type': GRAPH_JSON });
    // Devices keep checking in while a client pages: what this page showed may move before the next.
    if ((faults.checkinsPerPage ?? 0) > 0) this.deps.checkIn(faults.checkinsPerPage ?? 0);

    const { dice } = this.deps;
    if ((faults.truncateRate ?? 0) > 0 && dice.chance(faults.truncateRate ?? 0)) {
      // A complete HTTP answer whose JSON stops halfway: the client's parser, not its socket, must notice.
      ex.record.status = 200;
      ex.res.writeHead(200, headers);
      ex.res.end(body.slice(0, Math.floor(body.length / 2)));
      return;
    }
    if ((faults.malformedRate ?? 0) > 0 && dice.chance(faults.malformedRate ?? 0)) {
      return send(ex, 200, body.replace('"value":[', '"value":[,,'), headers);
    }
    send(ex, 200, body, headers);
  }

  private count(ex: Exchange): void {
    const q = parseQuery(ex.url, new Set(['$filter']));
    const matches = this.deps.store.matching(q.filter);
    send(ex, 200, String(matches?.length ?? this.deps.store.size), graphHeaders(ex, { 'content-type': 'text/plain;charset=utf-8' }));
  }

  /** The device's index, or undefined once 404 has been answered; a malformed id is a 400. */
  private findDevice(ex: Exchange, id: string): number | undefined {
    if (!GUID_PATTERN.test(id)) {
      throw new BadRequest(`The key value '${id.slice(0, 100)}' is not a valid managedDevice id; ids are GUIDs such as 0fa4e5e1-0000-4000-8000-00000000a001.`);
    }
    const index = this.deps.store.indexOf(id);
    if (index === undefined) {
      sendGraphError(ex, 404, 'ResourceNotFound', `The managedDevice with id '${id}' was not found. It may have been deleted or never enrolled.`);
    }
    return index;
  }

  private device(ex: Exchange, id: string): void {
    const q = parseQuery(ex.url, new Set(['$select']));
    const index = this.findDevice(ex, id);
    if (index === undefined) return;
    const context = `${this.deps.baseUrl()}/v1.0/$metadata#deviceManagement/managedDevices${q.select === undefined ? '' : `(${q.select.join(',')})`}/$entity`;
    const body = JSON.stringify({ '@odata.context': context, ...project(this.deps.store.full(index), q.select) });
    send(ex, 200, body, graphHeaders(ex, { 'content-type': GRAPH_JSON }));
  }

  private policyStates(ex: Exchange, id: string): void {
    parseQuery(ex.url, new Set());
    const index = this.findDevice(ex, id);
    if (index === undefined) return;
    const device = this.deps.store.full(index);
    // A tenant file's device may carry its own states (Graph's shape, checked at load); else they are generated.
    const own = (this.deps.store.listedAt(index) as Record<PropertyKey, unknown>)[POLICY_STATES];
    const body = JSON.stringify({
      '@odata.context': `${this.deps.baseUrl()}/v1.0/$metadata#deviceManagement/managedDevices('${String(device['id'])}')/deviceCompliancePolicyStates`,
      value: Array.isArray(own) ? own : generatePolicyStates(device),
    });
    send(ex, 200, body, graphHeaders(ex, { 'content-type': GRAPH_JSON }));
  }

  private async action(ex: Exchange, id: string, action: DeviceAction, resetAfter: boolean): Promise<void> {
    let raw: string;
    try {
      raw = await readBody(ex.req);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return sendGraphError(ex, 413, 'RequestEntityTooLarge', 'The request body is too large.');
      throw err;
    }
    if (raw.trim() !== '') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        throw new BadRequest('The request body is not valid JSON.');
      }
      if (!isPlainObject(parsed)) throw new BadRequest('The request body must be a JSON object.');
    }
    const index = this.findDevice(ex, id);
    if (index === undefined) return;
    ex.record.action = action;
    ex.record.deviceId = String(this.deps.store.listedAt(index)['id']);
    const state = action === 'retire' ? { managementState: 'retirePending' } : action === 'wipe' ? { managementState: 'wipePending' } : {};
    this.deps.store.recordAction(index, action, state);
    if (resetAfter) return this.reset(ex);
    send(ex, 204, '', graphHeaders(ex));
  }

  private writeSkiptoken(offset: number, filterHash: string): string {
    const payload = Buffer.from(JSON.stringify({ v: 1, o: offset, f: filterHash })).toString('base64url');
    const mac = createHmac('sha256', this.skiptokenKey).update(payload).digest('base64url').slice(0, 22);
    return `${payload}.${mac}`;
  }

  /** The offset a skiptoken carries; 400 when it was altered or belongs to another filter. */
  private readSkiptoken(token: string, filterHash: string): number {
    const invalid = new BadRequest('The $skiptoken is invalid or has expired. Follow @odata.nextLink exactly as returned, without changing $filter.');
    const dot = token.indexOf('.');
    if (dot <= 0) throw invalid;
    const payload = token.slice(0, dot);
    const mac = Buffer.from(token.slice(dot + 1));
    const expected = Buffer.from(createHmac('sha256', this.skiptokenKey).update(payload).digest('base64url').slice(0, 22));
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) throw invalid;
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      throw invalid;
    }
    const { o, f } = parsed as { o?: unknown; f?: unknown };
    if (typeof o !== 'number' || !Number.isInteger(o) || o < 0 || f !== filterHash) throw invalid;
    return o;
  }
}
