/**
 * The evaluator: claims → device id → (cached) Intune lookup → decision table → Chronicle. It is
 * the only place the gate does I/O. No decision leaves without its DEVICE_COMPLIANCE_CHECKED
 * record: when the append fails, the answer is deny / audit_unavailable with `event: null`.
 */
import type { Logger } from '../log/index.js';
import type { Actor, ChronicleWriter } from '../chronicle/types.js';
import {
  LOOKUP_NOT_PERFORMED,
  SETTINGS_EXPLAIN,
  decide,
  decideWithoutIntune,
  describeDecision,
  deviceOf,
  readDeviceIdClaim,
  withAuditUnavailable,
  type Decision,
  type DeviceIdClaim,
  type LookupNotPerformed,
} from './decision.js';
import { resolveAccordPolicy } from './policy.js';
import { readsAgents, versionText, type AgentMeasurement } from './rules.js';
import { createAgentCache } from './agent-cache.js';
import { ACCORD_NAME_PATTERN, type AccordPolicy, type ComplianceLookup, type ComplianceSource, type GatePolicy, type GateResult } from './types.js';
import { DEFAULT_TENANT, isGuid, isTenant } from '../common/ids.js';
import { defined, isPlainObject } from '../common/values.js';

export type GateChannel = 'library' | 'api' | 'cli';

/** A caller's mistake, found before anything is looked up or recorded. */
export class GateInputError extends Error {
  override readonly name = 'GateInputError';
  constructor(
    readonly code: 'invalid_accord' | 'invalid_claims' | 'invalid_tenant',
    message: string,
  ) {
    super(message);
  }
}

export interface GateOptions {
  readonly connector: ComplianceSource;
  readonly chronicle: ChronicleWriter;
  readonly policy: GatePolicy;
  /** Chain for checks that name no tenant (default 'default', the runtime's tenant). */
  readonly tenant?: string;
  readonly logger?: Logger;
  /** Clock for grace periods and check-in age (milliseconds since the epoch). */
  readonly now?: () => number;
  /** Recorded as the event's `channel` unless a check says otherwise (default 'library'). */
  readonly channel?: GateChannel;
  /** Recorded as the event's actor unless a check says otherwise (default service "gate"). */
  readonly actor?: Actor;
  /**
   * Enrolled endpoint agents that see the same machine as an Intune record (asset identity). With
   * it, require_encryption and min_os_version also read a fresh agent's measurement on macOS.
   */
  readonly endpointAgents?: (tenant: string, intuneDeviceIds: readonly string[]) => Promise<ReadonlyArray<EndpointAgentReport>>;
  /**
   * How long one device's agent measurements are reused (default 30 s; 0: read on every check).
   * The longest a heartbeat or revocation handled by another replica waits to take effect here;
   * on this replica `forgetAgents` applies it at once.
   */
  readonly agentCacheTtlMs?: number;
  /** Size bound of that cache in devices (default 50000). */
  readonly agentCacheMaxEntries?: number;
}

/** INTUNE_GATE_AGENT_CACHE_TTL's default, in milliseconds. */
export const DEFAULT_AGENT_CACHE_TTL_MS = 30_000;

/** What the gate reads of an endpoint agent (the connector's EndpointAgent has these fields). */
export interface EndpointAgentReport {
  readonly agent_id: string;
  readonly confidence: 'agent' | 'stale';
  readonly filevault: boolean | null;
  readonly os_version: string | null;
}

export interface GateCheck {
  /** The accord template being issued; ^[A-Za-z0-9._-]{1,128}$. */
  readonly accord: string;
  /** The user's token claims (only `deviceid` is read). Absent: a token without device claims. */
  readonly claims?: Readonly<Record<string, unknown>> | undefined;
  readonly tenant?: string;
  readonly actor?: Actor;
  readonly requestId?: string;
  readonly channel?: GateChannel;
  readonly signal?: AbortSignal;
}

export interface Gate {
  /** Decides, records, answers. Throws GateInputError for a bad accord, tenant or claims; never for a device. */
  check(request: GateCheck): Promise<GateResult>;
  /** The policy an accord resolves to, for operators and `check --explain`-style tooling. */
  policyFor(accord: string): AccordPolicy;
  /**
   * An agent changed (this replica handled its enrollment, heartbeat or revocation, or a sync
   * re-matched the tenant's assets): the next checks read the agents again. With an agent id, only
   * what that agent's machine was read for; without, the whole tenant.
   */
  forgetAgents(tenant: string, agentId?: string): void;
  /**
   * This gate deciding by another policy: the same connector, Chronicle writer and agent cache (so
   * `forgetAgents` on either reaches both). serve's local channel answers a `check` beside it this
   * way, with the caller's resolved policy, so it decides exactly as the HTTP gate does.
   */
  withPolicy(policy: GatePolicy): Gate;
}

/** DEVICE_COMPLIANCE_CHECKED data (specs/events/DEVICE_COMPLIANCE_CHECKED.v1.schema.json): ids and facts, nothing typed by a user. */
export function complianceCheckedData(
  policy: AccordPolicy,
  deviceId: DeviceIdClaim,
  lookup: ComplianceLookup | LookupNotPerformed,
  decision: Exclude<Decision, { reason: 'audit_unavailable' }>,
  channel: GateChannel,
  failingSettings: readonly string[] = [],
): Record<string, unknown> {
  const device = deviceOf(decision);
  const answered = 'ok' in lookup && lookup.ok ? lookup : undefined;
  const fromAgents = agentRuleFailures(decision);
  // Keys in canonical (code-unit) order, as Chronicle writes them: the record is the same in any
  // order, and this one spares sorting them on every check.
  return {
    accord: policy.accord,
    ...(fromAgents.length > 0 ? { agent_rule_failures: fromAgents } : {}),
    // Only a claim that was a GUID is recorded: an invalid claim's value is attacker-controlled text.
    azure_ad_device_id: deviceId.kind === 'guid' ? deviceId.azureADDeviceId : null,
    cache_hit: answered?.cacheHit ?? false,
    channel,
    compliance_state: device?.compliance_state ?? null,
    decision: decision.decision,
    evaluated: decision.evaluated,
    failed_rules: 'ruleFailures' in decision ? decision.ruleFailures.map((f) => f.rule) : [],
    failing_settings: failingSettings,
    intune_device_id: device !== null && isGuid(device.device_id) ? device.device_id : null,
    last_sync_at: device?.last_sync_at ?? null,
    mode: policy.mode,
    os_version: device === null ? null : versionText(device.os_version),
    reason: decision.reason,
    record_count: answered?.records.length ?? 0,
    required: policy.required,
    served_stale: answered?.servedStale ?? false,
  };
}

/** The rule failures an agent's measurement decided, as recorded: `{ agent_id, rule }` (canonical key order). */
function agentRuleFailures(decision: Decision): Array<{ agent_id: string; rule: string }> {
  if (!('ruleFailures' in decision)) return [];
  return decision.ruleFailures.flatMap((f) => ('agentId' in f ? [{ agent_id: f.agentId, rule: f.rule }] : []));
}

export function createGate(options: GateOptions): Gate {
  const { connector, chronicle, logger } = options;
  const now = options.now ?? Date.now;
  const defaultTenant = options.tenant ?? DEFAULT_TENANT;
  const defaultChannel = options.channel ?? 'library';
  const defaultActor: Actor = options.actor ?? { kind: 'service', id: 'gate' };
  const endpointAgents = options.endpointAgents;
  const agentCache =
    endpointAgents === undefined
      ? undefined
      : createAgentCache<AgentMeasurement[]>({
          ttlMs: options.agentCacheTtlMs ?? DEFAULT_AGENT_CACHE_TTL_MS,
          maxEntries: options.agentCacheMaxEntries ?? 50_000,
          read: async (tenant, intuneDeviceId) => {
            const reports = await endpointAgents(tenant, [intuneDeviceId]);
            return {
              agentIds: reports.map((a) => a.agent_id),
              value: reports.filter((a) => a.confidence === 'agent').map((a) => ({ agentId: a.agent_id, filevault: a.filevault, osVersion: a.os_version })),
            };
          },
        });

  async function lookUp(tenant: string, accordPolicy: AccordPolicy, azureADDeviceId: string, signal: AbortSignal | undefined): Promise<ComplianceLookup> {
    try {
      return await connector.lookupCompliance(tenant, { azureADDeviceId }, { maxStaleMs: accordPolicy.staleMaxMs, ...defined({ signal }) });
    } catch (err) {
      // The connector answers failures as values; a throw is a defect, and the gate fails closed on it.
      logger?.error({ err, tenant, accord: accordPolicy.accord }, 'compliance lookup threw; denying as compliance_unavailable');
      return { ok: false, reason: 'graph_error', message: 'the compliance lookup failed unexpectedly' };
    }
  }

  /**
   * The fresh measurements of agents on the machine, read only when the record would pass on
   * Intune's word and an agent could change that (macOS with an encryption or minimum-OS rule).
   * Unreadable: none, and the decision stands on Intune's record (logged).
   */
  async function agentsFor(tenant: string, accordPolicy: AccordPolicy, decision: Decision): Promise<AgentMeasurement[]> {
    const device = deviceOf(decision);
    if (agentCache === undefined || device === null || !readsAgents(accordPolicy.rules, device)) return [];
    if (decision.decision !== 'allow' && !('ruleFailures' in decision)) return [];
    try {
      return await agentCache.get(tenant, device.device_id);
    } catch (err) {
      logger?.warn({ err, tenant, accord: accordPolicy.accord }, 'endpoint agents could not be read; the rules read Intune alone');
      return [];
    }
  }

  /** The failing settings that explain a state denial; [] when not needed or not readable (the decision never waits on them to change). */
  async function explain(tenant: string, accordPolicy: AccordPolicy, decision: Decision, signal: AbortSignal | undefined): Promise<string[]> {
    const device = deviceOf(decision);
    if (connector.lookupFailingSettings === undefined || decision.decision !== 'deny' || device === null || !SETTINGS_EXPLAIN.has(decision.reason)) return [];
    try {
      const found = await connector.lookupFailingSettings(tenant, device.device_id, { maxStaleMs: accordPolicy.staleMaxMs, ...defined({ signal }) });
      return found.ok ? [...found.settings] : [];
    } catch (err) {
      logger?.warn({ err, tenant, accord: accordPolicy.accord }, 'failing settings lookup threw; the denial is explained without them');
      return [];
    }
  }

  async function check(policy: GatePolicy, request: GateCheck): Promise<GateResult> {
    if (typeof request.accord !== 'string' || !ACCORD_NAME_PATTERN.test(request.accord)) {
      throw new GateInputError('invalid_accord', 'accord must be 1 to 128 letters, digits, dots, underscores or hyphens (the accord template name)');
    }
    const tenant = request.tenant ?? defaultTenant;
    if (!isTenant(tenant)) {
      throw new GateInputError('invalid_tenant', 'tenant must be 1 to 64 letters, digits, dots, underscores or hyphens');
    }
    const claims = request.claims ?? {};
    if (!isPlainObject(claims)) {
      throw new GateInputError('invalid_claims', 'claims must be an object of the user token claims (e.g. { "deviceid": "<Entra device id>" })');
    }

    const accordPolicy = resolveAccordPolicy(policy, request.accord);
    const deviceId = readDeviceIdClaim(claims);
    const lookup =
      decideWithoutIntune(accordPolicy, deviceId) === null && deviceId.kind === 'guid'
        ? await lookUp(tenant, accordPolicy, deviceId.azureADDeviceId, request.signal)
        : LOOKUP_NOT_PERFORMED;
    const at = now();
    const onIntune = decide({ deviceId, lookup, policy: accordPolicy, now: at });
    const agents = await agentsFor(tenant, accordPolicy, onIntune);
    const decision = agents.length > 0 ? decide({ deviceId, lookup, policy: accordPolicy, now: at, agents }) : onIntune;
    const channel = request.channel ?? defaultChannel;
    const failingSettings = await explain(tenant, accordPolicy, decision, request.signal);
    const failedRules = 'ruleFailures' in decision ? decision.ruleFailures.map((f) => f.rule) : [];

    try {
      const receipt = await chronicle.append({
        tenant,
        type: 'DEVICE_COMPLIANCE_CHECKED',
        actor: request.actor ?? defaultActor,
        ...defined({ requestId: request.requestId }),
        data: complianceCheckedData(accordPolicy, deviceId, lookup, decision, channel, failingSettings),
      });
      return {
        decision: decision.decision,
        reason: decision.reason,
        evaluated: decision.evaluated,
        message: describeDecision(decision, failingSettings),
        device: deviceOf(decision),
        failed_rules: failedRules,
        failing_settings: failingSettings,
        event: { seq: receipt.seq, hash: receipt.hash },
      };
    } catch (err) {
      logger?.error(
        { err: { name: (err as Error).name, code: (err as { code?: unknown }).code, message: (err as Error).message }, tenant, accord: accordPolicy.accord, unrecorded: decision.reason },
        'DEVICE_COMPLIANCE_CHECKED could not be recorded; denying as audit_unavailable',
      );
      const refused = withAuditUnavailable(decision);
      return {
        decision: refused.decision,
        reason: refused.reason,
        evaluated: refused.evaluated,
        message: describeDecision(refused),
        device: null,
        failed_rules: [],
        failing_settings: [],
        event: null,
      };
    }
  }

  const gateWith = (policy: GatePolicy): Gate => ({
    policyFor: (accord) => resolveAccordPolicy(policy, accord),
    forgetAgents: (tenant, agentId) => agentCache?.forget(tenant, agentId),
    withPolicy: gateWith,
    check: (request) => check(policy, request),
  });
  return gateWith(options.policy);
}
