/** Database rows to the public shapes. Both drivers return timestamptz as Date and jsonb parsed. */
import type { CloudName } from '../config/index.js';
import { COMPLIANCE_STATES, OS_FAMILIES, type ComplianceState, type DevicePosture, DevicePostureSchema, type OsFamily } from '../connector/posture.js';
import type { Connection, ConnectionStatus, SyncRunSummary, SyncStatus, SyncTrigger } from './types.js';
import { iso, isoOrNull } from '../common/values.js';

/** What an administrator's change may replace, plus the reason that goes with a status. */
export interface ConnectionValues {
  display_name: string;
  entra_tenant_id: string;
  client_id: string;
  cloud: CloudName;
  secret_ref: string;
  status: ConnectionStatus;
  status_reason: string | null;
}

const VALUE_FIELDS = ['display_name', 'entra_tenant_id', 'client_id', 'cloud', 'secret_ref', 'status', 'status_reason'] as const satisfies readonly (keyof ConnectionValues)[];

/** The values of a row (or of any wider shape), without its identity and bookkeeping columns. */
export function connectionValues(from: ConnectionValues): ConnectionValues {
  return Object.fromEntries(VALUE_FIELDS.map((field) => [field, from[field]])) as unknown as ConnectionValues;
}

export interface ConnectionRow extends ConnectionValues {
  id: string;
  tenant: string;
  origin: 'api' | 'config' | 'demo';
  current_snapshot_id: string | null;
  snapshot_at: Date | string | null;
  lease_run_id: string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

export interface RunRow {
  id: string;
  connection_id: string;
  tenant: string;
  status: SyncStatus;
  trigger: SyncTrigger;
  started_at: Date | string;
  finished_at: Date | string | null;
  duration_ms: number | null;
  devices: number;
  pages: number;
  graph_requests: number;
  throttled_waits: number;
  counts_by_compliance_state: Record<string, number> | string;
  counts_by_os_family: Record<string, number> | string;
  error_code: string | null;
  error_message: string | null;
}

/** jsonb returns keys in its own order; callers get them in the catalog's (compliant before error, …). */
function countsInOrder(value: Record<string, number> | string, order: readonly string[]): Record<string, number> {
  const counts = typeof value === 'string' ? (JSON.parse(value) as Record<string, number>) : value;
  const out: Record<string, number> = {};
  for (const key of order) if (counts[key] !== undefined) out[key] = counts[key];
  return out;
}

export function runFromRow(row: RunRow): SyncRunSummary {
  return {
    id: row.id,
    connection_id: row.connection_id,
    status: row.status,
    trigger: row.trigger,
    started_at: iso(row.started_at),
    finished_at: isoOrNull(row.finished_at),
    duration_ms: row.duration_ms,
    devices: row.devices,
    pages: row.pages,
    graph_requests: row.graph_requests,
    throttled_waits: row.throttled_waits,
    counts_by_compliance_state: countsInOrder(row.counts_by_compliance_state, COMPLIANCE_STATES),
    counts_by_os_family: countsInOrder(row.counts_by_os_family, OS_FAMILIES),
    error_code: row.error_code,
    error_message: row.error_message,
  };
}

export function connectionFromRow(row: ConnectionRow, lastSync: SyncRunSummary | null): Connection {
  return {
    id: row.id,
    tenant: row.tenant,
    display_name: row.display_name,
    entra_tenant_id: row.entra_tenant_id,
    client_id: row.client_id,
    cloud: row.cloud,
    secret_ref: row.secret_ref,
    status: row.status,
    status_reason: row.status_reason,
    demo: row.origin === 'demo',
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
    last_sync: lastSync,
  };
}

export const zeroCounts = (): { compliance: Record<ComplianceState, number>; os: Record<OsFamily, number> } => ({
  compliance: Object.fromEntries(COMPLIANCE_STATES.map((s) => [s, 0])) as Record<ComplianceState, number>,
  os: Object.fromEntries(OS_FAMILIES.map((f) => [f, 0])) as Record<OsFamily, number>,
});

/** The DevicePosture fields in the schema's order: what is stored, and the order callers see. */
export const POSTURE_KEYS = Object.keys(DevicePostureSchema.shape) as readonly (keyof DevicePosture)[];

/** An allow-list copy: whatever else an object carries never reaches storage or a caller. */
export function pickPosture(source: Readonly<Record<string, unknown>>): DevicePosture {
  const out: Record<string, unknown> = {};
  for (const key of POSTURE_KEYS) out[key] = source[key] ?? null;
  return out as DevicePosture;
}
