/** The posture rules: one row of the decision table each, in strict and permissive mode, through the real policy loader. */
import { describe, expect, it } from 'vitest';
import type { DevicePosture } from '../../src/connector/posture.js';
import { compareVersions, decide, describeDecision, parseVersion, type DeviceIdClaim } from '../../src/gate/index.js';
import { ENTRA_ID, NOW, accordPolicy, answered, posture } from './fixtures.js';
import { ConfigError } from '../../src/config/index.js';

const guid: DeviceIdClaim = { kind: 'guid', azureADDeviceId: ENTRA_ID };

interface Row {
  readonly reason: string;
  readonly rule: Record<string, unknown>;
  readonly failing: Partial<DevicePosture>;
  readonly passing: Partial<DevicePosture>;
  readonly says: string;
}

const ROWS: readonly Row[] = [
  { reason: 'not_encrypted', rule: { require_encryption: true }, failing: { is_encrypted: false }, passing: { is_encrypted: true }, says: 'FileVault is off' },
  {
    reason: 'os_version_below_minimum',
    rule: { min_os_version: { macos: '14.0' } },
    failing: { os_version: '13.6 (22G120)' },
    passing: { os_version: '14.0' },
    says: 'macOS 13.6 is below 14.0',
  },
  {
    reason: 'ownership_not_allowed',
    rule: { allowed_ownership: ['company'] },
    failing: { ownership: 'personal' },
    passing: { ownership: 'company' },
    says: 'personal devices are not accepted (accepted: company)',
  },
  {
    reason: 'management_agent_not_allowed',
    rule: { allowed_management_agents: ['mdm', 'easMdm'] },
    failing: { management_agent: 'jamf' },
    passing: { management_agent: 'easMdm' },
    says: 'managed through jamf (accepted: mdm, easMdm)',
  },
  {
    reason: 'threat_state_too_high',
    rule: { max_threat_state: 'lowSeverity' },
    failing: { threat_state: 'mediumSeverity' },
    passing: { threat_state: 'lowSeverity' },
    says: 'reports mediumSeverity (accepted up to lowSeverity)',
  },
  {
    reason: 'not_supervised',
    rule: { require_supervised: true },
    failing: { os_family: 'ios', os_version: '17.4', supervised: false },
    passing: { os_family: 'ios', os_version: '17.4', supervised: true },
    says: 'not supervised',
  },
];

describe.each([
  { mode: 'strict', strict: true },
  { mode: 'permissive', strict: false },
] as const)('posture rules, $mode mode', ({ mode, strict }) => {
  it.each(ROWS)('$reason: the failing record is denied with its reason and what to fix; the passing one allows', (row) => {
    const policy = accordPolicy({ strict, ...row.rule });
    const denied = decide({ deviceId: guid, lookup: answered([posture(row.failing)]), policy, now: NOW });
    expect(denied).toMatchObject({ decision: 'deny', reason: row.reason, evaluated: true, overridden: false, mode, stateReason: 'compliant' });
    expect(describeDecision(denied)).toContain(row.says);
    expect(decide({ deviceId: guid, lookup: answered([posture(row.passing)]), policy, now: NOW })).toMatchObject({ decision: 'allow', reason: 'compliant' });
    // Without the rule the failing record allows: the row is the rule's, nothing else.
    expect(decide({ deviceId: guid, lookup: answered([posture(row.failing)]), policy: accordPolicy({ strict }), now: NOW })).toMatchObject({
      decision: 'allow',
      reason: 'compliant',
    });
  });

  it.each(ROWS)('$reason: overridden to allow under decisions:, the reason stays so the record says which rule failed', (row) => {
    const policy = accordPolicy({ strict, ...row.rule, decisions: { [row.reason]: 'allow' } });
    expect(decide({ deviceId: guid, lookup: answered([posture(row.failing)]), policy, now: NOW })).toMatchObject({
      decision: 'allow',
      reason: row.reason,
      overridden: true,
      mode,
    });
  });

  it('rules only guard an allow: a noncompliant record keeps its own reason', () => {
    const policy = accordPolicy({ strict, require_encryption: true });
    expect(decide({ deviceId: guid, lookup: answered([posture({ compliance_state: 'noncompliant', is_encrypted: false })]), policy, now: NOW })).toMatchObject({
      decision: 'deny',
      reason: 'noncompliant',
    });
  });

  it('every failing rule is recorded; the first that denies decides, after an overridden one', () => {
    const policy = accordPolicy({ strict, require_encryption: true, min_os_version: { macos: '15' }, decisions: { not_encrypted: 'allow' } });
    const decision = decide({ deviceId: guid, lookup: answered([posture({ is_encrypted: false, os_version: '14.6.1' })]), policy, now: NOW });
    expect(decision).toMatchObject({ decision: 'deny', reason: 'os_version_below_minimum' });
    expect('ruleFailures' in decision ? decision.ruleFailures.map((f) => f.rule) : []).toEqual(['not_encrypted', 'os_version_below_minimum']);
    expect(describeDecision(decision)).toContain('FileVault is off; macOS 14.6.1 is below 15');
  });
});

describe('min_os_version', () => {
  it('compares versions as dotted numbers per platform, not as text', () => {
    expect(compareVersions(parseVersion('14.10') ?? [], parseVersion('14.9') ?? [])).toBeGreaterThan(0);
    expect(compareVersions(parseVersion('14') ?? [], parseVersion('14.0.0') ?? [])).toBe(0);
    expect(parseVersion('10.0.22631.3447')).toEqual([10, 0, 22631, 3447]);
    expect(parseVersion('14.5 (23F79)')).toEqual([14, 5]);
    const policy = accordPolicy({ min_os_version: { windows: '10.0.22631', android: '13' } });
    const run = (p: Partial<DevicePosture>) => decide({ deviceId: guid, lookup: answered([posture(p)]), policy, now: NOW });
    expect(run({ os_family: 'windows', os_version: '10.0.22621.2861' })).toMatchObject({ reason: 'os_version_below_minimum' });
    expect(run({ os_family: 'windows', os_version: '10.0.22631.1' })).toMatchObject({ reason: 'compliant' });
    expect(run({ os_family: 'android', os_version: '12' })).toMatchObject({ reason: 'os_version_below_minimum' });
    // A platform not listed is not limited.
    expect(run({ os_family: 'macos', os_version: '10.15' })).toMatchObject({ reason: 'compliant' });
  });

  it('a version that cannot be read fails the rule on a limited platform (documented), and says so without echoing it', () => {
    const policy = accordPolicy({ min_os_version: { macos: '14.0' } });
    for (const os_version of [null, 'Sonoma', '']) {
      const decision = decide({ deviceId: guid, lookup: answered([posture({ os_version })]), policy, now: NOW });
      expect(decision).toMatchObject({ decision: 'deny', reason: 'os_version_below_minimum' });
      expect(describeDecision(decision)).toContain('cannot be read');
      expect(describeDecision(decision)).not.toContain('Sonoma');
    }
  });
});

describe('max_threat_state and require_supervised', () => {
  it('compromised is above every level; readings that are not a level fail', () => {
    const policy = accordPolicy({ max_threat_state: 'highSeverity' });
    const run = (threat_state: DevicePosture['threat_state']) => decide({ deviceId: guid, lookup: answered([posture({ threat_state })]), policy, now: NOW }).reason;
    expect(run('highSeverity')).toBe('compliant');
    expect(run('secured')).toBe('compliant');
    for (const state of ['compromised', 'unknown', 'activated', 'deactivated', 'unresponsive', 'misconfigured'] as const) expect(run(state)).toBe('threat_state_too_high');
  });

  it('supervision is required of iOS only; a Mac without it passes', () => {
    const policy = accordPolicy({ require_supervised: true });
    expect(decide({ deviceId: guid, lookup: answered([posture({ os_family: 'macos', supervised: false })]), policy, now: NOW })).toMatchObject({ reason: 'compliant' });
  });
});

describe('the policy file refuses bad rules with a sentence that says what to write', () => {
  it.each([
    [{ require_encryption: 'yes' }, 'require_encryption: expected true or false'],
    [{ min_os_version: { macos: 14 } }, 'min_os_version.macos: expected a version in quotes'],
    [{ min_os_version: { macos: '14.x' } }, 'digits separated by dots'],
    [{ min_os_version: { linux: '6.1' } }, 'min_os_version.linux: unknown key'],
    [{ allowed_ownership: ['corporate'] }, 'expected one of company, personal, unknown'],
    [{ allowed_ownership: [] }, 'at least one ownership'],
    [{ allowed_management_agents: ['intune'] }, "expected one of Graph's managementAgent values"],
    [{ max_threat_state: 'medium' }, 'expected one of secured, lowSeverity, mediumSeverity, highSeverity'],
    [{ require_supervised: 1 }, 'require_supervised: expected true or false'],
  ])('%j', (rule, message) => {
    let error: unknown;
    try {
      accordPolicy(rule);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(String((error as ConfigError).message)).toContain(message);
  });
});

describe('an enrolled agent on the same machine (asset identity)', () => {
  const AGENT = '3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b';
  const agent = (over: { filevault?: boolean | null; osVersion?: string | null } = {}) => ({ agentId: AGENT, filevault: true, osVersion: '14.6', ...over });
  const run = (rule: Record<string, unknown>, record: Partial<DevicePosture>, agents: ReturnType<typeof agent>[]) =>
    decide({ deviceId: guid, lookup: answered([posture(record)]), policy: accordPolicy(rule), now: NOW, agents });

  it('require_encryption fails when either source says off, and the failure names the agent', () => {
    const decision = run({ require_encryption: true }, { is_encrypted: true }, [agent({ filevault: false })]);
    expect(decision).toMatchObject({ decision: 'deny', reason: 'not_encrypted' });
    expect('ruleFailures' in decision ? decision.ruleFailures : []).toEqual([{ rule: 'not_encrypted', osFamily: 'macos', source: 'agent', agentId: AGENT }]);
    expect(describeDecision(decision)).toContain('FileVault is off (as the endpoint agent reports)');
    // Intune's own failure is read first and named as Intune's.
    const both = run({ require_encryption: true }, { is_encrypted: false }, [agent({ filevault: false })]);
    expect('ruleFailures' in both ? both.ruleFailures[0] : null).toMatchObject({ source: 'intune' });
  });

  it('min_os_version fails on an agent reporting an older macOS than Intune', () => {
    const decision = run({ min_os_version: { macos: '14.4' } }, { os_version: '14.6' }, [agent({ osVersion: '14.2.1' })]);
    expect(decision).toMatchObject({ decision: 'deny', reason: 'os_version_below_minimum' });
    expect(describeDecision(decision)).toContain('macOS 14.2.1 is below 14.4 (as the endpoint agent reports)');
  });

  it('an agent that agrees, or did not report, or reports on another platform changes nothing', () => {
    expect(run({ require_encryption: true, min_os_version: { macos: '14.4' } }, {}, [agent()])).toMatchObject({ decision: 'allow', reason: 'compliant' });
    expect(run({ require_encryption: true }, {}, [agent({ filevault: null, osVersion: null })])).toMatchObject({ decision: 'allow' });
    expect(run({ require_encryption: true }, { os_family: 'windows', os_version: '10.0.22631' }, [agent({ filevault: false })])).toMatchObject({ decision: 'allow' });
    // No rule, no reading of agents.
    expect(run({}, {}, [agent({ filevault: false, osVersion: '12.0' })])).toMatchObject({ decision: 'allow', reason: 'compliant' });
  });
});
