/** The simulator's deviceCompliancePolicyStates against Microsoft's v1.0 property lists (specs/graph). */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateTenant } from '../../src/simulator/index.js';
import { POLICY_STATE_PROPERTIES, SETTING_STATE_PROPERTIES, generatePolicyStates, policyStatesProblem } from '../../src/simulator/compliance-settings.js';
import { COMPLIANCE_STATUS_VALUES, CompliancePolicyStateSchema } from '../../src/connector/graph/schemas.js';

interface Spec {
  name: string;
  pii: boolean;
  enum?: string[];
}
const read = (file: string): Spec[] => JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../specs/graph', file), 'utf8')) as Spec[];
const POLICY_SPEC = read('deviceCompliancePolicyState.v1.json');
const SETTING_SPEC = read('deviceCompliancePolicySettingState.v1.json');

describe('deviceCompliancePolicyStates in Graph v1.0 shape', () => {
  it('the simulator and the connector embed exactly the properties and members of the spec files', () => {
    expect(Object.keys(POLICY_STATE_PROPERTIES)).toEqual(POLICY_SPEC.map((p) => p.name));
    expect(Object.keys(SETTING_STATE_PROPERTIES)).toEqual(SETTING_SPEC.map((p) => p.name));
    expect([...COMPLIANCE_STATUS_VALUES]).toEqual(SETTING_SPEC.find((p) => p.name === 'state')?.enum);
    expect(SETTING_SPEC.filter((p) => p.pii).map((p) => p.name)).toEqual(['userId', 'userName', 'userEmail', 'userPrincipalName', 'currentValue']);
  });

  it('generated states of every platform validate, carry every setting-state field, and agree with the device', () => {
    const devices = generateTenant(300, 'settings-spec');
    const platforms = new Set<string>();
    for (const device of devices) {
      const states = generatePolicyStates(device);
      expect(policyStatesProblem(states)).toBeUndefined();
      platforms.add(String(states[0]?.['platformType']));
      for (const policy of states) {
        expect(Object.keys(policy).filter((k) => !k.startsWith('@odata.')).sort()).toEqual(POLICY_SPEC.map((p) => p.name).sort());
        for (const s of policy['settingStates'] as Record<string, unknown>[]) {
          expect(Object.keys(s).filter((k) => !k.startsWith('@odata.')).sort()).toEqual(SETTING_SPEC.map((p) => p.name).sort());
        }
      }
      const failing = states.flatMap((p) => (p['settingStates'] as { setting: string; state: string }[]).filter((s) => s.state === 'nonCompliant').map((s) => s.setting));
      if (device['complianceState'] === 'compliant') expect(failing).toEqual([]);
      if (device['complianceState'] === 'noncompliant') expect(failing.length).toBeGreaterThan(0);
      if (device['complianceState'] === 'noncompliant' && device['isEncrypted'] === false && device['operatingSystem'] === 'macOS') {
        expect(failing).toContain('MacOSCompliancePolicy.StorageRequireEncryption');
      }
    }
    expect([...platforms].sort()).toEqual(expect.arrayContaining(['macOS', 'windows10AndLater', 'iOS', 'androidForWork']));
  });

  it('the connector keeps only the setting id and state of each settingState', () => {
    const device = generateTenant(20, 'settings-parse').find((d) => d['complianceState'] === 'noncompliant');
    const parsed = CompliancePolicyStateSchema.parse(generatePolicyStates(device ?? {})[0]);
    for (const s of parsed.settingStates) expect(Object.keys(s).sort()).toEqual(['setting', 'state']);
    const text = JSON.stringify(parsed);
    for (const name of ['userPrincipalName', 'userEmail', 'userName', 'currentValue', 'settingName']) expect(text).not.toContain(name);
  });
});
