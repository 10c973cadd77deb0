/**
 * The redacted device posture: the only shape in which a device leaves the connector (API, MCP,
 * events, snapshots, exports). It is an allow-list: ids, OS, compliance and management facts, and
 * a keyed fingerprint of the serial number. Nothing else of the Graph record survives.
 */
import { z } from 'zod';
import { MANAGED_DEVICE_PROPERTIES } from './graph/schemas.js';

export const COMPLIANCE_STATES = ['unknown', 'compliant', 'noncompliant', 'conflict', 'error', 'inGracePeriod', 'configManager'] as const;
export type ComplianceState = (typeof COMPLIANCE_STATES)[number];

export const OS_FAMILIES = ['macos', 'windows', 'ios', 'android', 'linux', 'other'] as const;
export type OsFamily = (typeof OS_FAMILIES)[number];

export const OWNERSHIPS = ['company', 'personal', 'unknown'] as const;
/** Graph's managementAgentType members, as Microsoft's metadata lists them (what management_agent can hold). */
export const MANAGEMENT_AGENTS: readonly string[] = MANAGED_DEVICE_PROPERTIES['managementAgent']?.enumValues ?? [];
export type Ownership = (typeof OWNERSHIPS)[number];

/** partnerReportedThreatState readings that are levels, lowest first (the gate's max_threat_state names one). */
export const THREAT_LEVELS = ['secured', 'lowSeverity', 'mediumSeverity', 'highSeverity'] as const;
export type ThreatLevel = (typeof THREAT_LEVELS)[number];

/** managedDevice.partnerReportedThreatState (a Mobile Threat Defense partner's reading), Graph's enum in Graph's order. */
export const THREAT_STATES = ['unknown', 'activated', 'deactivated', ...THREAT_LEVELS, 'unresponsive', 'compromised', 'misconfigured'] as const;
export type ThreatState = (typeof THREAT_STATES)[number];

export const DevicePostureSchema = z
  .object({
    device_id: z.string().describe('Intune managed device id (GUID).'),
    azure_ad_device_id: z.string().nullable().describe('Entra device id (the deviceid claim), or null when not Entra-registered.'),
    os_family: z.enum(OS_FAMILIES),
    os_version: z.string().nullable(),
    compliance_state: z.enum(COMPLIANCE_STATES),
    grace_period_expires_at: z
      .string()
      .nullable()
      .describe('When the compliance grace period ends (ISO 8601); null when the device is not in a grace period.'),
    is_encrypted: z.boolean(),
    jailbroken: z.enum(['true', 'false', 'unknown']),
    management_agent: z.string(),
    management_state: z.string(),
    ownership: z.enum(OWNERSHIPS),
    threat_state: z
      .enum(THREAT_STATES)
      .describe("The Mobile Threat Defense partner's reading (partnerReportedThreatState); unknown without a partner."),
    supervised: z.boolean().describe('Apple supervision (isSupervised); false on other platforms.'),
    enrolled_at: z.string().nullable(),
    last_sync_at: z.string().nullable().describe('Last successful check-in with Intune (ISO 8601).'),
    model: z.string().nullable(),
    manufacturer: z.string().nullable(),
    serial_fingerprint: z
      .string()
      .nullable()
      .describe('hmac-sha256 of the serial number under a per-tenant key: matches the same machine across sources without revealing the serial.'),
  })
  .strict();
export type DevicePosture = z.infer<typeof DevicePostureSchema>;

/**
 * Device ids whose redacted record differs between two snapshots of one connection (a check-in
 * included), or that are in one of them only: what asset identity re-matches after a sync instead
 * of comparing every live record with what it stored.
 */
export interface SnapshotChanges {
  readonly previousSnapshotId: string;
  readonly snapshotId: string;
  readonly deviceIds: readonly string[];
}
