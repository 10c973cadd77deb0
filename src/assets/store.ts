/**
 * SQL for asset identity: reading the live sources (current snapshots of enabled connections,
 * unrevoked agents), the stored assignment, and replacing a matched subset in bulk. Every
 * statement is scoped by tenant.
 */
import crypto from 'node:crypto';
import type { Queryable } from '../db/index.js';
import type { DevicePosture } from '../connector/posture.js';
import { isoOrNull } from '../common/values.js';
import { heartbeatReadings, summarize, type AgentObservation, type IntuneSummaryFields, type ObservedSource } from './attributes.js';
import type { ConflictKind, SourceIdentity, SourceKind } from './match.js';
import type { AgentSourceRow } from './agent-rows.js';

export type Observation = DevicePosture | AgentObservation;

/**
 * A source as a from-scratch match needs it: its identity keys and what the asset summary reads
 * (an Intune record's few summary fields, not its whole posture; an agent's small observation whole).
 */
export interface MatchRow extends SourceIdentity {
  readonly observation: IntuneSummaryFields | AgentObservation;
  readonly last_seen_at: string | null;
}

export interface SourceRow extends MatchRow {
  readonly observation: Observation;
}

export interface StoredSource extends SourceRow {
  readonly asset_id: string;
}

export interface AssetRow {
  readonly asset_id: string;
  readonly anchor: string;
  readonly serial_fingerprint: string | null;
  readonly os_family: string;
  readonly compliance_state: string | null;
  readonly has_intune: boolean;
  readonly has_agent: boolean;
  readonly disagreement: boolean;
  readonly conflict: boolean;
}

export interface ConflictRow {
  readonly conflict_key: string;
  readonly conflict_id: string;
  readonly kind: ConflictKind;
  readonly serial_fingerprint: string | null;
  readonly entra_device_id: string | null;
  readonly asset_ids: readonly string[];
  readonly sources: readonly { kind: SourceKind; id: string }[];
  readonly detected_at: string;
}

const json = <T>(value: T | string): T => (typeof value === 'string' ? (JSON.parse(value) as T) : value);
const CHUNK = 5000;

/** Elements an array literal can carry bare: ids, fingerprints, anchors, enum words, t/f (never the word NULL). */
const BARE = /^[0-9A-Za-z_.:|+-]+$/;

/**
 * A PostgreSQL array literal of one column, for `$n::text[]` (or uuid[], boolean[]): ids and
 * fingerprints go bare and anything else quoted, so a 100,000-row column costs one regular-expression
 * test per value instead of the driver's two replaces and several concatenations per element.
 */
export function arrayLiteral(values: readonly (string | boolean | null)[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) parts[i] = 'NULL';
    else if (typeof v === 'boolean') parts[i] = v ? 't' : 'f';
    else if (BARE.test(v) && (v.length !== 4 || v.toUpperCase() !== 'NULL')) parts[i] = v;
    else parts[i] = `"${v.replace(/[\\"]/g, '\\$&')}"`;
  }
  return `{${parts.join(',')}}`;
}

// ---- live sources ---------------------------------------------------------------------------

interface IntuneLiveRow {
  connection_id: string;
  device_id: string;
  posture: DevicePosture | string;
}

export function intuneSource(row: IntuneLiveRow): SourceRow {
  const posture = json<DevicePosture>(row.posture);
  return {
    kind: 'intune',
    origin: row.connection_id,
    source_id: row.device_id,
    serial_fingerprint: posture.serial_fingerprint,
    hardware_fingerprint: null,
    entra_device_id: posture.azure_ad_device_id,
    observation: posture,
    last_seen_at: posture.last_sync_at,
  };
}


interface IntuneMatchDbRow {
  connection_id: string;
  device_id: string;
  serial_fingerprint: string | null;
  entra_device_id: string | null;
  os_family: string;
  os_version: string | null;
  compliance_state: DevicePosture['compliance_state'];
  is_encrypted: boolean | null;
  last_sync_at: string | null;
  enrolled_at: string | null;
}

/** Rows per FETCH when a whole tenant is read: a large tenant's rows never arrive all at once. */
const BATCH_ROWS = 10_000;

/**
 * The rows of a SELECT, batch by batch, through a cursor in the caller's transaction: the driver
 * never holds the whole result beside what the caller keeps of it.
 */
async function* batches<R>(q: Queryable, sql: string, params: readonly unknown[]): AsyncGenerator<R[]> {
  const cursor = `asset_rows_${crypto.randomBytes(6).toString('hex')}`;
  await q.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${sql}`, params);
  let failed = false;
  try {
    for (;;) {
      let rows: R[];
      try {
        rows = (await q.query<R>(`FETCH FORWARD ${BATCH_ROWS} FROM ${cursor}`)).rows;
      } catch (err) {
        failed = true;
        throw err;
      }
      if (rows.length === 0) return;
      yield rows;
    }
  } finally {
    // An aborted transaction drops the cursor itself (and would refuse the CLOSE).
    if (!failed) await q.query(`CLOSE ${cursor}`);
  }
}

/** One string per distinct value of a low-cardinality column (connection ids, OS families and versions, states). */
function interner(): <T extends string | null>(value: T) => T {
  const seen = new Map<string, string>();
  return <T extends string | null>(value: T): T => {
    if (value === null) return value;
    const known = seen.get(value);
    if (known !== undefined) return known as T;
    seen.set(value, value);
    return value;
  };
}

/**
 * The live Intune records of the tenant as matching and the summary need them: columns read out of
 * the posture by the server, so a large tenant's postures never travel or get parsed whole (the
 * from-scratch write copies them inside the database), read in batches, with each repeated value
 * (connection id, OS, state) held once.
 */
export async function liveIntuneMatchRows(q: Queryable, tenant: string): Promise<MatchRow[]> {
  const out: MatchRow[] = [];
  const same = interner();
  for await (const rows of batches<IntuneMatchDbRow>(
    q,
    `SELECT p.connection_id::text AS connection_id, p.device_id, p.posture->>'serial_fingerprint' AS serial_fingerprint,
            p.posture->>'azure_ad_device_id' AS entra_device_id, p.os_family, p.posture->>'os_version' AS os_version, p.compliance_state,
            (p.posture->>'is_encrypted')::boolean AS is_encrypted, p.posture->>'last_sync_at' AS last_sync_at, p.posture->>'enrolled_at' AS enrolled_at
       FROM intune_device_postures p JOIN intune_connections c ON c.current_snapshot_id = p.snapshot_id AND c.tenant = p.tenant
      WHERE c.tenant = $1 AND c.status <> 'disabled'`,
    [tenant],
  )) {
    for (const r of rows) {
      out.push({
        kind: 'intune',
        origin: same(r.connection_id),
        source_id: r.device_id,
        serial_fingerprint: r.serial_fingerprint,
        hardware_fingerprint: null,
        entra_device_id: r.entra_device_id,
        observation: {
          device_id: r.device_id,
          os_family: same(r.os_family) as DevicePosture['os_family'],
          os_version: same(r.os_version),
          compliance_state: same(r.compliance_state),
          is_encrypted: r.is_encrypted === true,
          last_sync_at: r.last_sync_at,
          enrolled_at: r.enrolled_at,
        },
        last_seen_at: r.last_sync_at,
      });
    }
  }
  return out;
}

/** The current snapshot of a connection whose records are live (it exists and is not disabled), else null. */
export async function liveSnapshotOf(q: Queryable, tenant: string, connectionId: string): Promise<string | null> {
  const { rows } = await q.query<{ id: string | null }>(
    `SELECT current_snapshot_id::text AS id FROM intune_connections WHERE tenant = $1 AND id = $2::uuid AND status <> 'disabled'`,
    [tenant, connectionId],
  );
  return rows[0]?.id ?? null;
}

/** The snapshot this connection's stored sources were last brought in step with, or null. */
export async function matchedSnapshotOf(q: Queryable, tenant: string, connectionId: string): Promise<string | null> {
  const { rows } = await q.query<{ id: string }>(`SELECT snapshot_id::text AS id FROM asset_matched_snapshots WHERE tenant = $1 AND connection_id = $2`, [tenant, connectionId]);
  return rows[0]?.id ?? null;
}

/** Notes which snapshot a connection's stored sources now show (none: forgotten). */
export async function recordMatchedSnapshot(q: Queryable, tenant: string, connectionId: string, snapshotId: string | null): Promise<void> {
  if (snapshotId === null) {
    await q.query('DELETE FROM asset_matched_snapshots WHERE tenant = $1 AND connection_id = $2', [tenant, connectionId]);
    return;
  }
  await q.query(
    `INSERT INTO asset_matched_snapshots (tenant, connection_id, snapshot_id) VALUES ($1, $2, $3::uuid)
     ON CONFLICT (tenant, connection_id) DO UPDATE SET snapshot_id = EXCLUDED.snapshot_id`,
    [tenant, connectionId, snapshotId],
  );
}

/**
 * Before a from-scratch match reads the live records: every live connection's current snapshot,
 * noted as matched. Read first, so a sync that makes a newer snapshot current meanwhile is at
 * worst re-applied (its list of changed records names every record that differs).
 */
export async function recordMatchedSnapshotsOfTenant(q: Queryable, tenant: string): Promise<void> {
  await q.query('DELETE FROM asset_matched_snapshots WHERE tenant = $1', [tenant]);
  await q.query(
    `INSERT INTO asset_matched_snapshots (tenant, connection_id, snapshot_id)
     SELECT tenant, id::text, current_snapshot_id FROM intune_connections WHERE tenant = $1 AND status <> 'disabled' AND current_snapshot_id IS NOT NULL`,
    [tenant],
  );
}

/**
 * What changed for one connection since its sources were last matched: live records of
 * `snapshotId` (null: none are live) that are new or whose redacted posture differs (compared in
 * the database, so only the changes travel), and stored records that are no longer live (deleted
 * in Intune, or the connection disabled). With `deviceIds`, only those records are looked at: the
 * ones a sync says differ from the snapshot the stored sources show.
 */
export async function connectionChanges(
  q: Queryable,
  tenant: string,
  connectionId: string,
  snapshotId: string | null,
  deviceIds?: readonly string[],
): Promise<{ upserts: SourceRow[]; removed: StoredKey[] }> {
  const params = [tenant, connectionId, snapshotId, ...(deviceIds === undefined ? [] : [arrayLiteral(deviceIds)])];
  const onlyPostures = deviceIds === undefined ? '' : 'AND p.device_id = ANY($4::text[])';
  const onlySources = deviceIds === undefined ? '' : 'AND s.source_id = ANY($4::text[])';
  // The snapshot id as an init plan, not a constant: a snapshot written a moment ago has no
  // statistics yet, and planned as a constant it looks empty (a nested loop over 100,000 rows).
  const changed = await q.query<IntuneLiveRow>(
    `SELECT p.connection_id::text AS connection_id, p.device_id, p.posture FROM intune_device_postures p
      WHERE p.snapshot_id = (SELECT $3::uuid) AND p.tenant = $1 ${onlyPostures} AND NOT EXISTS (
        SELECT 1 FROM asset_sources s WHERE s.tenant = $1 AND s.kind = 'intune' AND s.origin = $2 AND s.source_id = p.device_id AND s.observation = p.posture)`,
    params,
  );
  const removed = await q.query<StoredKey>(
    `SELECT s.kind, s.origin, s.source_id FROM asset_sources s WHERE s.tenant = $1 AND s.kind = 'intune' AND s.origin = $2 ${onlySources} AND NOT EXISTS (
       SELECT 1 FROM intune_device_postures p WHERE p.snapshot_id = (SELECT $3::uuid) AND p.device_id = s.source_id)`,
    params,
  );
  return { upserts: changed.rows.map(intuneSource), removed: removed.rows };
}

/** Every connection id of the tenant that has stored sources or a current snapshot. */
export async function connectionIdsOf(q: Queryable, tenant: string): Promise<string[]> {
  const { rows } = await q.query<{ id: string }>(
    `SELECT id::text AS id FROM intune_connections WHERE tenant = $1 UNION SELECT origin FROM asset_sources WHERE tenant = $1 AND kind = 'intune'`,
    [tenant],
  );
  return rows.map((r) => r.id);
}

export function agentSource(row: AgentSourceRow): SourceRow {
  const { uptime_seconds: _uptime, ...readings } = heartbeatReadings(row.posture);
  const observation: AgentObservation = { os_family: row.os_family, os_version: row.os_version, os_build: row.os_build, model: row.model, ...readings };
  return {
    kind: 'agent',
    origin: '',
    source_id: row.agent_id,
    serial_fingerprint: row.serial_fingerprint,
    hardware_fingerprint: row.hardware_fingerprint,
    entra_device_id: null,
    observation,
    // Until its first heartbeat, an agent was last seen enrolling.
    last_seen_at: isoOrNull(row.last_seen_at ?? row.enrolled_at),
  };
}

const AGENT_LIVE = `SELECT agent_id::text AS agent_id, os_family, os_version, os_build, model, serial_fingerprint, hardware_fingerprint, posture, last_seen_at, enrolled_at
  FROM agents WHERE tenant = $1 AND revoked_at IS NULL`;

export async function liveAgentSources(q: Queryable, tenant: string, agentId?: string): Promise<SourceRow[]> {
  const { rows } =
    agentId === undefined ? await q.query<AgentSourceRow>(AGENT_LIVE, [tenant]) : await q.query<AgentSourceRow>(`${AGENT_LIVE} AND agent_id = $2::uuid`, [tenant, agentId]);
  return rows.map(agentSource);
}

// ---- stored assignment ----------------------------------------------------------------------

export interface StoredKey {
  readonly kind: SourceKind;
  readonly origin: string;
  readonly source_id: string;
}

interface StoredDbRow {
  kind: SourceKind;
  origin: string;
  source_id: string;
  asset_id: string;
  serial_fingerprint: string | null;
  hardware_fingerprint: string | null;
  entra_device_id: string | null;
  observation: Observation | string;
  last_seen_at: Date | string | null;
}

const STORED_COLUMNS =
  'kind, origin, source_id, asset_id::text AS asset_id, serial_fingerprint, hardware_fingerprint, entra_device_id, observation, last_seen_at';

const storedOf = (row: StoredDbRow): StoredSource => ({
  kind: row.kind,
  origin: row.origin,
  source_id: row.source_id,
  asset_id: row.asset_id,
  serial_fingerprint: row.serial_fingerprint,
  hardware_fingerprint: row.hardware_fingerprint,
  entra_device_id: row.entra_device_id,
  observation: json<Observation>(row.observation),
  last_seen_at: isoOrNull(row.last_seen_at),
});

/**
 * The stored assignment of every source of the tenant, without observations: what a from-scratch
 * match needs of the previous state (which asset each source was in, for the merge and split records).
 */
export async function storedAssignmentsOfTenant(q: Queryable, tenant: string): Promise<StoredSource[]> {
  const out: StoredSource[] = [];
  const same = interner();
  const none = {} as Observation;
  for await (const rows of batches<Omit<StoredDbRow, 'observation' | 'last_seen_at'>>(
    q,
    `SELECT kind, origin, source_id, asset_id::text AS asset_id, serial_fingerprint, hardware_fingerprint, entra_device_id FROM asset_sources WHERE tenant = $1`,
    [tenant],
  )) {
    for (const row of rows) out.push({ ...row, kind: same(row.kind), origin: same(row.origin), observation: none, last_seen_at: null });
  }
  return out;
}

export async function storedAgentSources(q: Queryable, tenant: string): Promise<StoredSource[]> {
  const { rows } = await q.query<StoredDbRow>(`SELECT ${STORED_COLUMNS} FROM asset_sources WHERE tenant = $1 AND kind = 'agent'`, [tenant]);
  return rows.map(storedOf);
}

export async function storedSourcesByKey(q: Queryable, tenant: string, keys: readonly StoredKey[]): Promise<StoredSource[]> {
  if (keys.length === 0) return [];
  const { rows } = await q.query<StoredDbRow>(
    `SELECT ${STORED_COLUMNS} FROM asset_sources s
      WHERE s.tenant = $1 AND (s.kind, s.origin, s.source_id) IN (SELECT k.kind, k.origin, k.source_id FROM jsonb_to_recordset($2::jsonb) AS k(kind text, origin text, source_id text))`,
    [tenant, JSON.stringify(keys.map((k) => ({ kind: k.kind, origin: k.origin, source_id: k.source_id })))],
  );
  return rows.map(storedOf);
}

/**
 * Stored sources sharing any of these serials or Entra ids, or belonging to any of these assets.
 * Serials are found through the assets: every source reporting a serial belongs to an asset whose
 * serial_fingerprint is that serial (an asset formed on a serial holds only that serial's sources and
 * serial-less ones; one formed on an Entra id or standing alone holds no other serial), so the
 * sources table needs no serial index of its own.
 */
export async function storedNeighbours(
  q: Queryable,
  tenant: string,
  keys: { serials: readonly string[]; entraIds: readonly string[]; assetIds: readonly string[] },
): Promise<StoredSource[]> {
  const { rows } = await q.query<StoredDbRow>(
    `SELECT ${STORED_COLUMNS} FROM asset_sources WHERE tenant = $1 AND asset_id IN (
       SELECT asset_id FROM assets WHERE tenant = $1 AND serial_fingerprint = ANY($2::text[]) UNION SELECT unnest($4::uuid[]))
     UNION ALL SELECT ${STORED_COLUMNS} FROM asset_sources WHERE tenant = $1 AND entra_device_id = ANY($3::text[])`,
    [tenant, keys.serials, keys.entraIds, keys.assetIds],
  );
  return rows.map(storedOf);
}

export async function hasSources(q: Queryable, tenant: string): Promise<boolean> {
  const { rows } = await q.query<{ found: boolean }>('SELECT EXISTS (SELECT 1 FROM asset_sources WHERE tenant = $1) AS found', [tenant]);
  return rows[0]?.found === true;
}

export async function touchAgent(q: Queryable, tenant: string, agentId: string, lastSeenAt: string | null): Promise<void> {
  await q.query(`UPDATE asset_sources SET last_seen_at = $3 WHERE tenant = $1 AND kind = 'agent' AND origin = '' AND source_id = $2`, [
    tenant,
    agentId,
    lastSeenAt,
  ]);
}

// ---- bulk replacement -----------------------------------------------------------------------

async function inChunks<T>(items: readonly T[], write: (chunk: readonly T[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += CHUNK) await write(items.slice(i, i + CHUNK));
}

export async function deleteSources(q: Queryable, tenant: string, keys: readonly StoredKey[], all: boolean): Promise<void> {
  if (all) {
    await q.query('DELETE FROM asset_sources WHERE tenant = $1', [tenant]);
    return;
  }
  await inChunks(keys, (chunk) =>
    q.query(
      `DELETE FROM asset_sources s USING jsonb_to_recordset($2::jsonb) AS k(kind text, origin text, source_id text)
        WHERE s.tenant = $1 AND s.kind = k.kind AND s.origin = k.origin AND s.source_id = k.source_id`,
      [tenant, JSON.stringify(chunk.map((k) => ({ kind: k.kind, origin: k.origin, source_id: k.source_id })))],
    ),
  );
}

/**
 * A from-scratch match's Intune rows, `order` giving indices into `rows` (by asset id) and
 * `assetIdAt` each row's asset: copied from the current snapshots inside the database (their
 * observation is the snapshot's posture), so only ids travel, as three column arrays per statement.
 */
export async function insertIntunePlacements(
  q: Queryable,
  tenant: string,
  rows: readonly Pick<SourceIdentity, 'origin' | 'source_id'>[],
  assetIdAt: readonly string[],
  order: readonly number[],
): Promise<void> {
  const column = (chunk: readonly number[], pick: (i: number) => string) => arrayLiteral(chunk.map(pick));
  for (let i = 0; i < order.length; i += CHUNK * 4) {
    const chunk = order.slice(i, i + CHUNK * 4);
    await q.query(
      `INSERT INTO asset_sources (tenant, kind, origin, source_id, asset_id, serial_fingerprint, hardware_fingerprint, entra_device_id, observation, last_seen_at)
       SELECT $1, 'intune', a.origin, a.source_id, a.asset_id, p.posture->>'serial_fingerprint', NULL, p.posture->>'azure_ad_device_id', p.posture, p.last_sync_at
         FROM unnest($2::text[], $3::text[], $4::uuid[]) AS a(origin, source_id, asset_id)
         JOIN intune_connections c ON c.id = a.origin::uuid AND c.tenant = $1 AND c.status <> 'disabled'
         JOIN intune_device_postures p ON p.snapshot_id = c.current_snapshot_id AND p.device_id = a.source_id`,
      [
        tenant,
        column(chunk, (k) => (rows[k] as SourceIdentity).origin),
        column(chunk, (k) => (rows[k] as SourceIdentity).source_id),
        column(chunk, (k) => assetIdAt[k] as string),
      ],
    );
  }
}

export async function insertSources(q: Queryable, tenant: string, rows: readonly StoredSource[]): Promise<void> {
  await inChunks(rows, (chunk) =>
    q.query(
      `INSERT INTO asset_sources (tenant, kind, origin, source_id, asset_id, serial_fingerprint, hardware_fingerprint, entra_device_id, observation, last_seen_at)
       SELECT $1, r.kind, r.origin, r.source_id, r.asset_id, r.serial_fingerprint, r.hardware_fingerprint, r.entra_device_id, r.observation, r.last_seen_at
         FROM jsonb_to_recordset($2::jsonb) AS r(kind text, origin text, source_id text, asset_id uuid, serial_fingerprint text, hardware_fingerprint text,
              entra_device_id text, observation jsonb, last_seen_at timestamptz)`,
      [tenant, JSON.stringify(chunk)],
    ),
  );
}

/** New observations of sources that stay in their assets. */
export async function updateObservations(q: Queryable, tenant: string, rows: readonly StoredSource[]): Promise<void> {
  await inChunks(rows, (chunk) =>
    q.query(
      `UPDATE asset_sources s SET observation = r.observation, last_seen_at = r.last_seen_at
         FROM jsonb_to_recordset($2::jsonb) AS r(kind text, origin text, source_id text, observation jsonb, last_seen_at timestamptz)
        WHERE s.tenant = $1 AND s.kind = r.kind AND s.origin = r.origin AND s.source_id = r.source_id`,
      [tenant, JSON.stringify(chunk.map((r) => ({ kind: r.kind, origin: r.origin, source_id: r.source_id, observation: r.observation, last_seen_at: r.last_seen_at })))],
    ),
  );
}

/** Recomputes the filterable summary of these assets from their stored sources (membership unchanged). */
export async function refreshAssets(q: Queryable, tenant: string, assetIds: readonly string[], at: string): Promise<void> {
  const sources = await sourcesOfAssets(q, tenant, assetIds);
  const byAsset = new Map<string, StoredSource[]>();
  for (const s of sources) {
    const list = byAsset.get(s.asset_id);
    if (list === undefined) byAsset.set(s.asset_id, [s]);
    else list.push(s);
  }
  const rows = [...byAsset].map(([asset_id, list]) => ({
    asset_id,
    ...summarize(list.map((s) => ({ kind: s.kind, source_id: s.source_id, last_seen_at: s.last_seen_at, observation: s.observation }) as ObservedSource)),
  }));
  await inChunks(rows, (chunk) =>
    q.query(
      `UPDATE assets a SET os_family = r.os_family, compliance_state = r.compliance_state, has_intune = r.has_intune, has_agent = r.has_agent,
              disagreement = r.disagreement, updated_at = $3
         FROM jsonb_to_recordset($2::jsonb) AS r(asset_id uuid, os_family text, compliance_state text, has_intune boolean, has_agent boolean, disagreement boolean)
        WHERE a.tenant = $1 AND a.asset_id = r.asset_id`,
      [tenant, JSON.stringify(chunk), at],
    ),
  );
}

export async function deleteAssets(q: Queryable, tenant: string, assetIds: readonly string[], all: boolean): Promise<void> {
  if (all) {
    await q.query('DELETE FROM assets WHERE tenant = $1', [tenant]);
    return;
  }
  await inChunks(assetIds, (chunk) => q.query('DELETE FROM assets WHERE tenant = $1 AND asset_id = ANY($2::uuid[])', [tenant, chunk]));
}

export async function insertAssets(q: Queryable, tenant: string, rows: readonly AssetRow[], at: string): Promise<void> {
  // Column arrays: one parameter per column, no JSON to build or parse.
  for (let i = 0; i < rows.length; i += CHUNK * 4) {
    const chunk = rows.slice(i, i + CHUNK * 4);
    const column = <K extends keyof AssetRow>(key: K) => arrayLiteral(chunk.map((r) => r[key]));
    await q.query(
      `INSERT INTO assets (tenant, asset_id, anchor, serial_fingerprint, os_family, compliance_state, has_intune, has_agent, disagreement, conflict, updated_at)
       SELECT $1, r.asset_id, r.anchor, r.serial_fingerprint, r.os_family, r.compliance_state, r.has_intune, r.has_agent, r.disagreement, r.conflict, $11
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::boolean[], $9::boolean[], $10::boolean[])
              AS r(asset_id, anchor, serial_fingerprint, os_family, compliance_state, has_intune, has_agent, disagreement, conflict)`,
      [
        tenant,
        column('asset_id'),
        column('anchor'),
        column('serial_fingerprint'),
        column('os_family'),
        column('compliance_state'),
        column('has_intune'),
        column('has_agent'),
        column('disagreement'),
        column('conflict'),
        at,
      ],
    );
  }
}

interface ConflictDbRow extends Omit<ConflictRow, 'asset_ids' | 'sources' | 'detected_at'> {
  asset_ids: string[] | string;
  sources: ConflictRow['sources'] | string;
  detected_at: Date | string;
}

const CONFLICT_COLUMNS = 'conflict_key, conflict_id::text AS conflict_id, kind, serial_fingerprint, entra_device_id, asset_ids, sources, detected_at';
const conflictOf = (row: ConflictDbRow): ConflictRow => ({
  ...row,
  asset_ids: json<string[]>(row.asset_ids),
  sources: json<ConflictRow['sources']>(row.sources),
  detected_at: isoOrNull(row.detected_at) as string,
});

/** Stored conflicts among these keys (all of the tenant's when keys is null). */
export async function conflictsByKey(q: Queryable, tenant: string, keys: readonly string[] | null): Promise<ConflictRow[]> {
  const { rows } =
    keys === null
      ? await q.query<ConflictDbRow>(`SELECT ${CONFLICT_COLUMNS} FROM asset_conflicts WHERE tenant = $1`, [tenant])
      : await q.query<ConflictDbRow>(`SELECT ${CONFLICT_COLUMNS} FROM asset_conflicts WHERE tenant = $1 AND conflict_key = ANY($2::text[])`, [tenant, keys]);
  return rows.map(conflictOf);
}

export async function conflictsOfAssets(q: Queryable, tenant: string, assetIds: readonly string[]): Promise<ConflictRow[]> {
  if (assetIds.length === 0) return [];
  const { rows } = await q.query<ConflictDbRow>(
    `SELECT ${CONFLICT_COLUMNS} FROM asset_conflicts WHERE tenant = $1 AND asset_ids ?| $2::text[] ORDER BY conflict_key`,
    [tenant, assetIds],
  );
  return rows.map(conflictOf);
}

export async function replaceConflicts(q: Queryable, tenant: string, removeKeys: readonly string[] | null, rows: readonly ConflictRow[]): Promise<void> {
  if (removeKeys === null) await q.query('DELETE FROM asset_conflicts WHERE tenant = $1', [tenant]);
  else if (removeKeys.length > 0) await q.query('DELETE FROM asset_conflicts WHERE tenant = $1 AND conflict_key = ANY($2::text[])', [tenant, removeKeys]);
  await inChunks(rows, (chunk) =>
    q.query(
      `INSERT INTO asset_conflicts (tenant, conflict_key, conflict_id, kind, serial_fingerprint, entra_device_id, asset_ids, sources, detected_at)
       SELECT $1, r.conflict_key, r.conflict_id, r.kind, r.serial_fingerprint, r.entra_device_id, r.asset_ids, r.sources, r.detected_at
         FROM jsonb_to_recordset($2::jsonb) AS r(conflict_key text, conflict_id uuid, kind text, serial_fingerprint text, entra_device_id text,
              asset_ids jsonb, sources jsonb, detected_at timestamptz)`,
      [tenant, JSON.stringify(chunk)],
    ),
  );
}

// ---- reading --------------------------------------------------------------------------------

interface AssetDbRow extends AssetRow {
  updated_at: Date | string;
}

const ASSET_COLUMNS =
  'asset_id::text AS asset_id, anchor, serial_fingerprint, os_family, compliance_state, has_intune, has_agent, disagreement, conflict, updated_at';

export interface AssetFilter {
  readonly os_family?: string;
  readonly source?: 'intune' | 'agent' | 'both';
  readonly compliance_state?: string;
  readonly disagreement?: boolean;
  readonly fingerprint?: string;
}

export async function listAssetRows(
  q: Queryable,
  tenant: string,
  filter: AssetFilter,
  page: { after?: string; limit: number },
): Promise<{ rows: AssetDbRow[]; total: number }> {
  const params: unknown[] = [tenant];
  const where: string[] = ['tenant = $1'];
  const add = (sql: (n: string) => string, value: unknown) => {
    params.push(value);
    where.push(sql(`$${params.length}`));
  };
  if (filter.os_family !== undefined) add((n) => `os_family = ${n}`, filter.os_family);
  if (filter.compliance_state !== undefined) add((n) => `compliance_state = ${n}`, filter.compliance_state);
  if (filter.disagreement !== undefined) add((n) => `disagreement = ${n}`, filter.disagreement);
  if (filter.fingerprint !== undefined) add((n) => `serial_fingerprint = ${n}`, filter.fingerprint);
  if (filter.source === 'intune') where.push('has_intune AND NOT has_agent');
  if (filter.source === 'agent') where.push('has_agent AND NOT has_intune');
  if (filter.source === 'both') where.push('has_intune AND has_agent');
  const filterSql = where.join(' AND ');
  const filterParams = [...params];
  if (page.after !== undefined) add((n) => `asset_id > ${n}::uuid`, page.after);
  params.push(page.limit + 1);
  const [rows, count] = await Promise.all([
    q.query<AssetDbRow>(`SELECT ${ASSET_COLUMNS} FROM assets WHERE ${where.join(' AND ')} ORDER BY asset_id LIMIT $${params.length}`, params),
    q.query<{ n: number }>(`SELECT count(*)::int AS n FROM assets WHERE ${filterSql}`, filterParams),
  ]);
  return { rows: rows.rows, total: count.rows[0]?.n ?? 0 };
}

export async function assetRowsById(q: Queryable, tenant: string, assetIds: readonly string[]): Promise<AssetDbRow[]> {
  if (assetIds.length === 0) return [];
  const { rows } = await q.query<AssetDbRow>(`SELECT ${ASSET_COLUMNS} FROM assets WHERE tenant = $1 AND asset_id = ANY($2::uuid[]) ORDER BY asset_id`, [
    tenant,
    assetIds,
  ]);
  return rows;
}

export async function sourcesOfAssets(q: Queryable, tenant: string, assetIds: readonly string[]): Promise<StoredSource[]> {
  if (assetIds.length === 0) return [];
  const { rows } = await q.query<StoredDbRow>(
    `SELECT ${STORED_COLUMNS} FROM asset_sources WHERE tenant = $1 AND asset_id = ANY($2::uuid[]) ORDER BY kind DESC, source_id`,
    [tenant, assetIds],
  );
  return rows.map(storedOf);
}

export async function assetIdOfSource(q: Queryable, tenant: string, kind: SourceKind, sourceId: string): Promise<string | null> {
  const { rows } = await q.query<{ asset_id: string }>(
    `SELECT asset_id::text AS asset_id FROM asset_sources WHERE tenant = $1 AND kind = $2 AND source_id = $3 ORDER BY origin LIMIT 1`,
    [tenant, kind, sourceId],
  );
  return rows[0]?.asset_id ?? null;
}
