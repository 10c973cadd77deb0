/**
 * One re-match: the stored sources a change can reach (its keys' neighbours, followed until
 * nothing new joins), matched again with the change applied, and written back in one
 * transaction with the Chronicle records of the merges, splits and new conflicts it made.
 */
import crypto from 'node:crypto';
import type { Queryable } from '../db/index.js';
import type { Actor, AppendInput } from '../chronicle/types.js';
import { summarize, type SummarySource } from './attributes.js';
import { assetIdOf, groupsOf, keysOf, matchSources, sourceKey, type MatchConflict, type SourceIdentity, type SourceRef } from './match.js';
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

const asSummary = (s: SourceRow): SummarySource => ({ kind: s.kind, source_id: s.source_id, last_seen_at: s.last_seen_at, observation: s.observation }) as SummarySource;

/**
 * The matched assets as flat arrays, not an object and an array per asset: asset k has the id
 * `assetIds[k]` and the anchor `anchorOf[k]`, and its rows are `members[start[k]]` up to
 * `members[start[k + 1] - 1]`, in row order; `assetIdAt[i]` is row i's asset.
 */
interface Placed {
  readonly assetIds: readonly string[];
  readonly anchorOf: readonly string[];
  readonly members: Int32Array;
  readonly start: Int32Array;
  readonly assetIdAt: readonly string[];
}

/** One SHA-256 per anchor, never one per source or comparison; rows grouped by a counting sort. */
function place(tenant: string, anchors: readonly string[]): Placed {
  const indexOf = new Map<string, number>();
  const assetIds: string[] = [];
  const anchorOf: string[] = [];
  const assetAt = new Int32Array(anchors.length);
  for (let i = 0; i < anchors.length; i++) {
    const anchor = anchors[i] as string;
    let k = indexOf.get(anchor);
    if (k === undefined) {
      k = assetIds.length;
      indexOf.set(anchor, k);
      assetIds.push(assetIdOf(tenant, anchor));
      anchorOf.push(anchor);
    }
    assetAt[i] = k;
  }
  const { start, rows: members } = groupsOf(assetAt);
  return { assetIds, anchorOf, members, start, assetIdAt: Array.from(assetAt, (k) => assetIds[k] as string) };
}

/** Asset k's row indices. */
const rowsOf = (placed: Placed, k: number): number[] => Array.from(placed.members.subarray(placed.start[k], placed.start[k + 1]));

const refOf = (s: SourceIdentity): SourceRef => ({ kind: s.kind, id: s.source_id });
const serialOfAnchor = (anchor: string): string | null => (anchor.startsWith('serial:') ? (anchor.slice(7).split('|')[0] ?? null) : null);

/**
 * The merge an asset of several sources records, or null when none of them joined it: `mine` its
 * sources in order, `before[j]` the asset `mine[j]` was stored in (undefined: new).
 */
export function mergeItemOf(assetId: string, anchor: string, mine: readonly SourceIdentity[], before: readonly (string | undefined)[]): MergeItem | null {
  if (mine.length < 2) return null;
  const joined = mine.filter((_, j) => before[j] !== assetId);
  if (joined.length === 0) return null;
  const previous = new Set<string>();
  mine.forEach((_, j) => {
    const b = before[j];
    if (b !== undefined && b !== assetId) previous.add(b);
  });
  return {
    asset_id: assetId,
    rule: anchor.startsWith('entra:') || !mine.every((r) => r.serial_fingerprint !== null) ? 'entra_device_id' : 'serial_fingerprint',
    serial_fingerprint: serialOfAnchor(anchor),
    entra_device_id: anchor.startsWith('entra:') ? anchor.slice(6) : (mine.find((r) => r.entra_device_id !== null)?.entra_device_id ?? null),
    joined: joined.map(refOf),
    previous_asset_ids: [...previous].sort(),
  };
}

function diffMerges(
  rows: readonly SourceRow[],
  keys: readonly string[],
  placed: Placed,
  oldAssetOf: ReadonlyMap<string, string>,
): { merges: MergeItem[]; splits: SplitItem[] } {
  const merges: MergeItem[] = [];
  const movedFrom = new Map<string, Set<string>>();
  for (let k = 0; k < placed.assetIds.length; k++) {
    const assetId = placed.assetIds[k] as string;
    const members = rowsOf(placed, k);
    const before = members.map((i) => oldAssetOf.get(keys[i] as string));
    for (const b of before) if (b !== undefined) movedFrom.set(b, (movedFrom.get(b) ?? new Set()).add(assetId));
    const merge = mergeItemOf(assetId, placed.anchorOf[k] as string, members.map((i) => rows[i] as SourceRow), before);
    if (merge !== null) merges.push(merge);
  }
  const splits: SplitItem[] = [];
  let indexOfId: Map<string, number> | undefined;
  for (const [before, into] of movedFrom) {
    if (into.size < 2) continue;
    indexOfId ??= new Map(placed.assetIds.map((id, k) => [id, k]));
    const k = indexOfId.get(before);
    const members = k === undefined ? [] : rowsOf(placed, k);
    const serial = members.map((i) => rows[i] as SourceRow).find((r) => r.serial_fingerprint !== null)?.serial_fingerprint ?? null;
    splits.push({ asset_id: before, serial_fingerprint: serial, into_asset_ids: [...into].sort() });
  }
  return { merges, splits };
}

/**
 * The conflict rows a match leaves (a key seen before keeps its id and detection time), those of
 * them that are new, and how many of `previous` no longer hold.
 */
export function conflictChanges(
  tenant: string,
  conflicts: readonly MatchConflict[],
  previous: ReadonlyMap<string, ConflictRow>,
  at: string,
): { rows: ConflictRow[]; detected: ConflictRow[]; resolved: number } {
  const rows = conflicts.map((c) => ({
    conflict_key: c.key,
    conflict_id: previous.get(c.key)?.conflict_id ?? crypto.randomUUID(),
    kind: c.kind,
    serial_fingerprint: c.serial_fingerprint,
    entra_device_id: c.entra_device_id,
    asset_ids: c.anchors.map((a) => assetIdOf(tenant, a)).sort(),
    sources: c.sources,
    detected_at: previous.get(c.key)?.detected_at ?? at,
  }));
  const keys = new Set(rows.map((c) => c.conflict_key));
  return { rows, detected: rows.filter((c) => !previous.has(c.conflict_key)), resolved: [...previous.keys()].filter((k) => !keys.has(k)).length };
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
  /** The stored rows in scope. */
  readonly before: ReadonlyMap<string, StoredSource>;
  /** What the sources in scope are now (removed ones absent, new ones present), observations whole. */
  readonly after: readonly SourceRow[];
  readonly at: string;
  readonly record: (events: AppendInput[]) => Promise<void>;
}

const byAssetId = <T extends { asset_id: string }>(a: T, b: T): number => (a.asset_id < b.asset_id ? -1 : a.asset_id > b.asset_id ? 1 : 0);

/** Matches `after`, writes the difference to `before`, and records what merged, split or conflicted. */
export async function replaceSubset(q: Queryable, args: ReplaceArgs): Promise<MatchReport> {
  const { tenant, before, after, at } = args;
  const { anchors, keys, conflicts } = matchSources(after);
  const placed = place(tenant, anchors);
  const oldAssetOf = new Map<string, string>();
  for (const [k, s] of before) oldAssetOf.set(k, s.asset_id);
  const { merges, splits } = diffMerges(after, keys, placed, oldAssetOf);

  // Conflicts whose key this scope could have touched: every key of a source before or after.
  const scopeKeys = new Set<string>();
  const noteKeys = (s: SourceRow) => {
    if (s.serial_fingerprint !== null) scopeKeys.add(`serial_on_several_machines:${s.serial_fingerprint}`);
    if (s.entra_device_id !== null) scopeKeys.add(`entra_device_id_on_several_assets:${s.entra_device_id}`);
  };
  before.forEach(noteKeys);
  after.forEach(noteKeys);
  const previous = new Map((await store.conflictsByKey(q, tenant, [...scopeKeys])).map((c) => [c.conflict_key, c]));
  const { rows: nextConflicts, detected, resolved } = conflictChanges(tenant, conflicts, previous, at);
  const conflicted = new Set(nextConflicts.flatMap((c) => c.asset_ids));

  // In asset order: each table's (tenant, asset_id) index then fills from one end.
  const assetRows: store.AssetRow[] = [];
  for (let k = 0; k < placed.assetIds.length; k++) {
    const assetId = placed.assetIds[k] as string;
    const mine = rowsOf(placed, k).map((i) => after[i] as SourceRow);
    assetRows.push({
      asset_id: assetId,
      anchor: placed.anchorOf[k] as string,
      serial_fingerprint: mine.find((r) => r.serial_fingerprint !== null)?.serial_fingerprint ?? null,
      ...summarize(mine.map(asSummary)),
      conflict: conflicted.has(assetId),
    });
  }
  assetRows.sort(byAssetId);

  const touchedAssets = new Set<string>();
  for (const s of before.values()) touchedAssets.add(s.asset_id);
  for (const id of placed.assetIds) touchedAssets.add(id);
  await store.deleteSources(q, tenant, [...before.values()], false);
  await store.insertSources(q, tenant, after.map((row, i) => ({ ...row, asset_id: placed.assetIdAt[i] as string })).sort(byAssetId));
  await store.deleteAssets(q, tenant, [...touchedAssets], false);
  await store.insertAssets(q, tenant, assetRows, at);
  await store.replaceConflicts(q, tenant, [...scopeKeys], nextConflicts);
  // Assets outside this scope named by a conflict in it keep their flag in step.
  await q.query(
    `UPDATE assets a SET conflict = EXISTS (SELECT 1 FROM asset_conflicts c WHERE c.tenant = a.tenant AND c.asset_ids ? a.asset_id::text)
      WHERE a.tenant = $1 AND a.asset_id = ANY($2::uuid[])`,
    [tenant, [...new Set([...previous.values(), ...nextConflicts].flatMap((c) => c.asset_ids))]],
  );
  await args.record(matchEvents(tenant, crypto.randomUUID(), merges, splits, detected));
  return {
    sources: after.length,
    assets: placed.assetIds.length,
    merged: merges.length,
    split: splits.length,
    conflicts_detected: detected.length,
    conflicts_resolved: resolved,
  };
}

/** `before` with the changes applied: removed keys gone, upserts replacing or adding. */
export function applyChanges(before: ReadonlyMap<string, StoredSource>, upserts: readonly SourceRow[], removed: readonly StoredKey[]): SourceRow[] {
  const next = new Map<string, SourceRow>(before);
  for (const key of removed) next.delete(sourceKey(key));
  for (const row of upserts) next.set(sourceKey(row), row);
  return [...next.values()];
}
