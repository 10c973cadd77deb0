/**
 * One re-match: the stored sources a change can reach (its keys' neighbours, followed until
 * nothing new joins), matched again with the change applied, and written back in one
 * transaction with the Chronicle records of the merges, splits and new conflicts it made.
 */
import crypto from 'node:crypto';
import type { Queryable } from '../db/index.js';
import type { Actor, AppendInput } from '../chronicle/types.js';
import { summarize, type ObservedSource } from './attributes.js';
import { assetIdOf, keysOf, matchSources, sourceKey, type MatchConflict, type SourceRef } from './match.js';
import * as store from './store.js';
import type { ConflictRow, SourceRow, StoredKey, StoredSource } from './store.js';

export const MATCHER_ACTOR: Actor = { kind: 'system', id: 'asset-matcher' };
/** Items per event: a from-scratch match of a large tenant is a few dozen events, not thousands. */
export const EVENT_ITEMS = 500;
const MAX_CLOSURE_ROUNDS = 8;

export interface MatchReport {
  /** Sources matched in this run (the changed ones and their neighbours). */
  readonly sources: number;
  readonly assets: number;
  readonly merged: number;
  readonly split: number;
  readonly conflicts_detected: number;
  readonly conflicts_resolved: number;
}

export interface MergeItem {
  readonly asset_id: string;
  readonly rule: 'serial_fingerprint' | 'entra_device_id';
  readonly serial_fingerprint: string | null;
  readonly entra_device_id: string | null;
  readonly joined: readonly SourceRef[];
  readonly previous_asset_ids: readonly string[];
}

export interface SplitItem {
  readonly asset_id: string;
  readonly serial_fingerprint: string | null;
  readonly into_asset_ids: readonly string[];
}

/** The stored rows a change can reach: neighbours by serial, Entra id and asset, to a fixed point. */
export async function closureOf(q: Queryable, tenant: string, seeds: readonly (SourceRow | StoredSource)[]): Promise<Map<string, StoredSource>> {
  const found = new Map<string, StoredSource>();
  const serials = new Set<string>();
  const entraIds = new Set<string>();
  const assetIds = new Set<string>();
  const fresh = { serials: [] as string[], entraIds: [] as string[], assetIds: [] as string[] };
  const note = (s: SourceRow | StoredSource) => {
    const keys = keysOf(s);
    for (const k of keys.serials) if (!serials.has(k)) (serials.add(k), fresh.serials.push(k));
    for (const k of keys.entraIds) if (!entraIds.has(k)) (entraIds.add(k), fresh.entraIds.push(k));
    if ('asset_id' in s && !assetIds.has(s.asset_id)) (assetIds.add(s.asset_id), fresh.assetIds.push(s.asset_id));
  };
  seeds.forEach(note);
  for (let round = 0; round < MAX_CLOSURE_ROUNDS && fresh.serials.length + fresh.entraIds.length + fresh.assetIds.length > 0; round++) {
    const next = { serials: fresh.serials.splice(0), entraIds: fresh.entraIds.splice(0), assetIds: fresh.assetIds.splice(0) };
    for (const row of await store.storedNeighbours(q, tenant, next)) {
      if (found.has(sourceKey(row))) continue;
      found.set(sourceKey(row), row);
      note(row);
    }
  }
  return found;
}

const asObserved = (s: SourceRow): ObservedSource => ({ kind: s.kind, source_id: s.source_id, last_seen_at: s.last_seen_at, observation: s.observation }) as ObservedSource;

function assetsOf(tenant: string, rows: readonly SourceRow[], anchorOf: ReadonlyMap<string, string>) {
  const byAsset = new Map<string, { anchor: string; rows: StoredSource[] }>();
  const idOf = new Map<string, string>();
  for (const row of rows) {
    const anchor = anchorOf.get(sourceKey(row)) as string;
    let assetId = idOf.get(anchor);
    if (assetId === undefined) {
      assetId = assetIdOf(tenant, anchor);
      idOf.set(anchor, assetId);
    }
    const entry = byAsset.get(assetId) ?? { anchor, rows: [] };
    entry.rows.push({ ...row, asset_id: assetId });
    byAsset.set(assetId, entry);
  }
  return byAsset;
}

const refOf = (s: SourceRow): SourceRef => ({ kind: s.kind, id: s.source_id });
const serialOfAnchor = (anchor: string): string | null => (anchor.startsWith('serial:') ? (anchor.slice(7).split('|')[0] ?? null) : null);

function diffMerges(
  byAsset: ReadonlyMap<string, { anchor: string; rows: StoredSource[] }>,
  oldAssetOf: ReadonlyMap<string, string>,
): { merges: MergeItem[]; splits: SplitItem[] } {
  const merges: MergeItem[] = [];
  const movedFrom = new Map<string, Set<string>>();
  for (const [assetId, { anchor, rows }] of byAsset) {
    for (const row of rows) {
      const before = oldAssetOf.get(sourceKey(row));
      if (before !== undefined) movedFrom.set(before, (movedFrom.get(before) ?? new Set()).add(assetId));
    }
    if (rows.length < 2) continue;
    const joined = rows.filter((r) => oldAssetOf.get(sourceKey(r)) !== assetId);
    if (joined.length === 0) continue;
    merges.push({
      asset_id: assetId,
      rule: anchor.startsWith('entra:') || !rows.every((r) => r.serial_fingerprint !== null) ? 'entra_device_id' : 'serial_fingerprint',
      serial_fingerprint: serialOfAnchor(anchor),
      entra_device_id: anchor.startsWith('entra:') ? anchor.slice(6) : (rows.find((r) => r.entra_device_id !== null)?.entra_device_id ?? null),
      joined: joined.map(refOf),
      previous_asset_ids: [...new Set(joined.map((r) => oldAssetOf.get(sourceKey(r))).filter((a): a is string => a !== undefined && a !== assetId))].sort(),
    });
  }
  const splits: SplitItem[] = [];
  for (const [before, into] of movedFrom) {
    if (into.size < 2) continue;
    const serial = [...byAsset.get(before)?.rows ?? []].find((r) => r.serial_fingerprint !== null)?.serial_fingerprint ?? null;
    splits.push({ asset_id: before, serial_fingerprint: serial, into_asset_ids: [...into].sort() });
  }
  return { merges, splits };
}

function conflictRows(tenant: string, conflicts: readonly MatchConflict[], previous: ReadonlyMap<string, ConflictRow>, at: string): ConflictRow[] {
  return conflicts.map((c) => ({
    conflict_key: c.key,
    conflict_id: previous.get(c.key)?.conflict_id ?? crypto.randomUUID(),
    kind: c.kind,
    serial_fingerprint: c.serial_fingerprint,
    entra_device_id: c.entra_device_id,
    asset_ids: c.anchors.map((a) => assetIdOf(tenant, a)).sort(),
    sources: c.sources,
    detected_at: previous.get(c.key)?.detected_at ?? at,
  }));
}

function chunked<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += EVENT_ITEMS) out.push(items.slice(i, i + EVENT_ITEMS));
  return out;
}

export function matchEvents(tenant: string, runId: string, merges: readonly MergeItem[], splits: readonly SplitItem[], detected: readonly ConflictRow[]): AppendInput[] {
  const events: AppendInput[] = [];
  const base = { tenant, actor: MATCHER_ACTOR };
  for (const items of chunked(merges)) events.push({ ...base, type: 'asset.sources_merged', data: { match_id: runId, merges: items } });
  for (const items of chunked(splits)) events.push({ ...base, type: 'asset.split', data: { match_id: runId, splits: items } });
  for (const items of chunked(detected)) {
    events.push({
      ...base,
      type: 'asset.conflict_detected',
      data: {
        match_id: runId,
        conflicts: items.map((c) => ({
          conflict_id: c.conflict_id,
          kind: c.kind,
          serial_fingerprint: c.serial_fingerprint,
          entra_device_id: c.entra_device_id,
          asset_ids: c.asset_ids,
          sources: c.sources,
        })),
      },
    });
  }
  return events;
}

export interface ReplaceArgs {
  readonly tenant: string;
  /** The stored rows in scope (all of the tenant's for a from-scratch match). */
  readonly before: ReadonlyMap<string, StoredSource>;
  /** What those sources are now (removed ones absent, new ones present). */
  readonly after: readonly SourceRow[];
  /** true: the whole tenant is in scope (bulk deletes, every conflict replaced). */
  readonly whole: boolean;
  readonly at: string;
  readonly record: (events: AppendInput[]) => Promise<void>;
}

/** Matches `after`, writes the difference to `before`, and records what merged, split or conflicted. */
export async function replaceSubset(q: Queryable, args: ReplaceArgs): Promise<MatchReport> {
  const { tenant, before, after, whole, at } = args;
  const { anchorOf, conflicts } = matchSources(after);
  const byAsset = assetsOf(tenant, after, anchorOf);
  const oldAssetOf = new Map([...before].map(([k, s]) => [k, s.asset_id]));
  const { merges, splits } = diffMerges(byAsset, oldAssetOf);

  // Conflicts whose key this scope could have touched: every key of a source before or after.
  const scopeKeys = new Set<string>();
  for (const s of [...before.values(), ...after]) {
    if (s.serial_fingerprint !== null) scopeKeys.add(`serial_on_several_machines:${s.serial_fingerprint}`);
    if (s.entra_device_id !== null) scopeKeys.add(`entra_device_id_on_several_assets:${s.entra_device_id}`);
  }
  const previous = new Map((await store.conflictsByKey(q, tenant, whole ? null : [...scopeKeys])).map((c) => [c.conflict_key, c]));
  const nextConflicts = conflictRows(tenant, conflicts, previous, at);
  const detected = nextConflicts.filter((c) => !previous.has(c.conflict_key));
  const conflicted = new Set(nextConflicts.flatMap((c) => c.asset_ids));

  const assetRows: store.AssetRow[] = [...byAsset].map(([assetId, { anchor, rows }]) => ({
    asset_id: assetId,
    anchor,
    serial_fingerprint: rows.find((r) => r.serial_fingerprint !== null)?.serial_fingerprint ?? null,
    ...summarize(rows.map(asObserved)),
    conflict: conflicted.has(assetId),
  }));
  const touchedAssets = new Set([...before.values()].map((s) => s.asset_id));
  for (const id of byAsset.keys()) touchedAssets.add(id);

  await store.deleteSources(q, tenant, [...before.values()], whole);
  const rows = [...byAsset.values()].flatMap((a) => a.rows);
  await (whole ? store.insertAllSources(q, tenant, rows) : store.insertSources(q, tenant, rows));
  await store.deleteAssets(q, tenant, [...touchedAssets], whole);
  await store.insertAssets(q, tenant, assetRows, at);
  await store.replaceConflicts(q, tenant, whole ? null : [...scopeKeys], nextConflicts);
  // Assets outside this scope named by a conflict in it keep their flag in step.
  if (!whole) {
    await q.query(
      `UPDATE assets a SET conflict = EXISTS (SELECT 1 FROM asset_conflicts c WHERE c.tenant = a.tenant AND c.asset_ids ? a.asset_id::text)
        WHERE a.tenant = $1 AND a.asset_id = ANY($2::uuid[])`,
      [tenant, [...new Set([...previous.values(), ...nextConflicts].flatMap((c) => c.asset_ids))]],
    );
  }
  await args.record(matchEvents(tenant, crypto.randomUUID(), merges, splits, detected));
  return {
    sources: after.length,
    assets: byAsset.size,
    merged: merges.length,
    split: splits.length,
    conflicts_detected: detected.length,
    conflicts_resolved: [...previous.keys()].filter((k) => !nextConflicts.some((c) => c.conflict_key === k)).length,
  };
}

/** `before` with the changes applied: removed keys gone, upserts replacing or adding. */
export function applyChanges(before: ReadonlyMap<string, StoredSource>, upserts: readonly SourceRow[], removed: readonly StoredKey[]): SourceRow[] {
  const next = new Map<string, SourceRow>(before);
  for (const key of removed) next.delete(sourceKey(key));
  for (const row of upserts) next.set(sourceKey(row), row);
  return [...next.values()];
}
