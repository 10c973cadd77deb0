/**
 * The array literals the asset store sends whole columns as: every value comes back from a real
 * PostgreSQL and PGlite exactly as sent, bare ids and quoted oddities alike, NULL as NULL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPGlite, openPostgres, type Db } from '../../src/db/index.js';
import { arrayLiteral } from '../../src/assets/store.js';
import { pgAvailable, serverUrl } from '../helpers/db.js';

const ODD = [
  'b2c1e0d4-6f3a-4c7e-9d21-0a1b2c3d4e5f',
  'hmac-sha256:00ff',
  'serial:hmac-sha256:ab|hardware:hmac-sha256:cd',
  'NULL',
  'null',
  '',
  ' leading and trailing ',
  'comma,inside',
  '{braces}',
  'quote " and backslash \\ and \\"',
  'newline\nand tab\t',
  'ünïcödé ✓',
  null,
];

function suite(kind: 'postgres' | 'pglite') {
  let db: Db;
  beforeAll(async () => {
    db = kind === 'postgres' ? openPostgres({ url: serverUrl() }) : await openPGlite({ dataDir: 'memory://' });
  }, 60_000);
  afterAll(async () => {
    await db?.close();
  });

  it('round-trips text, uuid and boolean columns exactly', async () => {
    const text = await db.query<{ v: string | null; n: number }>('SELECT v, n::int AS n FROM unnest($1::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n', [arrayLiteral(ODD)]);
    expect(text.rows.map((r) => r.v)).toEqual(ODD);
    const ids = ['00000000-0000-4000-8000-000000000001', 'ffffffff-ffff-4fff-bfff-ffffffffffff'];
    const uuids = await db.query<{ v: string }>('SELECT v::text AS v FROM unnest($1::uuid[]) AS t(v)', [arrayLiteral(ids)]);
    expect(uuids.rows.map((r) => r.v)).toEqual(ids);
    const flags = await db.query<{ v: boolean | null }>('SELECT v FROM unnest($1::boolean[]) AS t(v)', [arrayLiteral([true, false, null])]);
    expect(flags.rows.map((r) => r.v)).toEqual([true, false, null]);
    expect(arrayLiteral([])).toBe('{}');
  });
}

describe.skipIf(!pgAvailable())('asset store array literals [postgres]', () => suite('postgres'));
describe('asset store array literals [pglite]', () => suite('pglite'));
