/**
 * SQL for connections and runs, including the lease. Every read and write is scoped by tenant;
 * the lease and the run flip happen in single transactions so concurrent replicas agree.
 */
import type { CloudName } from '../config/index.js';
import type { Db, Queryable } from '../db/index.js';
import { PostureInputError, PostureNotFoundError, SyncInProgressError } from './errors.js';
import { connectionFromRow, runFromRow, type ConnectionRow, type ConnectionValues, type RunRow } from './rows.js';
import type { Connection, ConnectionStatus, SyncRunSummary, SyncTrigger } from './types.js';

const CONNECTION_COLUMNS = `id::text AS id, tenant, display_name, entra_tenant_id, client_id, cloud, secret_ref, status, status_reason,
  origin, current_snapshot_id::text AS current_snapshot_id, snapshot_at, lease_run_id::text AS lease_run_id, created_at, updated_at`;
const RUN_COLUMNS = `id::text AS id, connection_id::text AS connection_id, tenant, status, trigger, started_at, finished_at, duration_ms,
  devices, pages, graph_requests, throttled_waits, counts_by_compliance_state, counts_by_os_family, error_code, error_message`;

export async function connectionRows(q: Queryable, tenant: string, id?: string): Promise<ConnectionRow[]> {
  const { rows } =
    id === undefined
      ? await q.query<ConnectionRow>(`SELECT ${CONNECTION_COLUMNS} FROM intune_connections WHERE tenant = $1 ORDER BY created_at, id`, [tenant])
      : await q.query<ConnectionRow>(`SELECT ${CONNECTION_COLUMNS} FROM intune_connections WHERE tenant = $1 AND id = $2`, [tenant, id]);
  return rows;
}

export async function bootstrapRow(q: Queryable, tenant: string, origin: 'config' | 'demo'): Promise<ConnectionRow | undefined> {
  const { rows } = await q.query<ConnectionRow>(`SELECT ${CONNECTION_COLUMNS} FROM intune_connections WHERE tenant = $1 AND origin = $2`, [
    tenant,
    origin,
  ]);
  return rows[0];
}

/** Every syncable connection of every tenant (graphFor's cache and the scheduler). */
export async function enabledConnectionRows(q: Queryable): Promise<ConnectionRow[]> {
  const { rows } = await q.query<ConnectionRow>(
    `SELECT ${CONNECTION_COLUMNS} FROM intune_connections WHERE status <> 'disabled' ORDER BY tenant, (origin = 'demo'), created_at, id`,
  );
  return rows;
}

/** The latest run of each of the tenant's connections (optionally one). */
async function latestRuns(q: Queryable, tenant: string, connectionId?: string): Promise<Map<string, SyncRunSummary>> {
  const { rows } = await q.query<RunRow>(
    `SELECT r.* FROM intune_connections c
       CROSS JOIN LATERAL (
         SELECT ${RUN_COLUMNS} FROM intune_sync_runs WHERE connection_id = c.id ORDER BY started_at DESC, id DESC LIMIT 1
       ) r
      WHERE c.tenant = $1 ${connectionId === undefined ? '' : 'AND c.id = $2'}`,
    connectionId === undefined ? [tenant] : [tenant, connectionId],
  );
  return new Map(rows.map((row) => [row.connection_id, runFromRow(row)]));
}

export async function listConnections(q: Queryable, tenant: string, id?: string): Promise<Connection[]> {
  const [rows, runs] = await Promise.all([connectionRows(q, tenant, id), latestRuns(q, tenant, id)]);
  return rows.map((row) => connectionFromRow(row, runs.get(row.id) ?? null));
}

/** What the store needs to insert a connection: its fields, where it came from, and when. */
export type NewConnection = Pick<
  Connection,
  'id' | 'tenant' | 'display_name' | 'entra_tenant_id' | 'client_id' | 'cloud' | 'secret_ref' | 'status' | 'status_reason'
> & {
  readonly origin: 'api' | 'config' | 'demo';
  readonly at: string;
};

export async function insertConnection(q: Queryable, c: NewConnection): Promise<void> {
  await q.query(
    `INSERT INTO intune_connections (id, tenant, display_name, entra_tenant_id, client_id, cloud, secret_ref, status, status_reason, origin, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
    [c.id, c.tenant, c.display_name, c.entra_tenant_id, c.client_id, c.cloud, c.secret_ref, c.status, c.status_reason, c.origin, c.at],
  );
}

export const EDITABLE_FIELDS = ['display_name', 'entra_tenant_id', 'client_id', 'cloud', 'secret_ref', 'status'] as const;
export type EditableField = (typeof EDITABLE_FIELDS)[number];
export type { ConnectionValues } from './rows.js';

export async function updateConnectionValues(q: Queryable, id: string, values: ConnectionValues, at: string): Promise<void> {
  await q.query(
    `UPDATE intune_connections SET display_name = $2, entra_tenant_id = $3, client_id = $4, cloud = $5, secret_ref = $6, status = $7,
       status_reason = $8, updated_at = $9 WHERE id = $1`,
    [id, values.display_name, values.entra_tenant_id, values.client_id, values.cloud, values.secret_ref, values.status, values.status_reason, at],
  );
}

export async function lockConnection(q: Queryable, tenant: string, id: string): Promise<ConnectionRow | undefined> {
  const { rows } = await q.query<ConnectionRow>(`SELECT ${CONNECTION_COLUMNS} FROM intune_connections WHERE tenant = $1 AND id = $2 FOR UPDATE`, [
    tenant,
    id,
  ]);
  return rows[0];
}

export async function deleteConnection(q: Queryable, id: string): Promise<void> {
  await q.query('DELETE FROM intune_connections WHERE id = $1', [id]);
}

export const ABANDONED_MESSAGE = 'the process running this sync stopped before it finished (its lease expired); the previous snapshot stayed current';

export interface AcquiredRun {
  readonly connection: ConnectionRow;
  readonly run: SyncRunSummary;
  /** Runs of this connection left 'running' by a process that died; now marked failed: abandoned. */
  readonly abandoned: SyncRunSummary[];
}

/**
 * Takes the connection's lease and records a running run, in one transaction: the connection row
 * is locked, so of two replicas asking at once one gets the lease and the other sees it held. A
 * lease is held while its expiry (database clock) is in the future; any run still 'running' under
 * an expired lease belonged to a process that died, and is marked failed here.
 */
export async function acquireRun(
  db: Db,
  args: { tenant: string; connectionId: string; runId: string; holder: string; trigger: SyncTrigger; startedAt: string; leaseTtlMs: number; nextSyncAt: string | null },
): Promise<AcquiredRun> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<ConnectionRow & { leased: boolean }>(
      `SELECT ${CONNECTION_COLUMNS}, (lease_expires_at IS NOT NULL AND lease_expires_at > clock_timestamp()) AS leased
         FROM intune_connections WHERE tenant = $1 AND id = $2 FOR UPDATE`,
      [args.tenant, args.connectionId],
    );
    const connection = rows[0];
    if (connection === undefined) throw new PostureNotFoundError('connection_not_found', `no connection ${args.connectionId} in this tenant`);
    if (connection.status === 'disabled') {
      throw new PostureInputError('connection_disabled', 'status', `connection ${args.connectionId} is disabled: set its status to active to sync it`);
    }
    if (connection.leased) {
      const running = await tx.query<{ id: string }>(`SELECT id::text AS id FROM intune_sync_runs WHERE connection_id = $1 AND status = 'running'`, [
        args.connectionId,
      ]);
      throw new SyncInProgressError(running.rows[0]?.id ?? connection.lease_run_id ?? 'unknown', args.connectionId);
    }
    const abandoned = await tx.query<RunRow>(
      `UPDATE intune_sync_runs SET status = 'failed', finished_at = $2::timestamptz,
          duration_ms = GREATEST(0, floor(extract(epoch FROM ($2::timestamptz - started_at)) * 1000))::integer,
          error_code = 'abandoned', error_message = $3
        WHERE connection_id = $1 AND status = 'running' RETURNING ${RUN_COLUMNS}`,
      [args.connectionId, args.startedAt, ABANDONED_MESSAGE],
    );
    const inserted = await tx.query<RunRow>(
      `INSERT INTO intune_sync_runs (id, connection_id, tenant, status, trigger, holder, started_at)
       VALUES ($1, $2, $3, 'running', $4, $5, $6) RETURNING ${RUN_COLUMNS}`,
      [args.runId, args.connectionId, args.tenant, args.trigger, args.holder, args.startedAt],
    );
    await tx.query(
      `UPDATE intune_connections SET lease_holder = $2, lease_run_id = $3, lease_expires_at = clock_timestamp() + $4::integer * interval '1 millisecond',
          next_sync_at = COALESCE($5::timestamptz, next_sync_at)
        WHERE id = $1`,
      [args.connectionId, args.holder, args.runId, args.leaseTtlMs, args.nextSyncAt],
    );
    return { connection, run: runFromRow(inserted.rows[0] as RunRow), abandoned: abandoned.rows.map(runFromRow) };
  });
}

/** Extends the lease; false when it is no longer this run's (it expired and another replica took it). */
export async function renewLease(db: Db, connectionId: string, runId: string, leaseTtlMs: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE intune_connections SET lease_expires_at = clock_timestamp() + $3::integer * interval '1 millisecond'
      WHERE id = $1 AND lease_run_id = $2`,
    [connectionId, runId, leaseTtlMs],
  );
  return rowCount > 0;
}

export interface RunTotals {
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly devices: number;
  readonly pages: number;
  readonly graphRequests: number;
  readonly throttledWaits: number;
  readonly countsByComplianceState: Readonly<Record<string, number>>;
  readonly countsByOsFamily: Readonly<Record<string, number>>;
}

/**
 * Makes the run's snapshot current and releases the lease in one transaction: readers switch
 * from the complete old snapshot to the complete new one. Returns null when the lease was lost.
 */
/**
 * Makes the run's snapshot current and marks it succeeded. `record` runs inside the same
 * transaction with the finished run (sync_completed goes to Chronicle there): if it throws, nothing
 * of the completion commits, so a run never reads succeeded without its record.
 */
export async function completeRun(
  db: Db,
  connectionId: string,
  runId: string,
  totals: RunTotals,
  record?: (tx: Queryable, run: SyncRunSummary) => Promise<void>,
): Promise<SyncRunSummary | null> {
  return db.transaction(async (tx) => {
    const flipped = await tx.query(
      `UPDATE intune_connections SET current_snapshot_id = $2, snapshot_at = $3, lease_holder = NULL, lease_run_id = NULL, lease_expires_at = NULL,
          status_reason = CASE WHEN status = 'error' THEN NULL ELSE status_reason END,
          status = CASE WHEN status = 'error' THEN 'active' ELSE status END
        WHERE id = $1 AND lease_run_id = $2`,
      [connectionId, runId, totals.finishedAt],
    );
    if (flipped.rowCount === 0) return null;
    const { rows } = await tx.query<RunRow>(
      `UPDATE intune_sync_runs SET status = 'succeeded', finished_at = $2, duration_ms = $3, devices = $4, pages = $5, graph_requests = $6,
          throttled_waits = $7, counts_by_compliance_state = $8::jsonb, counts_by_os_family = $9::jsonb
        WHERE id = $1 RETURNING ${RUN_COLUMNS}`,
      [
        runId,
        totals.finishedAt,
        totals.durationMs,
        totals.devices,
        totals.pages,
        totals.graphRequests,
        totals.throttledWaits,
        JSON.stringify(totals.countsByComplianceState),
        JSON.stringify(totals.countsByOsFamily),
      ],
    );
    const run = runFromRow(rows[0] as RunRow);
    if (record !== undefined) await record(tx, run);
    return run;
  });
}

/**
 * Marks the run failed and releases the lease if it still holds it; the current snapshot is not
 * touched. `connectionError` also puts the connection in status error with the reason (bad
 * credentials: something an administrator has to fix).
 */
export async function failRun(
  db: Db,
  connectionId: string,
  runId: string,
  failure: { code: string; message: string; connectionError: boolean },
  totals: Omit<RunTotals, 'countsByComplianceState' | 'countsByOsFamily'>,
): Promise<SyncRunSummary> {
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<RunRow>(
      `UPDATE intune_sync_runs SET status = 'failed', finished_at = $2, duration_ms = $3, devices = $4, pages = $5, graph_requests = $6,
          throttled_waits = $7, error_code = $8, error_message = $9
        WHERE id = $1 AND status = 'running' RETURNING ${RUN_COLUMNS}`,
      [runId, totals.finishedAt, totals.durationMs, totals.devices, totals.pages, totals.graphRequests, totals.throttledWaits, failure.code, failure.message],
    );
    await tx.query(
      `UPDATE intune_connections SET lease_holder = NULL, lease_run_id = NULL, lease_expires_at = NULL,
          status = CASE WHEN $3 AND status <> 'disabled' THEN 'error' ELSE status END,
          status_reason = CASE WHEN $3 AND status <> 'disabled' THEN $4 ELSE status_reason END
        WHERE id = $1 AND lease_run_id = $2`,
      [connectionId, runId, failure.connectionError, failure.message],
    );
    if (rows[0] !== undefined) return runFromRow(rows[0]);
    // Another replica already marked it (abandoned after our lease lapsed): report what is recorded.
    const recorded = await tx.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM intune_sync_runs WHERE id = $1`, [runId]);
    return runFromRow(recorded.rows[0] as RunRow);
  });
}

export async function getRun(q: Queryable, tenant: string, runId: string): Promise<SyncRunSummary | null> {
  const { rows } = await q.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM intune_sync_runs WHERE tenant = $1 AND id = $2`, [tenant, runId]);
  return rows[0] === undefined ? null : runFromRow(rows[0]);
}

export async function listRuns(q: Queryable, tenant: string, connectionId: string, limit: number): Promise<SyncRunSummary[]> {
  const { rows } = await q.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM intune_sync_runs WHERE tenant = $1 AND connection_id = $2 ORDER BY started_at DESC, id DESC LIMIT $3`,
    [tenant, connectionId, limit],
  );
  return rows.map(runFromRow);
}

export async function lastRunOfTenant(q: Queryable, tenant: string): Promise<SyncRunSummary | null> {
  const { rows } = await q.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM intune_sync_runs WHERE tenant = $1 ORDER BY started_at DESC, id DESC LIMIT 1`, [
    tenant,
  ]);
  return rows[0] === undefined ? null : runFromRow(rows[0]);
}

/** Connections due for a scheduled run (next_sync_at passed, or never scheduled). */
export async function dueConnections(q: Queryable, now: string): Promise<{ id: string; tenant: string }[]> {
  const { rows } = await q.query<{ id: string; tenant: string }>(
    `SELECT id::text AS id, tenant FROM intune_connections
      WHERE status <> 'disabled' AND (next_sync_at IS NULL OR next_sync_at <= $1::timestamptz) ORDER BY next_sync_at NULLS FIRST, id`,
    [now],
  );
  return rows;
}

/** Claims a due slot: of several replicas' schedulers, the one whose UPDATE matches starts the run. */
export async function claimScheduledSlot(q: Queryable, id: string, now: string, next: string): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE intune_connections SET next_sync_at = $3::timestamptz
      WHERE id = $1 AND status <> 'disabled' AND (next_sync_at IS NULL OR next_sync_at <= $2::timestamptz)`,
    [id, now, next],
  );
  return rowCount > 0;
}

/** When the scheduler next has work: 0 when a connection was never scheduled, null when none is enabled. */
export async function earliestNextSync(q: Queryable): Promise<number | null> {
  const { rows } = await q.query<{ unscheduled: boolean | null; next: Date | string | null }>(
    `SELECT bool_or(next_sync_at IS NULL) AS unscheduled, min(next_sync_at) AS next FROM intune_connections WHERE status <> 'disabled'`,
  );
  const row = rows[0];
  if (row === undefined || row.unscheduled === null) return null;
  if (row.unscheduled) return 0;
  return row.next === null ? null : new Date(row.next).getTime();
}
