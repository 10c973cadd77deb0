/**
 * Verify and export read a chain's ranges in key order through the primary key, never gathered and sorted,
 * even where the chain's rows lie among other tenants' rows (the planner then judges an index
 * scan to be random reads and, left alone, sorts each range, past work_mem on disk).
 */
import { expect, it } from 'vitest';
import { queryInKeyOrder, type Db, type Queryable } from '../../src/db/index.js';
import { KEY_ORDER } from '../../src/db/copy.js';
import { createChronicle } from '../../src/chronicle/index.js';
import { copyRangeSql } from '../../src/chronicle/verify-read.js';
import { PACKED_RANGE_SQL, RECHECK_RANGE_SQL } from '../../src/chronicle/verify.js';
import { forEachDatabase, suiteDatabase } from '../helpers/db.js';
import { changeBodyByte, invoked, suiteWriter } from './helpers.js';

/** A range read: a statement bounded by seq on both sides (verify's ranges, export's pages). */
const RANGE = /seq > \$2 AND seq <= \$3/;

/**
 * The database without COPY or readers (verify then reads its ranges as packed rows), counting the
 * range reads made in a transaction after KEY_ORDER and those made any other way.
 */
function withoutCopy(db: Db): { db: Db; reads: { inKeyOrder: number; otherwise: number } } {
  const reads = { inKeyOrder: 0, otherwise: 0 };
  const counted = (sql: string, keyOrder: boolean): void => {
    if (RANGE.test(sql)) reads[keyOrder ? 'inKeyOrder' : 'otherwise']++;
  };
  return {
    reads,
    db: {
      kind: db.kind,
      close: () => db.close(),
      query: (sql, params) => {
        counted(sql, false);
        return db.query(sql, params);
      },
      transaction: (fn) =>
        db.transaction((tx) => {
          let keyOrder = false;
          const recorded: Queryable = {
            query: (sql, params) => {
              if (sql === KEY_ORDER) keyOrder = true;
              else counted(sql, keyOrder);
              return tx.query(sql, params);
            },
          };
          return fn(recorded);
        }),
    },
  };
}

forEachDatabase('the statements verify and export read a chain\'s ranges with', (create) => {
  const suite = suiteDatabase(create);
  const writer = suiteWriter(suite);

  it('run with sorting off for that statement alone, and leave the connection as it was', async () => {
    const copy = await (suite.db.copyBinary as NonNullable<Db['copyBinary']>)(`SELECT current_setting('enable_sort')`);
    // One row, one field: the setting's text right after its length.
    expect(copy.subarray(19 + 2 + 4, 19 + 2 + 4 + 3).toString()).toBe('off');
    const after = await suite.db.query<{ enable_sort: string }>('SHOW enable_sort');
    expect(after.rows[0]?.enable_sort).toBe('on');
  });

  it('read a range of a chain scattered among other chains through the primary key, without a sort', async () => {
    // Other tenants' events first, then the chain verify reads: its rows lie after theirs, so the
    // planner's correlation for the key's first column (tenant) says "random".
    for (const tenant of ['x-1', 'x-2', 'x-3']) await Promise.all(Array.from({ length: 1_500 }, (_, i) => writer.append(invoked(tenant, i))));
    await Promise.all(Array.from({ length: 3_000 }, (_, i) => writer.append(invoked('a-chain', i))));
    await suite.db.query('ANALYZE chronicle_event');
    const plan = async (settings: string | null) =>
      suite.db.transaction(async (tx) => {
        if (settings !== null) await tx.query(settings);
        const { rows } = await tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${copyRangeSql('a-chain', 0, 3_000)}`);
        return rows.map((r) => r['QUERY PLAN']).join('\n');
      });
    const read = await plan(KEY_ORDER);
    expect(read).toMatch(/Index Scan using chronicle_event_pkey/);
    expect(read).not.toMatch(/Sort/);
    // What the setting prevents, on this data: the planner's own choice sorts the range.
    expect(await plan(null)).toMatch(/Sort/);

    // Export's ranges (2,000 rows, with parameters) are read the same way.
    const exportRange = 'SELECT seq, body, prev_hash, hash FROM chronicle_event WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq';
    const explained = (await queryInKeyOrder<{ 'QUERY PLAN': string }>(suite.db, `EXPLAIN ${exportRange}`, ['a-chain', 0, 2_000])).rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(explained).toMatch(/Index Scan using chronicle_event_pkey/);
    expect(explained).not.toMatch(/Sort/);

    // So are verify's reads besides COPY: a failing range read again, and packed rows.
    for (const sql of [RECHECK_RANGE_SQL, PACKED_RANGE_SQL]) {
      const range = (await queryInKeyOrder<{ 'QUERY PLAN': string }>(suite.db, `EXPLAIN ${sql}`, ['a-chain', 0, 3_000])).rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(range).toMatch(/Index Scan using chronicle_event_pkey/);
      expect(range).not.toMatch(/Sort/);
    }
  });

  it('verify reads every range in key order where it cannot copy, and when it reads a failing range again', async () => {
    const tenant = 'packed-chain';
    await Promise.all(Array.from({ length: 40 }, (_, i) => writer.append(invoked(tenant, i))));
    const packed = withoutCopy(suite.db);
    const verifier = await createChronicle({ db: packed.db, verify: { workers: 0, chunkSize: 10 } });
    try {
      const intact = await verifier.verify({ tenant });
      expect(intact.chains[0]).toMatchObject({ tenant, ok: true, eventsChecked: 40 });
      expect(packed.reads).toEqual({ inKeyOrder: 4, otherwise: 0 });

      // A changed byte in seq 25: its range (21–30) fails as packed and is read again column by column.
      await changeBodyByte(suite.db, tenant, 25, 40);
      packed.reads.inKeyOrder = 0;
      const tampered = await verifier.verify({ tenant });
      expect(tampered.chains[0]).toMatchObject({ tenant, ok: false, firstBadSeq: 25, eventsChecked: 24 });
      expect(packed.reads.otherwise).toBe(0);
      expect(packed.reads.inKeyOrder).toBeGreaterThanOrEqual(4);
    } finally {
      await verifier.close();
    }
  });
});
