/**
 * One redacted posture record for tests that need a device and care about a few of its fields:
 * a managed, compliant, company-owned Mac with nothing else said about it. Each test names what
 * it relies on through overrides, so a change here cannot silently change what a test checks.
 */
import type { DevicePosture } from '../../src/connector/posture.js';

export function samplePosture(overrides: Partial<DevicePosture> = {}): DevicePosture {
  return {
    device_id: '6b7c1a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b',
    azure_ad_device_id: null,
    os_family: 'macos',
    os_version: '14.5',
    compliance_state: 'compliant',
    grace_period_expires_at: null,
    is_encrypted: true,
    jailbroken: 'false',
    management_agent: 'mdm',
    management_state: 'managed',
    ownership: 'company',
    threat_state: 'unknown',
    supervised: false,
    enrolled_at: null,
    last_sync_at: null,
    model: 'MacBook Pro',
    manufacturer: 'Apple',
    serial_fingerprint: null,
    ...overrides,
  };
}
