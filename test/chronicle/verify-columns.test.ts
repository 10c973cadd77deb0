/**
 * Verify copies the indexed columns as stored and, for the rows it judges the exact way, renders
 * their index key itself: that key must be the one the database renders with INDEX_KEY_SQL, or
 * none (the range is then read again with the database's key).
 */
import { expect, it } from 'vitest';
import type { Db } from '../../src/db/index.js';
import { INDEX_COLUMNS_SQL, INDEX_KEY_SQL } from '../../src/chronicle/envelope.js';
import { lastCopyRow, renderCopiedIndexKeys } from '../../src/chronicle/verify-copy.js';
import { COPIED_TYPES } from '../../src/chronicle/verify-read.js';
import { forEachDatabase, suiteDatabase } from '../helpers/db.js';

// time, type, code, actor_kind, actor_id, request_id, decision, device_ids
const ROWS = [
  `'2025-01-02T03:04:05.678Z', 'CONNECTOR_INVOKED', NULL, 'agent', 'key:1', 'req-1', 'allowed', '{0f8fad5b-d9cb-469f-a165-70867728950e,7c9e6679-7425-40de-944b-e07fc1f90ae7}'`,
  `'2025-01-02T03:04:05.678999Z', 'DEVICE_COMPLIANCE_CHECKED', '0x2801', 'human', 'Zoë', NULL, NULL, '{}'`,
  `'1999-12-31T23:59:59.999999Z', 'x', E'\\x1e', '', '', '', '', '{NULL,ABC-é}'`,
  `'1970-01-01T00:00:00Z', NULL, 'c', NULL, 'i', 'r,s', 'd', '{{a,b},{c,d}}'`,
  `'0001-01-01T00:00:00Z', 't', NULL, 'k', 'i', NULL, NULL, '[0:1]={a,b}'`,
  `'9999-12-31T23:59:59.999999Z', 't', NULL, 'k', 'i', NULL, NULL, NULL`,
  `'2024-02-29T12:00:00.5Z', 't', NULL, 'k', 'i', NULL, NULL, '{""}'`,
  `'1900-03-01T00:00:00.001Z', 't', NULL, 'k', 'i', NULL, NULL, '{","}'`,
  // Times to_char writes otherwise than as four-digit years: left to the database.
  `'infinity', 't', NULL, 'k', 'i', NULL, NULL, '{}'`,
  `'-infinity', 't', NULL, 'k', 'i', NULL, NULL, '{}'`,
  `'10000-01-01T00:00:00Z', 't', NULL, 'k', 'i', NULL, NULL, '{}'`,
  `'0001-12-31T23:59:59Z BC', 't', NULL, 'k', 'i', NULL, NULL, '{}'`,
];

const VALUES = `(VALUES ${ROWS.map((r, i) => `(${i}, ${r})`).join(', ')})
  AS v(n, time, type, code, actor_kind, actor_id, request_id, decision, device_ids)`;
const typed = `SELECT n, time::timestamptz AS time, type::text, code::text, actor_kind::text, actor_id::text, request_id::text, decision::text, device_ids::text[] FROM ${VALUES}`;

forEachDatabase('the index key verify renders from copied columns', (create) => {
  const suite = suiteDatabase(create);

  it('is read from the columns verify copies, in the order the copy reader expects them', () => {
    expect(Object.keys(COPIED_TYPES).join(', ')).toBe(`seq, prev_hash, hash, body, ${INDEX_COLUMNS_SQL}`);
  });

  it('is the key the database renders, or none where it would write the time otherwise', async () => {
    const copy = await (suite.db.copyBinary as NonNullable<Db['copyBinary']>)(
      `SELECT n::bigint AS seq, 'p'::text, 'h'::text, '{}'::text, ${INDEX_COLUMNS_SQL} FROM (${typed}) AS t ORDER BY n`,
    );
    const { rows } = await suite.db.query<{ idx: string }>(`SELECT ${INDEX_KEY_SQL} AS idx FROM (${typed}) AS t ORDER BY n`);
    const rendered = renderCopiedIndexKeys(copy);
    expect(rendered).toHaveLength(ROWS.length);
    const unrenderable = ROWS.length - 4;
    rendered.forEach((key, i) => {
      if (i >= unrenderable) expect(key, ROWS[i]).toBeNull();
      else expect(key, ROWS[i]).toBe(rows[i]?.idx);
    });
  });

  it('hands the next range the last copied row, whether the driver says where it starts or not', async () => {
    const framing = { lastRowAt: -1 };
    const copy = await (suite.db.copyBinary as NonNullable<Db['copyBinary']>)(
      `SELECT n::bigint AS seq, 'p'::text, repeat(n::text, 64)::text, '{"n":' || n || '}', ${INDEX_COLUMNS_SQL} FROM (${typed}) AS t ORDER BY n`,
      undefined,
      framing,
    );
    const last = ROWS.length - 1;
    const expected = { seq: last, hash: String(last).repeat(64), body: `{"n":${last}}` };
    if (suite.db.kind === 'postgres') expect(framing.lastRowAt).toBeGreaterThan(19);
    expect(lastCopyRow(copy, framing.lastRowAt)).toEqual(expected);
    // A position that is not the last row's (the header, another row, past the end) is not believed.
    for (const wrong of [-1, 0, 19, framing.lastRowAt - 1, Math.floor(copy.length / 2), copy.length - 2, copy.length + 5]) {
      expect(lastCopyRow(copy, wrong), `lastRowAt ${wrong}`).toEqual(expected);
    }
    const empty = await (suite.db.copyBinary as NonNullable<Db['copyBinary']>)(`SELECT 1::bigint WHERE false`, undefined, { lastRowAt: -1 });
    expect(lastCopyRow(empty, 19)).toBeNull();
  });
});
