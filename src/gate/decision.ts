/**
 * The compliance gate's decision table, as a pure function: plain data in (the device id from the
 * token, the connector's lookup, the accord's policy, the time), a tagged decision out. No I/O, no
 * clock, no `this`; the evaluator in ./gate.ts does the lookup and the audit around it.
 *
 * DESIGN.md, "Compliance gate: default decision table (each row overridable per accord)":
 *
 * | situation                                                  | decision              | reason                        |
 * |------------------------------------------------------------|-----------------------|-------------------------------|
 * | compliance not required for the accord                     | allow (not evaluated) | compliance_not_required       |
 * | no device id, strict                                       | deny                  | device_id_missing             |
 * | no device id, permissive                                   | allow (not evaluated) | device_id_missing_permissive  |
 * | device id not a GUID                                       | deny                  | device_id_invalid             |
 * | no managed device matches                                  | deny                  | device_not_managed            |
 * | compliant                                                  | allow                 | compliant                     |
 * | inGracePeriod, before complianceGracePeriodExpirationDateTime | allow              | in_grace_period               |
 * | inGracePeriod, after it                                    | deny                  | grace_period_expired          |
 * | noncompliant / conflict / error / unknown / configManager  | deny                  | noncompliant / compliance_conflict / compliance_error / compliance_unknown / compliance_config_manager |
 * | last check-in older than the accord's max age              | deny                  | stale_checkin                 |
 * | require_encryption and the device is not encrypted         | deny                  | not_encrypted                 |
 * | min_os_version for the platform and the OS is below it     | deny                  | os_version_below_minimum      |
 * | allowed_ownership and the ownership is not listed          | deny                  | ownership_not_allowed         |
 * | allowed_management_agents and the agent is not listed      | deny                  | management_agent_not_allowed  |
 * | max_threat_state and the partner's reading is above it     | deny                  | threat_state_too_high         |
 * | require_supervised and an iOS device is not supervised     | deny                  | not_supervised                |
 * | Graph unavailable and no cached answer young enough        | deny                  | compliance_unavailable        |
 * | Chronicle unavailable                                      | deny                  | audit_unavailable             |
 *
 * Several matches: the most recently synced record decides (ties: the later enrolment, then the
 * greater Intune id; the one rule of ../connector/current-record.ts); the count is recorded.
 *
 * How the rows combine (the choices the table leaves open):
 *  - Order: required? → device id present? → GUID? → lookup answered? → any record? → the
 *    deciding record's state → its check-in age. The first row that applies decides.
 *  - Staleness only guards an allow. A record whose state denies keeps its own reason (a stale
 *    noncompliant device is reported as noncompliant: that is what the user must fix); a record
 *    whose state would allow is refused with stale_checkin when its last check-in is older than
 *    the accord's max age, or unknown. Overriding stale_checkin to allow keeps the reason, so the
 *    audit record still says the answer was old.
 *  - Posture rules (./rules.ts) guard an allow the same way, after the check-in age: every rule
 *    is checked and all failures are recorded; the first failure whose row denies decides, and
 *    when every failing row is overridden to allow, the first failure is the (allowing) reason.
 *  - Grace: before the expiry (strictly earlier than complianceGracePeriodExpirationDateTime) the
 *    device allows with in_grace_period, unless the accord sets grace_period_counts: false, in
 *    which case it is what Intune will call it once grace ends: noncompliant (the noncompliant
 *    row, and its override, apply; the recorded compliance_state stays inGracePeriod). At or after
 *    the expiry, or with no readable expiry, grace_period_expired: grace that cannot be shown to
 *    be running does not count.
 *  - Overrides flip allow/deny of the rows in OVERRIDABLE_REASONS; the reason never changes, so
 *    the audit trail shows which row decided.
 *  - audit_unavailable is not decided here: the evaluator turns any decision it could not record
 *    into one (see withAuditUnavailable).
 */
import { isGuid } from '../common/ids.js';
import { currentRecord } from '../connector/current-record.js';
import type { DevicePosture } from '../connector/posture.js';
import { describeRuleFailure, failedRules, type AgentMeasurement, type RuleFailure } from './rules.js';
import { describeSettings } from './settings.js';
import { DEFAULT_DECISIONS, type AccordPolicy, type ComplianceLookup, type GateMode, type OverridableReason, type PostureRuleReason, type Verdict } from './types.js';

/** The `deviceid` claim of the user's token, read as untrusted input (see readDeviceIdClaim). */
export type DeviceIdClaim =
  | { readonly kind: 'absent' }
  | { readonly kind: 'invalid' }
  | { readonly kind: 'guid'; readonly azureADDeviceId: string };

/** Passed as `lookup` when the gate did not ask the connector. */
export const LOOKUP_NOT_PERFORMED = Object.freeze({ performed: false as const });
export type LookupNotPerformed = typeof LOOKUP_NOT_PERFORMED;

export interface DecideInput {
  readonly deviceId: DeviceIdClaim;
  readonly lookup: ComplianceLookup | LookupNotPerformed;
  /** Carries the mode (strict/permissive) too, so mode and accord cannot disagree. */
  readonly policy: AccordPolicy;
  /** Milliseconds since the epoch. */
  readonly now: number;
  /** Fresh measurements of enrolled agents on the deciding record's machine (asset identity), read by the posture rules. */
  readonly agents?: readonly AgentMeasurement[];
}

export type StateReason =
  | 'compliant'
  | 'in_grace_period'
  | 'grace_period_expired'
  | 'noncompliant'
  | 'compliance_conflict'
  | 'compliance_error'
  | 'compliance_unknown'
  | 'compliance_config_manager';

interface Evaluated {
  readonly evaluated: true;
  readonly decision: Verdict;
  /** True when the accord's `decisions:` changed this row's default. */
  readonly overridden: boolean;
  /** The most recently synced record: the one that decides. */
  readonly device: DevicePosture;
  readonly recordCount: number;
}

export type Decision =
  | { readonly reason: 'compliance_not_required'; readonly decision: 'allow'; readonly evaluated: false; readonly mode: GateMode }
  | { readonly reason: 'device_id_missing'; readonly decision: 'deny'; readonly evaluated: false; readonly mode: 'strict' }
  | { readonly reason: 'device_id_missing_permissive'; readonly decision: 'allow'; readonly evaluated: false; readonly mode: 'permissive' }
  | { readonly reason: 'device_id_invalid'; readonly decision: 'deny'; readonly evaluated: false; readonly mode: GateMode }
  | {
      readonly reason: 'compliance_unavailable';
      readonly decision: Verdict;
      readonly evaluated: false;
      readonly overridden: boolean;
      readonly mode: GateMode;
      readonly azureADDeviceId: string;
      /** Why the connector had no answer young enough ('not_performed': it was never asked). */
      readonly failure: Exclude<Extract<ComplianceLookup, { ok: false }>['reason'], 'invalid_id'> | 'not_performed';
      readonly retryAfterMs: number | null;
    }
  | {
      readonly reason: 'device_not_managed';
      readonly decision: Verdict;
      readonly evaluated: true;
      readonly overridden: boolean;
      readonly mode: GateMode;
      readonly azureADDeviceId: string;
    }
  | (Evaluated & {
      readonly reason: StateReason;
      readonly mode: GateMode;
      /** Set for inGracePeriod records: the expiry as recorded (null: none readable). */
      readonly gracePeriodExpiresAt: string | null;
      /** False only when an inGracePeriod record fell to noncompliant because grace does not count. */
      readonly graceCounted: boolean;
    })
  | (Evaluated & {
      readonly reason: 'stale_checkin';
      readonly mode: GateMode;
      readonly lastSyncAt: string | null;
      readonly maxCheckinAgeMs: number;
      /** The reason the record's state alone would have given. */
      readonly stateReason: StateReason;
    })
  | (Evaluated & {
      readonly reason: PostureRuleReason;
      readonly mode: GateMode;
      /** Every posture rule the record fails, in rule order; the deciding one is among them. */
      readonly ruleFailures: readonly RuleFailure[];
      readonly stateReason: StateReason;
    })
  | {
      readonly reason: 'audit_unavailable';
      readonly decision: 'deny';
      readonly evaluated: boolean;
      readonly mode: GateMode;
      /** What would have been answered, had it been recorded. */
      readonly unrecorded: Exclude<Decision, { reason: 'audit_unavailable' }>;
    };

/**
 * Reads the `deviceid` claim (Entra puts the device's object id there for tokens issued on a
 * registered or joined device). Claims are untrusted: only an own property is read, absent or
 * null means no device id, and anything but a GUID string is invalid (never a crash, never
 * passed on). GUIDs are lower-cased: Intune stores them that way and azureADDeviceId is a string.
 */
export function readDeviceIdClaim(claims: Readonly<Record<string, unknown>>): DeviceIdClaim {
  const value = Object.hasOwn(claims, 'deviceid') ? claims['deviceid'] : undefined;
  if (value === undefined || value === null) return { kind: 'absent' };
  if (!isGuid(value)) return { kind: 'invalid' };
  return { kind: 'guid', azureADDeviceId: value.toLowerCase() };
}

/**
 * The rows that need no answer from Intune. Null means: look the device up, then call decide().
 * The evaluator calls this to know whether to ask the connector at all, so the two cannot drift.
 */
export function decideWithoutIntune(
  policy: AccordPolicy,
  deviceId: DeviceIdClaim,
): Extract<Decision, { reason: 'compliance_not_required' | 'device_id_missing' | 'device_id_missing_permissive' | 'device_id_invalid' }> | null {
  if (!policy.required) return { reason: 'compliance_not_required', decision: 'allow', evaluated: false, mode: policy.mode };
  switch (deviceId.kind) {
    case 'absent':
      return policy.mode === 'strict'
        ? { reason: 'device_id_missing', decision: 'deny', evaluated: false, mode: 'strict' }
        : { reason: 'device_id_missing_permissive', decision: 'allow', evaluated: false, mode: 'permissive' };
    case 'invalid':
      return { reason: 'device_id_invalid', decision: 'deny', evaluated: false, mode: policy.mode };
    case 'guid':
      return null;
  }
}

const verdictOf = (policy: AccordPolicy, row: OverridableReason): { decision: Verdict; overridden: boolean } => {
  const decision = policy.decisions[row];
  return { decision, overridden: decision !== DEFAULT_DECISIONS[row] };
};

/** Milliseconds since the epoch, or NaN for null and unreadable timestamps. */
const timeOf = (iso: string | null): number => (iso === null ? Number.NaN : Date.parse(iso));

/**
 * The record that decides: the connector's current record (../connector/current-record.ts), the
 * same rule get_compliance reports by. Most recent last sync, then the later enrolment (a
 * re-enrolled device's current record), then the greater Intune id, so the answer never depends on
 * the order records arrive in; records without a readable last sync come last. The rule is applied
 * here, so the connector's ordering of `records` is not relied on.
 */
export function decidingRecord(records: readonly DevicePosture[]): DevicePosture | undefined {
  return currentRecord(records);
}

const STATE_REASONS: Readonly<Record<Exclude<DevicePosture['compliance_state'], 'compliant' | 'inGracePeriod'>, OverridableReason & StateReason>> = {
  noncompliant: 'noncompliant',
  conflict: 'compliance_conflict',
  error: 'compliance_error',
  unknown: 'compliance_unknown',
  configManager: 'compliance_config_manager',
};

/** The row the record's compliance state alone selects, with its verdict under this accord. */
function decideState(
  policy: AccordPolicy,
  device: DevicePosture,
  now: number,
): { reason: StateReason; decision: Verdict; overridden: boolean; graceCounted: boolean; gracePeriodExpiresAt: string | null } {
  const state = device.compliance_state;
  switch (state) {
    case 'compliant':
      return { reason: 'compliant', decision: 'allow', overridden: false, graceCounted: true, gracePeriodExpiresAt: null };
    case 'inGracePeriod': {
      const expiresAt = device.grace_period_expires_at;
      const expiry = timeOf(expiresAt);
      if (Number.isNaN(expiry) || now >= expiry) {
        return { reason: 'grace_period_expired', ...verdictOf(policy, 'grace_period_expired'), graceCounted: true, gracePeriodExpiresAt: expiresAt };
      }
      if (!policy.gracePeriodCounts) {
        return { reason: 'noncompliant', ...verdictOf(policy, 'noncompliant'), graceCounted: false, gracePeriodExpiresAt: expiresAt };
      }
      return { reason: 'in_grace_period', decision: 'allow', overridden: false, graceCounted: true, gracePeriodExpiresAt: expiresAt };
    }
    case 'noncompliant':
    case 'conflict':
    case 'error':
    case 'unknown':
    case 'configManager': {
      const reason = STATE_REASONS[state];
      const { decision, overridden } = verdictOf(policy, reason);
      return { reason, decision, overridden, graceCounted: true, gracePeriodExpiresAt: null };
    }
  }
}

/** The whole table. Total: every input yields a decision, and a missing lookup fails closed. */
export function decide(input: DecideInput): Exclude<Decision, { reason: 'audit_unavailable' }> {
  const { policy, deviceId, lookup, now } = input;
  const early = decideWithoutIntune(policy, deviceId);
  if (early !== null) return early;
  // decideWithoutIntune returns null only for a GUID.
  const azureADDeviceId = (deviceId as Extract<DeviceIdClaim, { kind: 'guid' }>).azureADDeviceId;
  const mode = policy.mode;

  if (!('ok' in lookup)) {
    return { reason: 'compliance_unavailable', ...verdictOf(policy, 'compliance_unavailable'), evaluated: false, mode, azureADDeviceId, failure: 'not_performed', retryAfterMs: null };
  }
  if (!lookup.ok) {
    if (lookup.reason === 'invalid_id') return { reason: 'device_id_invalid', decision: 'deny', evaluated: false, mode };
    return {
      reason: 'compliance_unavailable',
      ...verdictOf(policy, 'compliance_unavailable'),
      evaluated: false,
      mode,
      azureADDeviceId,
      failure: lookup.reason,
      retryAfterMs: lookup.retryAfterMs ?? null,
    };
  }

  const device = decidingRecord(lookup.records);
  if (device === undefined) {
    return { reason: 'device_not_managed', ...verdictOf(policy, 'device_not_managed'), evaluated: true, mode, azureADDeviceId };
  }
  const recordCount = lookup.records.length;
  const state = decideState(policy, device, now);
  if (state.decision === 'allow' && policy.maxCheckinAgeMs !== null) {
    const lastSync = timeOf(device.last_sync_at);
    if (Number.isNaN(lastSync) || now - lastSync > policy.maxCheckinAgeMs) {
      return {
        reason: 'stale_checkin',
        ...verdictOf(policy, 'stale_checkin'),
        evaluated: true,
        mode,
        device,
        recordCount,
        lastSyncAt: device.last_sync_at,
        maxCheckinAgeMs: policy.maxCheckinAgeMs,
        stateReason: state.reason,
      };
    }
  }
  if (state.decision === 'allow') {
    const failures = failedRules(policy.rules, device, input.agents ?? []);
    const deciding = failures.find((f) => policy.decisions[f.rule] === 'deny') ?? failures[0];
    if (deciding !== undefined) {
      return {
        reason: deciding.rule,
        ...verdictOf(policy, deciding.rule),
        evaluated: true,
        mode,
        device,
        recordCount,
        ruleFailures: failures,
        stateReason: state.reason,
      };
    }
  }
  // Written out rather than spread: state comes from several object shapes, and spreading it was
  // most of decide()'s time.
  return {
    reason: state.reason,
    decision: state.decision,
    overridden: state.overridden,
    graceCounted: state.graceCounted,
    gracePeriodExpiresAt: state.gracePeriodExpiresAt,
    evaluated: true,
    mode,
    device,
    recordCount,
  };
}

/** What the evaluator answers when Chronicle could not record `decision`: deny, whatever it was. */
export function withAuditUnavailable(decision: Exclude<Decision, { reason: 'audit_unavailable' }>): Extract<Decision, { reason: 'audit_unavailable' }> {
  return { reason: 'audit_unavailable', decision: 'deny', evaluated: decision.evaluated, mode: decision.mode, unrecorded: decision };
}

/** The deciding record, when the decision rests on one. */
export function deviceOf(decision: Decision): DevicePosture | null {
  return 'device' in decision ? decision.device : null;
}

const days = (ms: number): string => {
  const value = ms / 86_400_000;
  return `${Number.isInteger(value) ? value : value.toFixed(1)} day${value === 1 ? '' : 's'}`;
};

/** Rows whose denial Intune's per-setting states explain (the gate reads them only for these). */
export const SETTINGS_EXPLAIN: ReadonlySet<Decision['reason']> = new Set(['noncompliant', 'grace_period_expired', 'compliance_conflict', 'compliance_error']);

/**
 * One sentence per row, for the person refused and the operator reading the answer. With the
 * identifiers of the settings Intune reports as failing, a state row says what to fix.
 */
export function describeDecision(decision: Decision, failingSettings: readonly string[] = []): string {
  const sentence = describeRow(decision);
  if (failingSettings.length === 0 || !SETTINGS_EXPLAIN.has(decision.reason)) return sentence;
  return `${sentence} To fix: ${describeSettings(failingSettings, deviceOf(decision))}.`;
}

function describeRow(decision: Decision): string {
  const flipped = 'overridden' in decision && decision.overridden ? ` This accord's policy sets this case to ${decision.decision}.` : '';
  switch (decision.reason) {
    case 'compliance_not_required':
      return 'This accord does not require a compliant device; the device was not checked.';
    case 'device_id_missing':
      return 'The token carries no device id (deviceid claim) and this accord runs in strict mode: sign in from an Entra-registered or joined device.';
    case 'device_id_missing_permissive':
      return 'The token carries no device id (deviceid claim); permissive mode lets it pass without a device check.';
    case 'device_id_invalid':
      return 'The deviceid claim is not a GUID, so no device could be checked: the token is malformed or not from Entra.';
    case 'device_not_managed':
      return `No device managed by Intune has this Entra device id: enrol the device in Intune.${flipped}`;
    case 'compliant':
      return 'The device is compliant with its Intune compliance policies.';
    case 'in_grace_period':
      return `The device is not yet compliant but within its grace period (until ${decision.gracePeriodExpiresAt ?? 'unknown'}): fix it before then.`;
    case 'grace_period_expired':
      return `The device's compliance grace period has ended${decision.gracePeriodExpiresAt === null ? '' : ` (${decision.gracePeriodExpiresAt})`}: bring it into compliance.${flipped}`;
    case 'noncompliant':
      return decision.graceCounted
        ? `The device is not compliant with its Intune compliance policies: bring it into compliance.${flipped}`
        : `The device is in its compliance grace period, which this accord does not accept: bring it into compliance.${flipped}`;
    case 'compliance_conflict':
      return `The device's Intune compliance policies conflict, so it is not compliant: an administrator must resolve the conflict.${flipped}`;
    case 'compliance_error':
      return `Intune reports an error evaluating the device's compliance: sync the device, or ask an administrator.${flipped}`;
    case 'compliance_unknown':
      return `Intune has not evaluated the device's compliance yet: sync the device and try again.${flipped}`;
    case 'compliance_config_manager':
      return `The device's compliance is managed by Configuration Manager, which this accord does not accept.${flipped}`;
    case 'stale_checkin':
      return `The device last checked in with Intune ${decision.lastSyncAt === null ? 'at an unknown time' : `at ${decision.lastSyncAt}`}, longer ago than this accord accepts (${days(decision.maxCheckinAgeMs)}): sync the device.${flipped}`;
    case 'not_encrypted':
    case 'os_version_below_minimum':
    case 'ownership_not_allowed':
    case 'management_agent_not_allowed':
    case 'threat_state_too_high':
    case 'not_supervised': {
      const fix = decision.ruleFailures.map(describeRuleFailure).join('; ');
      return `This accord's device rules are not met: ${fix}.${flipped}`;
    }
    case 'compliance_unavailable':
      return `Intune could not be asked about the device (${decision.failure}) and no recent answer was cached: try again${decision.retryAfterMs === null ? '' : ` in ${Math.ceil(decision.retryAfterMs / 1000)} s`}.${flipped}`;
    case 'audit_unavailable':
      return 'The decision could not be recorded in the audit trail, so it is refused: try again; if it persists, the audit database is down or refuses writes (see /readyz).';
  }
}
