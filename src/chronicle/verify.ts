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
import fs from 'node:fs';
import path from 'node:path';
import { queryInKeyOrder, type Db, type ReaderConnection } from '../db/index.js';
import { GENESIS_HASH } from './canonical.js';
import {
  INSTANCE_ID,
  checkLineSignature,
  checkLog,
  compareWithWitness,
  instanceLogDir,
  parseLogLine,
  readLegacyCheckpoints,
  readLogLines,
  type CheckedLog,
  type KeyRing,
  type LogFailure,
} from './checkpoints.js';
import { INDEX_KEY_SQL } from './envelope.js';
import { BEFORE_CHAIN, ChainWalk, checkChunk, unpackRow, type CheckpointRef, type ChunkResult, type ChunkTask, type Failure, type PreviousRow } from './verify-core.js';
import { checkAnyChunk, lastCopyRow, type AnyChunkTask, type CopyChunkTask } from './verify-copy.js';
import type { VerifyPool } from './verify-pool.js';
import { COPIED_TYPES, copyRangeSql, rowBefore, samePrevious, type LastRow, type ReadResult } from './verify-read.js';
import { ChronicleError, type ChainVerifyReport, type CheckpointLogReport, type InstanceReport, type VerifyReport } from './types.js';
import { isTenant } from '../common/ids.js';

export interface VerifyOptions {
  readonly db: Db;
  readonly tenant?: string;
  /** The public keys this deployment trusts, by key id (the current key and archived ones). */
  readonly keys: KeyRing;
  readonly checkpointDir?: string;
  /** Log line texts whose signatures were verified before (kept by the Chronicle between verifies). */
  readonly verifiedLines?: Set<string>;
  /** A witness copy of the checkpoint directory (or of this instance's log) to compare with. */
  readonly witnessDir?: string;
  /** Rows per fetched range (default 5000). */
  readonly chunkSize?: number;
  /** Worker threads for long chains; absent: everything on the calling thread. */
  readonly pool?: () => VerifyPool | undefined;
  /** Chains shorter than this are checked on the calling thread (default 20000). */
  readonly minEventsForWorkers?: number;
  /** Told after each range a chain's walk has joined, in seq order (a terminal's progress bar). */
  readonly onProgress?: (progress: VerifyProgress) => void;
}

/** How far verify has walked one chain: `checked` of about `total` rows (the highest seq stored). */
export interface VerifyProgress {
  readonly tenant: string;
  readonly checked: number;
  readonly total: number;
}

interface Row {
  seq: number;
  body: string;
  prev_hash: string;
  hash: string;
  idx: string | null;
}

/** What verify holds against one chain: signed checkpoints it trusts, and lines that failed their signature. */
interface ChainEvidence {
  readonly trusted: CheckpointRef[];
  readonly failures: Failure[];
  count: number;
}

/** This database's instance id; null when the database predates instance ids (not migrated). */
export async function readInstanceId(db: Db): Promise<string | null> {
  try {
    const { rows } = await db.query<{ id: string }>('SELECT id FROM chronicle_instance');
    return rows[0]?.id ?? null;
  } catch (err) {
    if ((err as { code?: unknown }).code === '42P01' || /chronicle_instance/.test(String((err as Error).message))) return null;
    throw err;
  }
}

async function subdirectories(dir: string): Promise<string[]> {
  try {
    return (await fs.promises.readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory() && INSTANCE_ID.test(d.name)).map((d) => d.name).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** A witness path may be a copy of the whole checkpoint directory or of this instance's log alone. */
async function witnessLogDir(witnessDir: string, instance: string): Promise<string> {
  const nested = instanceLogDir(witnessDir, instance);
  try {
    if ((await fs.promises.stat(nested)).isDirectory()) return nested;
  } catch {
    // not nested: the path is the log itself
  }
  return witnessDir;
}

export async function verifyChronicle(options: VerifyOptions): Promise<VerifyReport> {
  const started = performance.now();
  if (options.tenant !== undefined && !isTenant(options.tenant)) {
    throw new ChronicleError('tenant: must be 1 to 64 letters, digits, dots, underscores or hyphens', 'invalid_query', 'tenant');
  }
  const instance = await readInstanceId(options.db);
  const warnings: string[] = [];
  const evidence = new Map<string, ChainEvidence>();
  const evidenceOf = (chain: string): ChainEvidence => {
    let e = evidence.get(chain);
    if (e === undefined) evidence.set(chain, (e = { trusted: [], failures: [], count: 0 }));
    return e;
  };
  let newestCheckpointTime: string | null = null;
  const noteTime = (time: string) => {
    if (newestCheckpointTime === null || time > newestCheckpointTime) newestCheckpointTime = time;
  };
  const wanted = (chain: string) => options.tenant === undefined || chain === options.tenant;

  // Checkpoints are read before any head: a checkpoint only ever names a committed head, and heads
  // only move forward, so an intact chain read afterwards is at least as long as every checkpoint.
  let checkpointLog: CheckpointLogReport | null = null;
  const instanceReport: { id: string | null; replaced: InstanceReport['replaced']; others: Array<InstanceReport['others'][number]> } = {
    id: instance,
    replaced: null,
    others: [],
  };
  let ownLines = 0;
  if (options.checkpointDir !== undefined) {
    const legacy = await readLegacyCheckpoints(options.checkpointDir);
    warnings.push(...legacy.warnings);
    if (legacy.checkpoints.length > 0) {
      warnings.push(`${legacy.checkpoints.length} checkpoint line(s) of the first format (no line numbers) in ${options.checkpointDir}: compared with the chains, but their removal would not show`);
    }
    for (const cp of legacy.checkpoints) {
      if (!wanted(cp.chain)) continue;
      const e = evidenceOf(cp.chain);
      e.count++;
      const check = checkLineSignature(cp, options.keys);
      if (check.ok) {
        e.trusted.push({ seq: cp.seq, hash: cp.hash, time: cp.time, source: cp.source });
        noteTime(cp.time);
      } else {
        e.failures.push({ seq: cp.seq, reason: 'bad_signature', detail: `${cp.source}: ${check.detail}` });
      }
    }

    if (instance !== null) {
      const dir = instanceLogDir(options.checkpointDir, instance);
      const raw = await readLogLines(dir);
      ownLines = raw.length;
      const checked = checkLog(raw, instance, options.keys, options.verifiedLines);
      let failure: LogFailure | null = checked.failure;
      let witness: CheckpointLogReport['witness'] = null;
      const known = new Set(raw.map((r) => r.text));
      const heads = [...checked.checkpoints];
      if (options.witnessDir !== undefined) {
        const witnessDir = await witnessLogDir(options.witnessDir, instance);
        const witnessRaw = await readLogLines(witnessDir);
        witness = { dir: witnessDir, lines: witnessRaw.length };
        const mismatch = compareWithWitness(raw, witnessRaw);
        if (mismatch !== null && (failure === null || mismatch.line < failure.line)) failure = mismatch;
        // The witness's own lines are signed evidence too: a line deleted here still binds the chain.
        const fromWitness = checkLog(witnessRaw, instance, options.keys, options.verifiedLines);
        for (const cp of fromWitness.checkpoints) if (!known.has(witnessText(witnessRaw, cp.source))) heads.push({ ...cp, source: `witness ${cp.source}` });
        if (fromWitness.failure !== null) warnings.push(`witness copy ${witnessDir}: line ${fromWitness.failure.line}: ${fromWitness.failure.reason}: ${fromWitness.failure.detail}`);
      }
      for (const cp of heads) {
        noteTime(cp.time);
        if (!wanted(cp.chain)) continue;
        const e = evidenceOf(cp.chain);
        e.count++;
        e.trusted.push({ seq: cp.seq, hash: cp.hash, time: cp.time, source: cp.source });
      }
      for (const { line, detail } of checked.forged) {
        if (!wanted(line.chain)) continue;
        const e = evidenceOf(line.chain);
        e.count++;
        e.failures.push({ seq: line.seq, reason: 'bad_signature', detail });
      }
      checkpointLog = {
        dir,
        ok: failure === null,
        lines: raw.length,
        firstBadLine: failure?.line ?? null,
        reason: failure?.reason ?? null,
        detail: failure?.detail ?? null,
        keyRotations: checked.keyRotations,
        retiredKeyLines: checked.retiredKeyLines,
        witness,
      };
      warnings.push(...retiredKeyWarnings(checked.retiredKeyLines, checked.keyRotations));
    }
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
    tenants = [...new Set([...heads.map((r) => r.tenant), ...orphans.map((r) => r.tenant), ...evidence.keys()])].sort();
  }

  // Asked once per verify, on the first range a chain copies.
  let typesHold: Promise<boolean> | undefined;
  const copiedTypesHold = () => (typesHold ??= columnTypesAreCopied(options.db));
  const chains: ChainVerifyReport[] = [];
  let uncoveredEvents = 0;
  for (const tenant of tenants) {
    const e = evidence.get(tenant) ?? { trusted: [], failures: [], count: 0 };
    const report = await verifyChain(options, tenant, e, copiedTypesHold);
    chains.push(report);
    const covered = e.trusted.reduce((max, cp) => Math.max(max, cp.seq), 0);
    uncoveredEvents += Math.max(0, report.headSeq - covered);
  }

  if (options.checkpointDir !== undefined && instance !== null) {
    await judgeOtherInstances(options, instance, ownLines, chains, instanceReport);
  }

  return {
    ok: chains.every((c) => c.ok) && (checkpointLog?.ok ?? true) && instanceReport.replaced === null,
    chains,
    instance: instanceReport,
    checkpointLog,
    exposure: { newestCheckpointTime, uncoveredEvents },
    eventsChecked: chains.reduce((n, c) => n + c.eventsChecked, 0),
    durationMs: Math.round(performance.now() - started),
    warnings,
  };
}

/**
 * One warning per retired key still seen signing: which lines, and which hand-over retired it.
 * Not tampering by itself (the signatures are good); a reviewer should know who still holds the key.
 */
function retiredKeyWarnings(
  uses: CheckedLog['retiredKeyLines'],
  rotations: CheckedLog['keyRotations'],
): string[] {
  const byKey = new Map<string, { retiredAt: number; lines: number[] }>();
  for (const use of uses) {
    const entry = byKey.get(use.keyId) ?? { retiredAt: use.retiredAt, lines: [] };
    entry.lines.push(use.line);
    byKey.set(use.keyId, entry);
  }
  return [...byKey].map(([keyId, { retiredAt, lines }]) => {
    const to = rotations.find((r) => r.line === retiredAt)?.to ?? 'another key';
    const which = lines.length === 1 ? `line ${lines[0]} is` : `${lines.length} lines (${lines[0]} to ${lines[lines.length - 1]}) are`;
    return `log: ${which} signed by key ${keyId} after line ${retiredAt} handed it over to ${to}: a server still signing with the retired key (give it the new key file or restart it), or someone who holds that key`;
  });
}

function witnessText(raw: readonly { source: string; text: string }[], source: string): string {
  return raw.find((r) => r.source === source)?.text ?? '';
}

/**
 * Logs of other instances in the same directory. Another deployment's log (another database) is
 * not compared and not tampering. But when this deployment's keys signed another instance's log,
 * none signed this one, and this database has events, the database under this deployment was
 * replaced or re-identified: its history is no longer the one the checkpoints vouch for.
 */
async function judgeOtherInstances(
  options: VerifyOptions,
  instance: string,
  ownLines: number,
  chains: readonly ChainVerifyReport[],
  report: { replaced: InstanceReport['replaced']; others: Array<InstanceReport['others'][number]> },
): Promise<void> {
  const root = options.checkpointDir as string;
  const hasEvents = chains.some((c) => c.headSeq > 0);
  for (const other of await subdirectories(root)) {
    if (other === instance) continue;
    const raw = await readLogLines(path.join(root, other));
    const first = raw.map((r) => parseLogLine(r.text)).find((l) => l !== null) ?? null;
    const keyId = first?.key_id ?? null;
    const ours = first !== null && checkLineSignature(first, options.keys).ok;
    if (ours && ownLines === 0 && hasEvents && report.replaced === null) {
      report.replaced = {
        previous: other,
        detail:
          `this deployment's key signed ${raw.length} checkpoint line(s) for Chronicle instance ${other}, and none for this database (instance ${instance}): ` +
          'the database was replaced or its instance id changed, so its history is not the one the checkpoints vouch for ' +
          '(if this is a second deployment sharing the key and directory, give it its own CHRONICLE_SIGNING_KEY_FILE and CHRONICLE_CHECKPOINT_DIR)',
      };
    }
    report.others.push({
      id: other,
      lines: raw.length,
      keyId,
      note: `checkpoints of another Chronicle instance (${other}${ours ? ', signed with this deployment\'s key' : keyId !== null ? `, key ${keyId}` : ''}): not this database's, not compared`,
    });
  }
}

async function verifyChain(options: VerifyOptions, tenant: string, evidence: ChainEvidence, copiedTypesHold: () => Promise<boolean>): Promise<ChainVerifyReport> {
  const { db } = options;
  const chunkSize = options.chunkSize ?? 5_000;
  // Signed checkpoints are evidence; forged ones are failures at the seq they claim.
  const failures: Failure[] = [...evidence.failures];
  const trusted: CheckpointRef[] = [...evidence.trusted].sort((a, b) => a.seq - b.seq);

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
  const { fetchRange, release } = rangeReader(db, tenant, rangeEnd, copiedTypesHold);
  // A range with a failing row is read again column by column and judged from that: the packed
  // and copied forms are only trusted for rows that pass.
  const recheck = async (after: number, previous: PreviousRow): Promise<ChunkResult> => {
    const { rows } = await queryInKeyOrder<Row>(db, RECHECK_RANGE_SQL, [tenant, after, rangeEnd(after)]);
    return checkChunk(toTask(tenant, previous, headSeq, rows, trusted));
  };

  const inRange = (after: number) => trusted.filter((cp) => cp.seq > after && cp.seq <= rangeEnd(after));
  const progress = () => options.onProgress?.({ tenant, checked: walk.checked, total: lastSeq });
  let previous: PreviousRow = BEFORE_CHAIN;
  let resumeAt = 0;

  // On PostgreSQL, workers read their ranges themselves (see walkWithReaders); from a range they
  // could not read on, the ranges are read here, as below.
  const connection = parallel && db.copyBinary !== undefined ? db.readerConnection?.() : undefined;
  if (connection !== undefined && (await copiedTypesHold())) {
    ({ previous, resumeAt } = await walkWithReaders({ pool: pool as VerifyPool, connection, tenant, headSeq, lastSeq, rangeEnd, inRange, walk, recheck, progress }));
  }

  // When workers check the ranges, the next two are copied at once over two connections of the
  // pool (two server backends at work), each handed to a worker as it arrives; they are still
  // joined in seq order, so the links between ranges and the blame are those of one reader. A
  // second stream is opened only while the pool has two connections to spare (the one the first
  // stream may be about to take, and this one's): never more than two, one when the pool is busy,
  // and one over a pool of a single connection.
  const readAhead = parallel ? 2 : 1;
  const spare = db.spareConnections?.bind(db);
  const fetching: Array<{ after: number; range: Promise<Range> }> = [];
  let nextAfter = resumeAt;
  const fillReads = () => {
    while ((fetching.length === 0 || (fetching.length < readAhead && (spare === undefined || spare() >= 2))) && nextAfter < lastSeq) {
      const after = nextAfter;
      fetching.push({ after, range: fetchRange(after) });
      nextAfter = rangeEnd(after);
    }
  };
  fillReads();
  const checking: Array<{ after: number; previous: PreviousRow; result: Promise<ChunkResult>; copy?: Buffer }> = [];
  // Enough ranges in flight to keep every worker busy, few enough to bound memory.
  const maxInFlight = parallel ? (pool as VerifyPool).size * 2 : 0;
  try {
    while (fetching.length > 0 && walk.outcome === undefined) {
      const { after, range: reading } = fetching.shift() as { after: number; range: Promise<Range> };
      const range = await reading;
      fillReads();
      const checkpoints = inRange(after);
      let task: AnyChunkTask | null = null;
      let last: LastRow | null = null;
      if ('copy' in range) {
        last = range.last;
        if (last !== null) task = { tenant, previous, headSeq, copy: range.copy, checkpoints } satisfies CopyChunkTask;
      } else if (range.packed.length > 0) {
        task = { tenant, previous, headSeq, packed: range.packed, checkpoints };
        last = unpackRow(range.packed[range.packed.length - 1] ?? null);
      }
      if (task !== null && last !== null) {
        const result = parallel ? (pool as VerifyPool).run(task) : Promise.resolve(checkAnyChunk(task));
        checking.push({ after, previous, result, ...('copy' in range ? { copy: range.copy } : {}) });
        previous = rowBefore(last);
      }
      while (checking.length > maxInFlight || (fetching.length === 0 && checking.length > 0)) {
        const next = checking.shift() as { after: number; previous: PreviousRow; result: Promise<ChunkResult>; copy?: Buffer };
        let result = await next.result;
        release(next.copy);
        if (result.failure !== null) result = await recheck(next.after, next.previous);
        walk.add(result);
        progress();
        if (walk.outcome !== undefined) break;
      }
    }
  } finally {
    for (const f of fetching) f.range.catch(() => undefined); // abandoned after an answer: their results no longer matter
  }
  await Promise.all(checking.map((c) => c.result)); // let stragglers finish so none outlives this call

  const walked = walk.finish();
  const rowFailure = walked === null ? null : await exactBlame(db, tenant, walked, walk, trusted, headSeq, headHash);
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
    checkpointsChecked: evidence.count,
    firstBadSeq: first?.seq ?? null,
    reason: first?.reason ?? null,
    detail: first?.detail ?? null,
  };
}

/**
 * Workers read and check a chain's ranges over connections of their own (verify-read.ts); this
 * thread only hands out ranges and joins the answers in seq order. A range a worker could not
 * read, or whose row before it is not the row the walk ended on (a row changed between two
 * reads), stops this: the caller reads it and every range after it (`resumeAt`) the other way.
 */
async function walkWithReaders(w: {
  pool: VerifyPool;
  connection: ReaderConnection;
  tenant: string;
  headSeq: number;
  lastSeq: number;
  rangeEnd: (after: number) => number;
  inRange: (after: number) => CheckpointRef[];
  walk: ChainWalk;
  recheck: (after: number, previous: PreviousRow) => Promise<ChunkResult>;
  progress: () => void;
}): Promise<{ previous: PreviousRow; resumeAt: number }> {
  const reads: Array<{ after: number; answer: Promise<ReadResult> }> = [];
  let previous: PreviousRow = BEFORE_CHAIN;
  let resumeAt = w.lastSeq;
  let nextAfter = 0;
  // Two ranges per worker in flight: one copied while the other is checked.
  const fill = () => {
    while (reads.length < w.pool.size * 2 && nextAfter < w.lastSeq) {
      const after = nextAfter;
      const task = { connection: w.connection, tenant: w.tenant, after, end: w.rangeEnd(after), headSeq: w.headSeq, checkpoints: w.inRange(after) };
      reads.push({ after, answer: w.pool.read(task) });
      nextAfter = w.rangeEnd(after);
    }
  };
  fill();
  while (reads.length > 0 && w.walk.outcome === undefined) {
    const { after, answer } = reads.shift() as { after: number; answer: Promise<ReadResult> };
    const found = await answer;
    if (!found.read || (found.last !== null && !samePrevious(found.previous, previous))) {
      resumeAt = after;
      break;
    }
    fill();
    if (found.result === null || found.last === null) continue;
    w.walk.add(found.result.failure === null ? found.result : await w.recheck(after, previous));
    w.progress();
    previous = rowBefore(found.last);
  }
  await Promise.all(reads.map((r) => r.answer)); // answered or abandoned, none outlives the verify
  return { previous, resumeAt };
}

/**
 * A broken link between seq S-1 and S is ambiguous on its face: either S-1 was changed and its
 * hash recomputed, or S was relinked. The rows around it decide: when S is intact as stored (S+1
 * still links to it, or a signed checkpoint vouches for its hash), the change was at S-1. The same
 * for a checkpoint mismatch at the head whose head row still holds the signed hash: the row itself
 * was changed, not the history before it.
 */
async function exactBlame(
  db: Db,
  tenant: string,
  outcome: Failure,
  walk: ChainWalk,
  trusted: readonly CheckpointRef[],
  headSeq: number,
  headHash: string | null,
): Promise<Failure> {
  const changed = (seq: number, why: string): Failure => ({
    seq,
    reason: 'hash_mismatch',
    detail: `the body of seq ${seq} was changed and its hash recomputed: ${why}`,
  });
  const broken = walk.rowFailure;
  if (broken !== null && broken.reason === 'chain_break' && broken.seq !== null && broken.seq > 1) {
    const s = broken.seq;
    const mismatch = walk.mismatchedCheckpoint;
    // A signed checkpoint already names an earlier change: that one stands.
    if (outcome.reason === 'checkpoint_mismatch' && mismatch !== null && mismatch.seq < s - 1) return outcome;
    const { rows } = await db.query<{ seq: number; prev_hash: string; hash: string }>(
      'SELECT seq, prev_hash, hash FROM chronicle_event WHERE tenant = $1 AND seq IN ($2, $3) ORDER BY seq',
      [tenant, s, s + 1],
    );
    const at = rows.find((r) => Number(r.seq) === s);
    const next = rows.find((r) => Number(r.seq) === s + 1);
    if (at === undefined) return outcome;
    if (next !== undefined) {
      return next.prev_hash === at.hash ? changed(s - 1, `seq ${s} still links to the hash seq ${s - 1} had`) : outcome;
    }
    if (trusted.some((cp) => cp.seq === s && cp.hash === at.hash)) return changed(s - 1, `a signed checkpoint vouches for seq ${s}, which links to the hash seq ${s - 1} had`);
    if (mismatch !== null && mismatch.seq === s - 1) return changed(s - 1, `seq ${s} links to the hash a signed checkpoint recorded for seq ${s - 1}`);
    return {
      seq: s - 1,
      reason: 'chain_break',
      detail: `seq ${s} does not link to the hash of seq ${s - 1}: seq ${s - 1} was changed and its hash recomputed, or seq ${s} was relinked`,
    };
  }
  const mismatch = walk.mismatchedCheckpoint;
  if (outcome.reason === 'checkpoint_mismatch' && mismatch !== null && mismatch.seq === headSeq && headHash === mismatch.signedHash) {
    return changed(headSeq, `the head row still holds the hash a signed checkpoint recorded for seq ${headSeq}`);
  }
  return outcome;
}

/** Whether chronicle_event's columns have the types verify reads their copied binary values as (false also when it cannot tell). */
async function columnTypesAreCopied(db: Db): Promise<boolean> {
  try {
    const { rows } = await db.query<{ name: string; type: string }>(
      `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
       WHERE attrelid = 'chronicle_event'::regclass AND attnum > 0 AND NOT attisdropped`,
    );
    const types = new Map(rows.map((r) => [r.name, r.type]));
    return Object.entries(COPIED_TYPES).every(([name, type]) => types.get(name) === type);
  } catch {
    return false;
  }
}

/**
 * The range reads besides COPY, in key order like every range verify reads (queryInKeyOrder: see
 * copyBinaryOn in db/copy.ts for the plan they would otherwise get): a failing range read again
 * column by column, and a range as one packed string per row where COPY is not used.
 */
export const RECHECK_RANGE_SQL = `SELECT seq, body, prev_hash, hash, ${INDEX_KEY_SQL} AS idx FROM chronicle_event
       WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`;
export const PACKED_RANGE_SQL = `SELECT CASE WHEN length(prev_hash) = 64 AND length(hash) = 64
                   THEN seq::text || ':' || prev_hash || hash || body || E'\\x1d' || ${INDEX_KEY_SQL} END AS r FROM chronicle_event
       WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`;

type Range = { copy: Buffer; last: LastRow | null } | { packed: Array<string | null> };

/** Reads a chain's ranges: as binary COPY where the driver streams it, else as one string per row. */
function rangeReader(db: Db, tenant: string, rangeEnd: (after: number) => number, copiedTypesHold: () => Promise<boolean>) {
  // One string per row (see PackedChunkTask): a fifth of the fetching thread's work of five columns.
  // Hashes of any other length would move the boundaries between the concatenated columns (a
  // digit moved from hash to prev_hash reads the same), so such a row is packed as NULL: it fails
  // and is judged column by column.
  const fetchPacked = (after: number) => queryInKeyOrder<{ r: string | null }>(db, PACKED_RANGE_SQL, [tenant, after, rangeEnd(after)]);
  // Where the driver streams COPY: the range's bytes as sent, checked without a string or an object
  // per row (verify-copy.ts). COPY takes no parameters: the tenant is inlined as a quoted literal.
  let copyBinary = db.copyBinary?.bind(db);
  // Ranges are copied into buffers over shared memory, reused range after range: a worker reads
  // one in place, and it comes back here once that range's answer is in. A fresh multi-megabyte
  // buffer per range cost more in page faults and garbage collection than the copy itself.
  const spare: Buffer[] = [];
  let copySize = 0;
  const release = (copy: Buffer | undefined): void => {
    if (copy !== undefined && copy.buffer instanceof SharedArrayBuffer && copy.buffer.byteLength >= copySize) spare.push(Buffer.from(copy.buffer));
  };
  const fetchCopy = (after: number, into: Buffer, framing: { lastRowAt: number }) =>
    (copyBinary as NonNullable<typeof copyBinary>)(
      copyRangeSql(tenant, after, rangeEnd(after)),
      into,
      framing,
    );
  // The copy is read as binary values of these types; a table altered to others is read the ordinary way.
  const fetchRange = async (after: number): Promise<Range> => {
    if (copyBinary !== undefined && !(await copiedTypesHold())) copyBinary = undefined;
    if (copyBinary !== undefined) {
      const into = spare.pop() ?? Buffer.from(new SharedArrayBuffer(Math.max(1 << 20, Math.ceil(copySize * 1.25))));
      try {
        // The next range's link needs this range's last row now, on this thread: where the driver
        // saw the messages, that row is read alone instead of walking the range to it.
        const framing = { lastRowAt: -1 };
        const copy = await fetchCopy(after, into, framing);
        copySize = Math.max(copySize, copy.length);
        if (copy.buffer !== into.buffer) release(into); // it did not fit: kept only if a later range would
        return { copy, last: lastCopyRow(copy, framing.lastRowAt) };
      } catch {
        // A server or socket that cannot COPY, or bytes that do not read as verify's columns: the
        // ordinary read decides, for this range and the rest.
        copyBinary = undefined;
      }
    }
    const { rows } = await fetchPacked(after);
    return { packed: rows.map((row) => row.r) };
  };
  return { fetchRange, release };
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
