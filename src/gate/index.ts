/**
 * The compliance gate: decides at authorize time whether an accord may be issued to the user's
 * device, and records every decision in Chronicle. Hosts in Node call createGate(...).check(...);
 * hosts in other languages call POST /api/v1/gate/device-compliance (./http.ts).
 */
export {
  ACCORD_NAME_PATTERN,
  AccordPolicySchema,
  DEFAULT_DECISIONS,
  GATE_MODES,
  GATE_REASONS,
  MIN_OS_PLATFORMS,
  NO_POSTURE_RULES,
  OVERRIDABLE_REASONS,
  POSTURE_RULES,
  PostureRulesSchema,
  THREAT_LEVELS,
  VERDICTS,
  type AccordPolicy,
  type PostureRuleReason,
  type PostureRules,
  type ComplianceLookup,
  type ComplianceSource,
  type GateMode,
  type GatePolicy,
  type GateReason,
  type GateResult,
  type OverridableReason,
  type Verdict,
} from './types.js';
export {
  LOOKUP_NOT_PERFORMED,
  decide,
  decideWithoutIntune,
  decidingRecord,
  describeDecision,
  readDeviceIdClaim,
  withAuditUnavailable,
  type DecideInput,
  type Decision,
  type DeviceIdClaim,
  type LookupNotPerformed,
  type StateReason,
} from './decision.js';
export { compareVersions, describeRuleFailure, failedRules, parseVersion, type RuleFailure } from './rules.js';
export { buildGatePolicy, demoPolicyFile, loadGatePolicy, parsePolicyText, resolveAccordPolicy, validatePolicyDocument, type PolicyConfig } from './policy.js';
export { DEFAULT_AGENT_CACHE_TTL_MS, GateInputError, complianceCheckedData, createGate, type Gate, type GateChannel, type GateCheck, type GateOptions } from './gate.js';
