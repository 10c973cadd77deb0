/**
 * Turns a Graph managedDevice into the redacted DevicePosture: the only shape in which a device
 * leaves the connector. It is built field by field from an allow-list, so a property Graph adds
 * tomorrow cannot slip through; everything about the person (names, UPN, e-mail, phone), the
 * hardware identifiers (IMEI, MEID, ICCID, UDID, MAC addresses) and secrets are dropped, and the
 * serial number survives only as a keyed fingerprint.
 */
import crypto from 'node:crypto';
import type { ManagedDevice } from './graph/types.js';
import { isGuid } from '../common/ids.js';
import { COMPLIANCE_STATES, THREAT_STATES, type ComplianceState, type DevicePosture, type OsFamily, type ThreatState } from './posture.js';

export const SERIAL_FINGERPRINT_PREFIX = 'hmac-sha256:';
/** A serial fingerprint as callers may pass one back: the prefix and 64 hex digits (either case). */
export const FINGERPRINT_PATTERN = /^hmac-sha256:[0-9a-fA-F]{64}$/;

/**
 * The keyed fingerprint of a serial number. Serials are compared trimmed and upper-cased, because
 * other sources (an endpoint agent, an asset register) report the same serial with other spacing
 * and case; the same machine then gets the same fingerprint under the same tenant key.
 */
export function fingerprintSerial(serial: unknown, fingerprintKey: Buffer): string | null {
  if (typeof serial !== 'string') return null;
  const normalized = serial.trim().toUpperCase();
  if (normalized === '') return null;
  return SERIAL_FINGERPRINT_PREFIX + crypto.createHmac('sha256', fingerprintKey).update(normalized, 'utf8').digest('hex');
}

export function osFamilyOf(operatingSystem: unknown): OsFamily {
  if (typeof operatingSystem !== 'string') return 'other';
  const os = operatingSystem.trim().toLowerCase();
  if (os === 'macos' || os === 'mac os' || os === 'mac os x' || os === 'osx') return 'macos';
  if (os.startsWith('windows')) return 'windows';
  if (os === 'ios' || os === 'ipados') return 'ios';
  if (os.startsWith('android')) return 'android';
  if (os === 'linux' || os.startsWith('linux')) return 'linux';
  return 'other';
}

function jailbrokenOf(value: unknown): DevicePosture['jailbroken'] {
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase();
    if (v === 'true') return 'true';
    if (v === 'false') return 'false';
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return 'unknown';
}

/**
 * Graph's non-nullable DateTimeOffsets use 0001-01-01 for "never" and 9999-12-31 for "no grace
 * period"; both mean null here. Anything that does not parse is null too, not a crash.
 */
export function dateOrNull(value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return null;
  if (value.startsWith('0001-01-01') || value.startsWith('9999-12-31')) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

function textOrNull(value: unknown, maxLength = 256): string | null {
  if (typeof value !== 'string') return null;
  const v = value.trim();
  return v === '' ? null : v.slice(0, maxLength);
}

const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

/**
 * The Entra device id, or null. A value that is not a GUID is treated as absent: it is never
 * matched, echoed, stored or exported (it could be anything a record was given), and a sync counts
 * such records (invalidAzureADDeviceIdOf tells it).
 */
function entraIdOf(value: unknown): string | null {
  const v = textOrNull(value, 64);
  return v === null || v === ZERO_GUID || !isGuid(v) ? null : v.toLowerCase();
}

/** True when Graph sent an azureADDeviceId that is neither empty, the zero GUID, nor a GUID. */
export function invalidAzureADDeviceIdOf(device: ManagedDevice): boolean {
  const v = textOrNull(device.azureADDeviceId, 1024);
  return v !== null && v !== ZERO_GUID && !isGuid(v);
}

function threatStateOf(value: unknown): ThreatState {
  return (THREAT_STATES as readonly unknown[]).includes(value) ? (value as ThreatState) : 'unknown';
}

function complianceStateOf(value: unknown): ComplianceState {
  return (COMPLIANCE_STATES as readonly unknown[]).includes(value) ? (value as ComplianceState) : 'unknown';
}

function ownershipOf(value: unknown): DevicePosture['ownership'] {
  return value === 'company' || value === 'personal' ? value : 'unknown';
}

/**
 * The Graph properties redactDevice reads, and the only ones a sync asks Graph for ($select): a
 * page is a third of its full size, and names, UPNs, e-mail addresses and hardware identifiers
 * never cross the wire at all. A test checks that redactDevice reads nothing else.
 */
export const POSTURE_SOURCE_PROPERTIES = [
  'id',
  'azureADDeviceId',
  'operatingSystem',
  'osVersion',
  'complianceState',
  'complianceGracePeriodExpirationDateTime',
  'isEncrypted',
  'jailBroken',
  'managementAgent',
  'managementState',
  'managedDeviceOwnerType',
  'partnerReportedThreatState',
  'isSupervised',
  'enrolledDateTime',
  'lastSyncDateTime',
  'model',
  'manufacturer',
  'serialNumber',
] as const;

/** The redacted posture of one Graph managedDevice, with the serial fingerprinted under the tenant's key. */
export function redactDevice(device: ManagedDevice, fingerprintKey: Buffer): DevicePosture {
  return {
    device_id: String(device.id).toLowerCase(),
    azure_ad_device_id: entraIdOf(device.azureADDeviceId),
    os_family: osFamilyOf(device.operatingSystem),
    os_version: textOrNull(device['osVersion'], 64),
    compliance_state: complianceStateOf(device.complianceState),
    grace_period_expires_at: dateOrNull(device.complianceGracePeriodExpirationDateTime),
    is_encrypted: device['isEncrypted'] === true,
    jailbroken: jailbrokenOf(device['jailBroken']),
    management_agent: textOrNull(device['managementAgent'], 64) ?? 'unknown',
    management_state: textOrNull(device['managementState'], 64) ?? 'unknown',
    ownership: ownershipOf(device['managedDeviceOwnerType']),
    threat_state: threatStateOf(device['partnerReportedThreatState']),
    supervised: device['isSupervised'] === true,
    enrolled_at: dateOrNull(device['enrolledDateTime']),
    last_sync_at: dateOrNull(device.lastSyncDateTime),
    model: textOrNull(device['model'], 128),
    manufacturer: textOrNull(device['manufacturer'], 128),
    serial_fingerprint: fingerprintSerial(device['serialNumber'], fingerprintKey),
  };
}
