/**
 * What the connector knows of asset identity: enrolled agents that see the same machine as an
 * Intune record, and assets found by serial fingerprint. Asset identity lives above the connector
 * (src/assets); the host injects a lookup, so get_device and get_compliance can say when an agent
 * sees the machine and find_asset can answer, without the connector importing it.
 */
import { z } from 'zod';
import { dateTimeString as dateTime, guidString as guid } from '../common/schemas.js';
import { OS_FAMILIES } from './posture.js';
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

/** Where an asset's sources come from: Intune records and enrolled agents. */
export const SOURCE_KINDS = ['intune', 'agent'] as const;
/** Why sources were not merged: one serial on several machines, or one Entra device id on several assets. */
export const CONFLICT_KINDS = ['serial_on_several_machines', 'entra_device_id_on_several_assets'] as const;

const confidence = z
  .enum(['mdm', 'agent', 'stale'])
  .describe('mdm - Intune management channel; agent - an enrolled agent over mTLS; stale - its source is older than the staleness age.');
const kind = z.enum(SOURCE_KINDS);

/**
 * One machine as asset identity sees it: what find_asset answers and GET /api/v1/assets lists,
 * declared once (the REST API serialises by the JSON Schema derived from it).
 */
export const FoundAssetSchema = z
  .object({
    asset_id: guid,
    os_family: z.enum(OS_FAMILIES),
    serial_fingerprint: z.string().nullable(),
    sources: z.array(
      z
        .object({
          kind,
          id: z.string().describe('Intune managed device id or agent id.'),
          connection_id: z.string().optional().describe('Intune records only.'),
          last_seen_at: dateTime.nullable().describe('Intune - last check-in; agent - last heartbeat (its enrollment until the first).'),
          confidence,
        })
        .strict(),
    ),
    attributes: z
      .record(
        z.string(),
        z
          .object({
            value: z.union([z.string(), z.boolean()]).describe('The value the precedence chose (README, Assets).'),
            source: kind,
            source_id: z.string(),
            confidence,
          })
          .strict(),
      )
      .describe(
        'Each attribute of the merged posture (os_family, os_version, compliance_state, encrypted, firewall, sip, gatekeeper, jailbroken, ownership, management_agent, model, manufacturer) with its source (intune | agent) and confidence (mdm | agent | stale); an attribute no source reports is absent.',
      ),
    disagreements: z.array(
      z
        .object({
          attribute: z.string(),
          values: z.array(z.object({ source: kind, source_id: z.string(), value: z.union([z.string(), z.boolean(), z.null()]), confidence }).strict()),
        })
        .strict(),
    ),
    conflicts: z.array(
      z
        .object({
          conflict_id: guid,
          kind: z.enum(CONFLICT_KINDS),
          serial_fingerprint: z.string().nullable(),
          entra_device_id: z.string().nullable(),
          asset_ids: z.array(guid),
          sources: z.array(z.object({ kind, id: z.string() }).strict()),
          detected_at: dateTime,
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
