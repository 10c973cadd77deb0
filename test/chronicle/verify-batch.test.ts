/**
 * Verify takes a range's outer hashes in one native call (pair-hash.ts) and keeps that answer only
 * when every row passed; anything else is checked again row by row with node:crypto. Both must give
 * the same answer for every range, intact or not.
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { beforeAll, expect, it } from 'vitest';
import type { Db } from '../../src/db/index.js';
import { EVENT_TYPES } from '../../src/chronicle/types.js';
import { pairHasher, type PairHasher } from '../../src/chronicle/pair-hash.js';
import { BEFORE_CHAIN, type CheckpointRef } from '../../src/chronicle/verify-core.js';
import { checkCopyChunk, type CopyChunkTask } from '../../src/chronicle/verify-copy.js';
import { copyRangeSql } from '../../src/chronicle/verify-read.js';
import { forEachDatabase, suiteDatabase } from '../helpers/db.js';
import { SAMPLE_DATA, invoked, suiteWriter } from './helpers.js';

/** The same digests from node:crypto, one call per input. */
const cryptoHasher: PairHasher = (input, output) => {
  for (let k = 0; 64 * k < input.length; k++) output.set(crypto.hash('sha256', input.subarray(64 * k, 64 * k + 64), 'buffer') as unknown as Buffer, 32 * k);
};

/** The binding packages npm installed (it installs only the one for this platform, and none with --omit=optional). */
function installedBindings(): string[] {
  const require = createRequire(import.meta.url);
  const { optionalDependencies } = require('@chainsafe/hashtree/package.json') as { optionalDependencies: Record<string, string> };
  return Object.keys(optionalDependencies).filter((name) => {
    try {
      require.resolve(`${name}/package.json`);
      return true;
    } catch {
      return false;
    }
  });
}

it('has the native hasher wherever npm installed its binding', () => {
  // Linux x64 (CI) always has one from the lockfile.
  if (process.env['CI'] === 'true' && process.platform === 'linux' && process.arch === 'x64') expect(installedBindings()).toHaveLength(1);
  if (installedBindings().length > 0) expect(pairHasher).not.toBeNull();
});

// Where the platform has no binding there is nothing native to compare (verify hashes row by row there).
it.skipIf(pairHasher === null)('hashes as node:crypto does', () => {
  const hasher = pairHasher as PairHasher;
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.integer(), (count, seed) => {
      const input = new Uint8Array(64 * count).map((_, i) => (i * 167 + seed) & 0xff);
      const output = new Uint8Array(32 * count);
      const expected = new Uint8Array(32 * count);
      hasher(input, output);
      cryptoHasher(input, expected);
      expect(Buffer.from(output).equals(expected)).toBe(true);
    }),
    { numRuns: 100 },
  );
});

forEachDatabase('checking a copied range with its outer hashes in one batch', (create) => {
  const suite = suiteDatabase(create);
  const writer = suiteWriter(suite);
  const tenant = 'batch-chain';
  const ROWS = 80;
  let copy: Buffer;
  let checkpoints: CheckpointRef[];
  const taskOf = (bytes: Buffer): CopyChunkTask => ({ tenant, previous: BEFORE_CHAIN, headSeq: ROWS, copy: bytes, checkpoints });

  beforeAll(async () => {
    for (let i = 0; i < ROWS; i++) {
      const type = EVENT_TYPES[i % EVENT_TYPES.length] as (typeof EVENT_TYPES)[number];
      // Mostly one type, as chains are, with every other type among them, and now and then an actor
      // the byte scan leaves to the exact path (an escaped quote).
      const actor = { kind: 'agent' as const, id: i % 10 === 4 ? `Zoë "${i}"` : `key:${i}` };
      await writer.append(i % 3 === 0 ? { tenant, type, actor, requestId: `r-${i}`, data: SAMPLE_DATA[type] } : { ...invoked(tenant, i), actor });
    }
    copy = await (suite.db.copyBinary as NonNullable<Db['copyBinary']>)(copyRangeSql(tenant, 0, ROWS));
    const { rows } = await suite.db.query<{ seq: string; hash: string }>('SELECT seq, hash FROM chronicle_event WHERE tenant = $1 AND seq IN (17, 80)', [tenant]);
    checkpoints = rows.map((r) => ({ seq: Number(r.seq), hash: r.hash, time: '2025-01-01T00:00:00.000Z', source: 'test' }));
  });

  it('passes an intact range in one batch call, with the answer row by row gives', async () => {
    const task = taskOf(copy);
    const inputs: Buffer[] = [];
    const recorded: PairHasher = (input, output) => {
      inputs.push(Buffer.from(input));
      cryptoHasher(input, output);
    };
    const batched = checkCopyChunk(task, recorded);
    // One call, one input per row: its stored prev_hash as bytes, then SHA-256 of its body.
    expect(inputs).toHaveLength(1);
    const stored = await suite.db.query<{ prev_hash: string; body: string }>('SELECT prev_hash, body FROM chronicle_event WHERE tenant = $1 ORDER BY seq', [tenant]);
    expect(inputs[0]?.length).toBe(64 * ROWS);
    stored.rows.forEach((r, i) => {
      const expected = Buffer.concat([Buffer.from(r.prev_hash, 'hex'), crypto.hash('sha256', r.body, 'buffer') as unknown as Buffer]);
      expect(inputs[0]?.subarray(64 * i, 64 * i + 64).equals(expected), `input of seq ${i + 1}`).toBe(true);
    });
    expect(batched.failure).toBeNull();
    expect(batched.passed).toBe(ROWS);
    expect(batched.checkpointChecks.map((c) => [c.seq, c.matches])).toEqual([
      [17, true],
      [80, true],
    ]);
    expect(batched).toEqual(checkCopyChunk(task, null));
    if (pairHasher !== null) expect(checkCopyChunk(task)).toEqual(batched);
  });

  it('answers exactly as row by row for any byte of the copy changed (property)', () => {
    const hashers: PairHasher[] = pairHasher === null ? [cryptoHasher] : [cryptoHasher, pairHasher];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: copy.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, flip) => {
        const changed = Buffer.from(copy);
        changed[at] = (changed[at] as number) ^ flip;
        const task = taskOf(changed);
        const rowByRow = checkCopyChunk(task, null);
        for (const hasher of hashers) expect(checkCopyChunk(task, hasher)).toEqual(rowByRow);
      }),
      { numRuns: 300 },
    );
  });

  it('checks the range row by row when the hasher throws', () => {
    const task = taskOf(copy);
    const throwing: PairHasher = () => {
      throw new Error('no SHA extensions');
    };
    expect(checkCopyChunk(task, throwing)).toEqual(checkCopyChunk(task, null));
    expect(checkCopyChunk(task, throwing).passed).toBe(ROWS);
  });

  it('names the row whose stored hash alone was changed, as row by row does', () => {
    const hashAt = copy.indexOf(Buffer.from(checkpoints.find((c) => c.seq === 17)?.hash as string, 'latin1'));
    const changed = Buffer.from(copy);
    changed[hashAt + 5] = changed[hashAt + 5] === 0x30 ? 0x31 : 0x30;
    const task = taskOf(changed);
    const result = checkCopyChunk(task, cryptoHasher);
    expect(result.passed).toBe(16);
    expect(result.failure).toMatchObject({ seq: 17, reason: 'hash_mismatch' });
    expect(result).toEqual(checkCopyChunk(task, null));
  });
});
