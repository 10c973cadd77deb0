/**
 * SQL for asset identity: reading the live sources (current snapshots of enabled connections,
 * unrevoked agents), the stored assignment, and replacing a matched subset in bulk. Every
 * statement is scoped by tenant.
 */
import type { Queryable } from '../db/index.js';
import type { DevicePosture } from '../connector/posture.js';
import { isoOrNull } from '../common/values.js';
import { heartbeatReadings, summarize, type AgentObservation, type IntuneSummaryFields, type ObservedSource } from './attributes.js';
import type { ConflictKind, KeyColumns, SourceIdentity, SourceKind } from './match.js';
import type { AgentSourceRow } from './agent-rows.js';

export type Observation = DevicePosture | AgentObservation;

/** A source with its identity keys and its whole observation (an Intune record's redacted posture, an agent's readings). */
export interface SourceRow extends SourceIdentity {
  readonly observation: Observation;
  readonly last_seen_at: string | null;
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

/** An asset row's columns in table order, with the array type each travels as. */
const ASSET_ROW_TYPES = [
  ['asset_id', 'uuid'],
  ['anchor', 'text'],
  ['serial_fingerprint', 'text'],
  ['os_family', 'text'],
  ['compliance_state', 'text'],
  ['has_intune', 'boolean'],
  ['has_agent', 'boolean'],
  ['disagreement', 'boolean'],
  ['conflict', 'boolean'],
] as const satisfies readonly (readonly [keyof AssetRow, string])[];
const ASSET_NAMES = ASSET_ROW_TYPES.map(([name]) => name).join(', ');

/** `unnest(...)` of asset rows passed as `assetColumns`, their parameters numbered from `$first`. */
const assetUnnest = (first: number): string => `unnest(${ASSET_ROW_TYPES.map(([, type], j) => `$${first + j}::${type}[]`).join(', ')}) AS r(${ASSET_NAMES})`;

/** Asset rows as one array literal per column, in ASSET_ROW_TYPES order. */
const assetColumns = (rows: readonly AssetRow[]): string[] => ASSET_ROW_TYPES.map(([name]) => arrayLiteral(rows.map((r) => r[name])));

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

// ---- a from-scratch match's working set ------------------------------------------------------

/**
 * Every live source of the tenant in a temporary table for this transaction, one scan of the
 * current snapshots and the agents: row i's kind, ids and keys, the asset it is stored in now, what
 * the asset summary reads of it (columns read out of an Intune posture; an agent's row), and where
 * an Intune posture lives (copied from there when the sources are written). One statement, so the
 * keys, the summary fields and the stored assignment are one consistent view, read back by number.
 */
export async function createScratch(q: Queryable, tenant: string): Promise<void> {
  await q.query(
    `CREATE TEMP TABLE asset_scratch ON COMMIT DROP AS
     SELECT (row_number() OVER () - 1)::int AS i, l.*, s.asset_id AS old_asset
       FROM (SELECT 'intune'::text AS kind, p.connection_id::text AS origin, p.device_id AS source_id, p.posture->>'serial_fingerprint' AS serial_fingerprint,
                    p.posture->>'azure_ad_device_id' AS entra_device_id, NULL::text AS hardware_fingerprint, p.os_family, p.posture->>'os_version' AS os_version,
                    p.compliance_state, (p.posture->>'is_encrypted')::boolean AS is_encrypted, p.posture->>'last_sync_at' AS last_sync_at,
                    p.posture->>'enrolled_at' AS intune_enrolled_at, NULL::text AS os_build, NULL::text AS model, NULL::jsonb AS posture,
                    NULL::timestamptz AS last_seen_at, NULL::timestamptz AS enrolled_at, p.snapshot_id
               FROM intune_device_postures p JOIN intune_connections c ON c.current_snapshot_id = p.snapshot_id AND c.tenant = p.tenant
              WHERE c.tenant = $1 AND c.status <> 'disabled'
             UNION ALL
             SELECT 'agent', '', agent_id::text, serial_fingerprint, NULL, hardware_fingerprint, os_family, os_version, NULL, NULL, NULL, NULL,
                    os_build, model, posture, last_seen_at, enrolled_at, NULL
               FROM agents WHERE tenant = $1 AND revoked_at IS NULL) l
       LEFT JOIN asset_sources s ON s.tenant = $1 AND s.kind = l.kind AND s.origin = l.origin AND s.source_id = l.source_id`,
    [tenant],
  );
  await q.query('CREATE UNIQUE INDEX ON asset_scratch (i)');
}

/** Big-endian 4-byte integers (int4send) as an Int32Array. */
function int32sOf(bytes: Uint8Array | null, count: number): Int32Array {
  const out = new Int32Array(count);
  if (bytes === null) return out;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4);
  return out;
}

/**
 * The working set's identity keys numbered by the server (equal keys, equal numbers, from 1; -1
 * none), each column one bytea of 4 bytes a row in row order: no row objects, no strings.
 */
export async function scratchKeys(q: Queryable): Promise<KeyColumns & { readonly stored: number }> {
  const ranked = (column: string) =>
    `(SELECT string_agg(int4send(k), ''::bytea ORDER BY i) FROM (
        SELECT i, CASE WHEN ${column} IS NULL THEN -1 ELSE dense_rank() OVER (ORDER BY ${column} COLLATE "C") END::int AS k FROM asset_scratch) r)`;
  const { rows } = await q.query<{ n: number; stored: number; agent: Uint8Array | null; serial: Uint8Array | null; entra: Uint8Array | null; hardware: Uint8Array | null }>(
    // Each key numbered by dense_rank over byte order (COLLATE "C") in a subquery of its own: a narrow sort per key.
    `SELECT (SELECT count(*) FROM asset_scratch)::int AS n, (SELECT count(old_asset) FROM asset_scratch)::int AS stored,
            (SELECT string_agg(int4send(CASE WHEN kind = 'agent' THEN 1 ELSE 0 END), ''::bytea ORDER BY i) FROM asset_scratch) AS agent,
            ${ranked('serial_fingerprint')} AS serial, ${ranked('entra_device_id')} AS entra, ${ranked('hardware_fingerprint')} AS hardware`,
  );
  const row = rows[0];
  const count = row?.n ?? 0;
  return {
    count,
    stored: row?.stored ?? 0,
    agent: Uint8Array.from(int32sOf(row?.agent ?? null, count)),
    serial: int32sOf(row?.serial ?? null, count),
    entra: int32sOf(row?.entra ?? null, count),
    hardware: int32sOf(row?.hardware ?? null, count),
  };
}

/** A row of the working set read back: its keys, the asset it is stored in now, and what the summary and the write need. */
export interface ScratchRow extends SourceIdentity {
  readonly i: number;
  readonly old_asset: string | null;
  /** What the asset summary reads of an Intune record. */
  readonly intune: IntuneSummaryFields | null;
  /** An agent's row, for agentSource. */
  readonly agent: AgentSourceRow | null;
}

interface ScratchDbRow {
  i: number;
  kind: SourceKind;
  origin: string;
  source_id: string;
  old_asset: string | null;
  serial_fingerprint: string | null;
  entra_device_id: string | null;
  hardware_fingerprint: string | null;
  os_family: string | null;
  os_version: string | null;
  compliance_state: DevicePosture['compliance_state'] | null;
  is_encrypted: boolean | null;
  last_sync_at: string | null;
  intune_enrolled_at: string | null;
  os_build: string | null;
  model: string | null;
  posture: AgentSourceRow['posture'];
  last_seen_at: Date | string | null;
  enrolled_at: Date | string | null;
}

function scratchRowOf(r: ScratchDbRow): ScratchRow {
  const intune = r.kind === 'intune';
  return {
    i: r.i,
    kind: r.kind,
    origin: r.origin,
    source_id: r.source_id,
    serial_fingerprint: r.serial_fingerprint,
    hardware_fingerprint: intune ? null : r.hardware_fingerprint,
    entra_device_id: intune ? r.entra_device_id : null,
    old_asset: r.old_asset,
    intune: intune
      ? {
          device_id: r.source_id,
          os_family: r.os_family as DevicePosture['os_family'],
          os_version: r.os_version,
          compliance_state: r.compliance_state as DevicePosture['compliance_state'],
          is_encrypted: r.is_encrypted === true,
          last_sync_at: r.last_sync_at,
          enrolled_at: r.intune_enrolled_at,
        }
      : null,
    agent: intune
      ? null
      : {
          agent_id: r.source_id,
          os_family: r.os_family as string,
          os_version: r.os_version,
          os_build: r.os_build,
          model: r.model,
          serial_fingerprint: r.serial_fingerprint,
          hardware_fingerprint: r.hardware_fingerprint,
          posture: r.posture,
          last_seen_at: r.last_seen_at,
          enrolled_at: r.enrolled_at as Date | string,
        },
  };
}

/**
 * Rows of the working set by number, in the order given: one index lookup per number (a lateral
 * join, so a batch never scans the whole working set).
 */
export async function scratchRows(q: Queryable, numbers: Int32Array): Promise<ScratchRow[]> {
  const { rows } = await q.query<ScratchDbRow>(
    `SELECT s.* FROM unnest($1::int[]) WITH ORDINALITY AS b(i, n) CROSS JOIN LATERAL (
       SELECT s.i, s.kind, s.origin, s.source_id, s.old_asset::text AS old_asset, s.serial_fingerprint, s.entra_device_id,
              s.hardware_fingerprint, s.os_family, s.os_version, s.compliance_state, s.is_encrypted, s.last_sync_at, s.intune_enrolled_at, s.os_build, s.model,
              s.posture, s.last_seen_at, s.enrolled_at
         FROM asset_scratch s WHERE s.i = b.i) s
      ORDER BY b.n`,
    [`{${numbers.join(',')}}`],
  );
  return rows.map(scratchRowOf);
}

/**
 * Where a from-scratch match puts each batch's result until the end: asset rows, and each source's
 * asset (with an agent's observation and last sighting as agentSource made them). Temporary tables
 * take rows without WAL or indexes; the real tables are then written once, in asset-id order, so
 * each index fills from one end instead of at random places batch after batch.
 */
export async function createPlacements(q: Queryable): Promise<void> {
  await q.query(
    `CREATE TEMP TABLE asset_scratch_assets (${ASSET_ROW_TYPES.map(([name, type]) => `${name} ${type}`).join(', ')}) ON COMMIT DROP`,
  );
  await q.query('CREATE TEMP TABLE asset_scratch_places (i int, asset_id uuid, observation jsonb, last_seen_at timestamptz) ON COMMIT DROP');
}

/** One batch's assets and placements (`observation` and `last_seen_at` for agents, null for Intune records). */
export async function placeBatch(
  q: Queryable,
  assets: readonly AssetRow[],
  places: readonly { i: number; asset_id: string; observation: string | null; last_seen_at: string | null }[],
): Promise<void> {
  await q.query(`INSERT INTO asset_scratch_assets SELECT * FROM ${assetUnnest(1)}`, assetColumns(assets));
  await q.query('INSERT INTO asset_scratch_places SELECT * FROM unnest($1::int[], $2::uuid[], $3::jsonb[], $4::timestamptz[])', [
    `{${places.map((p) => p.i).join(',')}}`,
    arrayLiteral(places.map((p) => p.asset_id)),
    arrayLiteral(places.map((p) => p.observation)),
    arrayLiteral(places.map((p) => p.last_seen_at)),
  ]);
}

/**
 * The placed assets and sources written to the real tables in asset-id order: Intune postures
 * copied from the snapshot the working set read (a lateral lookup per source, so the order holds).
 */
export async function writePlacements(q: Queryable, tenant: string, at: string): Promise<void> {
  await q.query(
    `INSERT INTO assets (tenant, ${ASSET_NAMES}, updated_at) SELECT $1, ${ASSET_NAMES}, $2 FROM asset_scratch_assets ORDER BY asset_id`,
    [tenant, at],
  );
  await q.query(
    `INSERT INTO asset_sources (tenant, kind, origin, source_id, asset_id, serial_fingerprint, hardware_fingerprint, entra_device_id, observation, last_seen_at)
     SELECT $1, x.kind, x.origin, x.source_id, x.asset_id, x.serial_fingerprint, x.hardware_fingerprint, x.entra_device_id,
            coalesce(x.observation, d.posture), CASE WHEN x.kind = 'intune' THEN d.last_sync_at ELSE x.last_seen_at END
       FROM (SELECT s.kind, s.origin, s.source_id, p.asset_id, s.serial_fingerprint, s.hardware_fingerprint, s.entra_device_id, s.snapshot_id, p.observation, p.last_seen_at
               FROM asset_scratch_places p JOIN asset_scratch s ON s.i = p.i ORDER BY p.asset_id) x
       LEFT JOIN LATERAL (SELECT posture, last_sync_at FROM intune_device_postures d
                           WHERE x.kind = 'intune' AND d.snapshot_id = x.snapshot_id AND d.device_id = x.source_id) d ON true
      WHERE x.kind = 'agent' OR d.posture IS NOT NULL`,
    [tenant],
  );
}

/** Stored assets whose sources the new assignment spreads over several assets, with the serial of the new asset that keeps the id. */
export async function scratchSplits(q: Queryable, tenant: string): Promise<{ asset_id: string; serial_fingerprint: string | null; into_asset_ids: string[] }[]> {
  const { rows } = await q.query<{ asset_id: string; serial_fingerprint: string | null; into_asset_ids: string[] | string }>(
    `SELECT s.old_asset::text AS asset_id, a.serial_fingerprint,
            array_agg(DISTINCT n.asset_id::text COLLATE "C" ORDER BY n.asset_id::text COLLATE "C") AS into_asset_ids
       FROM asset_scratch s JOIN asset_sources n ON n.tenant = $1 AND n.kind = s.kind AND n.origin = s.origin AND n.source_id = s.source_id
       LEFT JOIN assets a ON a.tenant = $1 AND a.asset_id = s.old_asset
      WHERE s.old_asset IS NOT NULL GROUP BY s.old_asset, a.serial_fingerprint HAVING count(DISTINCT n.asset_id) > 1 ORDER BY 1`,
    [tenant],
  );
  return rows.map((r) => ({ ...r, into_asset_ids: typeof r.into_asset_ids === 'string' ? r.into_asset_ids.slice(1, -1).split(',') : r.into_asset_ids }));
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
    await q.query(`INSERT INTO assets (tenant, ${ASSET_NAMES}, updated_at) SELECT $1, r.*, $2 FROM ${assetUnnest(3)}`, [tenant, at, ...assetColumns(chunk)]);
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
