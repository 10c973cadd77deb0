/**
 * Snapshot rows: written page by page under the run's id, read only through a connection's
 * current_snapshot_id, pruned once no longer current.
 */
import crypto from 'node:crypto';
import type { Db, Queryable } from '../db/index.js';
import { PostureInputError } from './errors.js';
import { pickPosture, zeroCounts } from './rows.js';
import { iso } from '../common/values.js';
import type { DeviceQuery, SnapshotDevice, SnapshotDevicePage } from './types.js';
import { isGuid } from '../common/ids.js';
import type { SyncInvalidation } from '../connector/cache.js';
import type { SnapshotChanges } from '../connector/posture.js';

export type { SnapshotChanges };

/**
 * One round trip per page: the page travels as one JSON array and is unpacked by the server, which
 * is as fast as a multi-row VALUES and works the same on PostgreSQL and PGlite. Bytes (PageRows)
 * go to PostgreSQL as a bytea parameter, copied from the buffer the page was written into, never
 * made into a string; PGlite, in process, takes text. A device id read twice in a run (repeated in
 * a page or across pages, or read in its old lastSyncDateTime range and again after it checked in)
 * is stored once, as its most recently synced record: within the page by DISTINCT ON, across pages
 * by the upsert. Answers how many devices (distinct ids) the page held.
 */
export async function insertPage(
  db: Queryable & { readonly kind?: Db['kind'] },
  snapshot: { snapshotId: string; connectionId: string; tenant: string },
  /** JSON array of redacted postures (DevicePosture[]), as text or UTF-8 bytes. */
  postures: string | Buffer,
): Promise<number> {
  const asBytes = typeof postures !== 'string' && db.kind === 'postgres';
  const param = typeof postures === 'string' || asBytes ? postures : postures.toString('utf8');
  const { rows } = await db.query<{ devices: number }>(
    `WITH page AS (
       SELECT DISTINCT ON (e->>'device_id') e, (e->>'last_sync_at')::timestamptz AS last_sync_at
         FROM jsonb_array_elements(${asBytes ? "convert_from($4::bytea, 'UTF8')::jsonb" : '$4::jsonb'}) AS e
        ORDER BY e->>'device_id', (e->>'last_sync_at')::timestamptz DESC NULLS LAST
     ), stored AS (
       INSERT INTO intune_device_postures (snapshot_id, device_id, connection_id, tenant, os_family, compliance_state, ownership, last_sync_at, posture)
       SELECT $1, e->>'device_id', $2, $3, e->>'os_family', e->>'compliance_state', e->>'ownership', last_sync_at, e FROM page
       ON CONFLICT (snapshot_id, device_id) DO UPDATE
          SET os_family = EXCLUDED.os_family, compliance_state = EXCLUDED.compliance_state, ownership = EXCLUDED.ownership,
              last_sync_at = EXCLUDED.last_sync_at, posture = EXCLUDED.posture
        WHERE EXCLUDED.last_sync_at > intune_device_postures.last_sync_at
           OR (intune_device_postures.last_sync_at IS NULL AND EXCLUDED.last_sync_at IS NOT NULL)
     )
     SELECT count(*)::int AS devices FROM page`,
    [snapshot.snapshotId, snapshot.connectionId, snapshot.tenant, param],
  );
  return rows[0]?.devices ?? 0;
}

export async function snapshotCounts(
  q: Queryable,
  snapshotId: string,
): Promise<{ devices: number; byComplianceState: Record<string, number>; byOsFamily: Record<string, number> }> {
  const { rows } = await q.query<{ compliance_state: string; os_family: string; n: number }>(
    `SELECT compliance_state, os_family, count(*)::int AS n FROM intune_device_postures WHERE snapshot_id = $1 GROUP BY 1, 2`,
    [snapshotId],
  );
  const byComplianceState: Record<string, number> = {};
  const byOsFamily: Record<string, number> = {};
  let devices = 0;
  for (const row of rows) {
    byComplianceState[row.compliance_state] = (byComplianceState[row.compliance_state] ?? 0) + row.n;
    byOsFamily[row.os_family] = (byOsFamily[row.os_family] ?? 0) + row.n;
    devices += row.n;
  }
  return { devices, byComplianceState, byOsFamily };
}

/**
 * Deletes the rows of the connection's runs that are neither current nor running: the snapshot
 * a flip replaced, and the partial rows of failed or abandoned runs. Runs are marked pruned so
 * each is cleaned once; a crash between flip and prune is cleaned by the next run.
 */
export async function pruneSnapshots(db: Db, connectionId: string): Promise<number> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT r.id::text AS id FROM intune_sync_runs r JOIN intune_connections c ON c.id = r.connection_id
      WHERE r.connection_id = $1 AND NOT r.pruned AND r.status <> 'running' AND r.id IS DISTINCT FROM c.current_snapshot_id`,
    [connectionId],
  );
  let deleted = 0;
  for (const { id } of rows) {
    deleted += (await db.query('DELETE FROM intune_device_postures WHERE snapshot_id = $1', [id])).rowCount;
    await db.query('UPDATE intune_sync_runs SET pruned = true WHERE id = $1', [id]);
  }
  return deleted;
}

const CURRENT = `FROM intune_device_postures p
  JOIN intune_connections c ON c.current_snapshot_id = p.snapshot_id AND c.tenant = p.tenant
 WHERE c.tenant = $1 AND c.status <> 'disabled'`;

interface CursorPosition {
  readonly d: string;
  readonly c: string;
  readonly h: string;
}

function filterHash(tenant: string, query: DeviceQuery): string {
  const { cursor: _cursor, limit: _limit, ...filters } = query;
  const canonical = JSON.stringify([tenant, Object.entries(filters).sort(([a], [b]) => (a < b ? -1 : 1))]);
  return crypto.createHash('sha256').update(canonical).digest('base64url').slice(0, 16);
}

function encodeCursor(position: CursorPosition): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

function decodeCursor(cursor: string, expectedHash: string): CursorPosition {
  const invalid = new PostureInputError('invalid_cursor', 'cursor', 'cursor must be the next_cursor of a previous page with the same filters, unchanged');
  let position: unknown;
  try {
    position = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid;
  }
  const p = position as Partial<CursorPosition> | null;
  if (
    typeof p !== 'object' ||
    p === null ||
    typeof p.d !== 'string' ||
    p.d.length > 64 ||
    // PostgreSQL text holds no NUL, and c is cast to uuid: either would fail the query, not the input.
    /[\u0000-\u001f\u007f]/.test(p.d) ||
    typeof p.c !== 'string' ||
    !isGuid(p.c) ||
    p.c !== p.c.toLowerCase() ||
    p.h !== expectedHash
  ) {
    throw invalid;
  }
  return { d: p.d, c: p.c, h: p.h };
}

/** Keyset pages ordered by (device id, connection id) over the current snapshots; `total` ignores the cursor. */
export async function listDevices(q: Queryable, tenant: string, query: DeviceQuery): Promise<SnapshotDevicePage> {
  const limit = query.limit ?? 100;
  const hash = filterHash(tenant, query);
  const params: unknown[] = [tenant];
  const where: string[] = [];
  const add = (sql: (n: string) => string, value: unknown) => {
    params.push(value);
    where.push(sql(`$${params.length}`));
  };
  if (query.os_family !== undefined) add((n) => `p.os_family = ${n}`, query.os_family);
  if (query.compliance_state !== undefined) add((n) => `p.compliance_state = ${n}`, query.compliance_state);
  if (query.ownership !== undefined) add((n) => `p.ownership = ${n}`, query.ownership);
  if (query.connection_id !== undefined) add((n) => `c.id = ${n}::uuid`, query.connection_id);
  if (query.last_sync_before !== undefined) add((n) => `p.last_sync_at < ${n}::timestamptz`, query.last_sync_before);
  if (query.last_sync_after !== undefined) add((n) => `p.last_sync_at > ${n}::timestamptz`, query.last_sync_after);
  // q is validated to hex digits and dashes: no LIKE wildcard can be in it.
  if (query.q !== undefined) add((n) => `p.device_id LIKE ${n} || '%'`, query.q);
  if (query.fingerprint !== undefined) add((n) => `p.posture->>'serial_fingerprint' = ${n}`, query.fingerprint);
  const filterSql = where.map((w) => ` AND ${w}`).join('');
  const filterParams = [...params];

  if (query.cursor !== undefined) {
    const position = decodeCursor(query.cursor, hash);
    params.push(position.d, position.c);
    where.push(`(p.device_id, p.connection_id) > ($${params.length - 1}, $${params.length}::uuid)`);
  }
  params.push(limit + 1);
  const pageSql = `SELECT p.posture, p.connection_id::text AS connection_id ${CURRENT}${where.map((w) => ` AND ${w}`).join('')}
    ORDER BY p.device_id, p.connection_id LIMIT $${params.length}`;

  const [page, count] = await Promise.all([
    q.query<{ posture: Record<string, unknown>; connection_id: string }>(pageSql, params),
    q.query<{ n: number }>(`SELECT count(*)::int AS n ${CURRENT}${filterSql}`, filterParams),
  ]);
  const rows = page.rows.slice(0, limit);
  const devices: SnapshotDevice[] = rows.map((row) => ({ ...pickPosture(row.posture), connection_id: row.connection_id }));
  const last = rows[rows.length - 1];
  const next_cursor =
    page.rows.length > limit && last !== undefined ? encodeCursor({ d: String(last.posture['device_id']), c: last.connection_id, h: hash }) : null;
  return { devices, next_cursor, total: count.rows[0]?.n ?? 0 };
}

export async function getDevice(
  q: Queryable,
  tenant: string,
  deviceId: string,
): Promise<(SnapshotDevice & { readonly snapshot_at: string }) | null> {
  const { rows } = await q.query<{ posture: Record<string, unknown>; connection_id: string; snapshot_at: Date | string }>(
    `SELECT p.posture, p.connection_id::text AS connection_id, c.snapshot_at ${CURRENT} AND p.device_id = $2
      ORDER BY c.snapshot_at DESC, c.id LIMIT 1`,
    [tenant, deviceId],
  );
  const row = rows[0];
  return row === undefined ? null : { ...pickPosture(row.posture), connection_id: row.connection_id, snapshot_at: iso(row.snapshot_at) };
}

/** Sums the counts each current snapshot's run recorded (no scan of the posture rows). */
export async function currentTotals(
  q: Queryable,
  tenant: string,
): Promise<{ devices: number; byComplianceState: ReturnType<typeof zeroCounts>['compliance']; byOsFamily: ReturnType<typeof zeroCounts>['os'] }> {
  const { rows } = await q.query<{ devices: number; counts_by_compliance_state: Record<string, number>; counts_by_os_family: Record<string, number> }>(
    `SELECT r.devices, r.counts_by_compliance_state, r.counts_by_os_family
       FROM intune_connections c JOIN intune_sync_runs r ON r.id = c.current_snapshot_id
      WHERE c.tenant = $1 AND c.status <> 'disabled'`,
    [tenant],
  );
  const { compliance, os } = zeroCounts();
  let devices = 0;
  for (const row of rows) {
    devices += row.devices;
    for (const [state, n] of Object.entries(row.counts_by_compliance_state)) if (state in compliance) compliance[state as keyof typeof compliance] += n;
    for (const [family, n] of Object.entries(row.counts_by_os_family)) if (family in os) os[family as keyof typeof os] += n;
  }
  return { devices, byComplianceState: compliance, byOsFamily: os };
}

/** One device whose compliance state, encryption or OS major version differs between two snapshots. */
export interface PostureChange {
  readonly device_id: string;
  readonly azure_ad_device_id: string | null;
  readonly old_state: string | null;
  readonly new_state: string | null;
  readonly old_encrypted: boolean | null;
  readonly new_encrypted: boolean | null;
  readonly old_major: string | null;
  readonly new_major: string | null;
}

const MAJOR = (alias: string) => `substring(${alias}.posture->>'os_version' from '^\\s*([0-9]{1,9})')`;

/**
 * Devices present in both snapshots whose compliance state, encryption or OS major version
 * changed, by device id, at most `limit`; and how many there are in all.
 */
export async function postureChanges(q: Queryable, previousSnapshotId: string, snapshotId: string, limit: number): Promise<{ changes: PostureChange[]; total: number }> {
  const where = `n.snapshot_id = $1 AND (
      o.posture->>'compliance_state' IS DISTINCT FROM n.posture->>'compliance_state'
      OR o.posture->'is_encrypted' IS DISTINCT FROM n.posture->'is_encrypted'
      OR ${MAJOR('o')} IS DISTINCT FROM ${MAJOR('n')})`;
  const from = `FROM intune_device_postures n JOIN intune_device_postures o ON o.snapshot_id = $2 AND o.device_id = n.device_id`;
  const { rows } = await q.query<PostureChange>(
    `SELECT n.device_id, n.posture->>'azure_ad_device_id' AS azure_ad_device_id,
            o.posture->>'compliance_state' AS old_state, n.posture->>'compliance_state' AS new_state,
            (o.posture->>'is_encrypted')::boolean AS old_encrypted, (n.posture->>'is_encrypted')::boolean AS new_encrypted,
            ${MAJOR('o')} AS old_major, ${MAJOR('n')} AS new_major
     ${from} WHERE ${where} ORDER BY n.device_id LIMIT $3`,
    [snapshotId, previousSnapshotId, limit],
  );
  const count = await q.query<{ n: number }>(`SELECT count(*)::int AS n ${from} WHERE ${where}`, [snapshotId, previousSnapshotId]);
  return { changes: rows, total: count.rows[0]?.n ?? 0 };
}

/** What a succeeded sync tells the compliance cache (the connector's type: it forgets those answers). */
export type SyncedDevices = SyncInvalidation;

/** Beyond this many changed devices a sync drops the tenant's cached answers whole: the list would cost more than it saves. */
export const SYNCED_DEVICES_CAP = 5_000;

/** What changed between a connection's previous snapshot and the one a sync just wrote. */
export interface SnapshotDiff {
  /** What the compliance cache forgets. */
  readonly synced: SyncedDevices;
  /** Asset identity's input: device ids whose record differs in anything, added or removed included. */
  readonly records: SnapshotChanges | null;
}

/** Beyond this many changed records (check-ins included) asset identity compares the whole snapshot itself. */
export const SNAPSHOT_CHANGES_CAP = 20_000;

/**
 * One pass over both snapshots for both consumers. The compliance cache hears of devices that
 * differ in anything but last_sync_at (a check-in stamps it every few hours without changing an
 * answer; cached answers have a TTL of their own), and devices in only one snapshot (enrolled: a
 * cached "not managed" must go; removed), with both Entra ids a device had, so answers cached
 * under either key go too; more than `cap`: `all`. Asset identity hears of every difference,
 * check-ins included (an asset shows when its sources were last seen); more than `recordsCap`: null.
 * Rows that change an answer sort first, so the cache's list is exact whenever the records list is cut.
 */
export async function snapshotDiff(
  q: Queryable,
  previousSnapshotId: string,
  snapshotId: string,
  cap = SYNCED_DEVICES_CAP,
  recordsCap = SNAPSHOT_CHANGES_CAP,
): Promise<SnapshotDiff> {
  const limit = Math.max(cap, recordsCap) + 1;
  const { rows } = await q.query<{ device_id: string; old_aad: string | null; new_aad: string | null; answers: boolean }>(
    `SELECT device_id, o.posture->>'azure_ad_device_id' AS old_aad, n.posture->>'azure_ad_device_id' AS new_aad,
            (n.posture IS NULL OR o.posture IS NULL OR (n.posture - 'last_sync_at') IS DISTINCT FROM (o.posture - 'last_sync_at')) AS answers
       FROM (SELECT device_id, posture FROM intune_device_postures WHERE snapshot_id = $1) n
       FULL JOIN (SELECT device_id, posture FROM intune_device_postures WHERE snapshot_id = $2) o USING (device_id)
      WHERE n.posture IS DISTINCT FROM o.posture
      ORDER BY answers DESC
      LIMIT $3`,
    [snapshotId, previousSnapshotId, limit],
  );
  const answering = rows.filter((row) => row.answers);
  const synced: SyncedDevices =
    answering.length > cap
      ? { all: true }
      : {
          all: false,
          devices: answering.map((row) => ({
            deviceId: row.device_id,
            azureADDeviceIds: [...new Set([row.old_aad, row.new_aad].filter((id): id is string => id !== null && id !== ''))],
          })),
        };
  const records = rows.length > recordsCap ? null : { previousSnapshotId, snapshotId, deviceIds: rows.map((row) => row.device_id) };
  return { synced, records };
}
