/**
 * The gate's vocabulary: reason codes, the resolved per-accord policy, and what a check returns.
 * Everything here is plain data so the decision table (./decision.ts) can stay a pure function.
 */
import { z } from 'zod';
import { OWNERSHIPS, THREAT_LEVELS, type DevicePosture, type ThreatLevel } from '../connector/posture.js';
import type { IntuneConnector } from '../connector/index.js';

export type { ComplianceLookup } from '../connector/index.js';

/** Accord template names as host frameworks send them; also the Chronicle schema's pattern. */
export const ACCORD_NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * The posture rules (./rules.ts), in the order they are checked; each fails with the reason of the
 * same name, a row of the table below, overridable per accord.
 */
export const POSTURE_RULES = [
  'not_encrypted',
  'os_version_below_minimum',
  'ownership_not_allowed',
  'management_agent_not_allowed',
  'threat_state_too_high',
  'not_supervised',
] as const;
export type PostureRuleReason = (typeof POSTURE_RULES)[number];

/** Every reason a gate decision can carry, in the order of DESIGN.md's table. */
export const GATE_REASONS = [
  'compliance_not_required',
  'device_id_missing',
  'device_id_missing_permissive',
  'device_id_invalid',
  'device_not_managed',
  'compliant',
  'in_grace_period',
  'grace_period_expired',
  'noncompliant',
  'compliance_conflict',
  'compliance_error',
  'compliance_unknown',
  'compliance_config_manager',
  'stale_checkin',
  ...POSTURE_RULES,
  'compliance_unavailable',
  'audit_unavailable',
] as const;
export type GateReason = (typeof GATE_REASONS)[number];

/**
 * Rows whose allow/deny an accord may flip in its policy (`decisions:`). The other rows are
 * either set by a dedicated key (device_compliance_required, strict, grace_period_counts), are
 * untrusted input that always fails closed (device_id_invalid), make no sense flipped
 * (compliant), or are the audit guarantee itself (audit_unavailable).
 */
export const OVERRIDABLE_REASONS = [
  'device_not_managed',
  'grace_period_expired',
  'noncompliant',
  'compliance_conflict',
  'compliance_error',
  'compliance_unknown',
  'compliance_config_manager',
  'stale_checkin',
  ...POSTURE_RULES,
  'compliance_unavailable',
] as const;
export type OverridableReason = (typeof OVERRIDABLE_REASONS)[number];

export const VERDICTS = ['allow', 'deny'] as const;
export type Verdict = (typeof VERDICTS)[number];
export const GATE_MODES = ['strict', 'permissive'] as const;
export type GateMode = (typeof GATE_MODES)[number];

/** The default table: every overridable row denies. */
export const DEFAULT_DECISIONS: Readonly<Record<OverridableReason, Verdict>> = Object.freeze({
  device_not_managed: 'deny',
  grace_period_expired: 'deny',
  noncompliant: 'deny',
  compliance_conflict: 'deny',
  compliance_error: 'deny',
  compliance_unknown: 'deny',
  compliance_config_manager: 'deny',
  stale_checkin: 'deny',
  not_encrypted: 'deny',
  os_version_below_minimum: 'deny',
  ownership_not_allowed: 'deny',
  management_agent_not_allowed: 'deny',
  threat_state_too_high: 'deny',
  not_supervised: 'deny',
  compliance_unavailable: 'deny',
});

/** Platforms a minimum OS version can be set for (the policy file's keys under min_os_version). */
export const MIN_OS_PLATFORMS = ['macos', 'windows', 'ios', 'android'] as const;
export type MinOsPlatform = (typeof MIN_OS_PLATFORMS)[number];

/** partnerReportedThreatState readings that are levels, lowest first (declared with Graph's enum); max_threat_state names one. */
export { THREAT_LEVELS, type ThreatLevel };

/**
 * An accord's posture rules (policy file: require_encryption, min_os_version, allowed_ownership,
 * allowed_management_agents, max_threat_state, require_supervised). Null or false: not limited.
 */
export const PostureRulesSchema = z
  .strictObject({
    requireEncryption: z.boolean(),
    minOsVersion: z
      .strictObject(Object.fromEntries(MIN_OS_PLATFORMS.map((p) => [p, z.string().max(64).optional()])) as Record<MinOsPlatform, z.ZodOptional<z.ZodString>>)
      .readonly()
      .describe('Minimum OS version per platform; a platform not listed is not limited.'),
    allowedOwnership: z.array(z.enum(OWNERSHIPS)).readonly().nullable(),
    allowedManagementAgents: z.array(z.string().max(128)).readonly().nullable(),
    maxThreatState: z.enum(THREAT_LEVELS).nullable(),
    requireSupervised: z.boolean().describe('iOS and iPadOS only: other platforms have no supervision and pass.'),
  })
  .readonly();
export type PostureRules = z.infer<typeof PostureRulesSchema>;

export const NO_POSTURE_RULES: PostureRules = Object.freeze({
  requireEncryption: false,
  minOsVersion: Object.freeze({}),
  allowedOwnership: null,
  allowedManagementAgents: null,
  maxThreatState: null,
  requireSupervised: false,
});

/**
 * One accord's policy with every default filled in: what decide() reads. Declared once: the gate
 * builds it from the configuration and the policy file (./policy.ts), and serve's local channel
 * parses the one a `check` beside it sends by this schema.
 */
export const AccordPolicySchema = z
  .strictObject({
    accord: z.string().regex(ACCORD_NAME_PATTERN),
    required: z.boolean().describe('Does issuing this accord need a compliant device at all (device_compliance_required).'),
    mode: z.enum(GATE_MODES).describe('strict: a token without a device id is refused; permissive: it passes unevaluated.'),
    maxCheckinAgeMs: z.int().min(0).nullable().describe('Deny (stale_checkin) when the deciding record last checked in longer ago; null: no limit.'),
    gracePeriodCounts: z.boolean().describe('Whether inGracePeriod before its expiry allows (in_grace_period) or counts as noncompliant.'),
    staleMaxMs: z.int().min(0).describe('How long past its TTL a cached answer may still decide while Graph fails (0: never).'),
    rules: PostureRulesSchema.describe('Posture rules checked after the compliance state and check-in age allow.'),
    decisions: z
      .strictObject(Object.fromEntries(OVERRIDABLE_REASONS.map((r) => [r, z.enum(VERDICTS)])) as Record<OverridableReason, z.ZodEnum<{ allow: 'allow'; deny: 'deny' }>>)
      .readonly()
      .describe('allow/deny for each overridable row, defaults merged with the accord\'s overrides.'),
    source: z.enum(['defaults', 'policy_file']).describe('Where this policy came from, for operators reading logs.'),
  })
  .readonly();
export type AccordPolicy = z.infer<typeof AccordPolicySchema>;

/** The loaded policy: global defaults and the accords the policy file names. */
export interface GatePolicy {
  readonly defaults: Omit<AccordPolicy, 'accord' | 'source'>;
  readonly accords: ReadonlyMap<string, AccordPolicy>;
  /** Absolute path of the policy file, or null when only the environment's defaults apply. */
  readonly file: string | null;
}

/**
 * What the gate needs from the connector: the cached lookup, and (optional, for explaining a
 * denial) the failing settings of the deciding record.
 */
export type ComplianceSource = Pick<IntuneConnector, 'lookupCompliance'> & Partial<Pick<IntuneConnector, 'lookupFailingSettings'>>;

/** The answer a host acts on. `event` is null only when nothing was recorded, and then decision is deny. */
export interface GateResult {
  readonly decision: Verdict;
  readonly reason: GateReason;
  /** True when the decision rests on an answer from Intune (fresh or served from the cache). */
  readonly evaluated: boolean;
  /** One sentence for the person being refused or the operator reading the log. */
  readonly message: string;
  /** The record that decided (the most recently synced match), redacted. */
  readonly device: DevicePosture | null;
  /** The accord's posture rules the record fails, in rule order (snake_case: it is sent as JSON as it is). */
  readonly failed_rules: PostureRuleReason[];
  /** Identifiers of the compliance settings Intune reports as failing, read on a deny that state explains. */
  readonly failing_settings: string[];
  /** The DEVICE_COMPLIANCE_CHECKED event that records this decision. */
  readonly event: { readonly seq: number; readonly hash: string } | null;
}
