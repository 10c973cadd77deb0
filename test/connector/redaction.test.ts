import crypto from 'node:crypto';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DevicePostureSchema } from '../../src/connector/posture.js';
import type { ManagedDevice } from '../../src/connector/graph/types.js';
import { dateOrNull, fingerprintSerial, osFamilyOf, POSTURE_SOURCE_PROPERTIES, redactDevice } from '../../src/connector/redaction.js';
import { generateTenant } from '../../src/simulator/index.js';

const sample = JSON.parse(fs.readFileSync(new URL('../../specs/graph/sample-managedDevice-macos.json', import.meta.url), 'utf8')) as ManagedDevice;
const spec = JSON.parse(fs.readFileSync(new URL('../../specs/graph/managedDevice.v1.json', import.meta.url), 'utf8')) as { name: string; pii: boolean }[];
const key = crypto.randomBytes(32);

describe('redactDevice', () => {
  it('turns the sample macOS device into a strict DevicePosture', () => {
    const posture = redactDevice(sample, key);
    expect(DevicePostureSchema.parse(posture)).toEqual(posture);
    expect(posture).toMatchObject({
      device_id: '0fa4e5e1-0000-4000-8000-00000000a001',
      azure_ad_device_id: '0fa4e5e1-0000-4000-8000-00000000c001',
      os_family: 'macos',
      os_version: '14.6.1',
      compliance_state: 'compliant',
      grace_period_expires_at: null,
      is_encrypted: true,
      jailbroken: 'unknown',
      management_agent: 'mdm',
      management_state: 'managed',
      ownership: 'company',
      enrolled_at: '2025-03-14T16:41:07.000Z',
      last_sync_at: '2025-06-02T08:15:42.000Z',
      model: 'MacBook Pro',
      manufacturer: 'Apple',
    });
    expect(posture.serial_fingerprint).toBe(`hmac-sha256:${crypto.createHmac('sha256', key).update('FAKESN0MAC01').digest('hex')}`);
  });

  it('reads only POSTURE_SOURCE_PROPERTIES, so a sync that $selects them builds the same posture', () => {
    for (const device of [sample, ...(generateTenant(30, 'redaction-select') as unknown as ManagedDevice[])]) {
      const read = new Set<string>();
      const watched = new Proxy(device, {
        get(target, property, receiver) {
          if (typeof property === 'string') read.add(property);
          return Reflect.get(target, property, receiver) as unknown;
        },
      });
      const full = redactDevice(watched, key);
      expect([...read].filter((p) => !(POSTURE_SOURCE_PROPERTIES as readonly string[]).includes(p))).toEqual([]);
      const selected = Object.fromEntries(POSTURE_SOURCE_PROPERTIES.map((p) => [p, device[p]])) as unknown as ManagedDevice;
      expect(redactDevice(selected, key)).toEqual(full);
    }
  });

  it('leaves no PII value of the sample anywhere in the output', () => {
    const out = JSON.stringify(redactDevice(sample, key));
    const piiProps = spec.filter((p) => p.pii && p.name !== 'azureADDeviceId').map((p) => p.name);
    expect(piiProps.length).toBeGreaterThan(10);
    for (const prop of piiProps) {
      const value = sample[prop];
      if (typeof value === 'string' && value.length >= 4) expect(out, prop).not.toContain(value);
    }
    // A property Graph adds tomorrow does not pass either: the posture is an allow-list.
    const extended = { ...sample, someFutureProperty: 'leaky-value-123' } as ManagedDevice;
    expect(JSON.stringify(redactDevice(extended, key))).not.toContain('leaky-value-123');
  });

  it('maps operating systems to families', () => {
    expect(['macOS', 'Windows', 'iOS', 'iPadOS', 'Android', 'AndroidEnterprise', 'AndroidForWork', 'Linux', 'ChromeOS', '', null].map(osFamilyOf)).toEqual([
      'macos',
      'windows',
      'ios',
      'ios',
      'android',
      'android',
      'android',
      'linux',
      'other',
      'other',
      'other',
    ]);
  });

  it('maps jailBroken and the date sentinels', () => {
    const r = (patch: Record<string, unknown>) => redactDevice({ ...sample, ...patch } as ManagedDevice, key);
    expect(r({ jailBroken: 'True' }).jailbroken).toBe('true');
    expect(r({ jailBroken: 'False' }).jailbroken).toBe('false');
    expect(r({ jailBroken: 'Unknown' }).jailbroken).toBe('unknown');
    expect(r({ complianceGracePeriodExpirationDateTime: '2025-07-01T00:00:00Z' }).grace_period_expires_at).toBe('2025-07-01T00:00:00.000Z');
    expect(r({ lastSyncDateTime: '0001-01-01T00:00:00Z' }).last_sync_at).toBeNull();
    expect(dateOrNull('not a date')).toBeNull();
    expect(r({ managedDeviceOwnerType: 'unknown' }).ownership).toBe('unknown');
    expect(r({ azureADDeviceId: '00000000-0000-0000-0000-000000000000' }).azure_ad_device_id).toBeNull();
  });

  it('fingerprints serials under the tenant key: stable per key, different across keys, null when empty', () => {
    const other = crypto.randomBytes(32);
    expect(fingerprintSerial('FAKESN0MAC01', key)).toBe(fingerprintSerial(' fakesn0mac01 ', key));
    expect(fingerprintSerial('FAKESN0MAC01', key)).not.toBe(fingerprintSerial('FAKESN0MAC01', other));
    expect(fingerprintSerial('', key)).toBeNull();
    expect(redactDevice({ ...sample, serialNumber: '' } as ManagedDevice, key).serial_fingerprint).toBeNull();
  });
});
