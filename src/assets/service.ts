/**
 * Asset identity: Intune records and enrolled agents matched into one asset per machine and
 * tenant, re-matched for what changed when a sync or an agent changes an input, and read with the
 * source and confidence of every attribute.
 *
 * A re-match runs in one transaction holding a per-tenant advisory lock (two replicas, or a sync
 * and a heartbeat, never interleave their writes for one tenant), and its Chronicle records commit
 * with it: a merge, split or conflict is never stored without its record.
 */
import type { Db, Queryable } from '../db/index.js';
import type { Logger } from '../log/index.js';
import type { AppendInput, ChronicleWriter } from '../chronicle/types.js';
import { sourceKey, type SourceKind } from './match.js';
import { applyChanges, closureOf, replaceSubset, type MatchReport } from './rematch.js';
import * as store from './store.js';
import type { StoredSource } from './store.js';
import type { AssetQuery, AssetView, AssetPage } from './types.js';
import { createAssetReader } from './reader.js';
import { rebuildTenant } from './rebuild.js';
import type { EndpointAgent } from '../connector/assets.js';
import type { SnapshotChanges } from '../connector/posture.js';

export interface AssetServiceOptions {
  readonly db: Db;
  readonly chronicle: ChronicleWriter;
  readonly logger: Logger;
  readonly now?: () => number;
}

export interface AssetService {
  /** Matches every live source of the tenant from scratch. */
  rebuild(tenant: string): Promise<MatchReport>;
  /**
   * Re-matches what changed in one connection's current snapshot (after a sync, or a status
   * change). With the sync's list of changed records, only those are read, when the stored sources
   * show the snapshot the list starts from; else every live record is compared with what is stored.
   */
  rematchConnection(tenant: string, connectionId: string, changes?: SnapshotChanges): Promise<MatchReport>;
  /**
   * Brings the tenant's assets in step with its sources: from scratch when none are stored yet,
   * else each connection's and the agents' changes (what a missed hook, a CLI sync or a CLI
   * revocation left behind). serve runs it for every tenant at start.
   */
  reconcile(tenant: string): Promise<MatchReport>;
  /** Tenants that have connections or agents. */
  tenants(): Promise<string[]>;
  /** Re-matches one agent after an enrollment, heartbeat or revocation; a heartbeat that changed nothing but the time is one UPDATE. */
  rematchAgent(tenant: string, agentId: string): Promise<MatchReport | null>;
  list(tenant: string, query: AssetQuery): Promise<AssetPage>;
  get(tenant: string, assetId: string): Promise<AssetView | null>;
  /** The assets whose sources report this serial fingerprint (several only when a conflict names them). */
  byFingerprint(tenant: string, fingerprint: string): Promise<AssetView[]>;
  /** The asset an Intune record or an agent belongs to. */
  bySource(tenant: string, kind: SourceKind, sourceId: string): Promise<AssetView | null>;
  /** Agents that see the same machine as any of these Intune records, and what they report (get_device, get_compliance). */
  endpointAgents(tenant: string, intuneDeviceIds: readonly string[]): Promise<EndpointAgent[]>;
}

const EMPTY: MatchReport = { sources: 0, assets: 0, merged: 0, split: 0, conflicts_detected: 0, conflicts_resolved: 0 };

export function createAssetService(options: AssetServiceOptions): AssetService {
  const { db, chronicle } = options;
  const logger = options.logger.child({ component: 'assets' });
  const now = options.now ?? Date.now;

  /** Runs a re-match under the tenant's lock, recording its events in the same transaction when Chronicle shares the database. */
  async function locked(tenant: string, work: (tx: Queryable, record: (events: AppendInput[]) => Promise<void>) => Promise<MatchReport>): Promise<MatchReport> {
    const within = chronicle.appendWithin?.bind(chronicle);
    const deferred: AppendInput[] = [];
    const report = await db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(hashtext('asset-match:' || $1))`, [tenant]);
      return work(tx, async (events) => {
        if (within === undefined) deferred.push(...events);
        else for (const event of events) await within(tx, event);
      });
    });
    for (const event of deferred) await chronicle.append(event);
    if (report.merged + report.split + report.conflicts_detected + report.conflicts_resolved > 0) logger.info({ tenant, ...report }, 'assets re-matched');
    return report;
  }

  /** A from-scratch match inside a locked transaction: numbered keys matched, sources written back in batches (rebuild.ts). */
  async function rebuildWithin(tx: Queryable, tenant: string, record: (events: AppendInput[]) => Promise<void>): Promise<MatchReport> {
    await store.recordMatchedSnapshotsOfTenant(tx, tenant);
    return rebuildTenant(tx, { tenant, at: new Date(now()).toISOString(), record });
  }

  async function rebuild(tenant: string): Promise<MatchReport> {
    return locked(tenant, (tx, record) => rebuildWithin(tx, tenant, record));
  }

  async function rematchChanges(tenant: string, tx: Queryable, record: (events: AppendInput[]) => Promise<void>, upserts: store.SourceRow[], removed: store.StoredKey[]) {
    if (upserts.length === 0 && removed.length === 0) return EMPTY;
    const at = new Date(now()).toISOString();
    const previous = new Map((await store.storedSourcesByKey(tx, tenant, [...upserts, ...removed])).map((s) => [sourceKey(s), s]));
    // A source whose keys did not change stays where it is: only its observation and its asset's summary move.
    const sameKeys: StoredSource[] = [];
    const moved: store.SourceRow[] = [];
    for (const row of upserts) {
      const before = previous.get(sourceKey(row));
      if (before !== undefined && sameKeysOf(row, before)) sameKeys.push({ ...row, asset_id: before.asset_id });
      else moved.push(row);
    }
    if (sameKeys.length > 0) {
      await store.updateObservations(tx, tenant, sameKeys);
      await store.refreshAssets(tx, tenant, [...new Set(sameKeys.map((s) => s.asset_id))], at);
    }
    if (moved.length === 0 && removed.length === 0) return { ...EMPTY, sources: sameKeys.length };
    const unmoved = new Set(sameKeys.map(sourceKey));
    const seeds = [...moved, ...[...previous.values()].filter((s) => !unmoved.has(sourceKey(s)))];
    const before = await closureOf(tx, tenant, seeds);
    const after = applyChanges(before, moved, removed);
    const report = await replaceSubset(tx, { tenant, before, after, at, record });
    return { ...report, sources: report.sources + sameKeys.length };
  }

  async function rematchConnection(tenant: string, connectionId: string, changes?: SnapshotChanges): Promise<MatchReport> {
    return locked(tenant, async (tx, record) => {
      // Nothing matched yet (a first sync, from serve or the CLI): one from-scratch match, not every record as a change.
      if (!(await store.hasSources(tx, tenant))) return rebuildWithin(tx, tenant, record);
      const id = connectionId.toLowerCase();
      // Read once: the comparison and the note of what the stored sources now show name one snapshot.
      const snapshotId = await store.liveSnapshotOf(tx, tenant, id);
      const listed =
        changes !== undefined && snapshotId !== null && changes.snapshotId === snapshotId && (await store.matchedSnapshotOf(tx, tenant, id)) === changes.previousSnapshotId;
      const { upserts, removed } = await store.connectionChanges(tx, tenant, id, snapshotId, listed ? changes.deviceIds : undefined);
      const report = await rematchChanges(tenant, tx, record, upserts, removed);
      await store.recordMatchedSnapshot(tx, tenant, id, snapshotId);
      return report;
    });
  }

  async function reconcile(tenant: string): Promise<MatchReport> {
    if (!(await store.hasSources(db, tenant))) return rebuild(tenant);
    const reports: MatchReport[] = [];
    for (const connectionId of await store.connectionIdsOf(db, tenant)) reports.push(await rematchConnection(tenant, connectionId));
    reports.push(
      await locked(tenant, async (tx, record) => {
        const live = await store.liveAgentSources(tx, tenant);
        const stored = await store.storedAgentSources(tx, tenant);
        const storedByKey = new Map(stored.map((s) => [sourceKey(s), s]));
        const liveKeys = new Set(live.map(sourceKey));
        const upserts = live.filter((s) => {
          const before = storedByKey.get(sourceKey(s));
          return before === undefined || !sameInputs(s, before) || before.last_seen_at !== s.last_seen_at;
        });
        const removed = stored.filter((s) => !liveKeys.has(sourceKey(s)));
        return rematchChanges(tenant, tx, record, upserts, removed);
      }),
    );
    return reports.reduce((a, b) => ({
      sources: a.sources + b.sources,
      assets: a.assets + b.assets,
      merged: a.merged + b.merged,
      split: a.split + b.split,
      conflicts_detected: a.conflicts_detected + b.conflicts_detected,
      conflicts_resolved: a.conflicts_resolved + b.conflicts_resolved,
    }), EMPTY);
  }

  async function tenants(): Promise<string[]> {
    const { rows } = await db.query<{ tenant: string }>('SELECT tenant FROM intune_connections UNION SELECT tenant FROM agents ORDER BY tenant');
    return rows.map((r) => r.tenant);
  }

  async function rematchAgent(tenant: string, agentId: string): Promise<MatchReport | null> {
    const id = agentId.toLowerCase();
    const [live] = await store.liveAgentSources(db, tenant, id);
    const [stored] = await store.storedSourcesByKey(db, tenant, [{ kind: 'agent', origin: '', source_id: id }]);
    if (live !== undefined && stored !== undefined && sameInputs(live, stored)) {
      // The common heartbeat: same machine, same posture; only the time moves.
      if (live.last_seen_at !== stored.last_seen_at) await store.touchAgent(db, tenant, id, live.last_seen_at);
      return null;
    }
    if (live === undefined && stored === undefined) return null;
    return locked(tenant, async (tx, record) => {
      const [current] = await store.liveAgentSources(tx, tenant, id);
      return rematchChanges(tenant, tx, record, current === undefined ? [] : [current], current === undefined ? [{ kind: 'agent', origin: '', source_id: id }] : []);
    });
  }

  const reader = createAssetReader({ db, now });
  return { rebuild, rematchConnection, reconcile, tenants, rematchAgent, ...reader };
}

function sameKeysOf(a: store.SourceRow, b: StoredSource): boolean {
  return a.serial_fingerprint === b.serial_fingerprint && a.hardware_fingerprint === b.hardware_fingerprint && a.entra_device_id === b.entra_device_id;
}

function sameInputs(a: store.SourceRow, b: StoredSource): boolean {
  return (
    sameKeysOf(a, b) &&
    sameFlat(a.observation as unknown as Record<string, unknown>, b.observation as unknown as Record<string, unknown>)
  );
}

/** Flat objects equal field by field (jsonb hands keys back in its own order). */
function sameFlat(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) if ((a[key] ?? null) !== (b[key] ?? null)) return false;
  return true;
}
