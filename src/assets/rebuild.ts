/**
 * A from-scratch match of a whole tenant that holds its identity keys, not its sources: the
 * database numbers every live source and its keys (a temporary table for the transaction), the
 * matcher places numbers into assets (typed arrays, a few bytes a source), and the sources are
 * then read back, summarised and written in bounded batches of assets. No array of a whole
 * tenant's rows, keys or asset ids is ever alive, so the memory a large tenant's match needs stays
 * about that of one batch, whatever the tenant's size.
 */
import crypto from 'node:crypto';
import type { Queryable } from '../db/index.js';
import type { AppendInput } from '../chronicle/types.js';
import { summarize, type SummarySource } from './attributes.js';
import { ANCHOR_KINDS, anchorText, assetIdOf, byConflictKey, conflictOf, groupsOf, matchKeys, type AnchorKind, type Membership, type SourceIdentity } from './match.js';
import { EVENT_ITEMS, conflictChanges, matchEvents, mergeItemOf, type MatchReport, type MergeItem } from './rematch.js';
import * as store from './store.js';
import type { ScratchRow } from './store.js';

/** Assets per batch: a batch's rows, summaries and statements are what a match holds at a time. */
export const ASSETS_PER_BATCH = 2000;

export interface RebuildArgs {
  readonly tenant: string;
  readonly at: string;
  readonly record: (events: AppendInput[]) => Promise<void>;
  /** Assets per batch (ASSETS_PER_BATCH unless said). */
  readonly assetsPerBatch?: number;
}

/**
 * The assets in the order of their first source, and their members grouped by that rank
 * (`groupsOf`): the j-th asset in that order is `order[j]`, and its sources are
 * `members[start[j]..start[j + 1])`, in source order. Sources are numbered in the order the
 * snapshot's rows were read, so a batch of assets reads and copies rows that lie close together.
 */
function membersOf(m: Membership): { order: Int32Array; start: Int32Array; members: Int32Array } {
  const rank = new Int32Array(m.assets).fill(-1);
  const order = new Int32Array(m.assets);
  const rankAt = new Int32Array(m.assetOf.length);
  let ranked = 0;
  for (let i = 0; i < m.assetOf.length; i++) {
    const k = m.assetOf[i] as number;
    if (rank[k] === -1) {
      rank[k] = ranked;
      order[ranked++] = k;
    }
    rankAt[i] = rank[k] as number;
  }
  const { start, rows: members } = groupsOf(rankAt);
  return { order, start, members };
}

/** Intune records first, then agents, each by origin and id: a merge lists what joined in one order on every run. */
const bySource = (a: ScratchRow, b: ScratchRow): number =>
  a.kind !== b.kind ? (a.kind === 'intune' ? -1 : 1) : a.origin !== b.origin ? (a.origin < b.origin ? -1 : 1) : a.source_id < b.source_id ? -1 : a.source_id > b.source_id ? 1 : 0;

/** An agent's source as stored, and what the summary reads of a row. */
function sourcesOf(mine: readonly ScratchRow[]): { summaries: SummarySource[]; agents: (store.SourceRow | null)[] } {
  const agents = mine.map((r) => (r.agent === null ? null : store.agentSource(r.agent)));
  const summaries = mine.map((r, j): SummarySource => {
    const agent = agents[j];
    if (agent == null) return { kind: 'intune', source_id: r.source_id, last_seen_at: r.intune?.last_sync_at ?? null, observation: r.intune as NonNullable<ScratchRow['intune']> };
    return { kind: 'agent', source_id: agent.source_id, last_seen_at: agent.last_seen_at, observation: agent.observation as Extract<SummarySource, { kind: 'agent' }>['observation'] };
  });
  return { summaries, agents };
}

/** What one batch wrote: its assets, and the merges to record. */
interface BatchOutcome {
  readonly assets: number;
  readonly merges: MergeItem[];
}

/** What the batches share: the match, where conflicts will need their assets' anchors and their sources' keys. */
interface RebuildState {
  readonly q: Queryable;
  readonly args: RebuildArgs;
  readonly match: Membership;
  readonly order: Int32Array;
  readonly start: Int32Array;
  readonly members: Int32Array;
  /** Sources a conflict names (null until their batch is read): their keys, kept for rendering the conflicts. */
  readonly conflictSources: Map<number, SourceIdentity | null>;
  readonly conflictAnchors: Map<number, string>;
}

/** Reads, summarises and writes the assets `order[from..to)`. */
async function writeBatch(st: RebuildState, from: number, to: number): Promise<BatchOutcome> {
  const { q, args, match, order, start, members } = st;
  const { tenant } = args;
  const rows = await store.scratchRows(q, members.subarray(start[from], start[to]));
  const base = start[from] as number;
  const assetRows: store.AssetRow[] = [];
  const places: { i: number; asset_id: string; observation: string | null; last_seen_at: string | null }[] = [];
  const merges: MergeItem[] = [];
  for (let j = from; j < to; j++) {
    const k = order[j] as number;
    const mine = rows.slice((start[j] as number) - base, (start[j + 1] as number) - base);
    for (const r of mine) if (st.conflictSources.has(r.i)) st.conflictSources.set(r.i, r);
    const anchor = anchorText(ANCHOR_KINDS[match.anchorKind[k] as number] as AnchorKind, mine);
    const assetId = assetIdOf(tenant, anchor);
    if (match.inConflict[k] === 1) st.conflictAnchors.set(k, anchor);
    const { summaries, agents: agentSources } = sourcesOf(mine);
    assetRows.push({
      asset_id: assetId,
      anchor,
      serial_fingerprint: mine.find((r) => r.serial_fingerprint !== null)?.serial_fingerprint ?? null,
      ...summarize(summaries),
      conflict: match.inConflict[k] === 1,
    });
    mine.forEach((r, m) => {
      const agent = agentSources[m];
      places.push({ i: r.i, asset_id: assetId, observation: agent == null ? null : JSON.stringify(agent.observation), last_seen_at: agent?.last_seen_at ?? null });
    });
    if (mine.length > 1) {
      mine.sort(bySource);
      const merge = mergeItemOf(assetId, anchor, mine, mine.map((r) => r.old_asset ?? undefined));
      if (merge !== null) merges.push(merge);
    }
  }
  await store.placeBatch(q, assetRows, places);
  return { assets: assetRows.length, merges };
}

/** Matches every live source of the tenant and replaces what is stored, recording what merged, split or conflicted. */
export async function rebuildTenant(q: Queryable, args: RebuildArgs): Promise<MatchReport> {
  const { tenant, at } = args;
  await store.createScratch(q, tenant);
  await store.createPlacements(q);
  const keys = await store.scratchKeys(q);
  const match = matchKeys(keys);
  const { order, start, members } = membersOf(match);
  const conflictSources = new Map<number, SourceIdentity | null>();
  for (const c of match.conflicts) for (const i of c.sources) conflictSources.set(i, null);
  const st: RebuildState = { q, args, match, order, start, members, conflictSources, conflictAnchors: new Map() };

  const previous = new Map((await store.conflictsByKey(q, tenant, null)).map((c) => [c.conflict_key, c]));
  await store.deleteSources(q, tenant, [], true);
  await store.deleteAssets(q, tenant, [], true);
  const runId = crypto.randomUUID();
  let assets = 0;
  let merged = 0;
  const pending: MergeItem[] = [];
  const perBatch = args.assetsPerBatch ?? ASSETS_PER_BATCH;
  for (let from = 0; from < match.assets; from += perBatch) {
    const batch = await writeBatch(st, from, Math.min(match.assets, from + perBatch));
    assets += batch.assets;
    merged += batch.merges.length;
    pending.push(...batch.merges);
    // Merge records as they fill, in the match's transaction like the rest.
    while (pending.length >= EVENT_ITEMS) await args.record(matchEvents(tenant, runId, pending.splice(0, EVENT_ITEMS), [], []));
  }
  if (pending.length > 0) await args.record(matchEvents(tenant, runId, pending, [], []));
  await store.writePlacements(q, tenant, at);

  const conflicts = match.conflicts
    .map((c) => conflictOf(c, (i) => conflictSources.get(i) as SourceIdentity, (k) => st.conflictAnchors.get(k) as string))
    .sort(byConflictKey);
  const { rows: nextConflicts, detected, resolved } = conflictChanges(tenant, conflicts, previous, at);
  await store.replaceConflicts(q, tenant, null, nextConflicts);
  const splits = keys.stored === 0 ? [] : await store.scratchSplits(q, tenant);
  await args.record(matchEvents(tenant, runId, [], splits, detected));
  return {
    sources: keys.count,
    assets,
    merged,
    split: splits.length,
    conflicts_detected: detected.length,
    conflicts_resolved: resolved,
  };
}
