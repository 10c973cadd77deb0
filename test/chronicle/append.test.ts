import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import type { Db } from '../../src/db/index.js';
import { ChronicleError, GENESIS_HASH, chainHash, createChronicle, type AppendReceipt, type Chronicle } from '../../src/chronicle/index.js';
import { forEachDatabase, type TestDatabase } from '../helpers/db.js';
import { SAMPLE_DATA, invoked, rows, uniqueTenant } from './helpers.js';

forEachDatabase('chronicle append', (create) => {
  // One database for the file (each case writes its own chains); the race from an empty table gets its own.
  let tdb: TestDatabase;
  let db: Db;
  const open: Chronicle[] = [];
  beforeAll(async () => {
    tdb = await create();
    db = await tdb.open();
  });
  afterEach(async () => {
    vi.useRealTimers();
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(async () => tdb?.drop());

  async function chronicleOn(db: Db, options: { maxBatch?: number } = {}): Promise<Chronicle> {
    const chronicle = await createChronicle({ db, ...options });
    open.push(chronicle);
    return chronicle;
  }

  it('resolves with the committed seq and hash, and reads back exactly what was appended', async () => {
    const t = uniqueTenant();
    const chronicle = await chronicleOn(db);
    const first = await chronicle.append(invoked(t, 1));
    const second = await chronicle.append({ tenant: t, type: 'DEVICE_COMPLIANCE_CHECKED', actor: { kind: 'service', id: 'gate' }, data: SAMPLE_DATA.DEVICE_COMPLIANCE_CHECKED });
    expect(first).toMatchObject({ tenant: t, seq: 1 });
    expect(second).toMatchObject({ tenant: t, seq: 2 });

    const stored = await rows(db, t);
    expect(stored.map((r) => r.seq)).toEqual([1, 2]);
    expect(stored[0]?.prev_hash).toBe(GENESIS_HASH);
    expect(stored[0]?.hash).toBe(first.hash);
    expect(first.hash).toBe(chainHash(GENESIS_HASH, stored[0]?.body as string));
    expect(stored[1]?.prev_hash).toBe(first.hash);
    expect(second.hash).toBe(chainHash(first.hash, stored[1]?.body as string));

    const { events } = await chronicle.query({ tenant: t });
    expect(events).toHaveLength(2);
    expect(events[1]).toEqual({
      seq: 2,
      tenant: t,
      time: second.time,
      type: 'DEVICE_COMPLIANCE_CHECKED',
      code: '0x2801',
      actor: { kind: 'service', id: 'gate' },
      requestId: null,
      data: SAMPLE_DATA.DEVICE_COMPLIANCE_CHECKED,
      prevHash: first.hash,
      hash: second.hash,
    });
  });

  it('refuses an event that does not validate, naming the field, and records nothing', async () => {
    const t = uniqueTenant();
    const chronicle = await chronicleOn(db);
    const err = await chronicle.append(invoked(t, 1, { reason: 'Denied Because Alice Asked' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChronicleError);
    expect(err).toMatchObject({ code: 'invalid_event', field: 'data.reason' });
    expect((err as Error).message).toMatch(/^data\.reason: must match pattern/);
    expect((err as Error).message).not.toContain('Alice');

    const pii = await chronicle.append(invoked(t, 2, { deviceName: "Alice's MacBook" })).catch((e: unknown) => e);
    expect(pii).toMatchObject({ code: 'invalid_event', field: 'data.deviceName' });
    const nan = await chronicle.append(invoked(t, 3, { duration_ms: Number.NaN })).catch((e: unknown) => e);
    expect(nan).toMatchObject({ code: 'invalid_event', field: 'data.duration_ms' });
    const badTenant = await chronicle.append({ ...invoked(t, 4), tenant: 'two words' }).catch((e: unknown) => e);
    expect(badTenant).toMatchObject({ code: 'invalid_event', field: 'tenant' });

    expect(await rows(db, t)).toEqual([]);
    expect((await db.query<{ n: number }>("SELECT count(*) AS n FROM chronicle_event WHERE tenant = 'two words'")).rows[0]?.n).toBe(0);
    // A refused event does not take a seq: the next good one is seq 1.
    expect((await chronicle.append(invoked(t, 5))).seq).toBe(1);
  });

  it('refuses UPDATE, DELETE and TRUNCATE of events, also under session_replication_role = replica', async () => {
    const t = uniqueTenant();
    const chronicle = await chronicleOn(db);
    await chronicle.append(invoked(t, 1));
    await chronicle.append(invoked(t, 2));
    const attempts = [
      `UPDATE chronicle_event SET body = '{}' WHERE tenant = '${t}' AND seq = 1`,
      `DELETE FROM chronicle_event WHERE tenant = '${t}' AND seq = 2`,
      'TRUNCATE chronicle_event',
      'UPDATE chronicle_chain SET head_seq = 1',
      'DELETE FROM chronicle_chain',
      'TRUNCATE chronicle_chain CASCADE',
    ];
    for (const sql of attempts) {
      await expect(db.query(sql), sql).rejects.toThrow(/Chronicle is append-only/);
      await expect(
        db.transaction(async (tx) => {
          await tx.query('SET LOCAL session_replication_role = replica');
          await tx.query(sql);
        }),
        `${sql} as replica`,
      ).rejects.toThrow(/Chronicle is append-only/);
    }
    expect((await rows(db, t)).map((r) => r.seq)).toEqual([1, 2]);
    expect((await chronicle.verify({ tenant: t })).ok).toBe(true);
  });

  it('keeps seq gapless and the chain unforked with several writers racing from an empty table', async () => {
    const fresh = await create();
    // Four writers with their own connections (PostgreSQL) or sharing the one embedded database
    // (PGlite), each with 50 appends in flight, all started before any has committed.
    const writers: Chronicle[] = [];
    for (let i = 0; i < 4; i++) writers.push(await chronicleOn(await fresh.open()));
    const receipts = (
      await Promise.all(writers.flatMap((w, wi) => Array.from({ length: 50 }, (_, i) => w.append(invoked('race', wi * 1000 + i)))))
    ).sort((a, b) => a.seq - b.seq);
    expect(receipts.map((r) => r.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));

    const db = await fresh.open();
    const stored = await rows(db, 'race');
    expect(stored.map((r) => r.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(new Set(stored.map((r) => r.prev_hash)).size).toBe(200);
    stored.forEach((row, i) => expect(row.prev_hash).toBe(i === 0 ? GENESIS_HASH : stored[i - 1]?.hash));
    expect(stored.map((r) => r.hash)).toEqual(receipts.map((r) => r.hash));
    const head = (await db.query<{ head_seq: number; head_hash: string }>("SELECT head_seq, head_hash FROM chronicle_chain WHERE tenant = 'race'")).rows[0];
    expect(head).toEqual({ head_seq: 200, head_hash: stored[199]?.hash });
    expect(await (writers[0] as Chronicle).verify()).toMatchObject({ ok: true, eventsChecked: 200 });
    await Promise.all(open.splice(0).map((c) => c.close()));
    await fresh.drop();
  });

  it('groups concurrent appends, across chains, into few transactions', async () => {
    const chronicle = await chronicleOn(db, { maxBatch: 25 });
    const tenants = [uniqueTenant('a'), uniqueTenant('b'), uniqueTenant('c')].sort();
    const receipts = await Promise.all(Array.from({ length: 150 }, (_, i) => chronicle.append(invoked(tenants[i % 3] as string, i))));
    for (const tenant of tenants) {
      expect(receipts.filter((r) => r.tenant === tenant).map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    }
    const stats = chronicle.stats();
    expect(stats.appended).toBe(150);
    // The first append goes alone; everything queued behind it shares batches of at most 25.
    expect(stats.batches).toBeGreaterThanOrEqual(6);
    expect(stats.batches).toBeLessThanOrEqual(10);
    for (const tenant of tenants) expect(await chronicle.verify({ tenant })).toMatchObject({ ok: true, eventsChecked: 50 });
  });

  it('one batch that extends a chain and starts another chains each from its own head', async () => {
    const [known, fresh] = [uniqueTenant('known'), uniqueTenant('fresh')];
    const chronicle = await chronicleOn(db);
    await chronicle.append(invoked(known, 0));
    await chronicle.append(invoked(known, 1));
    const receipts = await Promise.all([0, 1, 2, 3].map((i) => chronicle.append(invoked(i % 2 === 0 ? known : fresh, 10 + i))));
    expect(receipts.map((r) => [r.tenant, r.seq])).toEqual([
      [known, 3],
      [fresh, 1],
      [known, 4],
      [fresh, 2],
    ]);
    const stored = await rows(db, fresh);
    expect(stored.map((r) => r.prev_hash)).toEqual([GENESIS_HASH, stored[0]?.hash]);
    for (const tenant of [known, fresh]) expect(await chronicle.verify({ tenant })).toMatchObject({ ok: true });
  });

  it('never stamps an event earlier than the one before it, even when the clock steps back', async () => {
    const t = uniqueTenant();
    const chronicle = await chronicleOn(db);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2030-06-01T12:00:00.000Z'));
    const first = await chronicle.append(invoked(t, 1));
    vi.setSystemTime(new Date('2030-06-01T11:00:00.000Z')); // an NTP step back by an hour
    const second = await chronicle.append(invoked(t, 2));
    vi.setSystemTime(new Date('2030-06-01T12:00:05.000Z'));
    const third = await chronicle.append(invoked(t, 3));
    expect([first.time, second.time, third.time]).toEqual(['2030-06-01T12:00:00.000Z', '2030-06-01T12:00:00.000Z', '2030-06-01T12:00:05.000Z']);
    vi.useRealTimers();
    expect((await chronicle.verify({ tenant: t })).ok).toBe(true);
  });

  it('close() waits for pending appends; later appends are refused as closed', async () => {
    const t = uniqueTenant();
    const chronicle = await createChronicle({ db });
    const pending = Array.from({ length: 30 }, (_, i) => chronicle.append(invoked(t, i)));
    await chronicle.close();
    const receipts: AppendReceipt[] = await Promise.all(pending);
    expect(receipts.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await expect(chronicle.append(invoked(t, 99))).rejects.toMatchObject({ code: 'closed' });
    expect((await rows(db, t)).length).toBe(30);
  });
});
