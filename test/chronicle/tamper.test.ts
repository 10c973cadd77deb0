/**
 * Tampering by someone with database superuser rights (triggers disabled, as such an attacker
 * would), each caught by verify at the exact seq. Chains are per tenant, so every case builds its
 * own chain in one shared database and checkpoint directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Db } from '../../src/db/index.js';
import { canonicalJson, chainHash, createChronicle, type Chronicle, type ChainVerifyReport } from '../../src/chronicle/index.js';
import { INDEX_KEY_SQL } from '../../src/chronicle/envelope.js';
import { forEachDatabase, type TestDatabase } from '../helpers/db.js';
import {
  appendPastHead,
  asSuperuserWithoutGuards,
  changeBodyByte,
  deleteRow,
  editBodyRehashed,
  insertRow,
  invoked,
  logFiles,
  rewriteChain,
  rows,
  swapRows,
  tempDir,
  truncateTail,
  uniqueTenant,
} from './helpers.js';

forEachDatabase('chronicle tamper detection', (create) => {
  let tdb: TestDatabase;
  let db: Db;
  let chronicle: Chronicle;
  /** The same trail read in ranges of 3 rows on this thread, and in ranges of 4 by worker threads. */
  let chunked: Chronicle;
  let parallel: Chronicle;
  let keys: ReturnType<typeof tempDir>;
  let checkpointDir: string;

  beforeAll(async () => {
    tdb = await create();
    db = await tdb.open();
    keys = tempDir('tamper');
    checkpointDir = path.join(keys.dir, 'checkpoints');
    chronicle = await createChronicle({ db, signingKeyFile: path.join(keys.dir, 'signing-key.pem'), checkpointDir });
    const readers = { db, signingKeyFile: path.join(keys.dir, 'signing-key.pem'), checkpointDir };
    chunked = await createChronicle({ ...readers, verify: { workers: 0, chunkSize: 3 } });
    parallel = await createChronicle({ ...readers, verify: { workers: 2, minEventsForWorkers: 0, chunkSize: 4 } });
  });
  afterAll(async () => {
    await chunked?.close();
    await parallel?.close();
    await chronicle?.close();
    await tdb?.drop();
    keys?.remove();
  });

  /** A fresh chain of `n` events with a signed checkpoint after each seq in `checkpointAt`. */
  async function chain(n: number, checkpointAt: readonly number[] = []): Promise<string> {
    const tenant = uniqueTenant();
    let written = 0;
    for (const stop of [...new Set([...checkpointAt, n])]) {
      await Promise.all(Array.from({ length: stop - written }, (_, i) => chronicle.append(invoked(tenant, written + i + 1))));
      written = stop;
      if (checkpointAt.includes(stop)) await chronicle.checkpoint();
    }
    const report = await verifyChain(tenant);
    expect(report.ok, 'the untouched chain verifies').toBe(true);
    expect(report.checkpointsChecked).toBe(checkpointAt.length);
    return tenant;
  }

  async function verifyChain(tenant: string, using: Chronicle = chronicle): Promise<ChainVerifyReport> {
    const report = await using.verify({ tenant });
    expect(report.chains).toHaveLength(1);
    if (using === chronicle) {
      // Whatever the ranges and threads, one answer.
      expect((await chunked.verify({ tenant })).chains, 'ranges of 3 rows').toEqual(report.chains);
      expect((await parallel.verify({ tenant })).chains, 'worker threads').toEqual(report.chains);
    }
    return report.chains[0] as ChainVerifyReport;
  }

  it('reports an untouched chain as intact, with the signed checkpoints it compared', async () => {
    const tenant = await chain(12, [4, 12]);
    expect(await verifyChain(tenant)).toEqual({
      tenant,
      ok: true,
      eventsChecked: 12,
      headSeq: 12,
      checkpointsChecked: 2,
      firstBadSeq: null,
      reason: null,
      detail: null,
    });
  });

  it('catches one changed byte in a body at its seq', async () => {
    const tenant = await chain(12);
    await changeBodyByte(db, tenant, 7, 150);
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 7, reason: 'hash_mismatch' });
  });

  it('names seq K, not K+1, for a body edited at K with only that row\'s hash recomputed', async () => {
    const middle = await chain(12);
    await editBodyRehashed(db, middle, 7);
    const report = await verifyChain(middle);
    expect(report).toMatchObject({ ok: false, firstBadSeq: 7, reason: 'hash_mismatch' });
    expect(report.detail).toContain('seq 8 still links to the hash seq 7 had');

    // Under a signed checkpoint at K, and at the head (no row after it to link).
    const atCheckpoint = await chain(12, [5, 12]);
    await editBodyRehashed(db, atCheckpoint, 5);
    expect(await verifyChain(atCheckpoint)).toMatchObject({ ok: false, firstBadSeq: 5, reason: 'hash_mismatch' });
    const atHead = await chain(12, [12]);
    await editBodyRehashed(db, atHead, 12);
    expect(await verifyChain(atHead)).toMatchObject({ ok: false, firstBadSeq: 12, reason: 'hash_mismatch' });
  });

  it('names the first changed seq at a range boundary whether workers read the ranges, two are copied at once here, or one', async () => {
    // Ranges of 4 rows (1-4, 5-8, 9-12, 13-16) checked by worker threads; the copies made on the
    // verifying thread are counted. Workers read ranges themselves only where the database gives
    // them a connection of their own (PostgreSQL); a worker that cannot connect leaves its range
    // to this thread.
    const reading = (spareConnections?: () => number, readerConnection?: Db['readerConnection']) => {
      const seen = { inFlight: 0, most: 0, copies: 0 };
      const copyBinary = db.copyBinary?.bind(db);
      const { readerConnection: _own, ...rest } = db;
      const counted: Db = {
        ...rest,
        ...(readerConnection === undefined ? {} : { readerConnection }),
        ...(copyBinary === undefined
          ? {}
          : {
              copyBinary: async (...args: Parameters<NonNullable<Db['copyBinary']>>) => {
                seen.copies++;
                seen.most = Math.max(seen.most, ++seen.inFlight);
                try {
                  return await copyBinary(...args);
                } finally {
                  seen.inFlight--;
                }
              },
            }),
        ...(spareConnections === undefined ? {} : { spareConnections }),
      };
      return { seen, counted };
    };
    const twoStreams = reading();
    const oneStream = reading(() => 1);
    const own = db.readerConnection?.bind(db);
    const workersRead = reading(undefined, own);
    const unreachable = reading(undefined, own === undefined ? undefined : () => ({ ...own(), connectionString: 'postgres://postgres@127.0.0.1:1/nowhere', connectTimeoutMs: 500 }));
    const readers = { signingKeyFile: path.join(keys.dir, 'signing-key.pem'), checkpointDir, verify: { workers: 2, minEventsForWorkers: 0, chunkSize: 4 } };
    const two = await createChronicle({ ...readers, db: twoStreams.counted });
    const one = await createChronicle({ ...readers, db: oneStream.counted });
    const byWorkers = await createChronicle({ ...readers, db: workersRead.counted });
    const fallingBack = await createChronicle({ ...readers, db: unreachable.counted });
    try {
      const cases: Array<{ edit: (tenant: string) => Promise<void>; seq: number; reason: string }> = [
        // The last row of a range, rehashed: only the next range's first row shows it (its prev_hash).
        { edit: (t) => editBodyRehashed(db, t, 8), seq: 8, reason: 'hash_mismatch' },
        // The first row of a range, rehashed, and a later range changed too: the earlier change is named.
        { edit: async (t) => (await editBodyRehashed(db, t, 9), await changeBodyByte(db, t, 13, 40)), seq: 9, reason: 'hash_mismatch' },
        // The last row of one range and the first of the next, both changed.
        { edit: async (t) => (await changeBodyByte(db, t, 12, 40), await changeBodyByte(db, t, 13, 40)), seq: 12, reason: 'hash_mismatch' },
        // A row deleted at a boundary.
        { edit: (t) => deleteRow(db, t, 5), seq: 5, reason: 'gap' },
      ];
      for (const { edit, seq, reason } of cases) {
        const tenant = await chain(16);
        await edit(tenant);
        const expected = await verifyChain(tenant);
        expect(expected).toMatchObject({ ok: false, firstBadSeq: seq, reason });
        expect((await two.verify({ tenant })).chains, `two streams, change at seq ${seq}`).toEqual([expected]);
        expect((await one.verify({ tenant })).chains, `one stream, change at seq ${seq}`).toEqual([expected]);
        expect((await byWorkers.verify({ tenant })).chains, `workers reading, change at seq ${seq}`).toEqual([expected]);
        expect((await fallingBack.verify({ tenant })).chains, `workers unable to connect, change at seq ${seq}`).toEqual([expected]);
      }
      const intact = await chain(16);
      for (const chronicle of [two, one, byWorkers, fallingBack]) expect((await chronicle.verify({ tenant: intact })).chains[0]).toMatchObject({ ok: true, eventsChecked: 16 });
    } finally {
      await two.close();
      await one.close();
      await byWorkers.close();
      await fallingBack.close();
    }
    if (db.copyBinary !== undefined) {
      // Never more than two connections at once for the ranges, and one when the pool has only one to spare.
      expect(twoStreams.seen.most).toBe(2);
      expect(oneStream.seen.most).toBe(1);
    }
    if (own !== undefined) {
      // Workers with a connection of their own read every range but those a failure sends back here
      // (at most the two of a boundary, read again column by column, never copied here).
      expect(workersRead.seen.copies).toBe(0);
      // Workers that cannot connect: this thread copies every range.
      expect(unreachable.seen.copies).toBeGreaterThanOrEqual(5 * 4);
    }
  });

  it('catches a deleted row at its seq', async () => {
    const tenant = await chain(12);
    await deleteRow(db, tenant, 5);
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 5, reason: 'gap' });
  });

  it('catches swapped rows at the first of them', async () => {
    const tenant = await chain(12);
    await swapRows(db, tenant, 4, 9);
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 4, reason: 'reordered' });
  });

  it('catches an inserted row, even a well-forged one, at the seq it was inserted at', async () => {
    const tenant = await chain(12);
    await insertRow(db, tenant, 6);
    const report = await verifyChain(tenant);
    expect(report).toMatchObject({ ok: false, firstBadSeq: 6, reason: 'inserted' });
    expect(report.detail).toContain('now sits at seq 7');
  });

  it('catches a row appended around the append path, past the head', async () => {
    const tenant = await chain(12);
    await appendPastHead(db, tenant);
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 13, reason: 'beyond_head' });
  });

  it('catches a row put before seq 1 (the seq > 0 constraint dropped), which query would show', async () => {
    const tenant = await chain(6, [6]);
    await asSuperuserWithoutGuards(db, async (tx) => {
      await tx.query('ALTER TABLE chronicle_event DROP CONSTRAINT chronicle_event_seq_check');
      await tx.query(
        `INSERT INTO chronicle_event (tenant, seq, time, type, code, actor_kind, actor_id, request_id, decision, device_ids, body, prev_hash, hash)
         SELECT tenant, 0, time, type, code, actor_kind, actor_id, 'forged', decision, device_ids, body, prev_hash, hash FROM chronicle_event WHERE tenant = $1 AND seq = 3`,
        [tenant],
      );
      await tx.query('ALTER TABLE chronicle_event ADD CONSTRAINT chronicle_event_seq_check CHECK (seq > 0) NOT VALID');
    });
    expect((await chronicle.query({ tenant })).events).toHaveLength(7);
    const report = await verifyChain(tenant);
    expect(report).toMatchObject({ ok: false, firstBadSeq: 0, reason: 'inserted' });
  });

  it('catches hash columns edited so that prev_hash || hash || body reads the same as before', async () => {
    for (const [seq, shift] of [
      [4, 'prev_hash takes the first digit of hash'],
      [8, 'hash takes the first character of body'],
    ] as const) {
      const tenant = await chain(12);
      await asSuperuserWithoutGuards(db, (tx) =>
        tx.query(
          seq === 4
            ? 'UPDATE chronicle_event SET prev_hash = prev_hash || left(hash, 1), hash = substr(hash, 2) WHERE tenant = $1 AND seq = $2'
            : 'UPDATE chronicle_event SET hash = hash || left(body, 1), body = substr(body, 2) WHERE tenant = $1 AND seq = $2',
          [tenant, seq],
        ),
      );
      expect(await verifyChain(tenant), shift).toMatchObject({ ok: false, firstBadSeq: seq, reason: 'hash_mismatch' });
    }
  });

  it('catches an edited or deleted head row, and a prev_hash relinked with its hash recomputed', async () => {
    const edited = await chain(12);
    await asSuperuserWithoutGuards(db, (tx) => tx.query("UPDATE chronicle_chain SET head_hash = repeat('a', 64) WHERE tenant = $1", [edited]));
    expect(await verifyChain(edited)).toMatchObject({ ok: false, firstBadSeq: 12, reason: 'head_mismatch' });

    const headless = await chain(12);
    await asSuperuserWithoutGuards(db, (tx) => tx.query('DELETE FROM chronicle_chain WHERE tenant = $1', [headless]));
    expect(await verifyChain(headless)).toMatchObject({ ok: false, firstBadSeq: 12, reason: 'head_mismatch' });

    const relinked = await chain(12);
    await asSuperuserWithoutGuards(db, async (tx) => {
      const row = (await rows(tx, relinked)).find((r) => r.seq === 5) as { body: string };
      const prev = 'b'.repeat(64);
      await tx.query('UPDATE chronicle_event SET prev_hash = $3, hash = $4 WHERE tenant = $1 AND seq = $2', [relinked, 5, prev, chainHash(prev, row.body)]);
    });
    expect(await verifyChain(relinked)).toMatchObject({ ok: false, firstBadSeq: 5, reason: 'chain_break' });
  });

  it('catches an event dated before the one it follows, even with every hash after it recomputed', async () => {
    const tenant = await chain(12);
    await asSuperuserWithoutGuards(db, async (tx) => {
      const all = await rows(tx, tenant);
      let prev = (all.find((r) => r.seq === 6) as { hash: string }).hash;
      for (const row of all.filter((r) => r.seq >= 7)) {
        const envelope = JSON.parse(row.body) as { time: string };
        if (row.seq === 7) envelope.time = new Date(Date.parse(envelope.time) - 3_600_000).toISOString();
        const body = canonicalJson(envelope);
        const hash = chainHash(prev, body);
        await tx.query('UPDATE chronicle_event SET body = $3, prev_hash = $4, hash = $5, time = $6 WHERE tenant = $1 AND seq = $2', [tenant, row.seq, body, prev, hash, envelope.time]);
        prev = hash;
      }
      await tx.query('UPDATE chronicle_chain SET head_hash = $2 WHERE tenant = $1', [tenant, prev]);
    });
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 7, reason: 'reordered' });
  });

  it('catches a truncated tail: by the head row, and by a checkpoint when the head was moved back too', async () => {
    const careless = await chain(12);
    await truncateTail(db, careless, 9, { moveHead: false });
    expect(await verifyChain(careless)).toMatchObject({ ok: false, firstBadSeq: 9, reason: 'truncated' });

    const careful = await chain(12, [12]);
    await truncateTail(db, careful, 9, { moveHead: true });
    const report = await verifyChain(careful);
    expect(report).toMatchObject({ ok: false, firstBadSeq: 9, reason: 'truncated' });
    expect(report.detail).toMatch(/signed checkpoint .* records seq 12/);

    // Without the checkpoint the cut is invisible: that is what checkpoints are for.
    const blind = await createChronicle({ db });
    try {
      expect(await verifyChain(careful, blind)).toMatchObject({ ok: true, eventsChecked: 8 });
    } finally {
      await blind.close();
    }
  });

  it('catches a whole chain recomputed from seq 1 by its checkpoint', async () => {
    const tenant = await chain(12, [12]);
    await rewriteChain(db, tenant, 1);
    const report = await verifyChain(tenant);
    expect(report).toMatchObject({ ok: false, firstBadSeq: 1, reason: 'checkpoint_mismatch' });
    expect(report.detail).toContain('rewritten somewhere in seq 1 to 12');

    const blind = await createChronicle({ db });
    try {
      expect(await verifyChain(tenant, blind)).toMatchObject({ ok: true });
    } finally {
      await blind.close();
    }
  });

  it('narrows a rewrite down to the span after the last checkpoint that still matches', async () => {
    const tenant = await chain(12, [5, 12]);
    await rewriteChain(db, tenant, 8);
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 6, reason: 'checkpoint_mismatch' });
  });

  it('catches a recomputed chain whose checkpoint lines were rewritten to match: the signature fails', async () => {
    const tenant = await chain(12, [12]);
    await rewriteChain(db, tenant, 1);
    const newHead = (await rows(db, tenant)).at(-1)?.hash as string;
    for (const file of logFiles(checkpointDir)) {
      const lines = fs.readFileSync(file, 'utf8').split('\n');
      const forged = lines.map((line) => {
        if (line === '') return line;
        const cp = JSON.parse(line) as { chain: string; hash: string };
        return cp.chain === tenant ? canonicalJson({ ...cp, hash: newHead }) : line;
      });
      fs.writeFileSync(file, forged.join('\n'));
    }
    const report = await verifyChain(tenant);
    expect(report).toMatchObject({ ok: false, firstBadSeq: 12, reason: 'bad_signature' });
    expect(report.detail).toMatch(/signature does not verify/);
  });

  it('does not trust checkpoints signed by another key', async () => {
    const tenant = await chain(6, [6]);
    const other = tempDir('other-key');
    try {
      // Someone else's chronicle (their own key) signs this chain's head into our directory.
      const theirs = await createChronicle({ db, signingKeyFile: path.join(other.dir, 'key.pem'), checkpointDir });
      await theirs.checkpoint();
      await theirs.close();
      const report = await verifyChain(tenant);
      expect(report).toMatchObject({ ok: false, firstBadSeq: 6, reason: 'bad_signature' });
      expect(report.detail).toMatch(/not by this deployment's key/);
    } finally {
      other.remove();
      // Leave the directory with checkpoints of our key only for the cases that follow.
      for (const file of logFiles(checkpointDir)) {
        const kept = fs
          .readFileSync(file, 'utf8')
          .split('\n')
          .filter((line) => line === '' || (JSON.parse(line) as { key_id: string }).key_id === chronicle.keyId);
        fs.writeFileSync(file, kept.join('\n'));
      }
    }
  });

  it('catches an indexed column that no longer matches the body', async () => {
    const tenant = await chain(8);
    await asSuperuserWithoutGuards(db, (tx) => tx.query("UPDATE chronicle_event SET decision = 'denied' WHERE tenant = $1 AND seq = 3", [tenant]));
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 3, reason: 'column_mismatch' });
  });

  it.each([
    ['time', "time = time + interval '1 millisecond'"],
    ['type', "type = 'DEVICE_COMPLIANCE_CHECKED'"],
    ['code', "code = '0x2801'"],
    ['actor_kind', "actor_kind = 'human'"],
    ['actor_id', "actor_id = upper(actor_id)"],
    ['request_id', 'request_id = NULL'],
    ['decision', 'decision = NULL'],
    ['device_ids (order)', 'device_ids = ARRAY[device_ids[2], device_ids[1]]'],
    ['device_ids (case)', 'device_ids = ARRAY[upper(device_ids[1]), device_ids[2]]'],
    ['device_ids (one more)', "device_ids = device_ids || 'x'::text"],
    ['device_ids (none)', "device_ids = '{}'"],
  ])('catches the indexed column %s changed on its own', async (_column, set) => {
    const tenant = await chain(6);
    await asSuperuserWithoutGuards(db, (tx) => tx.query(`UPDATE chronicle_event SET ${set} WHERE tenant = $1 AND seq = 3`, [tenant]));
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 3, reason: 'column_mismatch' });
  });

  it('catches a body whose code is not a string or null while its column is NULL, in a rewritten chain', async () => {
    const tenant = await chain(6);
    await asSuperuserWithoutGuards(db, async (tx) => {
      let prev = (await rows(tx, tenant)).find((r) => r.seq === 2)?.hash as string;
      for (const row of (await rows(tx, tenant)).filter((r) => r.seq >= 3)) {
        const envelope = JSON.parse(row.body) as { code: unknown };
        if (row.seq === 3) envelope.code = 5;
        const body = canonicalJson(envelope);
        const hash = chainHash(prev, body);
        await tx.query('UPDATE chronicle_event SET body = $3, prev_hash = $4, hash = $5 WHERE tenant = $1 AND seq = $2', [tenant, row.seq, body, prev, hash]);
        prev = hash;
      }
      await tx.query('UPDATE chronicle_chain SET head_hash = $2 WHERE tenant = $1', [tenant, prev]);
    });
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 3, reason: 'column_mismatch' });
  });

  it('names the exact reason even for values that confuse a fast read (odd lengths, separators)', async () => {
    const tenant = await chain(8);
    await asSuperuserWithoutGuards(db, async (tx) => {
      await tx.query("UPDATE chronicle_event SET actor_id = 'agent-1' || chr(29) || 'x' WHERE tenant = $1 AND seq = 5", [tenant]);
      await tx.query("UPDATE chronicle_event SET prev_hash = 'short' WHERE tenant = $1 AND seq = 7", [tenant]);
    });
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 5, reason: 'column_mismatch' });
  });

  it('catches a body that holds separators and a forged next row, at the end of a range and inside one', async () => {
    // Were rows read packed into one string joined by a control character, a last row whose body
    // holds "\x1d<its index key>\x1c<a forged row 9>" could read as intact seqs 8 and 9.
    const tenant = await chain(8);
    await asSuperuserWithoutGuards(db, async (tx) => {
      const { rows: [row] } = await tx.query<{ body: string; prev_hash: string; hash: string; idx: string }>(
        `SELECT body, prev_hash, hash, ${INDEX_KEY_SQL} AS idx FROM chronicle_event WHERE tenant = $1 AND seq = 8`,
        [tenant],
      );
      const eight = row as { body: string; prev_hash: string; hash: string; idx: string };
      const nine = eight.body.replace('"seq":8,', '"seq":9,');
      const forged = `${eight.body}\x1d${eight.idx}\x1c9:${eight.hash}${chainHash(eight.hash, nine)}${nine}`;
      await tx.query('UPDATE chronicle_event SET body = $2 WHERE tenant = $1 AND seq = 8', [tenant, forged]);
    });
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 8 });

    // In the middle of a range, with the row it stands in for deleted and the rest relinked.
    const middle = await chain(8);
    await asSuperuserWithoutGuards(db, async (tx) => {
      const all = await rows(tx, middle);
      const { rows: [row] } = await tx.query<{ idx: string }>(`SELECT ${INDEX_KEY_SQL} AS idx FROM chronicle_event WHERE tenant = $1 AND seq = 4`, [middle]);
      const four = all[3] as { body: string; hash: string };
      const five = all[4] as { body: string; prev_hash: string; hash: string };
      const idx = (row as { idx: string }).idx;
      await tx.query('UPDATE chronicle_event SET body = $2 WHERE tenant = $1 AND seq = 4', [middle, `${four.body}\x1d${idx}\x1c5:${five.prev_hash}${five.hash}${five.body}`]);
      await tx.query('DELETE FROM chronicle_event WHERE tenant = $1 AND seq = 5', [middle]);
    });
    expect(await verifyChain(middle)).toMatchObject({ ok: false, firstBadSeq: 4 });
  });

  it('catches a body that is not canonical JSON even when its hashes were recomputed', async () => {
    const tenant = await chain(8);
    await asSuperuserWithoutGuards(db, async (tx) => {
      const all = await rows(tx, tenant);
      let prev = (all[3] as { hash: string }).hash;
      for (const row of all.filter((r) => r.seq >= 5)) {
        const body = row.seq === 5 ? JSON.stringify(JSON.parse(row.body), null, 1) : row.body;
        const hash = chainHash(prev, body);
        await tx.query('UPDATE chronicle_event SET body = $3, prev_hash = $4, hash = $5 WHERE tenant = $1 AND seq = $2', [tenant, row.seq, body, prev, hash]);
        prev = hash;
      }
      await tx.query('UPDATE chronicle_chain SET head_hash = $2 WHERE tenant = $1', [tenant, prev]);
    });
    expect(await verifyChain(tenant)).toMatchObject({ ok: false, firstBadSeq: 5, reason: 'not_canonical' });
  });

  it('finds random edits at the exact seq (property)', async () => {
    const N = 10;
    type Edit =
      | { kind: 'byte'; seq: number; at: number }
      | { kind: 'rehash'; seq: number }
      | { kind: 'delete'; seq: number }
      | { kind: 'swap'; seq: number; other: number }
      | { kind: 'insert'; seq: number }
      | { kind: 'truncate'; seq: number }
      | { kind: 'rewrite'; seq: number };
    const seq = fc.integer({ min: 1, max: N });
    const edit: fc.Arbitrary<Edit> = fc.oneof(
      fc.record({ kind: fc.constant('byte' as const), seq, at: fc.nat({ max: 2_000 }) }),
      fc.record({ kind: fc.constant('rehash' as const), seq }),
      fc.record({ kind: fc.constant('delete' as const), seq }),
      fc.record({ kind: fc.constant('swap' as const), seq: fc.integer({ min: 1, max: N - 1 }), other: fc.integer({ min: 1, max: N - 1 }) }),
      fc.record({ kind: fc.constant('insert' as const), seq: fc.integer({ min: 1, max: N + 1 }) }),
      fc.record({ kind: fc.constant('truncate' as const), seq }),
      fc.record({ kind: fc.constant('rewrite' as const), seq }),
    );
    await fc.assert(
      fc.asyncProperty(edit, async (e) => {
        const tenant = await chain(N, [5, N]);
        let expected: { firstBadSeq: number; reason: string };
        switch (e.kind) {
          case 'byte':
            await changeBodyByte(db, tenant, e.seq, e.at);
            expected = { firstBadSeq: e.seq, reason: 'hash_mismatch' };
            break;
          case 'rehash':
            await editBodyRehashed(db, tenant, e.seq);
            expected = { firstBadSeq: e.seq, reason: 'hash_mismatch' };
            break;
          case 'delete':
            await deleteRow(db, tenant, e.seq);
            expected = { firstBadSeq: e.seq, reason: e.seq === N ? 'truncated' : 'gap' };
            break;
          case 'swap': {
            const other = e.other >= e.seq ? e.other + 1 : e.other;
            await swapRows(db, tenant, e.seq, other);
            expected = { firstBadSeq: Math.min(e.seq, other), reason: 'reordered' };
            break;
          }
          case 'insert':
            if (e.seq === N + 1) {
              await appendPastHead(db, tenant);
              expected = { firstBadSeq: N + 1, reason: 'beyond_head' };
            } else {
              await insertRow(db, tenant, e.seq);
              expected = { firstBadSeq: e.seq, reason: 'inserted' };
            }
            break;
          case 'truncate':
            await truncateTail(db, tenant, e.seq, { moveHead: true });
            expected = { firstBadSeq: e.seq, reason: 'truncated' };
            break;
          case 'rewrite':
            await rewriteChain(db, tenant, e.seq);
            expected = { firstBadSeq: e.seq <= 5 ? 1 : 6, reason: 'checkpoint_mismatch' };
            break;
        }
        expect(await verifyChain(tenant)).toMatchObject({ ok: false, ...expected });
      }),
      { numRuns: 30 },
    );
  });
});
