/**
 * The checks verify makes, as pure functions over plain data, so a range of rows can be checked on
 * the main thread or in a worker thread with the same result.
 *
 * Every check is local to a row and the stored values of the row before it: row i is intact when
 * hash_i = SHA-256(prev_hash_i || SHA-256(body_i)), prev_hash_i is the stored hash of row i-1, the
 * body is canonical and names position i of this chain, time does not go back, and the indexed
 * columns agree with the body. So ranges are independent once each knows the row before it, and
 * mergeChunkResults puts the per-range answers back together exactly as one walk would.
 */
import { GENESIS_HASH, createChainHasher, isCanonicalText } from './canonical.js';
import { indexKeyOf, type Envelope } from './envelope.js';
import { scanCanonicalEnvelope } from './scan.js';
import type { VerifyFailure } from './types.js';

export interface Failure {
  readonly seq: number | null;
  readonly reason: VerifyFailure;
  readonly detail: string;
}

/** The stored values of the row before a range (seq 0: before the chain). */
export interface PreviousRow {
  readonly seq: number;
  readonly hash: string;
  readonly body: string;
  readonly time: string;
}

export const BEFORE_CHAIN: PreviousRow = { seq: 0, hash: GENESIS_HASH, body: '', time: '' };

export interface CheckpointRef {
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
  readonly source: string;
}

/** A range of rows as columns (cheap to hand to a worker thread). */
export interface ChunkTask {
  readonly tenant: string;
  readonly previous: PreviousRow;
  readonly headSeq: number;
  readonly seq: readonly number[];
  readonly body: readonly string[];
  readonly prevHash: readonly string[];
  readonly hash: readonly string[];
  readonly idx: ReadonlyArray<string | null>;
  /** Trusted (signature-checked) checkpoints whose seq falls in this range. */
  readonly checkpoints: readonly CheckpointRef[];
}

/**
 * The same range as one string per row, `seq:` + prev_hash + hash + body + "\x1d" + index key,
 * which costs the fetching thread a fraction of five columns. Only trusted for a "yes": a row
 * that fails is fetched again column by column and judged from that (see verify.ts).
 */
export interface PackedChunkTask {
  readonly tenant: string;
  readonly previous: PreviousRow;
  readonly headSeq: number;
  readonly packed: ReadonlyArray<string | null>;
  readonly checkpoints: readonly CheckpointRef[];
}

const HEX_LENGTH = 64;

/** One packed row; null fields when it does not have the expected shape. */
export function unpackRow(record: string | null): { seq: number; prevHash: string; hash: string; body: string; idx: string | null } {
  const colon = record === null ? -1 : record.indexOf(':');
  const hashesAt = colon + 1;
  // The first separator after the hashes: a canonical body never holds a raw control character,
  // so for every row that can pass, this is the one between body and index key.
  const separator = record === null || colon < 1 ? -1 : record.indexOf('\x1d', hashesAt + 2 * HEX_LENGTH);
  if (record === null || separator < 0) return { seq: Number.NaN, prevHash: '', hash: '', body: '', idx: null };
  return {
    seq: Number(record.slice(0, colon)),
    prevHash: record.slice(hashesAt, hashesAt + HEX_LENGTH),
    hash: record.slice(hashesAt + HEX_LENGTH, hashesAt + 2 * HEX_LENGTH),
    body: record.slice(hashesAt + 2 * HEX_LENGTH, separator),
    idx: record.slice(separator + 1),
  };
}

export function unpackChunk(task: PackedChunkTask): ChunkTask {
  const n = task.packed.length;
  const seq = new Array<number>(n);
  const body = new Array<string>(n);
  const prevHash = new Array<string>(n);
  const hash = new Array<string>(n);
  const idx = new Array<string | null>(n);
  for (let i = 0; i < n; i++) {
    const row = unpackRow(task.packed[i] ?? null);
    seq[i] = row.seq;
    body[i] = row.body;
    prevHash[i] = row.prevHash;
    hash[i] = row.hash;
    idx[i] = row.idx;
  }
  return { tenant: task.tenant, previous: task.previous, headSeq: task.headSeq, seq, body, prevHash, hash, idx, checkpoints: task.checkpoints };
}

export interface ChunkResult {
  /** Rows that passed every check, from the start of the range. */
  readonly passed: number;
  /** Seq of the last row that passed (previous.seq when none did). */
  readonly lastPassedSeq: number;
  /** The first row that failed, if any. */
  readonly failure: Failure | null;
  /** Checkpoint comparisons at rows that passed, in seq order. */
  readonly checkpointChecks: ReadonlyArray<{ readonly seq: number; readonly matches: boolean; readonly detail: string; readonly signedHash: string }>;
  /** The stored hash at headSeq, when that row is in this range and passed. */
  readonly hashAtHead: string | null;
}

export function checkChunk(input: ChunkTask | PackedChunkTask): ChunkResult {
  const task = 'packed' in input ? unpackChunk(input) : input;
  const hasher = createChainHasher();
  const { checkpointsAt, checkpointChecks, recordCheckpoint } = checkpointRecorder(task.checkpoints);
  let { seq: prevSeq, hash: prevHash, body: prevBody, time: prevTime } = task.previous;
  let hashAtHead: string | null = null;
  let failure: Failure | null = null;
  let passed = 0;

  for (let i = 0; i < task.seq.length; i++) {
    const seq = task.seq[i] as number;
    const expected = prevSeq + 1;
    if (seq !== expected) {
      failure = { seq: expected, reason: 'gap', detail: `seq ${expected}${seq - 1 > expected ? ` to ${seq - 1}` : ''} is missing: rows were deleted` };
      break;
    }
    const body = task.body[i] as string;
    const rowPrevHash = task.prevHash[i] as string;
    const rowHash = task.hash[i] as string;
    const hashOk = hasher(rowPrevHash, body) === rowHash;
    const linkOk = rowPrevHash === prevHash;
    // The common case in one pass; anything it does not vouch for is judged the exact way below.
    const fast = hashOk && linkOk ? scanCanonicalEnvelope(body) : null;
    if (fast !== null && fast.seq === seq && fast.chain === task.tenant && fast.time >= prevTime && fast.indexKey === task.idx[i]) {
      recordCheckpoint(seq, rowHash);
      if (seq === task.headSeq) hashAtHead = rowHash;
      prevSeq = seq;
      prevHash = rowHash;
      prevBody = body;
      prevTime = fast.time;
      passed++;
      continue;
    }
    let parsed: Envelope | undefined;
    try {
      parsed = JSON.parse(body) as Envelope;
    } catch {
      parsed = undefined;
    }
    const placeOk = parsed !== undefined && parsed !== null && parsed.seq === seq && parsed.chain === task.tenant;
    if (!hashOk || !linkOk || !placeOk) {
      failure = classify(seq, task.tenant, body, parsed, hashOk, linkOk, prevBody);
      break;
    }
    const envelope = parsed as Envelope;
    if (!isCanonicalText(body, envelope)) {
      failure = { seq, reason: 'not_canonical', detail: 'the stored body is not RFC 8785 canonical JSON' };
      break;
    }
    if (typeof envelope.time !== 'string' || envelope.time < prevTime) {
      failure = { seq, reason: 'reordered', detail: `time ${String(envelope.time)} is earlier than the previous event's ${prevTime}: events were moved` };
      break;
    }
    if (task.idx[i] !== indexKeyOf(envelope)) {
      failure = {
        seq,
        reason: 'column_mismatch',
        detail: 'an indexed column (time, type, code, actor, request id, decision or device ids) differs from the stored body',
      };
      break;
    }
    recordCheckpoint(seq, rowHash);
    if (seq === task.headSeq) hashAtHead = rowHash;
    prevSeq = seq;
    prevHash = rowHash;
    prevBody = body;
    prevTime = envelope.time;
    passed++;
  }
  return { passed, lastPassedSeq: prevSeq, failure, checkpointChecks, hashAtHead };
}

function classify(
  seq: number,
  tenant: string,
  body: string,
  parsed: Envelope | undefined,
  hashOk: boolean,
  linkOk: boolean,
  prevBody: string,
): Failure {
  if (!hashOk) {
    return { seq, reason: 'hash_mismatch', detail: 'the stored hash is not SHA-256(prev_hash || SHA-256(body)): the body or its hash was changed' };
  }
  if (parsed === undefined || parsed === null || typeof parsed !== 'object') {
    return { seq, reason: 'not_canonical', detail: 'the stored body is not JSON' };
  }
  if (parsed.chain !== tenant) {
    return { seq, reason: 'reordered', detail: `the row holds an event of chain ${JSON.stringify(String(parsed.chain)).slice(0, 80)}: events were moved between chains` };
  }
  if (parsed.seq !== seq) {
    if (parsed.seq === seq - 1 && body !== prevBody) {
      return { seq: seq - 1, reason: 'inserted', detail: `a row was inserted at seq ${seq - 1}: the event recorded as seq ${seq - 1} now sits at seq ${seq}` };
    }
    const held = typeof parsed.seq === 'number' ? `seq ${parsed.seq}` : 'no seq';
    return { seq, reason: 'reordered', detail: `the row at seq ${seq} holds the event recorded as ${held}: rows were moved, swapped or removed` };
  }
  if (!linkOk) {
    return { seq, reason: 'chain_break', detail: seq === 1 ? 'prev_hash of seq 1 is not the genesis hash' : `prev_hash does not match the hash of seq ${seq - 1}` };
  }
  return { seq, reason: 'hash_mismatch', detail: 'the row does not link' };
}

/** Folds range results, in seq order, into what one walk over the whole chain finds. */
export class ChainWalk {
  private lastGoodCheckpoint = 0;
  private pending: { at: number; signedHash: string; failure: Failure } | null = null;
  /** The first row that failed its own checks, whatever the outcome (for exact blame after the walk). */
  rowFailure: Failure | null = null;
  /** Set once the walk has its answer: later ranges cannot change it. */
  outcome: Failure | null | undefined = undefined;
  walked = 0;
  checked = 0;
  hashAtHead: string | null = null;

  add(result: ChunkResult): void {
    if (this.outcome !== undefined) return;
    this.checked += result.passed;
    this.hashAtHead ??= result.hashAtHead;
    for (const check of result.checkpointChecks) {
      // A checkpoint only bounds where a rewrite began; the row after it may still name the exact
      // seq (an insertion shows one row later). A passed row after it means it did not.
      if (this.pending !== null) return void (this.outcome = this.pending.failure);
      if (check.matches) {
        this.lastGoodCheckpoint = check.seq;
      } else {
        const from = this.lastGoodCheckpoint + 1;
        this.pending = {
          at: check.seq,
          signedHash: check.signedHash,
          failure: { seq: from, reason: 'checkpoint_mismatch', detail: `${check.detail}: the chain was rewritten somewhere in seq ${from} to ${check.seq}` },
        };
      }
    }
    if (this.pending !== null && result.lastPassedSeq > this.pending.at) return void (this.outcome = this.pending.failure);
    this.walked = result.lastPassedSeq;
    if (result.failure !== null) {
      this.rowFailure = result.failure;
      this.outcome = this.pending !== null && result.failure.reason !== 'inserted' ? this.pending.failure : result.failure;
    }
  }

  /** The first signed checkpoint the chain disagrees with: its seq and the hash it signed. */
  get mismatchedCheckpoint(): { readonly seq: number; readonly signedHash: string } | null {
    return this.pending === null ? null : { seq: this.pending.at, signedHash: this.pending.signedHash };
  }

  /** After the last range: the pending checkpoint failure, if any (null: the rows themselves are intact). */
  finish(): Failure | null {
    if (this.outcome === undefined) this.outcome = this.pending?.failure ?? null;
    return this.outcome;
  }
}

/** The signed checkpoints of a chunk by seq, and the comparison of each with the hash verify computed there. */
export function checkpointRecorder(checkpoints: readonly CheckpointRef[]) {
  const checkpointsAt = new Map<number, CheckpointRef[]>();
  for (const cp of checkpoints) checkpointsAt.set(cp.seq, [...(checkpointsAt.get(cp.seq) ?? []), cp]);
  const checkpointChecks: Array<{ seq: number; matches: boolean; detail: string; signedHash: string }> = [];
  const recordCheckpoint = (seq: number, rowHash: string): void => {
    const atCheckpoint = checkpointsAt.get(seq);
    if (atCheckpoint === undefined) return;
    const differing = atCheckpoint.find((cp) => cp.hash !== rowHash);
    checkpointChecks.push(
      differing === undefined
        ? { seq, matches: true, detail: '', signedHash: rowHash }
        : { seq, matches: false, detail: `the hash at seq ${seq} differs from the signed checkpoint of ${differing.time} (${differing.source})`, signedHash: differing.hash },
    );
  };
  return { checkpointsAt, checkpointChecks, recordCheckpoint };
}
