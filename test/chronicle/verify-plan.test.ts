/**
 * Verify and export read a chain's ranges in key order through the primary key, never gathered and sorted,
 * even where the chain's rows lie among other tenants' rows (the planner then judges an index
 * scan to be random reads and, left alone, sorts each range, past work_mem on disk).
 */
import { expect, it } from 'vitest';
import { queryInKeyOrder, type Db } from '../../src/db/index.js';
import { KEY_ORDER } from '../../src/db/copy.js';
import { createChronicle } from '../../src/chronicle/index.js';
import { copyRangeSql } from '../../src/chronicle/verify-read.js';
import { forEachDatabase, suiteDatabase } from '../helpers/db.js';
import { invoked } from './helpers.js';

forEachDatabase('the statements verify and export read a chain\'s ranges with', (create) => {
  const suite = suiteDatabase(create);

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
    const chronicle = await createChronicle({ db: suite.db, maxBatch: 500 });
    try {
      for (const tenant of ['x-1', 'x-2', 'x-3']) await Promise.all(Array.from({ length: 1_500 }, (_, i) => chronicle.append(invoked(tenant, i))));
      await Promise.all(Array.from({ length: 3_000 }, (_, i) => chronicle.append(invoked('a-chain', i))));
    } finally {
      await chronicle.close();
    }
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
  });
});
