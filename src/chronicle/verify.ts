/**
 * Verify: walk each chain in seq order and name the first seq that can no longer be trusted.
 *
 * For every row it checks, from the stored text alone (nothing is trusted from the database but
 * the bytes it returns):
 *   - seq is the next one (gap, or truncated at the end);
 *   - hash = SHA-256(prev_hash || SHA-256(body)) (hash_mismatch);
 *   - the body is this position's event of this chain (reordered, inserted);
 *   - prev_hash is the previous row's hash, or the genesis hash for seq 1 (chain_break);
 *   - the body is RFC 8785 canonical JSON of itself (not_canonical);
 *   - time does not run backwards (reordered);
 *   - the indexed columns agree with the body (column_mismatch);
 * then that the head row names the last event, that nothing lies beyond it, and that every signed
 * checkpoint agrees with the chain (truncated, checkpoint_mismatch, bad_signature).
 *
 * Rows stream in bounded seq ranges (keyset, not OFFSET) with the next range fetched while the
 * current one is hashed.
 */
import type { Db } from '../db/index.js';
import { GENESIS_HASH, createChainHasher, isCanonicalText } from './canonical.js';
import { checkSignature, readCheckpoints, type SigningKey } from './checkpoints.js';
import { INDEX_KEY_SQL, indexKeyOf, type Envelope } from './envelope.js';
import { ChronicleError, type ChainVerifyReport, type Checkpoint, type VerifyFailure, type VerifyReport } from './types.js';

export interface VerifyOptions {
  readonly db: Db;
  readonly tenant?: string;
  readonly key: SigningKey | null;
  readonly checkpointDir?: string;
  /** Rows per fetched range (default 5000). */
  readonly chunkSize?: number;
}

const TENANT = /^[A-Za-z0-9._-]{1,64}$/;

interface Failure {
  readonly seq: number | null;
  readonly reason: VerifyFailure;
  readonly detail: string;
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
  if (options.tenant !== undefined && (typeof options.tenant !== 'string' || !TENANT.test(options.tenant))) {
    throw new ChronicleError('tenant: must be 1 to 64 letters, digits, dots, underscores or hyphens', 'invalid_query', 'tenant');
  }

  // Checkpoints are read before any head: a checkpoint only ever names a committed head, and heads
  // only move forward, so an intact chain read afterwards is at least as long as every checkpoint.
  const { checkpoints, warnings } =
    options.checkpointDir !== undefined ? await readCheckpoints(options.checkpointDir) : { checkpoints: [], warnings: [] };
  const byChain = new Map<string, Array<Checkpoint & { source: string }>>();
  for (const cp of checkpoints) {
    if (options.tenant !== undefined && cp.chain !== options.tenant) continue;
    const list = byChain.get(cp.chain) ?? [];
    list.push(cp);
    byChain.set(cp.chain, list);
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
  for (const tenant of tenants) {
    chains.push(await verifyChain(options, tenant, byChain.get(tenant) ?? []));
  }
  return {
    ok: chains.every((c) => c.ok),
    chains,
    eventsChecked: chains.reduce((n, c) => n + c.eventsChecked, 0),
    durationMs: Math.round(performance.now() - started),
    warnings,
  };
}

async function verifyChain(
  options: VerifyOptions,
  tenant: string,
  checkpoints: ReadonlyArray<Checkpoint & { source: string }>,
): Promise<ChainVerifyReport> {
  const { db } = options;
  const chunkSize = options.chunkSize ?? 5_000;
  const failures: Failure[] = [];

  // Signed checkpoints are evidence; forged ones are failures at the seq they claim.
  const trusted: Array<Checkpoint & { source: string }> = [];
  for (const cp of checkpoints) {
    const check = checkSignature(cp, options.key);
    if (check.ok) trusted.push(cp);
    else failures.push({ seq: cp.seq, reason: 'bad_signature', detail: `${cp.source}: ${check.detail}` });
  }
  trusted.sort((a, b) => a.seq - b.seq);
  const checkpointAt = new Map<number, Array<Checkpoint & { source: string }>>();
  for (const cp of trusted) checkpointAt.set(cp.seq, [...(checkpointAt.get(cp.seq) ?? []), cp]);

  const { rows: headRows } = await db.query<{ head_seq: number; head_hash: string }>(
    'SELECT head_seq, head_hash FROM chronicle_chain WHERE tenant = $1',
    [tenant],
  );
  const head = headRows[0];
  let lastSeq: number;
  if (head !== undefined) {
    lastSeq = Number(head.head_seq);
  } else {
    const { rows } = await db.query<{ max: number | null }>('SELECT max(seq) AS max FROM chronicle_event WHERE tenant = $1', [tenant]);
    lastSeq = Number(rows[0]?.max ?? 0);
    if (lastSeq > 0) failures.push({ seq: lastSeq, reason: 'head_mismatch', detail: 'the chain has events but no head row' });
  }

  const hasher = createChainHasher();
  let expected = 1;
  let prevHash = GENESIS_HASH;
  let prevBody = '';
  let prevTime = '';
  let lastGoodCheckpoint = 0;
  let checked = 0;
  let rowFailure: Failure | null = null;

  const fetchRange = (after: number) =>
    db.query<Row>(
      `SELECT seq, body, prev_hash, hash, ${INDEX_KEY_SQL} AS idx FROM chronicle_event
       WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`,
      [tenant, after, Math.min(after + chunkSize, lastSeq)],
    );

  let rangeStart = 0;
  let pending = lastSeq > 0 ? fetchRange(0) : null;
  walk: while (pending !== null) {
    const { rows } = await pending;
    rangeStart += chunkSize;
    pending = rangeStart < lastSeq ? fetchRange(rangeStart) : null;

    for (const row of rows) {
      const seq = Number(row.seq);
      if (seq !== expected) {
        rowFailure = { seq: expected, reason: 'gap', detail: `seq ${expected}${seq - 1 > expected ? ` to ${seq - 1}` : ''} is missing: rows were deleted` };
        break walk;
      }
      const body = row.body;
      const hash = hasher(row.prev_hash, body);
      let parsed: Envelope | undefined;
      try {
        parsed = JSON.parse(body) as Envelope;
      } catch {
        parsed = undefined;
      }
      const hashOk = hash === row.hash;
      const linkOk = row.prev_hash === prevHash;
      const placeOk = parsed !== undefined && parsed !== null && parsed.seq === seq && parsed.chain === tenant;
      if (!hashOk || !linkOk || !placeOk) {
        rowFailure = classify(seq, tenant, row, parsed, { hashOk, linkOk }, prevBody);
        break walk;
      }
      const envelope = parsed as Envelope;
      if (!isCanonicalText(body, envelope)) {
        rowFailure = { seq, reason: 'not_canonical', detail: 'the stored body is not RFC 8785 canonical JSON' };
        break walk;
      }
      if (typeof envelope.time !== 'string' || envelope.time < prevTime) {
        rowFailure = { seq, reason: 'reordered', detail: `time ${String(envelope.time)} is earlier than the previous event's ${prevTime}: events were moved` };
        break walk;
      }
      if (row.idx !== indexKeyOf(envelope)) {
        rowFailure = { seq, reason: 'column_mismatch', detail: 'an indexed column (time, type, code, actor, request id, decision or device ids) differs from the stored body' };
        break walk;
      }
      const atCheckpoint = checkpointAt.get(seq);
      if (atCheckpoint !== undefined) {
        const differing = atCheckpoint.find((cp) => cp.hash !== row.hash);
        if (differing !== undefined) {
          rowFailure = {
            seq: lastGoodCheckpoint + 1,
            reason: 'checkpoint_mismatch',
            detail: `the hash at seq ${seq} differs from the signed checkpoint of ${differing.time} (${differing.source}): the chain was rewritten somewhere in seq ${lastGoodCheckpoint + 1} to ${seq}`,
          };
          break walk;
        }
        lastGoodCheckpoint = seq;
      }
      prevHash = row.hash;
      prevBody = body;
      prevTime = envelope.time;
      checked++;
      expected++;
    }
  }

  if (rowFailure !== null) {
    failures.push(rowFailure);
  } else {
    const walked = expected - 1;
    if (walked < lastSeq) {
      failures.push({ seq: walked + 1, reason: 'truncated', detail: `the chain ends at seq ${walked} but its head row says seq ${lastSeq}: the tail was deleted` });
    } else if (head !== undefined && lastSeq > 0 && head.head_hash !== prevHash) {
      failures.push({ seq: lastSeq, reason: 'head_mismatch', detail: `the head row's hash is not the hash of seq ${lastSeq}` });
    } else if (head !== undefined && lastSeq === 0 && head.head_hash !== GENESIS_HASH) {
      failures.push({ seq: null, reason: 'head_mismatch', detail: 'an empty chain whose head row does not hold the genesis hash' });
    }
    const beyond = trusted.filter((cp) => cp.seq > walked);
    if (beyond.length > 0 && walked >= lastSeq) {
      const top = beyond[beyond.length - 1] as Checkpoint & { source: string };
      failures.push({
        seq: walked + 1,
        reason: 'truncated',
        detail: `the chain ends at seq ${walked} but a signed checkpoint of ${top.time} (${top.source}) records seq ${top.seq}: the tail was cut`,
      });
    }
    // Rows past the head, read in one statement so a concurrent append cannot look like one.
    const { rows } = await db.query<{ head_seq: number | null; max_seq: number | null }>(
      `SELECT (SELECT head_seq FROM chronicle_chain WHERE tenant = $1) AS head_seq,
              (SELECT max(seq) FROM chronicle_event WHERE tenant = $1) AS max_seq`,
      [tenant],
    );
    const now = rows[0];
    if (head !== undefined && now?.head_seq != null && now.max_seq != null && Number(now.max_seq) > Number(now.head_seq)) {
      failures.push({
        seq: Number(now.head_seq) + 1,
        reason: 'beyond_head',
        detail: `rows up to seq ${now.max_seq} exist past the head (seq ${now.head_seq}): they were inserted around the append path`,
      });
    }
  }

  failures.sort((a, b) => (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER));
  const first = failures[0];
  return {
    tenant,
    ok: first === undefined,
    eventsChecked: checked,
    headSeq: head !== undefined ? Number(head.head_seq) : 0,
    checkpointsChecked: checkpoints.length,
    firstBadSeq: first?.seq ?? null,
    reason: first?.reason ?? null,
    detail: first?.detail ?? null,
  };
}

function classify(
  seq: number,
  tenant: string,
  row: Row,
  parsed: Envelope | undefined,
  { hashOk, linkOk }: { hashOk: boolean; linkOk: boolean },
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
    if (parsed.seq === seq - 1 && row.body !== prevBody) {
      return {
        seq: seq - 1,
        reason: 'inserted',
        detail: `a row was inserted at seq ${seq - 1}: the event recorded as seq ${seq - 1} now sits at seq ${seq}`,
      };
    }
    const held = typeof parsed.seq === 'number' ? `seq ${parsed.seq}` : 'no seq';
    return { seq, reason: 'reordered', detail: `the row at seq ${seq} holds the event recorded as ${held}: rows were moved, swapped or removed` };
  }
  if (!linkOk) {
    return { seq, reason: 'chain_break', detail: `prev_hash does not match the hash of seq ${seq - 1}` };
  }
  return { seq, reason: 'hash_mismatch', detail: 'the row does not link' };
}
