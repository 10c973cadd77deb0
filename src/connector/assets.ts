/**
 * What the connector knows of asset identity: enrolled agents that see the same machine as an
 * Intune record, and assets found by serial fingerprint. Asset identity lives above the connector
 * (src/assets); the host injects a lookup, so get_device and get_compliance can say when an agent
 * sees the machine and find_asset can answer, without the connector importing it.
 */
import { z } from 'zod';
import { FINGERPRINT_PATTERN } from './redaction.js';

const triState = z.boolean().nullable().describe('null: the agent did not report it.');

export const EndpointAgentSchema = z
  .object({
    agent_id: z.string().describe('The enrolled agent that sees the same machine (same serial fingerprint or Entra device id).'),
    asset_id: z.string().describe('The asset both belong to (GET /api/v1/assets/{asset_id}).'),
    last_seen_at: z.string().nullable().describe('The agent\'s last heartbeat.'),
    confidence: z.enum(['agent', 'stale']).describe('stale: no heartbeat for 24 hours.'),
    os_version: z.string().nullable(),
    filevault: triState,
    firewall: triState,
    sip: triState,
    gatekeeper: triState,
    disagreements: z.array(z.string()).describe('Attributes on which the agent and Intune disagree (e.g. encrypted: Intune says encrypted, FileVault is off).'),
  })
  .strict();
export type EndpointAgent = z.infer<typeof EndpointAgentSchema>;

const confidence = z.enum(['mdm', 'agent', 'stale']);
const kind = z.enum(['intune', 'agent']);
const value = z.union([z.string(), z.boolean(), z.null()]);

export const FoundAssetSchema = z
  .object({
    asset_id: z.string(),
    os_family: z.string(),
    serial_fingerprint: z.string().nullable(),
    sources: z.array(
      z
        .object({ kind, id: z.string(), connection_id: z.string().optional(), last_seen_at: z.string().nullable(), confidence })
        .strict(),
    ),
    attributes: z
      .record(z.string(), z.object({ value, source: kind, source_id: z.string(), confidence }).strict())
      .describe('Each attribute of the merged posture with its source (intune | agent) and confidence (mdm | agent | stale).'),
    disagreements: z.array(
      z.object({ attribute: z.string(), values: z.array(z.object({ source: kind, source_id: z.string(), value, confidence }).strict()) }).strict(),
    ),
    conflicts: z.array(
      z
        .object({
          conflict_id: z.string(),
          kind: z.string(),
          serial_fingerprint: z.string().nullable(),
          entra_device_id: z.string().nullable(),
          asset_ids: z.array(z.string()),
          sources: z.array(z.object({ kind, id: z.string() }).strict()),
          detected_at: z.string(),
        })
        .strict(),
    ),
  })
  .strict();
export type FoundAsset = z.infer<typeof FoundAssetSchema>;

export const FindAssetInputSchema = z
  .object({
    fingerprint: z
      .string({ error: 'must be a string' })
      .regex(FINGERPRINT_PATTERN, { error: 'must be a serial fingerprint as the posture shows it: hmac-sha256: followed by 64 hex digits' })
      .describe('The serial_fingerprint of a device or an agent (hmac-sha256:…).'),
  })
  .strict();
export const FindAssetOutputSchema = z
  .object({
    assets: z.array(FoundAssetSchema).describe('Usually one; several only when a conflict names them (two machines claim one serial).'),
  })
  .strict();

/** The host's asset identity, as the connector uses it. */
export interface ConnectorAssets {
  /** Agents that see the same machine as any of these Intune records. */
  endpointAgents(tenant: string, intuneDeviceIds: readonly string[]): Promise<EndpointAgent[]>;
  byFingerprint(tenant: string, fingerprint: string): Promise<FoundAsset[]>;
}
