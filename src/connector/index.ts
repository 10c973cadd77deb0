/**
 * IntuneConnector: the governed entry point to Intune. Every call goes through `invoke`, in three
 * steps: decide (the caller's delegation scope, checked in one documented order: ./scope.ts), run
 * (one runner module per operation under ./runners, each with its own deps; reads go through the
 * compliance cache where that makes sense and what comes back is redacted: ./redaction.ts), and
 * record (CONNECTOR_INVOKED appended to Chronicle before the caller sees an answer: ./audit.ts). If
 * that append fails, invoke throws AuditUnavailableError instead of answering.
 */
import type { Logger } from '../log/index.js';
import type { ChronicleWriter } from '../chronicle/types.js';
import type { Queryable } from '../db/index.js';
import type { GraphClient } from './graph/types.js';
import {
  OPERATION_NAMES,
  type CeremonyVerifier,
  type DelegationScope,
  type InvocationContext,
  type InvokeOutcome,
  type OperationDescriptor,
  type OperationName,
} from './contract.js';
import type { DevicePosture } from './posture.js';
import { OPERATIONS, findOperation, type ListDevicesInput, type OperationInput, type OperationOutput } from './operations.js';
import { PHASE1_POLICY, authorizeOperation, permittedOperations, type OperationPolicy } from './scope.js';
import { ComplianceCache, type CacheStats, type SharedCacheTier, type SyncInvalidation } from './cache.js';
import { cachedComplianceLookup, type CachedComplianceLookup } from './compliance-lookup.js';
import { ConnectorUsageError } from './errors.js';
import { cachedPolicyStatesLookup, failingSettings, type CachedPolicyStatesLookup } from './policy-states.js';
import type { CompliancePolicyState } from './graph/types.js';
import { isGuid, isTenant } from '../common/ids.js';
import { WriteBudget, type DeviceWriteBudget } from './write-budget.js';
import { databaseCooldownStore, memoryCooldownStore } from './sync-cooldown.js';
import { denied, type RunOutcome } from './outcome.js';
import { recordInvocation, targetOf, type AuditDeps, type Target } from './audit.js';
import type { RunCall } from './runners/call.js';
import { openListing, runListDevices, type ListDevicesDeps, type Listing } from './runners/list-devices.js';
import { runGetDevice, type GetDeviceDeps } from './runners/get-device.js';
import { runGetCompliance, type GetComplianceDeps } from './runners/get-compliance.js';
import { runFindAsset, type FindAssetDeps } from './runners/find-asset.js';
import type { ConnectorAssets } from './assets.js';
import { runSyncDevice, type SyncDeviceDeps } from './runners/sync-device.js';
import { runDeviceAction, type DeviceActionDeps } from './runners/device-action.js';
import { defined } from '../common/values.js';

export * from './operations.js';
export { PHASE1_POLICY, authorizeOperation, isOperationEnabled, type Authorization, type OperationPolicy } from './scope.js';
export { redactDevice, fingerprintSerial, osFamilyOf, SERIAL_FINGERPRINT_PREFIX } from './redaction.js';
export { currentRecord, currentRecordFirst } from './current-record.js';
export { EndpointAgentSchema, FoundAssetSchema, type ConnectorAssets, type EndpointAgent, type FoundAsset } from './assets.js';
export { AuditUnavailableError, ConnectorUsageError, classifyGraphError } from './errors.js';
export type { CacheStats, SharedCacheTier, SyncedDevice, SyncInvalidation } from './cache.js';
export type { CeremonyVerifier, InvocationChannel, SettledOutcome } from './contract.js';

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
  /** The host's asset identity (read at each call: it may be made after the connector). */
  readonly assets?: () => ConnectorAssets | undefined;
  /** Where sync_device cooldowns live so replicas agree (table connector_sync_requests); without it, this process only. */
  readonly db?: Queryable;
  /** The compliance cache's tier replicas share (REDIS_URL); without it, this process only. */
  readonly sharedCache?: SharedCacheTier;
  /** The device-action budget replicas share (REDIS_URL), built with options.writeBudget; unset: one per process. */
  readonly sharedWriteBudget?: (limits: { readonly capacity?: number; readonly windowMs?: number; readonly now: () => number }) => DeviceWriteBudget;
}

export type ComplianceLookup =
  | {
      readonly ok: true;
      /** Current record first (./current-record.ts); [] = not managed. */
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

/** The identifiers of the settings Intune reports as failing on one managed device. */
export type FailingSettingsLookup =
  | { readonly ok: true; readonly settings: readonly string[]; readonly cacheHit: boolean }
  | { readonly ok: false; readonly reason: string };

export interface IntuneConnector {
  /** All seven, in OPERATION_NAMES order. */
  readonly operations: readonly OperationDescriptor[];
  /** Which operations a scope may call right now (Phase 1 policy applied): what MCP lists. */
  permittedOperations(scope: DelegationScope): readonly OperationDescriptor[];
  invoke<N extends OperationName>(operation: N | string, input: unknown, context: InvocationContext): Promise<InvokeOutcome<OperationOutput<N>>>;
  /** For the gate: the compliance cache lookup without a CONNECTOR_INVOKED record (the gate records DEVICE_COMPLIANCE_CHECKED instead). */
  lookupCompliance(tenant: string, key: ComplianceKey, options?: { maxStaleMs?: number; signal?: AbortSignal }): Promise<ComplianceLookup>;
  /**
   * For the gate's denials: the failing settings of one managed device (by Intune id), read from
   * its compliance policy states through their own cache (same TTL, stale and coalescing rules).
   */
  lookupFailingSettings(tenant: string, intuneDeviceId: string, options?: { maxStaleMs?: number; signal?: AbortSignal }): Promise<FailingSettingsLookup>;
  cacheStats(): CacheStats;
  /** The policy-state cache's counters (hits, misses, coalesced). */
  policyStatesCacheStats(): CacheStats;
  /** Forgets every cached answer of a tenant, on every replica. */
  invalidateTenant(tenant: string): Promise<void>;
  /** Forgets the cached answers a posture sync changed (its devices, or the whole tenant), on every replica. */
  invalidateSynced(tenant: string, changed: SyncInvalidation): Promise<void>;
}

export const DEFAULT_SYNC_COOLDOWN_MS = 5 * 60_000;
const DEFAULT_LIST_MAX_GRAPH_PAGES = 5;
const ACTOR_KINDS = new Set(['agent', 'service', 'human']);

function normalizeScope(scope: unknown): DelegationScope {
  const s = (typeof scope === 'object' && scope !== null ? scope : {}) as Partial<Record<keyof DelegationScope, unknown>>;
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return {
    capabilities: strings(s.capabilities) as DelegationScope['capabilities'],
    ...defined({ operations: s.operations === undefined ? undefined : (strings(s.operations) as OperationName[]) }),
    ceremonyRequiredFor: strings(s.ceremonyRequiredFor) as OperationName[],
  };
}

function invalidInput(error: { issues: readonly { path: readonly PropertyKey[]; message: string; code: string; keys?: readonly string[] }[] }): RunOutcome<never> {
  const issue = error.issues[0];
  if (issue === undefined) return denied('invalid_input', 'The input is not valid.', 'input');
  if (issue.code === 'unrecognized_keys' && issue.keys !== undefined && issue.keys.length > 0) {
    const field = [...issue.path.map(String), issue.keys[0] as string].join('.');
    // The key is caller text: quote it bounded, it goes back to the caller only, never to the audit.
    return denied('invalid_input', `${field.slice(0, 64)}: is not an input of this operation; remove it.`, field.slice(0, 64));
  }
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : 'input';
  const message =
    issue.path.length === 0 && issue.code === 'invalid_type' ? 'input: must be an object of named arguments.' : `${field}: ${issue.message}`;
  return denied('invalid_input', message, field);
}

function checkContext(context: InvocationContext): void {
  if (typeof context !== 'object' || context === null) throw new ConnectorUsageError('invoke needs an InvocationContext as its third argument', 'invalid_context', 'context');
  if (typeof context.tenant !== 'string' || !isTenant(context.tenant)) {
    throw new ConnectorUsageError('context.tenant must match ^[A-Za-z0-9._-]{1,64}$ (it names the audit chain)', 'invalid_context', 'tenant');
  }
  if (typeof context.actor !== 'object' || context.actor === null || !ACTOR_KINDS.has(context.actor.kind)) {
    throw new ConnectorUsageError("context.actor.kind must be 'agent', 'service' or 'human'", 'invalid_context', 'actor.kind');
  }
}

/** What the decide step needs. */
interface DecideDeps {
  readonly intuneEnabled: boolean;
  readonly graphFor: (tenant: string) => GraphClient | undefined;
  readonly fingerprintKeyFor: (tenant: string) => Buffer | Promise<Buffer>;
  readonly policy: OperationPolicy;
  readonly ceremony: CeremonyVerifier | undefined;
  readonly logger: Logger | undefined;
}

/** Every check passed: what the run step needs. */
interface Cleared {
  readonly descriptor: OperationDescriptor;
  readonly call: RunCall<Record<string, unknown>>;
  /** list_devices only: where the page starts. */
  readonly listing: Listing | undefined;
}

type Decided = { readonly descriptor: OperationDescriptor | undefined; readonly target: Target } & (
  | { readonly cleared: Cleared; readonly refusal?: never }
  | { readonly cleared?: never; readonly refusal: RunOutcome<never> }
);

/** The ceremony step: true when the verifier approves the evidence on the context (a throw is a no). */
async function ceremonyApproved(deps: DecideDeps, context: InvocationContext, operation: OperationName): Promise<boolean> {
  if (deps.ceremony === undefined || context.ceremony === undefined) return false;
  try {
    return (await deps.ceremony.verify(context, operation)) === true;
  } catch (err) {
    deps.logger?.warn({ err: err instanceof Error ? { name: err.name, message: err.message } : undefined, operation }, 'ceremony verification failed; denying');
    return false;
  }
}

/** Steps 1 to 7 of the order in ./scope.ts; each refusal is audited like any other outcome. */
async function decide(deps: DecideDeps, operation: unknown, input: unknown, context: InvocationContext): Promise<Decided> {
  // 1. unknown operation (its name is caller text: it is neither recorded nor echoed)
  const descriptor = findOperation(operation);
  if (descriptor === undefined) {
    return { descriptor, target: {}, refusal: denied('unknown_operation', `Unknown operation; the operations are ${OPERATION_NAMES.join(', ')}.`) };
  }
  // 2. input validation (a list cursor is part of the input)
  const target = targetOf(input);
  const refuse = (refusal: RunOutcome<never>): Decided => ({ descriptor, target, refusal });
  const parsed = descriptor.input.safeParse(input);
  if (!parsed.success) return refuse(invalidInput(parsed.error as never));
  const args = parsed.data as Record<string, unknown>;
  let listing: Listing | undefined;
  if (descriptor.name === 'list_devices') {
    const opened = await openListing(args as ListDevicesInput, { tenant: context.tenant, fingerprintKey: () => deps.fingerprintKeyFor(context.tenant) });
    if ('ok' in opened) return refuse(opened);
    listing = opened;
  }
  // 3. Intune enabled, tenant connected
  if (!deps.intuneEnabled) return refuse(denied('intune_disabled', 'The Intune connector is disabled in this deployment (INTUNE_ENABLED=false).'));
  const graph = deps.graphFor(context.tenant);
  if (graph === undefined) {
    return refuse(denied('intune_disabled', `Tenant ${context.tenant} has no active Intune connection; an administrator must connect one first.`));
  }
  // 4-6. Phase 1, capability, operation
  const authorization = authorizeOperation(descriptor, normalizeScope(context.scope), deps.policy);
  if (!authorization.allowed) return refuse(denied(authorization.reason, authorization.message));
  // 7. ceremony
  if (authorization.ceremonyRequired && !(await ceremonyApproved(deps, context, descriptor.name))) {
    return refuse(
      denied(
        'ceremony_required',
        context.ceremony === undefined
          ? `${descriptor.name} needs an approved ceremony (human approval) for this caller; obtain one and pass its approval id in the context.`
          : `The ceremony approval presented for ${descriptor.name} could not be verified; obtain a new approval.`,
      ),
    );
  }
  return { descriptor, target, cleared: { descriptor, call: { graph, tenant: context.tenant, input: args, signal: context.signal }, listing } };
}

/** Each runner's deps, built once per connector. */
interface Runners {
  readonly listDevices: ListDevicesDeps;
  readonly getDevice: GetDeviceDeps;
  readonly getCompliance: GetComplianceDeps;
  readonly findAsset: FindAssetDeps;
  readonly syncDevice: SyncDeviceDeps;
  readonly deviceAction: DeviceActionDeps;
}

/** The input passed `operation`'s schema in the decide step, so it is that operation's input. */
const callOf = <N extends OperationName>(call: RunCall<Record<string, unknown>>, _operation: N): RunCall<OperationInput<N>> =>
  call as RunCall<unknown> as RunCall<OperationInput<N>>;

/** Step 8: the operation's runner. */
function run(runners: Runners, { descriptor, call, listing }: Cleared): Promise<RunOutcome> {
  const operation = descriptor.name;
  switch (operation) {
    case 'list_devices':
      return runListDevices(runners.listDevices, callOf(call, operation), listing as Listing);
    case 'get_device':
      return runGetDevice(runners.getDevice, callOf(call, operation));
    case 'get_compliance':
      return runGetCompliance(runners.getCompliance, callOf(call, operation));
    case 'find_asset':
      return runFindAsset(runners.findAsset, callOf(call, operation));
    case 'sync_device':
      return runSyncDevice(runners.syncDevice, callOf(call, operation));
    case 'remote_lock':
    case 'retire_device':
    case 'wipe_device':
      return runDeviceAction(runners.deviceAction, operation, callOf(call, operation));
  }
}

/** lookupCompliance: the cache lookup for the gate, without an audit record of its own. */
async function lookupForGate(
  deps: { readonly intuneEnabled: boolean; readonly graphFor: (tenant: string) => GraphClient | undefined; readonly lookup: CachedComplianceLookup },
  tenant: string,
  key: ComplianceKey,
  options: { maxStaleMs?: number; signal?: AbortSignal },
): Promise<ComplianceLookup> {
  const byEntra = typeof key === 'object' && key !== null && 'azureADDeviceId' in key;
  const id: unknown = byEntra ? (key as { azureADDeviceId: unknown }).azureADDeviceId : (key as { deviceId?: unknown } | null)?.deviceId;
  if (!isGuid(id)) {
    return { ok: false, reason: 'invalid_id', message: `${byEntra ? 'azureADDeviceId' : 'deviceId'} must be a GUID.` };
  }
  const graph = deps.intuneEnabled ? deps.graphFor(tenant) : undefined;
  if (graph === undefined) {
    return {
      ok: false,
      reason: 'graph_unavailable',
      message: deps.intuneEnabled ? `Tenant ${tenant} has no active Intune connection.` : 'The Intune connector is disabled (INTUNE_ENABLED=false).',
    };
  }
  const lookup = await deps.lookup(graph, tenant, byEntra ? 'azureADDeviceId' : 'deviceId', id, {
    ...defined({ maxStaleMs: options.maxStaleMs, signal: options.signal }),
  });
  if (lookup.ok) return lookup;
  const { failure } = lookup;
  const reason = failure.reason === 'cancelled' ? 'timeout' : failure.reason === 'not_found' ? 'graph_error' : failure.reason;
  return { ok: false, reason, message: failure.message, ...defined({ retryAfterMs: failure.retryAfterMs }) };
}

export function createIntuneConnector(deps: IntuneConnectorDeps): IntuneConnector {
  const { chronicle, graphFor, fingerprintKeyFor, options, logger } = deps;
  const now = deps.now ?? Date.now;
  const assets = deps.assets ?? (() => undefined);
  const policy: OperationPolicy = { enabledMutations: [...(options.enabledMutations ?? PHASE1_POLICY.enabledMutations)] };
  for (const name of policy.enabledMutations) {
    if (findOperation(name)?.capability !== 'MUTATE') {
      throw new ConnectorUsageError(`options.enabledMutations lists ${String(name)}, which is not a MUTATE operation; list only remote_lock, retire_device or wipe_device`, 'invalid_options', 'enabledMutations');
    }
  }
  const cache = new ComplianceCache({
    ttlMs: options.cacheTtlMs,
    maxEntries: options.cacheMaxEntries,
    staleMaxMs: options.staleMaxMs,
    ...defined({ notFoundTtlMs: options.notFoundTtlMs }),
    now,
    ...defined({ shared: deps.sharedCache }),
  });
  const invalidateDevice = (tenant: string, deviceId: string): Promise<void> => cache.invalidateDevices(tenant, [deviceId]);
  const lookup = cachedComplianceLookup({ cache, fingerprintKeyFor });
  const policyCache = new ComplianceCache<CompliancePolicyState>({
    ttlMs: options.cacheTtlMs,
    maxEntries: options.cacheMaxEntries,
    staleMaxMs: options.staleMaxMs,
    now,
  });
  const policyStates = cachedPolicyStatesLookup(policyCache);
  const writeBudget: DeviceWriteBudget = deps.sharedWriteBudget?.({ ...options.writeBudget, now }) ?? new WriteBudget({ ...options.writeBudget, now });
  const decideDeps: DecideDeps = { intuneEnabled: options.intuneEnabled, graphFor, fingerprintKeyFor, policy, ceremony: deps.ceremony, logger };
  const runners: Runners = {
    listDevices: { fingerprintKeyFor, maxGraphPages: Math.max(1, options.listMaxGraphPagesPerCall ?? DEFAULT_LIST_MAX_GRAPH_PAGES), logger },
    getDevice: { fingerprintKeyFor, logger, assets },
    findAsset: { assets, logger },
    getCompliance: { lookup, policyStates, logger, assets },
    syncDevice: {
      cooldowns: deps.db !== undefined ? databaseCooldownStore(deps.db) : memoryCooldownStore(),
      cooldownMs: options.syncCooldownMs ?? DEFAULT_SYNC_COOLDOWN_MS,
      writeBudget,
      now,
      logger,
      invalidateDevice,
    },
    deviceAction: { writeBudget, now, logger, invalidateDevice },
  };
  const audit: AuditDeps = { chronicle, logger };

  return {
    operations: OPERATIONS as readonly OperationDescriptor[],

    permittedOperations(scope) {
      if (!options.intuneEnabled) return [];
      return permittedOperations(OPERATIONS as readonly OperationDescriptor[], normalizeScope(scope), policy);
    },

    async invoke<N extends OperationName>(operation: N | string, input: unknown, context: InvocationContext): Promise<InvokeOutcome<OperationOutput<N>>> {
      checkContext(context);
      const startedAt = performance.now();
      let decided: Decided;
      let outcome: RunOutcome;
      try {
        decided = await decide(decideDeps, operation, input, context);
        outcome = decided.cleared !== undefined ? await run(runners, decided.cleared) : decided.refusal;
      } catch (err) {
        // A bug or a dependency failing in an unexpected way: still one audit record, then the error.
        const descriptor = findOperation(operation);
        logger?.error({ err, operation: descriptor?.name ?? 'unknown' }, 'connector invocation failed unexpectedly');
        const internal: RunOutcome<never> = { ok: false, kind: 'failed', reason: 'graph_error', message: 'internal error', recordOnly: { auditReason: 'internal_error' } };
        await recordInvocation(audit, { context, descriptor, target: targetOf(input), startedAt }, internal);
        throw err;
      }
      return recordInvocation(audit, { context, descriptor: decided.descriptor, target: decided.target, startedAt }, outcome as RunOutcome<OperationOutput<N>>);
    },

    lookupCompliance: (tenant, key, lookupOptions = {}) => lookupForGate({ intuneEnabled: options.intuneEnabled, graphFor, lookup }, tenant, key, lookupOptions),

    lookupFailingSettings: (tenant, intuneDeviceId, lookupOptions = {}) => lookupFailing({ intuneEnabled: options.intuneEnabled, graphFor, policyStates }, tenant, intuneDeviceId, lookupOptions),

    cacheStats: () => cache.stats(),
    policyStatesCacheStats: () => policyCache.stats(),

    invalidateTenant: (tenant) => cache.invalidateTenant(tenant),
    invalidateSynced: (tenant, changed) => cache.invalidateSynced(tenant, changed),
  };
}

async function lookupFailing(
  deps: { readonly intuneEnabled: boolean; readonly graphFor: (tenant: string) => GraphClient | undefined; readonly policyStates: CachedPolicyStatesLookup },
  tenant: string,
  intuneDeviceId: string,
  options: { maxStaleMs?: number; signal?: AbortSignal },
): Promise<FailingSettingsLookup> {
  if (!isGuid(intuneDeviceId)) return { ok: false, reason: 'invalid_id' };
  const graph = deps.intuneEnabled ? deps.graphFor(tenant) : undefined;
  if (graph === undefined) return { ok: false, reason: 'graph_unavailable' };
  const found = await deps.policyStates(graph, tenant, intuneDeviceId, options);
  if (!found.ok) return { ok: false, reason: found.failure.reason };
  return { ok: true, settings: failingSettings(found.records), cacheHit: found.cacheHit };
}
