/**
 * IntuneConnector: the governed entry point to Intune. Every call goes through `invoke`, which
 * checks the caller's delegation scope in one documented order (./scope.ts), runs the operation
 * against Graph (reads through the compliance cache where that makes sense), redacts what comes
 * back (./redaction.ts), and appends CONNECTOR_INVOKED to Chronicle before the caller sees an
 * answer. If that append fails, invoke throws AuditUnavailableError instead of answering.
 */
import type { Logger } from '../log/index.js';
import type { ChronicleWriter } from '../chronicle/types.js';
import type { Queryable } from '../db/index.js';
import type { DeviceFilter, GraphClient, ManagedDevice } from './graph/types.js';
import {
  INVOCATION_CHANNELS,
  OPERATION_NAMES,
  type CeremonyVerifier,
  type DelegationScope,
  type DenialReason,
  type FailureReason,
  type InvocationContext,
  type InvokeOutcome,
  type OperationDescriptor,
  type OperationName,
} from './contract.js';
import type { DevicePosture, OsFamily } from './posture.js';
import {
  DEVICE_ACTIONS,
  OPERATIONS,
  findOperation,
  isGuid,
  type GetComplianceOutput,
  type ListDevicesInput,
  type OperationOutput,
} from './operations.js';
import { PHASE1_POLICY, authorizeOperation, permittedOperations, type OperationPolicy } from './scope.js';
import { byMostRecentSync, osFamilyOf, redactDevice } from './redaction.js';
import { ComplianceCache, type CacheStats, type CachedLookup } from './cache.js';
import { AuditUnavailableError, ConnectorUsageError, classifyGraphError, safeRequestId, type GraphFailure } from './errors.js';
import { CursorError, filterHash, openCursor, sealCursor, type ListPosition } from './cursor.js';
import { WriteBudget } from './write-budget.js';
import { databaseCooldownStore, memoryCooldownStore, type SyncCooldownStore } from './sync-cooldown.js';
import { ChronicleError } from '../chronicle/types.js';

/** `{ signal }` when there is one: with exactOptionalPropertyTypes an absent option must be left out, not undefined. */
const signalOption = (signal: AbortSignal | undefined): { signal?: AbortSignal } => (signal !== undefined ? { signal } : {});

export * from './operations.js';
export { PHASE1_POLICY, authorizeOperation, isOperationEnabled, type Authorization, type OperationPolicy } from './scope.js';
export { redactDevice, fingerprintSerial, osFamilyOf, byMostRecentSync, SERIAL_FINGERPRINT_PREFIX } from './redaction.js';
export { AuditUnavailableError, ConnectorUsageError, classifyGraphError } from './errors.js';
export type { CacheStats } from './cache.js';
export type { CeremonyVerifier, InvocationChannel } from './contract.js';

export interface IntuneConnectorOptions {
  readonly intuneEnabled: boolean;
  /** Compliance cache TTL (0 disables caching). */
  readonly cacheTtlMs: number;
  readonly cacheMaxEntries: number;
  /** How long past its TTL a cached answer may serve while Graph fails (0: never). */
  readonly staleMaxMs: number;
  /** TTL of cached "not managed" answers (default min(cacheTtlMs, 60 s)). */
  readonly notFoundTtlMs?: number;
  /** A device asked to sync is not asked again for this long (default 5 min). */
  readonly syncCooldownMs?: number;
  /**
   * MUTATE operations this deployment runs (after scope and ceremony checks). Phase 1: none, and
   * that is the default. Enabling one is a policy change: nothing else in the connector changes.
   */
  readonly enabledMutations?: readonly OperationName[];
  /** Device-action budget per tenant (default Intune's 200 writes per 20 s). */
  readonly writeBudget?: { readonly capacity?: number; readonly windowMs?: number };
  /** Graph pages one list_devices call may read while filtering client-side (default 5). */
  readonly listMaxGraphPagesPerCall?: number;
}

export interface IntuneConnectorDeps {
  readonly chronicle: ChronicleWriter;
  /** undefined: that tenant has no Intune connection; every operation is denied 'intune_disabled' (and audited). */
  readonly graphFor: (tenant: string) => GraphClient | undefined;
  /** The tenant's HMAC key for serial fingerprints (also seals list cursors). */
  readonly fingerprintKeyFor: (tenant: string) => Buffer | Promise<Buffer>;
  readonly options: IntuneConnectorOptions;
  readonly ceremony?: CeremonyVerifier;
  readonly logger?: Logger;
  /** Wall clock in ms (cache TTLs, cooldowns, write budget). */
  readonly now?: () => number;
  /** Where sync_device cooldowns live so replicas agree (table connector_sync_requests); without it, this process only. */
  readonly db?: Queryable;
}

export type ComplianceLookup =
  | {
      readonly ok: true;
      /** Most recently synced first; [] = not managed. */
      readonly records: readonly DevicePosture[];
      readonly cacheHit: boolean;
      readonly servedStale: boolean;
      readonly fetchedAt: number;
      readonly graphRequestId: string | null;
    }
  | {
      readonly ok: false;
      readonly reason: 'throttled' | 'graph_unavailable' | 'graph_error' | 'graph_forbidden' | 'timeout' | 'invalid_id';
      readonly message: string;
      readonly retryAfterMs?: number;
    };

export type ComplianceKey = { readonly azureADDeviceId: string } | { readonly deviceId: string };

export interface IntuneConnector {
  /** All seven, in OPERATION_NAMES order. */
  readonly operations: readonly OperationDescriptor[];
  /** Which operations a scope may call right now (Phase 1 policy applied): what MCP lists. */
  permittedOperations(scope: DelegationScope): readonly OperationDescriptor[];
  invoke<N extends OperationName>(operation: N | string, input: unknown, context: InvocationContext): Promise<InvokeOutcome<OperationOutput<N>>>;
  /** For the gate: the compliance cache lookup without a CONNECTOR_INVOKED record (the gate records DEVICE_COMPLIANCE_CHECKED instead). */
  lookupCompliance(tenant: string, key: ComplianceKey, options?: { maxStaleMs?: number; signal?: AbortSignal }): Promise<ComplianceLookup>;
  cacheStats(): CacheStats;
}

export const DEFAULT_SYNC_COOLDOWN_MS = 5 * 60_000;
const DEFAULT_LIST_MAX_GRAPH_PAGES = 5;
const TENANT_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const ACTOR_KINDS = new Set(['agent', 'service', 'human']);
/** macOS, Windows and Linux are one Graph value each, so Graph filters them; the other families span several values and are filtered here. */
const GRAPH_OS_VALUE: Partial<Record<OsFamily, string>> = { macos: 'macOS', windows: 'Windows', linux: 'Linux' };

type Target = { device_id?: string; azure_ad_device_id?: string };

/** What one invocation came to, before it is audited and returned. */
type Result =
  | { readonly kind: 'denied'; readonly reason: DenialReason; readonly message: string; readonly field?: string }
  | {
      readonly kind: 'failed';
      readonly reason: FailureReason;
      readonly message: string;
      readonly retryAfterMs?: number;
      readonly graphRequestId: string | null;
      /** More precise than `reason` when the cause is not Graph (recorded only). */
      readonly auditReason?: string;
      readonly cache?: { hit: boolean; stale: boolean };
    }
  | {
      readonly kind: 'succeeded';
      readonly value: unknown;
      readonly resultCount?: number;
      readonly graphRequestId: string | null;
      readonly cache?: { hit: boolean; stale: boolean };
    };

function failedFrom(failure: GraphFailure, extra: { cache?: { hit: boolean; stale: boolean } } = {}): Result {
  return {
    kind: 'failed',
    reason: failure.reason,
    message: failure.message,
    graphRequestId: failure.graphRequestId,
    ...(failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {}),
    ...extra,
  };
}

function normalizeScope(scope: unknown): DelegationScope {
  const s = (typeof scope === 'object' && scope !== null ? scope : {}) as Partial<Record<keyof DelegationScope, unknown>>;
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return {
    capabilities: strings(s.capabilities) as DelegationScope['capabilities'],
    ...(s.operations !== undefined ? { operations: strings(s.operations) as OperationName[] } : {}),
    ceremonyRequiredFor: strings(s.ceremonyRequiredFor) as OperationName[],
  };
}

/** Chronicle refuses control characters and long ids; an agent's self-chosen name must not make the audit fail. */
function sanitizeActorId(id: unknown): string {
  // Lone surrogates have no canonical JSON (UTF-8) form (toWellFormed makes each U+FFFD); the cut
  // at 200 must not split a pair either, so a high surrogate left at the end is dropped.
  const clean =
    typeof id === 'string'
      ? id
          .replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
          .toWellFormed()
          .slice(0, 200)
          .replace(/[\uD800-\uDBFF]$/, '')
      : '';
  return clean === '' ? 'unknown' : clean;
}

function sanitizeRequestId(id: unknown): string | undefined {
  return typeof id === 'string' && /^[\x21-\x7e]{1,128}$/.test(id) ? id : undefined;
}

/** Ids from the input that are GUIDs (the only input the audit record takes). */
function targetOf(input: unknown): Target {
  if (typeof input !== 'object' || input === null) return {};
  const i = input as Record<string, unknown>;
  return {
    ...(isGuid(i['device_id']) ? { device_id: i['device_id'].toLowerCase() } : {}),
    ...(isGuid(i['azure_ad_device_id']) ? { azure_ad_device_id: i['azure_ad_device_id'].toLowerCase() } : {}),
  };
}

function invalidInput(error: { issues: readonly { path: readonly PropertyKey[]; message: string; code: string; keys?: readonly string[] }[] }): Result {
  const issue = error.issues[0];
  if (issue === undefined) return { kind: 'denied', reason: 'invalid_input', message: 'The input is not valid.', field: 'input' };
  if (issue.code === 'unrecognized_keys' && issue.keys !== undefined && issue.keys.length > 0) {
    const field = [...issue.path.map(String), issue.keys[0] as string].join('.');
    // The key is caller text: quote it bounded, it goes back to the caller only, never to the audit.
    return { kind: 'denied', reason: 'invalid_input', message: `${field.slice(0, 64)}: is not an input of this operation; remove it.`, field: field.slice(0, 64) };
  }
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : 'input';
  const message =
    issue.path.length === 0 && issue.code === 'invalid_type' ? 'input: must be an object of named arguments.' : `${field}: ${issue.message}`;
  return { kind: 'denied', reason: 'invalid_input', message, field };
}

export function createIntuneConnector(deps: IntuneConnectorDeps): IntuneConnector {
  const { chronicle, graphFor, fingerprintKeyFor, options, ceremony, logger } = deps;
  const now = deps.now ?? Date.now;
  const policy: OperationPolicy = { enabledMutations: [...(options.enabledMutations ?? PHASE1_POLICY.enabledMutations)] };
  for (const name of policy.enabledMutations) {
    if (findOperation(name)?.capability !== 'MUTATE') {
      throw new ConnectorUsageError(`options.enabledMutations lists ${String(name)}, which is not a MUTATE operation; list only remote_lock, retire_device or wipe_device`, 'invalid_options', 'enabledMutations');
    }
  }
  const syncCooldownMs = options.syncCooldownMs ?? DEFAULT_SYNC_COOLDOWN_MS;
  const listMaxGraphPages = Math.max(1, options.listMaxGraphPagesPerCall ?? DEFAULT_LIST_MAX_GRAPH_PAGES);
  const cache = new ComplianceCache({
    ttlMs: options.cacheTtlMs,
    maxEntries: options.cacheMaxEntries,
    staleMaxMs: options.staleMaxMs,
    ...(options.notFoundTtlMs !== undefined ? { notFoundTtlMs: options.notFoundTtlMs } : {}),
    now,
  });
  const writeBudget = new WriteBudget({ ...options.writeBudget, now });
  const cooldowns: SyncCooldownStore = deps.db !== undefined ? databaseCooldownStore(deps.db) : memoryCooldownStore();

  async function cachedLookup(graph: GraphClient, tenant: string, kind: 'azureADDeviceId' | 'deviceId', id: string, opts: { maxStaleMs?: number; signal?: AbortSignal }): Promise<CachedLookup> {
    const lowerId = id.toLowerCase();
    return cache.lookup(
      ComplianceCache.key(tenant, kind, lowerId),
      async () => {
        const key = await fingerprintKeyFor(tenant);
        if (kind === 'azureADDeviceId') {
          const found = await graph.findDevicesByAzureADDeviceId(lowerId);
          const records = found.value.map((d) => Object.freeze(redactDevice(d, key))).sort(byMostRecentSync);
          return { records: Object.freeze(records), graphRequestId: safeRequestId(found.requestId) };
        }
        try {
          const found = await graph.getDevice(lowerId);
          return { records: Object.freeze([Object.freeze(redactDevice(found.value, key))]), graphRequestId: safeRequestId(found.requestId) };
        } catch (err) {
          const failure = classifyGraphError(err);
          if (failure.reason === 'not_found') return { records: Object.freeze([]), graphRequestId: failure.graphRequestId };
          throw err;
        }
      },
      opts,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Operations. Each runs after every check passed and returns a Result; none throws for Graph
  // failures (they become 'failed'), so the audit step always sees how the call ended.

  async function listDevices(graph: GraphClient, tenant: string, input: ListDevicesInput, position: ListPosition, fh: string, signal: AbortSignal | undefined): Promise<Result> {
    const key = await fingerprintKeyFor(tenant);
    const pushedOs = input.os_family !== undefined ? GRAPH_OS_VALUE[input.os_family] : undefined;
    const filter: DeviceFilter = {
      ...(pushedOs !== undefined ? { operatingSystem: pushedOs } : {}),
      ...(input.compliance_state !== undefined ? { complianceState: input.compliance_state } : {}),
      ...(input.last_sync_after !== undefined ? { lastSyncAfter: input.last_sync_after } : {}),
      ...(input.last_sync_before !== undefined ? { lastSyncBefore: input.last_sync_before } : {}),
    };
    const matches = (d: ManagedDevice): boolean =>
      (input.os_family === undefined || osFamilyOf(d.operatingSystem) === input.os_family) &&
      (input.ownership === undefined ||
        (d['managedDeviceOwnerType'] === 'company' || d['managedDeviceOwnerType'] === 'personal' ? d['managedDeviceOwnerType'] : 'unknown') === input.ownership);

    const devices: DevicePosture[] = [];
    let { link, skip } = position;
    const { top } = position;
    let next: ListPosition | null = null;
    let graphRequestId: string | null = null;
    try {
      for (let pagesRead = 1; ; pagesRead += 1) {
        const page =
          link === null
            ? await graph.listDevicesPage({ filter, top, ...signalOption(signal) })
            : await graph.listDevicesPage({ nextLink: link, ...signalOption(signal) });
        graphRequestId = safeRequestId(page.requestId) ?? graphRequestId;
        let i = skip;
        for (; i < page.devices.length && devices.length < input.page_size; i += 1) {
          const device = page.devices[i] as ManagedDevice;
          if (matches(device)) devices.push(redactDevice(device, key));
        }
        if (i < page.devices.length) {
          next = { link, skip: i, top };
          break;
        }
        if (page.nextLink === undefined) break;
        if (devices.length >= input.page_size || pagesRead >= listMaxGraphPages) {
          next = { link: page.nextLink, skip: 0, top };
          break;
        }
        link = page.nextLink;
        skip = 0;
      }
    } catch (err) {
      return failedFrom(logGraphFailure(err, 'list_devices'));
    }
    const nextCursor = next === null ? null : sealCursor(next, { fingerprintKey: key, tenant, filterHash: fh });
    return { kind: 'succeeded', value: { devices, next_cursor: nextCursor }, resultCount: devices.length, graphRequestId };
  }

  async function getDevice(graph: GraphClient, tenant: string, deviceId: string, signal: AbortSignal | undefined): Promise<Result> {
    try {
      const found = await graph.getDevice(deviceId.toLowerCase(), signalOption(signal));
      const key = await fingerprintKeyFor(tenant);
      return { kind: 'succeeded', value: { device: redactDevice(found.value, key) }, resultCount: 1, graphRequestId: safeRequestId(found.requestId) };
    } catch (err) {
      return failedFrom(logGraphFailure(err, 'get_device'));
    }
  }

  async function getCompliance(
    graph: GraphClient,
    tenant: string,
    input: { device_id?: string | undefined; azure_ad_device_id?: string | undefined; include_policies?: boolean | undefined },
    signal: AbortSignal | undefined,
  ): Promise<Result> {
    const byEntra = input.azure_ad_device_id !== undefined;
    const id = (input.azure_ad_device_id ?? input.device_id) as string;
    const lookup = await cachedLookup(graph, tenant, byEntra ? 'azureADDeviceId' : 'deviceId', id, signalOption(signal));
    if (!lookup.ok) return failedFrom(noteFailure(lookup.failure, 'get_compliance'));
    const cacheInfo = { hit: lookup.cacheHit, stale: lookup.servedStale };
    const first = lookup.records[0];
    if (first === undefined) {
      return {
        kind: 'failed',
        reason: 'not_found',
        message: byEntra
          ? 'No Intune managed device has that Entra device id (azure_ad_device_id): the device is not enrolled in Intune.'
          : 'Intune has no managed device with that device_id.',
        graphRequestId: lookup.graphRequestId,
        cache: cacheInfo,
      };
    }
    let graphRequestId = lookup.graphRequestId;
    let policies: GetComplianceOutput['policies'];
    if (input.include_policies === true) {
      try {
        const states = await graph.getCompliancePolicyStates(first.device_id, signalOption(signal));
        graphRequestId = safeRequestId(states.requestId) ?? graphRequestId;
        policies = states.value.map((p) => ({
          id: p.id,
          ...(p.displayName !== null ? { display_name: p.displayName } : {}),
          state: p.state,
          platform_type: p.platformType,
          setting_count: p.settingCount,
        }));
      } catch (err) {
        return failedFrom(logGraphFailure(err, 'get_compliance'), { cache: cacheInfo });
      }
    }
    const value: GetComplianceOutput = {
      compliance_state: first.compliance_state,
      grace_period_expires_at: first.grace_period_expires_at,
      last_sync_at: first.last_sync_at,
      device_id: first.device_id,
      azure_ad_device_id: first.azure_ad_device_id,
      record_count: lookup.records.length,
      devices: [...lookup.records],
      ...(policies !== undefined ? { policies } : {}),
      cache: cacheInfo,
    };
    return { kind: 'succeeded', value, resultCount: lookup.records.length, graphRequestId, cache: cacheInfo };
  }

  async function syncDevice(graph: GraphClient, tenant: string, deviceId: string, signal: AbortSignal | undefined): Promise<Result> {
    const id = deviceId.toLowerCase();
    // Cancelled before anything started: Intune is certainly not asked, so no cooldown is taken.
    if (signal?.aborted === true) return notStarted();
    const at = now();
    let claim;
    try {
      claim = await cooldowns.claim(tenant, id, at, syncCooldownMs);
    } catch (err) {
      logger?.error({ err, operation: 'sync_device' }, 'sync_device could not record its cooldown in the database');
      return {
        kind: 'failed',
        reason: 'graph_unavailable',
        auditReason: 'cooldown_store_unavailable',
        message: 'sync_device could not record the request in the connector database, so Intune was not asked; try again shortly.',
        graphRequestId: null,
      };
    }
    const answer = (status: 'requested' | 'recently_requested', requestedAt: number) => ({
      status,
      requested_at: new Date(requestedAt).toISOString(),
      next_allowed_at: new Date(requestedAt + syncCooldownMs).toISOString(),
    });
    if (!claim.claimed) return { kind: 'succeeded', value: answer('recently_requested', claim.requestedAt), graphRequestId: null };

    const budget = writeBudget.take(tenant);
    if (!budget.ok) {
      await cooldowns.release(tenant, id, claim.requestedAt).catch(() => undefined);
      return throttledByBudget(budget.retryAfterMs);
    }
    try {
      const done = await graph.performDeviceAction(id, 'syncDevice', signalOption(signal));
      return { kind: 'succeeded', value: answer('requested', claim.requestedAt), graphRequestId: safeRequestId(done.requestId) };
    } catch (err) {
      const failure = logGraphFailure(err, 'sync_device');
      // Only a definitive "not performed" frees the device for another request; after a timeout or a
      // reset Intune may have been asked, and the cooldown keeps us from asking twice.
      if (failure.status !== null && failure.status >= 400 && failure.status < 500) {
        await cooldowns.release(tenant, id, claim.requestedAt).catch(() => undefined);
      }
      return failedFrom(failure);
    }
  }

  async function deviceAction(graph: GraphClient, tenant: string, operation: keyof typeof DEVICE_ACTIONS, deviceId: string, signal: AbortSignal | undefined): Promise<Result> {
    if (signal?.aborted === true) return notStarted();
    const budget = writeBudget.take(tenant);
    if (!budget.ok) return throttledByBudget(budget.retryAfterMs);
    const requestedAt = now();
    try {
      const done = await graph.performDeviceAction(deviceId.toLowerCase(), DEVICE_ACTIONS[operation], signalOption(signal));
      return { kind: 'succeeded', value: { status: 'requested', requested_at: new Date(requestedAt).toISOString() }, graphRequestId: safeRequestId(done.requestId) };
    } catch (err) {
      return failedFrom(logGraphFailure(err, operation));
    }
  }

  function notStarted(): Result {
    return { kind: 'failed', reason: 'cancelled', message: 'The call was cancelled before it started; nothing was sent to Intune.', graphRequestId: null };
  }

  function throttledByBudget(retryAfterMs: number): Result {
    return {
      kind: 'failed',
      reason: 'throttled',
      auditReason: 'write_budget_exhausted',
      message: `This tenant's Intune write budget is used up for now; try again in ${Math.ceil(retryAfterMs / 1000)} s. Nothing was sent to Intune.`,
      retryAfterMs,
      graphRequestId: null,
    };
  }

  /** Unexpected Graph failures go to the log (their safe message only); the caller gets the failure's sentence. */
  function noteFailure(failure: GraphFailure, operation: string, err?: unknown): GraphFailure {
    if (failure.reason === 'graph_error') {
      logger?.warn({ err: err instanceof Error ? { name: err.name, message: err.message } : undefined, operation, graphRequestId: failure.graphRequestId }, 'Graph call failed');
    }
    return failure;
  }

  function logGraphFailure(err: unknown, operation: string): GraphFailure {
    return noteFailure(classifyGraphError(err), operation, err);
  }

  // -------------------------------------------------------------------------------------------
  // The audit step: one CONNECTOR_INVOKED per invocation, appended before the answer leaves.

  async function record(
    context: InvocationContext,
    descriptor: OperationDescriptor | undefined,
    target: Target,
    result: Result,
    startedAt: number,
  ): Promise<InvokeOutcome<never>> {
    const decision = result.kind === 'denied' ? 'denied' : 'allowed';
    const reason = result.kind === 'denied' ? result.reason : result.kind === 'failed' ? (result.auditReason ?? result.reason) : 'allowed';
    const channel = (INVOCATION_CHANNELS as readonly unknown[]).includes(context.channel) ? context.channel : undefined;
    const data = {
      operation: descriptor?.name ?? 'unknown',
      capability: descriptor?.capability ?? null,
      decision,
      reason,
      outcome: result.kind,
      target,
      ...(result.kind === 'succeeded' && result.resultCount !== undefined ? { result_count: result.resultCount } : {}),
      duration_ms: Math.max(0, Math.round((performance.now() - startedAt) * 1000) / 1000),
      graph_request_id: result.kind === 'denied' ? null : result.graphRequestId,
      ...(result.kind !== 'denied' && result.cache !== undefined ? { cache: result.cache } : {}),
      ...(channel !== undefined ? { channel } : {}),
    };
    const requestId = sanitizeRequestId(context.requestId);
    let seq: number;
    try {
      const receipt = await chronicle.append({
        tenant: context.tenant,
        type: 'CONNECTOR_INVOKED',
        actor: { kind: context.actor.kind, id: sanitizeActorId(context.actor.id) },
        ...(requestId !== undefined ? { requestId } : {}),
        data,
      });
      seq = receipt.seq;
    } catch (err) {
      logger?.error(
        { err: err instanceof Error ? { name: err.name, message: err.message, code: (err as { code?: unknown }).code } : undefined, operation: data.operation, decision, reason },
        'CONNECTOR_INVOKED could not be recorded; the call fails',
      );
      throw new AuditUnavailableError(
        `The call was not answered because the audit trail could not record it (${err instanceof Error ? err.message : 'unknown error'}); try again when Chronicle is available.`,
        err instanceof ChronicleError ? err.code : 'unavailable',
        { cause: err },
      );
    }
    logger?.debug({ operation: data.operation, decision, reason, outcome: result.kind, durationMs: data.duration_ms, seq }, 'connector invocation');
    const audit = { seq };
    switch (result.kind) {
      case 'succeeded':
        return { ok: true, value: result.value as never, audit };
      case 'denied':
        return { ok: false, kind: 'denied', reason: result.reason, message: result.message, ...(result.field !== undefined ? { field: result.field } : {}), audit };
      case 'failed':
        return {
          ok: false,
          kind: 'failed',
          reason: result.reason,
          message: result.message,
          ...(result.retryAfterMs !== undefined ? { retryAfterMs: result.retryAfterMs } : {}),
          ...(result.graphRequestId !== null ? { graphRequestId: result.graphRequestId } : {}),
          audit,
        };
    }
  }

  function checkContext(context: InvocationContext): void {
    if (typeof context !== 'object' || context === null) throw new ConnectorUsageError('invoke needs an InvocationContext as its third argument', 'invalid_context', 'context');
    if (typeof context.tenant !== 'string' || !TENANT_PATTERN.test(context.tenant)) {
      throw new ConnectorUsageError('context.tenant must match ^[A-Za-z0-9._-]{1,64}$ (it names the audit chain)', 'invalid_context', 'tenant');
    }
    if (typeof context.actor !== 'object' || context.actor === null || !ACTOR_KINDS.has(context.actor.kind)) {
      throw new ConnectorUsageError("context.actor.kind must be 'agent', 'service' or 'human'", 'invalid_context', 'actor.kind');
    }
  }

  /** Steps 1 to 8 of the order in ./scope.ts; each early return is audited like the rest. */
  async function decideAndRun(operation: unknown, input: unknown, context: InvocationContext): Promise<{ descriptor: OperationDescriptor | undefined; target: Target; result: Result }> {
    // 1. unknown operation (its name is caller text: it is neither recorded nor echoed)
    const descriptor = findOperation(operation);
    if (descriptor === undefined) {
      return {
        descriptor,
        target: {},
        result: { kind: 'denied', reason: 'unknown_operation', message: `Unknown operation; the operations are ${OPERATION_NAMES.join(', ')}.` },
      };
    }
    // 2. input validation
    const target = targetOf(input);
    const parsed = descriptor.input.safeParse(input);
    if (!parsed.success) return { descriptor, target, result: invalidInput(parsed.error as never) };
    const args = parsed.data as Record<string, unknown>;
    let position: ListPosition | undefined;
    let fh = '';
    if (descriptor.name === 'list_devices') {
      const list = args as ListDevicesInput;
      fh = filterHash({
        os_family: list.os_family,
        compliance_state: list.compliance_state,
        ownership: list.ownership,
        last_sync_before: list.last_sync_before,
        last_sync_after: list.last_sync_after,
      });
      const clientSide = list.ownership !== undefined || (list.os_family !== undefined && GRAPH_OS_VALUE[list.os_family] === undefined);
      position = { link: null, skip: 0, top: clientSide ? Math.min(1000, Math.max(100, list.page_size * 4)) : list.page_size };
      if (list.cursor !== undefined) {
        try {
          position = openCursor(list.cursor, { fingerprintKey: await fingerprintKeyFor(context.tenant), tenant: context.tenant, filterHash: fh });
        } catch (err) {
          if (!(err instanceof CursorError)) throw err;
          return {
            descriptor,
            target,
            result: {
              kind: 'denied',
              reason: 'invalid_input',
              field: 'cursor',
              message: 'cursor: is not valid for this listing (it belongs to other filters or another tenant, or was altered); repeat the filters of the page it came from, or start again without cursor.',
            },
          };
        }
      }
    }
    // 3. Intune enabled, tenant connected
    if (!options.intuneEnabled) {
      return { descriptor, target, result: { kind: 'denied', reason: 'intune_disabled', message: 'The Intune connector is disabled in this deployment (INTUNE_ENABLED=false).' } };
    }
    const graph = graphFor(context.tenant);
    if (graph === undefined) {
      return {
        descriptor,
        target,
        result: { kind: 'denied', reason: 'intune_disabled', message: `Tenant ${context.tenant} has no active Intune connection; an administrator must connect one first.` },
      };
    }
    // 4-6. Phase 1, capability, operation
    const authorization = authorizeOperation(descriptor, normalizeScope(context.scope), policy);
    if (!authorization.allowed) return { descriptor, target, result: { kind: 'denied', reason: authorization.reason, message: authorization.message } };
    // 7. ceremony
    if (authorization.ceremonyRequired) {
      let approved = false;
      if (ceremony !== undefined && context.ceremony !== undefined) {
        try {
          approved = (await ceremony.verify(context, descriptor.name)) === true;
        } catch (err) {
          logger?.warn({ err: err instanceof Error ? { name: err.name, message: err.message } : undefined, operation: descriptor.name }, 'ceremony verification failed; denying');
        }
      }
      if (!approved) {
        return {
          descriptor,
          target,
          result: {
            kind: 'denied',
            reason: 'ceremony_required',
            message:
              context.ceremony === undefined
                ? `${descriptor.name} needs an approved ceremony (human approval) for this caller; obtain one and pass its approval id in the context.`
                : `The ceremony approval presented for ${descriptor.name} could not be verified; obtain a new approval.`,
          },
        };
      }
    }
    // 8. run
    const signal = context.signal;
    const deviceId = args['device_id'] as string;
    let result: Result;
    switch (descriptor.name) {
      case 'list_devices':
        result = await listDevices(graph, context.tenant, args as ListDevicesInput, position as ListPosition, fh, signal);
        break;
      case 'get_device':
        result = await getDevice(graph, context.tenant, deviceId, signal);
        break;
      case 'get_compliance':
        result = await getCompliance(graph, context.tenant, args, signal);
        break;
      case 'sync_device':
        result = await syncDevice(graph, context.tenant, deviceId, signal);
        break;
      case 'remote_lock':
      case 'retire_device':
      case 'wipe_device':
        result = await deviceAction(graph, context.tenant, descriptor.name, deviceId, signal);
        break;
    }
    return { descriptor, target, result };
  }

  return {
    operations: OPERATIONS as readonly OperationDescriptor[],

    permittedOperations(scope) {
      if (!options.intuneEnabled) return [];
      return permittedOperations(OPERATIONS as readonly OperationDescriptor[], normalizeScope(scope), policy);
    },

    async invoke<N extends OperationName>(operation: N | string, input: unknown, context: InvocationContext): Promise<InvokeOutcome<OperationOutput<N>>> {
      checkContext(context);
      const startedAt = performance.now();
      let decided: Awaited<ReturnType<typeof decideAndRun>>;
      try {
        decided = await decideAndRun(operation, input, context);
      } catch (err) {
        // A bug or a dependency failing in an unexpected way: still one audit record, then the error.
        logger?.error({ err, operation: findOperation(operation)?.name ?? 'unknown' }, 'connector invocation failed unexpectedly');
        const descriptor = findOperation(operation);
        await record(context, descriptor, targetOf(input), { kind: 'failed', reason: 'graph_error', auditReason: 'internal_error', message: 'internal error', graphRequestId: null }, startedAt);
        throw err;
      }
      return record(context, decided.descriptor, decided.target, decided.result, startedAt) as Promise<InvokeOutcome<OperationOutput<N>>>;
    },

    async lookupCompliance(tenant, key, lookupOptions = {}) {
      const byEntra = typeof key === 'object' && key !== null && 'azureADDeviceId' in key;
      const id: unknown = byEntra ? (key as { azureADDeviceId: unknown }).azureADDeviceId : (key as { deviceId?: unknown } | null)?.deviceId;
      if (!isGuid(id)) {
        return { ok: false, reason: 'invalid_id', message: `${byEntra ? 'azureADDeviceId' : 'deviceId'} must be a GUID.` };
      }
      const graph = options.intuneEnabled ? graphFor(tenant) : undefined;
      if (graph === undefined) {
        return {
          ok: false,
          reason: 'graph_unavailable',
          message: options.intuneEnabled ? `Tenant ${tenant} has no active Intune connection.` : 'The Intune connector is disabled (INTUNE_ENABLED=false).',
        };
      }
      const lookup = await cachedLookup(graph, tenant, byEntra ? 'azureADDeviceId' : 'deviceId', id, {
        ...(lookupOptions.maxStaleMs !== undefined ? { maxStaleMs: lookupOptions.maxStaleMs } : {}),
        ...(lookupOptions.signal !== undefined ? { signal: lookupOptions.signal } : {}),
      });
      if (lookup.ok) return lookup;
      const { failure } = lookup;
      const reason = failure.reason === 'cancelled' ? 'timeout' : failure.reason === 'not_found' ? 'graph_error' : failure.reason;
      return { ok: false, reason, message: failure.message, ...(failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {}) };
    },

    cacheStats: () => cache.stats(),
  };
}
