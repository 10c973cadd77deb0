/**
 * The accord's posture rules over one redacted record: pure functions, no I/O, no clock. Each rule
 * names the reason it fails with; decide() (./decision.ts) checks them after the compliance state
 * and the check-in age would allow, in POSTURE_RULES order.
 *
 * Documented choices:
 *  - min_os_version compares versions as dotted numbers (14.10 > 14.9; missing parts are 0, so
 *    "14" equals "14.0"); the leading number run of the record's osVersion is read ("14.5 (23F79)"
 *    is 14.5). A record whose version cannot be read on a platform that has a minimum fails the
 *    rule: a minimum that cannot be shown to be met is not met. Platforms not listed are not limited.
 *  - max_threat_state accepts the partner's levels up to and including the one named (secured <
 *    lowSeverity < mediumSeverity < highSeverity); compromised is above every level, and readings
 *    that are not a level (unknown, activated, deactivated, unresponsive, misconfigured) fail: an
 *    accord that limits threats needs a partner reading to allow.
 *  - require_supervised applies to iOS/iPadOS; on other platforms there is no supervision and the
 *    rule passes.
 *  - An enrolled endpoint agent that sees the same macOS machine (asset identity) and has reported
 *    within its staleness age is a second source for require_encryption and min_os_version: the
 *    rule fails when either source fails it (Intune says encrypted but the agent says FileVault is
 *    off: not encrypted). Intune is read first; the failure names its source (and the agent). An
 *    agent that did not report a measurement, or a stale one, is not read.
 */
import type { DevicePosture } from '../connector/posture.js';
import { POSTURE_RULES, THREAT_LEVELS, type MinOsPlatform, type PostureRuleReason, type PostureRules, type ThreatLevel } from './types.js';

/** What an enrolled agent on the same machine measured, as the rules read it (fresh reports only). */
export interface AgentMeasurement {
  readonly agentId: string;
  /** null: not reported. */
  readonly filevault: boolean | null;
  readonly osVersion: string | null;
}

/** Which source's measurement failed a rule: Intune's record, or an enrolled agent's report. */
export type RuleSource = { readonly source: 'intune' } | { readonly source: 'agent'; readonly agentId: string };

/** Why one rule failed: facts from the record and the rule, no free text. */
export type RuleFailure =
  | ({ readonly rule: 'not_encrypted'; readonly osFamily: DevicePosture['os_family'] } & RuleSource)
  | ({
      readonly rule: 'os_version_below_minimum';
      readonly platform: MinOsPlatform;
      /** The version as read, or null when it could not be read. */
      readonly osVersion: string | null;
      readonly minimum: string;
    } & RuleSource)
  | { readonly rule: 'ownership_not_allowed'; readonly ownership: DevicePosture['ownership']; readonly allowed: readonly string[] }
  | { readonly rule: 'management_agent_not_allowed'; readonly managementAgent: string; readonly allowed: readonly string[] }
  | { readonly rule: 'threat_state_too_high'; readonly threatState: DevicePosture['threat_state']; readonly maximum: ThreatLevel }
  | { readonly rule: 'not_supervised' };

/** Digits and dots as written in a policy file: "14", "14.0", "10.0.22631". */
export const VERSION_PATTERN = /^\d{1,9}(\.\d{1,9}){0,3}$/;

/** A version as read: its numbers, and the same written as dotted numbers ("14.5 (23F79)" → [14, 5], "14.5"). */
interface ReadVersion {
  readonly parts: readonly number[];
  readonly text: string;
}

/**
 * Versions already read. A fleet has a few dozen distinct version strings, read on every check
 * (the record's, the accord's minimum, the agent's report, the recorded os_version); bounded,
 * emptied when full.
 */
const versionsRead = new Map<string, ReadVersion | null>();
const MAX_VERSIONS_KEPT = 1024;

function readVersion(value: string | null): ReadVersion | null {
  if (value === null) return null;
  const known = versionsRead.get(value);
  if (known !== undefined) return known;
  const match = /^\s*v?(\d{1,9}(?:\.\d{1,9}){0,5})(?![\d])/i.exec(value);
  let read: ReadVersion | null = null;
  if (match?.[1] !== undefined) {
    const parts = Object.freeze(match[1].split('.').map(Number));
    read = Object.freeze({ parts, text: parts.join('.') });
  }
  if (versionsRead.size >= MAX_VERSIONS_KEPT) versionsRead.clear();
  versionsRead.set(value, read);
  return read;
}

/** The leading dotted-number run of a version string, as numbers; null when there is none. */
export function parseVersion(value: string | null): readonly number[] | null {
  return readVersion(value)?.parts ?? null;
}

/** The same, written as dotted numbers ("14.5 (23F79)" → "14.5"); null when there is none. */
export function versionText(value: string | null): string | null {
  return readVersion(value)?.text ?? null;
}

/** Negative, zero or positive as a is below, equal to or above b; missing parts count as 0. */
export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function checkMinOs(rules: PostureRules, device: DevicePosture): RuleFailure | null {
  const platform = device.os_family;
  if (platform !== 'macos' && platform !== 'windows' && platform !== 'ios' && platform !== 'android') return null;
  const minimum = rules.minOsVersion[platform];
  if (minimum === undefined) return null;
  const version = readVersion(device.os_version);
  const floor = parseVersion(minimum);
  if (version !== null && floor !== null && compareVersions(version.parts, floor) >= 0) return null;
  return { rule: 'os_version_below_minimum', platform, osVersion: version === null ? null : version.text, minimum, source: 'intune' };
}

/** An agent on a macOS machine reporting a version below the accord's macOS minimum (an unreadable report is not read). */
function agentBelowMinOs(rules: PostureRules, device: DevicePosture, agents: readonly AgentMeasurement[]): RuleFailure | null {
  const minimum = device.os_family === 'macos' ? rules.minOsVersion.macos : undefined;
  const floor = minimum === undefined ? null : parseVersion(minimum);
  if (minimum === undefined || floor === null) return null;
  for (const agent of agents) {
    const version = readVersion(agent.osVersion);
    if (version !== null && compareVersions(version.parts, floor) < 0) {
      return { rule: 'os_version_below_minimum', platform: 'macos', osVersion: version.text, minimum, source: 'agent', agentId: agent.agentId };
    }
  }
  return null;
}

function checkEncryption(rules: PostureRules, device: DevicePosture, agents: readonly AgentMeasurement[]): RuleFailure | null {
  if (!rules.requireEncryption) return null;
  if (!device.is_encrypted) return { rule: 'not_encrypted', osFamily: device.os_family, source: 'intune' };
  const off = device.os_family === 'macos' ? agents.find((a) => a.filevault === false) : undefined;
  return off === undefined ? null : { rule: 'not_encrypted', osFamily: device.os_family, source: 'agent', agentId: off.agentId };
}

const threatRank = (state: DevicePosture['threat_state']): number => {
  if (state === 'compromised') return THREAT_LEVELS.length;
  return (THREAT_LEVELS as readonly string[]).indexOf(state);
};

function check(rule: PostureRuleReason, rules: PostureRules, device: DevicePosture, agents: readonly AgentMeasurement[]): RuleFailure | null {
  switch (rule) {
    case 'not_encrypted':
      return checkEncryption(rules, device, agents);
    case 'os_version_below_minimum':
      return checkMinOs(rules, device) ?? agentBelowMinOs(rules, device, agents);
    case 'ownership_not_allowed':
      return rules.allowedOwnership !== null && !rules.allowedOwnership.includes(device.ownership)
        ? { rule, ownership: device.ownership, allowed: rules.allowedOwnership }
        : null;
    case 'management_agent_not_allowed':
      return rules.allowedManagementAgents !== null && !rules.allowedManagementAgents.includes(device.management_agent)
        ? { rule, managementAgent: device.management_agent, allowed: rules.allowedManagementAgents }
        : null;
    case 'threat_state_too_high': {
      if (rules.maxThreatState === null) return null;
      const rank = threatRank(device.threat_state);
      return rank < 0 || rank > THREAT_LEVELS.indexOf(rules.maxThreatState) ? { rule, threatState: device.threat_state, maximum: rules.maxThreatState } : null;
    }
    case 'not_supervised':
      return rules.requireSupervised && device.os_family === 'ios' && !device.supervised ? { rule } : null;
  }
}

/** Whether an agent's measurement could change the rules' outcome for this record (so a host knows when to read agents). */
export function readsAgents(rules: PostureRules, device: DevicePosture): boolean {
  return device.os_family === 'macos' && (rules.requireEncryption || rules.minOsVersion.macos !== undefined);
}

/** Every rule the record (and the fresh agents on its machine) fails, in POSTURE_RULES order ([] when it meets them all). */
export function failedRules(rules: PostureRules, device: DevicePosture, agents: readonly AgentMeasurement[] = []): RuleFailure[] {
  const out: RuleFailure[] = [];
  for (const rule of POSTURE_RULES) {
    const failure = check(rule, rules, device, agents);
    if (failure !== null) out.push(failure);
  }
  return out;
}

const OS_NAMES: Readonly<Record<MinOsPlatform, string>> = { macos: 'macOS', windows: 'Windows', ios: 'iOS', android: 'Android' };
const ENCRYPTION_NAMES: Readonly<Partial<Record<DevicePosture['os_family'], string>>> = {
  macos: 'FileVault is off',
  windows: 'BitLocker is off',
  ios: 'the device is not encrypted (set a passcode)',
  android: 'device storage is not encrypted',
};

/** What the person must fix, in a few words: "FileVault is off", "macOS 13.6 is below 14.0". */
export function describeRuleFailure(failure: RuleFailure): string {
  switch (failure.rule) {
    case 'not_encrypted':
      return (ENCRYPTION_NAMES[failure.osFamily] ?? 'disk encryption is off') + (failure.source === 'agent' ? ' (as the endpoint agent reports)' : '');
    case 'os_version_below_minimum':
      if (failure.source === 'agent') return `${OS_NAMES[failure.platform]} ${failure.osVersion ?? ''} is below ${failure.minimum} (as the endpoint agent reports)`;
      return failure.osVersion === null
        ? `the ${OS_NAMES[failure.platform]} version cannot be read, and this accord requires ${failure.minimum} or later`
        : `${OS_NAMES[failure.platform]} ${failure.osVersion} is below ${failure.minimum}`;
    case 'ownership_not_allowed':
      return `${failure.ownership === 'unknown' ? 'the device has no recorded ownership' : `${failure.ownership} devices are not accepted`} (accepted: ${failure.allowed.join(', ')})`;
    case 'management_agent_not_allowed':
      return `the device is managed through ${failure.managementAgent} (accepted: ${failure.allowed.join(', ')})`;
    case 'threat_state_too_high':
      return `the threat defense partner reports ${failure.threatState} (accepted up to ${failure.maximum})`;
    case 'not_supervised':
      return 'the device is not supervised (enrol it through Automated Device Enrollment)';
  }
}
