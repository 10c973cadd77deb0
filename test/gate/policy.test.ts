import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { DEFAULT_DECISIONS, NO_POSTURE_RULES, buildGatePolicy, loadGatePolicy, resolveAccordPolicy, type GatePolicy } from '../../src/gate/index.js';

const EXAMPLES = path.resolve(import.meta.dirname, '../../examples');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gate-policy-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writePolicy(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** The policy a process started with this environment gets, or the lines it stops with. */
function startWith(env: Record<string, string>): GatePolicy | string[] {
  try {
    return loadGatePolicy(loadConfig(env));
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

const problemsOf = (yaml: string, env: Record<string, string> = {}): string[] => {
  const outcome = startWith({ ...env, INTUNE_POLICY_FILE: writePolicy(`p-${Math.random().toString(36).slice(2)}.yaml`, yaml) });
  if (!Array.isArray(outcome)) throw new Error('expected the policy to be refused');
  return outcome;
};

describe('the shipped example policy', () => {
  it.each(['accord-policy.yaml', 'accord-policy.json'])('%s: the guide\'s two accords require compliance, others follow the environment', (name) => {
    const policy = startWith({ INTUNE_POLICY_FILE: path.join(EXAMPLES, name), INTUNE_COMPLIANCE_STRICT: 'true' }) as GatePolicy;
    expect(policy.file).toBe(path.join(EXAMPLES, name));
    for (const accord of ['infrastructure-operations', 'device-management']) {
      expect(resolveAccordPolicy(policy, accord)).toMatchObject({ accord, required: true, mode: 'strict', source: 'policy_file', decisions: DEFAULT_DECISIONS });
    }
    expect(resolveAccordPolicy(policy, 'read-only-reporting')).toMatchObject({ required: false, mode: 'strict', source: 'defaults', maxCheckinAgeMs: 30 * 86_400_000, gracePeriodCounts: true, rules: NO_POSTURE_RULES });
    expect(resolveAccordPolicy(policy, 'device-management').rules).toEqual({
      ...NO_POSTURE_RULES,
      requireEncryption: true,
      minOsVersion: { macos: '14.0', windows: '10.0.22631', ios: '17.0', android: '13' },
    });
  });
});

describe('global defaults from the environment', () => {
  it('without a policy file every accord gets INTUNE_COMPLIANCE_REQUIRED / _STRICT / _STALE_MAX', () => {
    const policy = startWith({ INTUNE_COMPLIANCE_REQUIRED: 'true', INTUNE_COMPLIANCE_STALE_MAX: '90' }) as GatePolicy;
    expect(policy.file).toBeNull();
    expect(resolveAccordPolicy(policy, 'anything')).toEqual({
      accord: 'anything',
      required: true,
      mode: 'permissive',
      maxCheckinAgeMs: 30 * 86_400_000,
      gracePeriodCounts: true,
      staleMaxMs: 90_000,
      decisions: DEFAULT_DECISIONS,
      rules: NO_POSTURE_RULES,
      source: 'defaults',
    });
    const unlimited = startWith({ INTUNE_COMPLIANCE_REQUIRED: 'true', INTUNE_COMPLIANCE_MAX_CHECKIN_AGE_DAYS: '0' }) as GatePolicy;
    expect(resolveAccordPolicy(unlimited, 'anything').maxCheckinAgeMs).toBeNull();
  });

  it('the file\'s defaults apply to all accords and each accord overrides them key by key', () => {
    const file = writePolicy(
      'layered.yaml',
      `defaults:
  max_checkin_age_days: 30
  stale_max_seconds: 60
  decisions: { compliance_unknown: allow }
accords:
  device-management:
    device_compliance_required: true
    strict: true
    max_checkin_age_days: 0.5
    grace_period_counts: false
    decisions: { stale_checkin: allow }
  reporting:
    max_checkin_age_days: null
`,
    );
    const policy = startWith({ INTUNE_POLICY_FILE: file, INTUNE_COMPLIANCE_STALE_MAX: '300' }) as GatePolicy;
    expect(resolveAccordPolicy(policy, 'device-management')).toMatchObject({
      required: true,
      mode: 'strict',
      maxCheckinAgeMs: 12 * 3_600_000,
      gracePeriodCounts: false,
      staleMaxMs: 60_000,
      decisions: { ...DEFAULT_DECISIONS, compliance_unknown: 'allow', stale_checkin: 'allow' },
    });
    expect(resolveAccordPolicy(policy, 'reporting')).toMatchObject({ required: false, maxCheckinAgeMs: null, decisions: { ...DEFAULT_DECISIONS, compliance_unknown: 'allow' } });
    expect(resolveAccordPolicy(policy, 'unlisted')).toMatchObject({ maxCheckinAgeMs: 30 * 86_400_000, staleMaxMs: 60_000, source: 'defaults' });
  });

  it('an accord named like an Object.prototype property is just an accord', () => {
    const policy = buildGatePolicy({ intuneEnabled: true, compliance: { requiredByDefault: false, strict: false, staleMaxMs: 0 } }, { accords: { constructor: { device_compliance_required: true } } });
    expect(resolveAccordPolicy(policy, 'constructor').required).toBe(true);
    expect(resolveAccordPolicy(policy, 'toString').required).toBe(false);
  });

  it.each([
    ['proto.json', '{ "accords": { "__proto__": { "device_compliance_required": true } } }'],
    ['proto.yaml', 'accords:\n  __proto__:\n    device_compliance_required: true\n'],
  ])('%s: an accord named __proto__ is never silently dropped (it would not require compliance)', (name, text) => {
    const outcome = startWith({ INTUNE_POLICY_FILE: writePolicy(name, text) });
    if (Array.isArray(outcome)) {
      expect(outcome.join('\n')).toMatch(/accords\.__proto__/);
    } else {
      expect(resolveAccordPolicy(outcome, '__proto__')).toMatchObject({ required: true, source: 'policy_file' });
    }
  });
});

describe('a bad policy file stops start-up, naming the accord and the key', () => {
  it('a wrong type', () => {
    expect(problemsOf('accords:\n  device-management:\n    max_checkin_age_days: "seven"\n')).toEqual([
      expect.stringMatching(/: accords\.device-management\.max_checkin_age_days: expected a number/),
    ]);
  });

  it('every problem at once, each on its own line', () => {
    const problems = problemsOf(`accords:
  device-management:
    device_compliance_required: "yes"
    max_checkin_age_days: -1
    grace_period: true
  "bad name!":
    strict: true
  ok-accord:
    stale_max_seconds: 1.5
`);
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(/accords\.device-management\.device_compliance_required: expected true or false/);
    expect(problems.join('\n')).toMatch(/accords\.device-management\.max_checkin_age_days: expected a number greater than 0/);
    expect(problems.join('\n')).toMatch(/accords\.device-management\.grace_period: unknown key/);
    expect(problems.join('\n')).toMatch(/accords\.bad name!: is not a valid accord name/);
    expect(problems.join('\n')).toMatch(/accords\.ok-accord\.stale_max_seconds: expected a whole number of seconds/);
  });

  it('decision overrides: only overridable rows, only allow or deny', () => {
    const problems = problemsOf(`accords:
  a:
    decisions:
      compliant: deny
      audit_unavailable: allow
      device_id_missing: allow
      in_grace_period: deny
      noncompliant: maybe
      made_up: allow
`).join('\n');
    expect(problems).toMatch(/accords\.a\.decisions\.compliant: cannot be overridden: a compliant device always allows/);
    expect(problems).toMatch(/accords\.a\.decisions\.audit_unavailable: cannot be overridden: a decision is never given without its audit record/);
    expect(problems).toMatch(/accords\.a\.decisions\.device_id_missing: cannot be overridden: set strict: false \(permissive\) instead/);
    expect(problems).toMatch(/accords\.a\.decisions\.in_grace_period: cannot be overridden: set grace_period_counts instead/);
    expect(problems).toMatch(/accords\.a\.decisions\.noncompliant: expected allow or deny/);
    expect(problems).toMatch(/accords\.a\.decisions\.made_up: is not a reason of the decision table/);
  });

  it('defaults: refuses the two settings whose global default lives in the environment', () => {
    expect(problemsOf('defaults:\n  strict: true\n  device_compliance_required: true\n')).toEqual([
      expect.stringMatching(/defaults\.strict: the global default is INTUNE_COMPLIANCE_STRICT/),
      expect.stringMatching(/defaults\.device_compliance_required: the global default is INTUNE_COMPLIANCE_REQUIRED/),
    ]);
  });

  it('an accord may only shorten the stale window', () => {
    expect(problemsOf('accords:\n  a:\n    stale_max_seconds: 600\n', { INTUNE_COMPLIANCE_STALE_MAX: '300' })).toEqual([
      expect.stringMatching(/accords\.a\.stale_max_seconds: 600 is longer than INTUNE_COMPLIANCE_STALE_MAX \(300 s\)/),
    ]);
  });

  it('unknown top-level keys, a wrong version, an accord that is not a mapping', () => {
    const problems = problemsOf('version: 2\naccord:\n  a: {}\naccords:\n  b: true\n').join('\n');
    expect(problems).toMatch(/version: expected 1/);
    expect(problems).toMatch(/accord: unknown key/);
    expect(problems).toMatch(/accords\.b: expected a mapping of settings/);
  });

  it('the same accord twice, broken YAML, broken JSON, a file that is not a mapping', () => {
    expect(problemsOf('accords:\n  a: {}\n  a: {}\n')).toEqual([expect.stringMatching(/is not valid YAML: Map keys must be unique/)]);
    expect(problemsOf('accords: [\n')).toEqual([expect.stringMatching(/is not valid YAML/)]);
    expect(startWith({ INTUNE_POLICY_FILE: writePolicy('broken.json', '{"accords": ') })).toEqual([expect.stringMatching(/is not valid JSON/)]);
    expect(problemsOf('- a\n- b\n')).toEqual([expect.stringMatching(/\(file\): expected a mapping with `accords:`/)]);
  });

  it('a missing file, an unknown extension', () => {
    expect(startWith({ INTUNE_POLICY_FILE: path.join(dir, 'nope.yaml') })).toEqual([expect.stringMatching(/nope\.yaml does not exist: create it \(see examples\/accord-policy\.yaml\) or unset INTUNE_POLICY_FILE/)]);
    expect(startWith({ INTUNE_POLICY_FILE: writePolicy('policy.txt', 'accords: {}') })).toEqual([expect.stringMatching(/must end in \.yaml, \.yml or \.json/)]);
  });

  it('an empty file is an empty policy', () => {
    const policy = startWith({ INTUNE_POLICY_FILE: writePolicy('empty.yaml', '') }) as GatePolicy;
    expect(policy.accords.size).toBe(0);
  });
});

describe('INTUNE_ENABLED=false with an accord that requires compliance is a contradiction', () => {
  it('by the global default', () => {
    expect(startWith({ INTUNE_ENABLED: 'false', INTUNE_COMPLIANCE_REQUIRED: 'true' })).toEqual([
      expect.stringMatching(/INTUNE_ENABLED=false contradicts INTUNE_COMPLIANCE_REQUIRED=true: every accord would require .* set INTUNE_ENABLED=true or INTUNE_COMPLIANCE_REQUIRED=false/),
    ]);
  });

  it('by the policy file, naming the accord', () => {
    const problems = startWith({ INTUNE_ENABLED: 'false', INTUNE_POLICY_FILE: path.join(EXAMPLES, 'accord-policy.yaml') });
    expect(problems).toEqual([
      expect.stringMatching(/INTUNE_ENABLED=false contradicts INTUNE_POLICY_FILE .*accord "infrastructure-operations" requires device compliance/),
      expect.stringMatching(/accord "device-management" requires device compliance \(accords\.device-management\.device_compliance_required\)/),
    ]);
  });

  it('the thrown error is the config module\'s ConfigError, so the CLI exits 3', () => {
    expect(() => loadGatePolicy(loadConfig({ INTUNE_ENABLED: 'false', INTUNE_COMPLIANCE_REQUIRED: 'true' }))).toThrow(ConfigError);
  });

  it('with nothing required, a disabled connector is fine', () => {
    const policy = startWith({ INTUNE_ENABLED: 'false', INTUNE_POLICY_FILE: writePolicy('off.yaml', 'accords:\n  a:\n    device_compliance_required: false\n') });
    expect(Array.isArray(policy)).toBe(false);
  });
});
