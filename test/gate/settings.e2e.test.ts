/**
 * Why a device is not compliant, end to end from a tenant file: a device carrying its own
 * deviceCompliancePolicyStates (Graph's shape) is served by the simulator, read by the real
 * connector over HTTPS, and the gate's deny names the failing setting (identifier only) in its
 * answer and in DEVICE_COMPLIANCE_CHECKED. Canary values in every settingState field must never
 * appear in the answer, the event, or get_compliance's result.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateEventData } from '../../src/chronicle/index.js';
import { forEachDatabase } from '../helpers/db.js';
import { TENANT, openGateWorld, recordedChecks, type GateWorld } from './helpers.js';

const NOW = Date.now();
const hoursAgo = (h: number) => new Date(NOW - h * 3_600_000).toISOString();
const canary = (field: string) => `CANARY-${field}-7f3a9c`;
const SETTING_FIELDS = ['settingName', 'instanceDisplayName', 'errorDescription', 'userId', 'userName', 'userEmail', 'userPrincipalName', 'currentValue'] as const;

const NONCOMPLIANT = { id: 'a1b2c3d4-0000-4000-8000-000000000001', azureADDeviceId: 'e1e1e1e1-0000-4000-8000-000000000001' };
const COMPLIANT = { id: 'a1b2c3d4-0000-4000-8000-000000000002', azureADDeviceId: 'e1e1e1e1-0000-4000-8000-000000000002' };
const GENERATED = { id: 'a1b2c3d4-0000-4000-8000-000000000003', azureADDeviceId: 'e1e1e1e1-0000-4000-8000-000000000003' };

function settingState(setting: string, state: string): Record<string, unknown> {
  return {
    '@odata.type': 'microsoft.graph.deviceCompliancePolicySettingState',
    setting,
    state,
    errorCode: 0,
    ...Object.fromEntries(SETTING_FIELDS.map((f) => [f, canary(f)])),
    sources: [{ id: canary('sources.id'), displayName: canary('sources.displayName'), sourceType: 'deviceConfiguration' }],
  };
}

const TENANT_FILE = [
  {
    ...NONCOMPLIANT,
    operatingSystem: 'macOS',
    osVersion: '14.6.1',
    complianceState: 'noncompliant',
    isEncrypted: false,
    lastSyncDateTime: hoursAgo(1),
    userPrincipalName: 'canary.user@contoso.example',
    deviceCompliancePolicyStates: [
      {
        '@odata.type': '#microsoft.graph.deviceCompliancePolicyState',
        id: 'b0b0b0b0-0000-4000-8000-000000000001',
        settingStates: [
          settingState('MacOSCompliancePolicy.StorageRequireEncryption', 'nonCompliant'),
          settingState('MacOSCompliancePolicy.FirewallEnabled', 'nonCompliant'),
          settingState('MacOSCompliancePolicy.PasswordRequired', 'compliant'),
          // Not an identifier: free text where the id should be is dropped, never shown.
          settingState(`${canary('setting')} <b>free text</b>`, 'nonCompliant'),
        ],
        displayName: 'Mac baseline',
        version: 3,
        platformType: 'macOS',
        state: 'nonCompliant',
        settingCount: 4,
      },
    ],
  },
  { ...COMPLIANT, operatingSystem: 'macOS', osVersion: '15.1', complianceState: 'compliant', isEncrypted: true, lastSyncDateTime: hoursAgo(1) },
  { ...GENERATED, operatingSystem: 'Windows', osVersion: '10.0.19045.5131', complianceState: 'noncompliant', isEncrypted: false, lastSyncDateTime: hoursAgo(2) },
];

forEachDatabase('per-setting compliance end to end (tenant file)', (create) => {
  let world: GateWorld;
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-settings-'));
    const tenantFile = path.join(dir, 'tenant.json');
    fs.writeFileSync(tenantFile, JSON.stringify(TENANT_FILE));
    world = await openGateWorld(create, {
      policy: { accords: { 'device-management': { device_compliance_required: true, strict: true } } },
      simulator: { tenantFile },
    });
  });
  afterAll(async () => {
    await world?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a noncompliant Mac: deny noncompliant, naming FileVault and the firewall by setting id, recorded without any Graph text', async () => {
    const result = await world.gate.check({ accord: 'device-management', claims: { deviceid: NONCOMPLIANT.azureADDeviceId } });
    expect(result).toMatchObject({
      decision: 'deny',
      reason: 'noncompliant',
      failing_settings: ['MacOSCompliancePolicy.StorageRequireEncryption', 'MacOSCompliancePolicy.FirewallEnabled'],
    });
    expect(result.message).toContain('FileVault is off; the firewall is off');
    const [event] = (await recordedChecks(world.db, TENANT)).slice(-1);
    expect(event?.data['failing_settings']).toEqual(['MacOSCompliancePolicy.StorageRequireEncryption', 'MacOSCompliancePolicy.FirewallEnabled']);
    expect(validateEventData('DEVICE_COMPLIANCE_CHECKED', event?.data).ok).toBe(true);
    const text = JSON.stringify({ result, event });
    expect(text).not.toContain('CANARY');
    expect(text).not.toContain('Mac baseline');
    expect(text).not.toContain('canary.user@contoso.example');
  });

  it('policy states are read only for a deny, and cached and coalesced like compliance', async () => {
    const before = world.connector.policyStatesCacheStats();
    expect((await world.gate.check({ accord: 'device-management', claims: { deviceid: COMPLIANT.azureADDeviceId } })).failing_settings).toEqual([]);
    expect(world.connector.policyStatesCacheStats().misses).toBe(before.misses);
    const burst = await Promise.all(
      Array.from({ length: 5 }, () => world.gate.check({ accord: 'device-management', claims: { deviceid: GENERATED.azureADDeviceId } })),
    );
    for (const r of burst) expect(r.failing_settings).toContain('Windows10CompliancePolicy.BitLockerEnabled');
    const after = world.connector.policyStatesCacheStats();
    expect(after.misses - before.misses).toBe(1);
    expect(after.hits + after.coalesced - before.hits - before.coalesced).toBe(4);
    expect(burst[0]?.message).toContain('BitLocker is off');
  });

  it('get_compliance with include_policies lists failing setting ids, never the personal fields', async () => {
    const outcome = await world.connector.invoke(
      'get_compliance',
      { azure_ad_device_id: NONCOMPLIANT.azureADDeviceId, include_policies: true },
      { tenant: TENANT, actor: { kind: 'agent', id: 'a1' }, scope: { capabilities: ['READ'] }, requestId: 'r1' } as never,
    );
    expect(outcome.ok).toBe(true);
    const value = (outcome as { value: { policies: { failing_settings: string[] }[] } }).value;
    expect(value.policies[0]?.failing_settings).toEqual(['MacOSCompliancePolicy.StorageRequireEncryption', 'MacOSCompliancePolicy.FirewallEnabled']);
    expect(JSON.stringify(outcome)).not.toContain('CANARY');
  });
});

describe('the tenant file refuses policy states not in Graph shape', () => {
  it('names the device and the field', async () => {
    const { devicesFromJson } = await import('../../src/simulator/index.js');
    const bad = [{ ...COMPLIANT, deviceCompliancePolicyStates: [{ id: 'x', settingStates: [{ setting: 's', state: 'broken' }] }] }];
    expect(() => devicesFromJson(bad, 'tenant.json')).toThrow(/deviceCompliancePolicyStates\[0\]\.settingStates must be deviceCompliancePolicySettingState objects/);
  });
});
