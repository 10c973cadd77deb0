/**
 * Verify: walk each chain in seq order and name the first seq that can no longer be trusted.
 *
 * Row by row (verify-core.ts), from the stored text alone: seq is the next one (gap), the hash is
 * SHA-256(prev_hash || SHA-256(body)) (hash_mismatch), the body is this position's event of this
 * chain (reordered, inserted), prev_hash is the previous row's hash or the genesis hash
 * (chain_break), the body is RFC 8785 canonical (not_canonical), time does not run backwards
 * (reordered), the indexed columns agree with the body (column_mismatch). Then: the head row names
 * the last event, nothing lies beyond it, and every signed checkpoint agrees with the chain
 * (truncated, beyond_head, head_mismatch, checkpoint_mismatch, bad_signature).
 *
 * Rows stream in bounded seq ranges (keyset, never OFFSET), the next range fetched while the
 * current one is checked; long chains are checked by worker threads in parallel.
 */
import type { Db } from '../db/index.js';
import { GENESIS_HASH } from './canonical.js';
import { checkSignature, readCheckpoints, type SigningKey } from './checkpoints.js';
import { INDEX_KEY_SQL } from './envelope.js';
import { BEFORE_CHAIN, ChainWalk, checkChunk, unpackRow, type CheckpointRef, type ChunkResult, type ChunkTask, type Failure, type PackedChunkTask, type PreviousRow } from './verify-core.js';
import type { VerifyPool } from './verify-pool.js';
import { ChronicleError, type ChainVerifyReport, type Checkpoint, type VerifyReport } from './types.js';
import { isTenant } from '../common/ids.js';

export interface VerifyOptions {
  readonly db: Db;
  readonly tenant?: string;
  readonly key: SigningKey | null;
  readonly checkpointDir?: string;
  /** Rows per fetched range (default 5000). */
  readonly chunkSize?: number;
  /** Worker threads for long chains; absent: everything on the calling thread. */
  readonly pool?: () => VerifyPool | undefined;
  /** Chains shorter than this are checked on the calling thread (default 20000). */
  readonly minEventsForWorkers?: number;
}

interface Row {
  seq: number;
  body: string;
  prev_hash: string;
  hash: string;
  idx: string | null;
}

export async function verifyChronicle(options: VerifyOptions): Promise<VerifyReport> {
  const started = performance.now();
  if (options.tenant !== undefined && !isTenant(options.tenant)) {
    throw new ChronicleError('tenant: must be 1 to 64 letters, digits, dots, underscores or hyphens', 'invalid_query', 'tenant');
  }

  // Checkpoints are read before any head: a checkpoint only ever names a committed head, and heads
  // only move forward, so an intact chain read afterwards is at least as long as every checkpoint.
  const { checkpoints, warnings } =
    options.checkpointDir !== undefined ? await readCheckpoints(options.checkpointDir) : { checkpoints: [], warnings: [] };
  const byChain = new Map<string, Array<Checkpoint & { source: string }>>();
  for (const cp of checkpoints) {
    if (options.tenant !== undefined && cp.chain !== options.tenant) continue;
    byChain.set(cp.chain, [...(byChain.get(cp.chain) ?? []), cp]);
  }

  let tenants: string[];
  if (options.tenant !== undefined) {
    tenants = [options.tenant];
  } else {
    const { rows: heads } = await options.db.query<{ tenant: string }>('SELECT tenant FROM chronicle_chain');
    // Chains that have rows but lost their head row: a loose index scan over the primary key.
    const { rows: orphans } = await options.db.query<{ tenant: string }>(`
      WITH RECURSIVE t AS (
        SELECT min(tenant) AS tenant FROM chronicle_event
        UNION ALL
        SELECT (SELECT min(tenant) FROM chronicle_event WHERE tenant > t.tenant) FROM t WHERE t.tenant IS NOT NULL
      ) SELECT tenant FROM t WHERE tenant IS NOT NULL`);
    tenants = [...new Set([...heads.map((r) => r.tenant), ...orphans.map((r) => r.tenant), ...byChain.keys()])].sort();
  }

  const chains: ChainVerifyReport[] = [];
  for (const tenant of tenants) chains.push(await verifyChain(options, tenant, byChain.get(tenant) ?? []));
  return {
    ok: chains.every((c) => c.ok),
    chains,
    eventsChecked: chains.reduce((n, c) => n + c.eventsChecked, 0),
    durationMs: Math.round(performance.now() - started),
    warnings,
  };
}

async function verifyChain(options: VerifyOptions, tenant: string, checkpoints: ReadonlyArray<Checkpoint & { source: string }>): Promise<ChainVerifyReport> {
  const { db } = options;
  const chunkSize = options.chunkSize ?? 5_000;
  const failures: Failure[] = [];

  // Signed checkpoints are evidence; forged ones are failures at the seq they claim.
  const trusted: CheckpointRef[] = [];
  for (const cp of checkpoints) {
    const check = checkSignature(cp, options.key);
    if (check.ok) trusted.push({ seq: cp.seq, hash: cp.hash, time: cp.time, source: cp.source });
    else failures.push({ seq: cp.seq, reason: 'bad_signature', detail: `${cp.source}: ${check.detail}` });
  }
  trusted.sort((a, b) => a.seq - b.seq);

  // Head and last row in one statement: an append moves both atomically, so rows past the head
  // in this snapshot were put there around the append path, not by a concurrent writer.
  const { rows: snapshot } = await db.query<{ head_seq: number | null; head_hash: string | null; max_seq: number | null; min_seq: number | null }>(
    `SELECT (SELECT head_seq FROM chronicle_chain WHERE tenant = $1) AS head_seq,
            (SELECT head_hash FROM chronicle_chain WHERE tenant = $1) AS head_hash,
            (SELECT max(seq) FROM chronicle_event WHERE tenant = $1) AS max_seq,
            (SELECT min(seq) FROM chronicle_event WHERE tenant = $1) AS min_seq`,
    [tenant],
  );
  const hasHead = snapshot[0]?.head_seq != null;
  const headSeq = Number(snapshot[0]?.head_seq ?? 0);
  const headHash = snapshot[0]?.head_hash ?? null;
  const maxSeq = Number(snapshot[0]?.max_seq ?? 0);
  // Rows past the head are walked too: they may explain an earlier row (an insertion shifts them up).
  const lastSeq = Math.max(headSeq, maxSeq);
  // The walk starts at seq 1; rows below it (the seq > 0 constraint dropped) would still be queried.
  const minSeq = Number(snapshot[0]?.min_seq ?? 1);
  if (minSeq < 1) {
    failures.push({ seq: minSeq, reason: 'inserted', detail: `a row exists at seq ${minSeq}, before seq 1: it was written around the append path` });
  }
  if (!hasHead && maxSeq > 0) failures.push({ seq: maxSeq, reason: 'head_mismatch', detail: 'the chain has events but no head row' });

  const pool = lastSeq >= (options.minEventsForWorkers ?? 20_000) ? options.pool?.() : undefined;
  const parallel = pool !== undefined && pool.size > 0;
  const walk = new ChainWalk();
  const rangeEnd = (after: number) => Math.min(after + chunkSize, lastSeq);
  // One string per row (see PackedChunkTask): a fifth of the fetching thread's work of five columns.
  // Hashes of any other length would move the boundaries between the concatenated columns (a
  // digit moved from hash to prev_hash reads the same), so such a row is packed as NULL: it fails
  // and is judged column by column.
  const fetchPacked = (after: number) =>
    db.query<{ r: string | null }>(
      `SELECT CASE WHEN length(prev_hash) = 64 AND length(hash) = 64
                   THEN seq::text || ':' || prev_hash || hash || body || E'\\x1d' || ${INDEX_KEY_SQL} END AS r FROM chronicle_event
       WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`,
      [tenant, after, rangeEnd(after)],
    );
  // A range with a failing row is read again column by column and judged from that: the packed
  // form is only trusted for rows that pass.
  const recheck = async (after: number, previous: PreviousRow): Promise<ChunkResult> => {
    const { rows } = await db.query<Row>(
      `SELECT seq, body, prev_hash, hash, ${INDEX_KEY_SQL} AS idx FROM chronicle_event
       WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`,
      [tenant, after, rangeEnd(after)],
    );
    return checkChunk(toTask(tenant, previous, headSeq, rows, trusted));
  };

  let previous: PreviousRow = BEFORE_CHAIN;
  let rangeStart = 0;
  let fetching = lastSeq > 0 ? fetchPacked(0) : null;
  const checking: Array<{ after: number; previous: PreviousRow; result: Promise<ChunkResult> }> = [];
  // Enough ranges in flight to keep every worker busy, few enough to bound memory.
  const maxInFlight = parallel ? (pool as VerifyPool).size * 2 : 0;
  try {
    while (fetching !== null && walk.outcome === undefined) {
      const { rows } = await fetching;
      const after = rangeStart;
      rangeStart = rangeEnd(after);
      fetching = rangeStart < lastSeq ? fetchPacked(rangeStart) : null;
      if (rows.length > 0) {
        const packed = rows.map((row) => row.r);
        const task: PackedChunkTask = { tenant, previous, headSeq, packed, checkpoints: trusted.filter((cp) => cp.seq > after && cp.seq <= rangeStart) };
        checking.push({ after, previous, result: parallel ? (pool as VerifyPool).run(task) : Promise.resolve(checkChunk(task)) });
        const last = unpackRow(packed[packed.length - 1] ?? null);
        previous = { seq: last.seq, hash: last.hash, body: last.body, time: timeOf(last.body) };
      }
      while (checking.length > maxInFlight || (fetching === null && checking.length > 0)) {
        const next = checking.shift() as { after: number; previous: PreviousRow; result: Promise<ChunkResult> };
        let result = await next.result;
        if (result.failure !== null) result = await recheck(next.after, next.previous);
        walk.add(result);
        if (walk.outcome !== undefined) break;
      }
    }
  } finally {
    fetching?.catch(() => undefined); // abandoned after an answer: its result no longer matters
  }
  await Promise.all(checking.map((c) => c.result)); // let stragglers finish so none outlives this call

  const rowFailure = walk.finish();
  if (rowFailure !== null) {
    failures.push(rowFailure);
  } else {
    const walked = walk.walked;
    if (hasHead && walked < headSeq) {
      failures.push({ seq: walked + 1, reason: 'truncated', detail: `the chain ends at seq ${walked} but its head row says seq ${headSeq}: the tail was deleted` });
    } else if (hasHead && maxSeq > headSeq) {
      failures.push({ seq: headSeq + 1, reason: 'beyond_head', detail: `rows up to seq ${maxSeq} exist past the head (seq ${headSeq}): they were written around the append path` });
    } else if (hasHead && headSeq > 0 && walk.hashAtHead !== headHash) {
      failures.push({ seq: headSeq, reason: 'head_mismatch', detail: `the head row's hash is not the hash of seq ${headSeq}` });
    } else if (hasHead && headSeq === 0 && headHash !== GENESIS_HASH) {
      failures.push({ seq: null, reason: 'head_mismatch', detail: 'the head row of an empty chain does not hold the genesis hash' });
    }
    const beyond = trusted.filter((cp) => cp.seq > walked);
    const top = beyond[beyond.length - 1];
    if (top !== undefined && walked >= headSeq) {
      failures.push({
        seq: walked + 1,
        reason: 'truncated',
        detail: `the chain ends at seq ${walked} but a signed checkpoint of ${top.time} (${top.source}) records seq ${top.seq}: the tail was cut`,
      });
    }
  }

  failures.sort((a, b) => (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER));
  const first = failures[0];
  return {
    tenant,
    ok: first === undefined,
    // Deterministic whatever the ranges: every event when intact, else those before the first bad seq.
    eventsChecked: first?.seq != null ? Math.min(walk.checked, Math.max(0, first.seq - 1)) : walk.checked,
    headSeq,
    checkpointsChecked: checkpoints.length,
    firstBadSeq: first?.seq ?? null,
    reason: first?.reason ?? null,
    detail: first?.detail ?? null,
  };
}

function toTask(tenant: string, previous: PreviousRow, headSeq: number, rows: readonly Row[], trusted: readonly CheckpointRef[]): ChunkTask {
  const n = rows.length;
  const seq = new Array<number>(n);
  const body = new Array<string>(n);
  const prevHash = new Array<string>(n);
  const hash = new Array<string>(n);
  const idx = new Array<string | null>(n);
  for (let i = 0; i < n; i++) {
    const row = rows[i] as Row;
    seq[i] = Number(row.seq);
    body[i] = row.body;
    prevHash[i] = row.prev_hash;
    hash[i] = row.hash;
    idx[i] = row.idx;
  }
  const from = seq[0] as number;
  const to = seq[n - 1] as number;
  return { tenant, previous, headSeq, seq, body, prevHash, hash, idx, checkpoints: trusted.filter((cp) => cp.seq >= from && cp.seq <= to) };
}

/** The time of a stored body, for the next range's "time never goes back" check; '' when unreadable. */
function timeOf(body: string): string {
  const at = body.lastIndexOf('"time":"');
  return at < 0 ? '' : body.slice(at + 8, at + 32);
}
