/**
 * What the posture service answers, declared once in zod: the TypeScript types are inferred from
 * these schemas, the REST API derives the JSON Schema Fastify serialises responses with (fields not
 * declared here never leave), and test/api/contracts.test.ts compares them with specs/openapi.yaml.
 */
import { z } from 'zod';
import { dateTimeString as dateTime, guidString as guid, serialFingerprintOrNull } from '../common/schemas.js';
import { CLOUDS } from '../config/index.js';
import { COMPLIANCE_STATES, DevicePostureSchema, OS_FAMILIES } from '../connector/posture.js';

export const CONNECTION_STATUSES = ['active', 'disabled', 'error'] as const;
export const SYNC_TRIGGERS = ['manual', 'scheduled', 'startup'] as const;
export const SYNC_STATUSES = ['running', 'succeeded', 'failed'] as const;

const count = z.int().min(0);

/** A count per member of `values`; a member nothing was counted for may be absent. */
function countsBy<const T extends readonly string[]>(values: T) {
  const shape = Object.fromEntries(values.map((value) => [value, count.optional()])) as { [K in T[number]]: z.ZodOptional<typeof count> };
  return z.object(shape).strict();
}

/** A count per member of `values`, every member present (zero when none). */
function completeCountsBy<const T extends readonly string[]>(values: T) {
  const shape = Object.fromEntries(values.map((value) => [value, count])) as { [K in T[number]]: typeof count };
  return z.object(shape).strict();
}

export const SyncRunSummarySchema = z
  .object({
    id: guid,
    connection_id: guid,
    status: z.enum(SYNC_STATUSES),
    trigger: z.enum(SYNC_TRIGGERS),
    started_at: dateTime,
    finished_at: dateTime.nullable(),
    duration_ms: count.nullable(),
    devices: count,
    pages: count,
    graph_requests: count,
    throttled_waits: count,
    counts_by_compliance_state: countsBy(COMPLIANCE_STATES),
    counts_by_os_family: countsBy(OS_FAMILIES),
    error_code: z
      .string()
      .regex(/^[a-z_]{1,64}$/)
      .nullable()
      .describe('e.g. graph_unavailable, auth_failed, secret_unavailable, abandoned, cancelled.'),
    error_message: z.string().nullable().describe('A sentence safe to show an administrator: never a secret, a token or a Graph response body.'),
  })
  .strict();
export type SyncRunSummary = z.infer<typeof SyncRunSummarySchema>;

export const ConnectionSchema = z
  .object({
    id: guid,
    tenant: z.string(),
    display_name: z.string(),
    entra_tenant_id: z.string().describe('Entra tenant: GUID or primary domain.'),
    client_id: z.string().describe('Application (client) id: GUID.'),
    cloud: z.enum(CLOUDS),
    secret_ref: z.string().describe('A SecretProvider reference (env:NAME or file:/path), never the secret itself.'),
    status: z.enum(CONNECTION_STATUSES).describe('active and error connections are synced; disabled ones are not, and their devices are not served.'),
    status_reason: z.string().nullable().describe('Why the status is what it is (set with error, e.g. the last sync could not authenticate).'),
    demo: z.boolean().describe('The built-in simulated tenant, not a real Intune tenant.'),
    created_at: dateTime,
    updated_at: dateTime,
    last_sync: SyncRunSummarySchema.nullable().describe('The most recent run (it may still be running).'),
  })
  .strict();
export type Connection = z.infer<typeof ConnectionSchema>;

/** A device of a posture snapshot: the redacted posture, its ids and times in the forms the REST API promises, and its connection. */
export const SnapshotDeviceSchema = DevicePostureSchema.extend({
  device_id: guid,
  grace_period_expires_at: dateTime.nullable(),
  enrolled_at: dateTime.nullable(),
  last_sync_at: dateTime.nullable(),
  serial_fingerprint: serialFingerprintOrNull,
  connection_id: guid,
}).strict();
export type SnapshotDevice = z.infer<typeof SnapshotDeviceSchema>;

export const SnapshotDevicePageSchema = z
  .object({
    devices: z.array(SnapshotDeviceSchema),
    next_cursor: z.string().nullable(),
    total: count.describe('Devices matching the filters (all pages).'),
  })
  .strict();
export type SnapshotDevicePage = z.infer<typeof SnapshotDevicePageSchema>;

export const PostureSummarySchema = z
  .object({
    connections: z.array(ConnectionSchema),
    devices: count.describe("Devices in the current snapshots of the tenant's enabled connections."),
    counts_by_compliance_state: completeCountsBy(COMPLIANCE_STATES),
    counts_by_os_family: completeCountsBy(OS_FAMILIES),
    last_run: SyncRunSummarySchema.nullable(),
  })
  .strict();
export type PostureSummary = z.infer<typeof PostureSummarySchema>;
