/**
 * The pipelined writer on a real PostgreSQL: the next batch is hashed and sent while the one
 * before it is still committing, and whatever happens to the first (it commits, it fails, another
 * writer slips in between), seqs follow call order, nothing forks, and no append resolves without
 * its row. A trigger installed for these tests makes chosen inserts slow (or fail after a pause),
 * so the second batch is provably in the database, waiting on the head lock, while the first is
 * still in its transaction.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/index.js';
import { ChronicleError, GENESIS_HASH, chainHash, createChronicle, type AppendInput, type Chronicle } from '../../src/chronicle/index.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { invoked, rows, uniqueTenant } from './helpers.js';
import { APPEND_EXPECTING_SQL } from '../../src/chronicle/writer.js';

const SLOW_ACTOR = 'slow-insert';
const REFUSED_ACTOR = 'refused-insert';

function by(actor: string, tenant: string, i: number): AppendInput {
  return { ...invoked(tenant, i), actor: { kind: 'agent', id: actor } };
}

describe.skipIf(!pgAvailable())('chronicle pipelined group commit [postgres]', () => {
  let tdb: TestDatabase;
  let db: Db;
  const open: Chronicle[] = [];
  beforeAll(async () => {
    tdb = await createPostgresDatabase();
    db = await tdb.open();
    await db.query(`CREATE FUNCTION test_slow_or_refused() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.actor_id IN ('${SLOW_ACTOR}', '${REFUSED_ACTOR}') THEN PERFORM pg_sleep(0.4); END IF;
        IF NEW.actor_id = '${REFUSED_ACTOR}' THEN RAISE EXCEPTION 'refused by the test trigger'; END IF;
        RETURN NEW;
      END $$`);
    await db.query('CREATE TRIGGER test_slow_or_refused BEFORE INSERT ON chronicle_event FOR EACH ROW EXECUTE FUNCTION test_slow_or_refused()');
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(async () => tdb?.drop());

  async function chronicleOn(handle: Db): Promise<Chronicle> {
    const chronicle = await createChronicle({ db: handle, appendTimeoutMs: 20_000 });
    open.push(chronicle);
    return chronicle;
  }

  /** Waits until `count` backends of this database wait as described (PgSleep: a slow insert; Lock: a batch queued on a head row). */
  async function backendsWaiting(wait: 'PgSleep' | 'Lock', count: number): Promise<void> {
    const column = wait === 'PgSleep' ? 'wait_event' : 'wait_event_type';
    const deadline = Date.now() + 20_000;
    for (;;) {
      const { rows: found } = await db.query<{ n: number }>(
        `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND ${column} = $1 AND query LIKE '%chronicle\_%' AND query NOT LIKE '%pg_stat_activity%'`,
        [wait],
      );
      if (Number(found[0]?.n) >= count) return;
      if (Date.now() > deadline) throw new Error(`no ${count} backend(s) waiting on ${wait} within 20 s`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  it('sends the next batch while the one before commits; it waits on the head lock and chains after it, in call order', async () => {
    const t = uniqueTenant();
    const chronicle = await chronicleOn(db);
    const first = await chronicle.append(invoked(t, 0)); // the writer learns the chain's head
    const slow = chronicle.append(by(SLOW_ACTOR, t, 1));
    await backendsWaiting('PgSleep', 1);
    const behind = Array.from({ length: 10 }, (_, i) => chronicle.append(invoked(t, 2 + i)));
    await backendsWaiting('Lock', 1); // the second batch is in the database while the first has not committed
    const receipts = [first, await slow, ...(await Promise.all(behind))];

    expect(receipts.map((r) => r.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const stored = await rows(db, t);
    expect(stored.map((r) => r.seq)).toEqual(receipts.map((r) => r.seq));
    expect(stored.map((r) => r.hash)).toEqual(receipts.map((r) => r.hash));
    expect(stored.map((r) => JSON.parse(r.body).request_id)).toEqual(Array.from({ length: 12 }, (_, i) => `req-${i}`));
    stored.forEach((row, i) => {
      expect(row.prev_hash).toBe(i === 0 ? GENESIS_HASH : stored[i - 1]?.hash);
      expect(row.hash).toBe(chainHash(row.prev_hash, row.body));
    });
    expect(chronicle.stats()).toMatchObject({ appended: 12, failed: 0, batches: 3, pipelined: 1, resent: 0 });
    expect(await chronicle.verify({ tenant: t })).toMatchObject({ ok: true, eventsChecked: 12 });
  });

  it('a batch chained behind one that fails fails too; nothing of either is recorded, and the chain carries on', async () => {
    const t = uniqueTenant();
    const chronicle = await chronicleOn(db);
    await chronicle.append(invoked(t, 0));
    const refused = chronicle.append(by(REFUSED_ACTOR, t, 1)).catch((err: unknown) => err);
    await backendsWaiting('PgSleep', 1);
    const behind = Array.from({ length: 5 }, (_, i) => chronicle.append(invoked(t, 2 + i)).catch((err: unknown) => err));
    await backendsWaiting('Lock', 1);

    const first = await refused;
    expect(first).toBeInstanceOf(ChronicleError);
    expect(first).toMatchObject({ code: 'unavailable' });
    for (const outcome of await Promise.all(behind)) {
      expect(outcome).toBeInstanceOf(ChronicleError);
      expect(outcome).toMatchObject({ code: 'unavailable' });
      expect((outcome as Error).message).toMatch(/the batch before it failed.*nothing was recorded/);
    }
    expect(chronicle.stats()).toMatchObject({ failed: 6, pipelined: 1 });
    expect((await rows(db, t)).map((r) => r.seq)).toEqual([1]);

    // The writer relearns the head and goes on from seq 2.
    const next = await Promise.all([chronicle.append(invoked(t, 7)), chronicle.append(invoked(t, 8))]);
    expect(next.map((r) => r.seq)).toEqual([2, 3]);
    const later = await chronicle.append(invoked(t, 9));
    expect(later.seq).toBe(4);
    expect((await rows(db, t)).map((r) => JSON.parse(r.body).request_id)).toEqual(['req-0', 'req-7', 'req-8', 'req-9']);
    expect(await chronicle.verify({ tenant: t })).toMatchObject({ ok: true, eventsChecked: 4 });
  });

  it('another writer slipping in between two pipelined batches: the second is refused unwritten and sent again, still in call order', async () => {
    // PostgreSQL does not queue row-lock waiters strictly first come, first served: when the slow
    // batch commits, the other writer and the pipelined batch both follow the head row to its new
    // version and either may lock it first. Both orders must keep call order and the chain intact;
    // the scenario is run until the other writer has slipped in between at least once.
    let slippedIn = 0;
    const otherDb = await tdb.open();
    for (let attempt = 0; attempt < 8 && slippedIn === 0; attempt++) {
      const t = uniqueTenant();
      const mine = await chronicleOn(db);
      const other = await chronicleOn(otherDb);
      await mine.append(invoked(t, 0));
      const slow = mine.append(by(SLOW_ACTOR, t, 1));
      await backendsWaiting('PgSleep', 1);
      const theirs = other.append(invoked(t, 100));
      await backendsWaiting('Lock', 1); // the other writer queues on the head row first
      const behind = Array.from({ length: 3 }, (_, i) => mine.append(invoked(t, 2 + i)));
      await backendsWaiting('Lock', 2);

      const own = [await slow, ...(await Promise.all(behind))];
      const their = await theirs;
      const between = their.seq === 3;
      expect(own.map((r) => r.seq)).toEqual(between ? [2, 4, 5, 6] : [2, 3, 4, 5]);
      expect(their.seq).toBe(between ? 3 : 6);
      expect(mine.stats()).toMatchObject({ appended: 5, failed: 0, pipelined: 1, resent: between ? 1 : 0 });
      const stored = await rows(db, t);
      const order = between ? ['req-0', 'req-1', 'req-100', 'req-2', 'req-3', 'req-4'] : ['req-0', 'req-1', 'req-2', 'req-3', 'req-4', 'req-100'];
      expect(stored.map((r) => JSON.parse(r.body).request_id)).toEqual(order);
      const receipts = [...own, their].sort((a, b) => a.seq - b.seq);
      expect(stored.slice(1).map((r) => r.hash)).toEqual(receipts.map((r) => r.hash));
      expect(await mine.verify({ tenant: t })).toMatchObject({ ok: true, eventsChecked: 6 });
      if (between) slippedIn++;
      await Promise.all(open.splice(0).map((c) => c.close()));
    }
    expect(slippedIn).toBe(1);
  });

  it('the database writes nothing of a batch whose expected head is not the head', async () => {
    const t = uniqueTenant();
    const chronicle = await chronicleOn(db);
    const first = await chronicle.append(invoked(t, 0));
    const head = '{"actor":{"id":"x","kind":"agent"},"chain":"t","code":null,"data":{},"request_id":null,"seq":';
    const call = (expectSeq: number, expectHash: string) =>
      db.query(APPEND_EXPECTING_SQL, [
        [t], [expectSeq], [expectHash],
        [t], [head], [',"type":"CONNECTOR_INVOKED","v":1}'], ['CONNECTOR_INVOKED'], [null], ['agent'], ['x'], [null], [null], [''],
        new Date().toISOString(), GENESIS_HASH,
      ]);
    expect((await call(0, GENESIS_HASH)).rows).toEqual([]); // a head that moved on
    expect((await call(1, GENESIS_HASH)).rows).toEqual([]); // the right seq on another chain's hash
    expect((await rows(db, t)).map((r) => r.seq)).toEqual([1]);
    const written = await call(1, first.hash); // the head it is
    expect(written.rows).toMatchObject([{ out_seq: 2, out_prev_hash: first.hash }]);
    expect((await rows(db, t)).map((r) => [r.seq, r.prev_hash])).toEqual([
      [1, GENESIS_HASH],
      [2, first.hash],
    ]);
  });

});
