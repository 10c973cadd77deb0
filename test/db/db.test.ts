import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { copyOutOfAnswer } from '../../src/db/embedded-copy.js';
import { DbError, openDatabase, openPGlite, openPostgres, type Db } from '../../src/db/index.js';
import { runMigrations, type Migration } from '../../src/db/migrate.js';
import { createPostgresDatabase, endSessions, forEachDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { protocolMessage } from '../helpers/protocol.js';

forEachDatabase('db interface', (create) => {
  let tdb: TestDatabase;
  let db: Db;
  afterEach(async () => tdb?.drop());

  it('returns int8 as numbers and bytea as Buffers on both drivers', async () => {
    tdb = await create();
    db = await tdb.open();
    const { rows } = await db.query<{ big: number; bytes: Buffer; n: number }>(
      "SELECT 9007199254740991::int8 AS big, '\\x00ff10'::bytea AS bytes, count(*) AS n FROM generate_series(1, 3)",
    );
    expect(rows[0]?.big).toBe(Number.MAX_SAFE_INTEGER);
    expect(Buffer.isBuffer(rows[0]?.bytes)).toBe(true);
    expect(rows[0]?.bytes.toString('hex')).toBe('00ff10');
    expect(rows[0]?.n).toBe(3);
  });

  it('refuses int8 values that a JS number cannot hold exactly', async () => {
    tdb = await create();
    db = await tdb.open();
    await expect(db.query('SELECT 9007199254740993::int8 AS big')).rejects.toThrow(/safe integer/);
  });

  it('commits a transaction that resolves and rolls back one that throws', async () => {
    tdb = await create();
    db = await tdb.open();
    await db.query('CREATE TABLE t (v int)');
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO t VALUES (1)');
    });
    await expect(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO t VALUES (2)');
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const { rows, rowCount } = await db.query<{ v: number }>('SELECT v FROM t');
    expect(rows.map((r) => r.v)).toEqual([1]);
    expect(rowCount).toBe(1);
  });

  it('applies migrations once, in order, and is idempotent', async () => {
    tdb = await create();
    db = await tdb.open();
    const migrations: Migration[] = [
      { version: 9001, name: 'one', sql: 'CREATE TABLE m1 (v int)' },
      { version: 9002, name: 'two', sql: 'INSERT INTO m1 VALUES (42)' },
    ];
    expect((await runMigrations(db, migrations)).applied.map((m) => m.version)).toEqual([9001, 9002]);
    expect((await runMigrations(db, migrations)).applied).toEqual([]);
    expect((await db.query<{ v: number }>('SELECT v FROM m1')).rows).toEqual([{ v: 42 }]);
  });

  it('copies a query out as binary COPY bytes, and answers a copy it refuses with the database\'s error and code', async () => {
    tdb = await create();
    db = await tdb.open();
    const copy = db.copyBinary?.bind(db);
    if (copy === undefined) throw new Error('both drivers copy');
    const bytes = await copy("SELECT n::bigint, repeat('é', n) FROM generate_series(1, 3) AS n ORDER BY n");
    // The signature, flags and header extension, three rows of two fields, and the -1 trailer.
    expect(bytes.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
    expect(bytes.length).toBe(19 + 3 * (2 + 4 + 8 + 4) + 2 * (1 + 2 + 3) + 2);
    expect(bytes.readInt16BE(bytes.length - 2)).toBe(-1);
    await expect(copy('SELECT no_such_column')).rejects.toMatchObject({ code: '42703', message: expect.stringMatching(/no_such_column/) });
    // The connection is as it was: the next statement and the next copy answer.
    expect((await db.query<{ v: number }>('SELECT 1 AS v')).rows).toEqual([{ v: 1 }]);
    expect((await copy('SELECT 1::bigint')).length).toBe(19 + 2 + 4 + 8 + 2);
  });

  it('rolls back a failing migration whole and names it', async () => {
    tdb = await create();
    db = await tdb.open();
    const migrations: Migration[] = [
      { version: 9101, name: 'good', sql: 'CREATE TABLE m2 (v int)' },
      { version: 9102, name: 'bad', sql: 'SELEC nonsense' },
    ];
    await expect(runMigrations(db, migrations)).rejects.toThrow(/migration 9102 \(bad\) failed/);
    const { rows } = await db.query<{ n: number }>("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'm2'");
    expect(rows[0]?.n).toBe(0);
  });
});

describe('COPY out of raw protocol messages (the embedded database\'s answer, joined in place)', () => {
  const message = protocolMessage;
  const copyOut = message('H', Buffer.from([0, 0, 0]));
  const ready = message('Z', Buffer.from('I'));

  it('joins the CopyData payloads and skips every other message', () => {
    const raw = Buffer.concat([message('S', Buffer.from('a\0b\0')), copyOut, message('d', Buffer.from('ab')), message('d', Buffer.from('cde')), message('c', Buffer.alloc(0)), message('C', Buffer.from('COPY 2\0')), ready]);
    expect(copyOutOfAnswer(raw).toString()).toBe('abcde');
  });

  it('throws an ErrorResponse with its message and SQLSTATE, and refuses an answer cut short or without a copy', () => {
    const error = message('E', Buffer.from('SERROR\0C42703\0Mcolumn "x" does not exist\0\0'));
    expect(() => copyOutOfAnswer(Buffer.concat([error, ready]))).toThrow(expect.objectContaining({ code: '42703', message: 'column "x" does not exist' }));
    const whole = Buffer.concat([copyOut, message('d', Buffer.from('abc')), ready]);
    for (const cut of [whole.length - 1, copyOut.length + 3, copyOut.length + 7]) expect(() => copyOutOfAnswer(Buffer.from(whole.subarray(0, cut))), `cut at ${cut}`).toThrow(/ends inside/);
    // A length that cannot be a message's (under 4, negative) is refused, not looped on.
    for (const length of [-1, 0, 3]) {
      const bad = Buffer.concat([copyOut, message('d', Buffer.from('abc'))]);
      bad.writeInt32BE(length, copyOut.length + 1);
      expect(() => copyOutOfAnswer(bad), `length ${length}`).toThrow(/ends inside/);
    }
    expect(() => copyOutOfAnswer(Buffer.concat([message('C', Buffer.from('SELECT 1\0')), ready]))).toThrow(/no COPY data/);
  });
});

describe('PostgreSQL unavailable', () => {
  it('fails fast with a typed db_unavailable error', async () => {
    const db = openPostgres({ url: 'postgres://postgres@127.0.0.1:1/none', connectTimeoutMs: 1_000 });
    const started = Date.now();
    const err = await db.query('SELECT 1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DbError);
    expect((err as DbError).code).toBe('db_unavailable');
    expect(Date.now() - started).toBeLessThan(5_000);
    await db.close();
  });
});

describe.skipIf(!pgAvailable())('PostgreSQL backend ended under a transaction', () => {
  it('fails that transaction with db_unavailable, without an unhandled error, and serves the next query', async () => {
    const tdb = await createPostgresDatabase();
    // An 'error' event nobody listens for is thrown out of the socket's callback: it would end serve.
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const db = await tdb.open();
      // Between two statements the transaction's client is out of the pool and runs no query: the
      // moment a lost backend reaches it as an 'error' event, not as a failed query.
      const err = await db
        .transaction(async (tx) => {
          await tx.query('SELECT 1');
          await endSessions(new URL(tdb.url as string).pathname.slice(1));
          await tx.query('SELECT 2');
        })
        .catch((e: unknown) => e);
      expect(uncaught).toEqual([]);
      expect(err).toBeInstanceOf(DbError);
      expect((err as DbError).code).toBe('db_unavailable');
      expect((await db.query<{ n: number }>('SELECT 3 AS n')).rows).toEqual([{ n: 3 }]);
    } finally {
      process.removeListener('uncaughtException', onUncaught);
      await tdb.drop();
    }
  });
});

describe('embedded database closed underneath its users', () => {
  it('fails queries and transactions with the same typed db_unavailable as a lost server', async () => {
    const db = await openPGlite({ dataDir: 'memory://' });
    await db.close();
    for (const attempt of [() => db.query('SELECT 1'), () => db.transaction((tx) => tx.query('SELECT 1'))]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DbError);
      expect((err as DbError).code).toBe('db_unavailable');
    }
  });
});

describe('embedded database directory lock', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('refuses a second process on the same directory, naming the holder and the fix', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-lock-'));
    dirs.push(dir);
    const db = await openDatabase({ dataDir: dir });
    try {
      const script = `import('${path.resolve('src/db/index.ts')}').then(m => m.openPGlite({ dataDir: ${JSON.stringify(dir)} })).then(() => process.exit(0), e => { console.error(e.code + ': ' + e.message); process.exit(7); })`;
      const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(code).toBe(7);
      expect(stderr).toContain('db_locked');
      expect(stderr).toContain(`in use by process ${process.pid}`);
      expect(stderr).toContain('DATABASE_URL');
    } finally {
      await db.close();
    }
    // Released on close: the directory opens again, data intact.
    const again = await openPGlite({ dataDir: dir });
    await again.close();
  });

  it('lets exactly one of several processes racing for a stale lock take it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-lock-race-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'intune-connector.lock'), '999999999\n');
    const script = `import('${path.resolve('src/db/lock.ts')}').then((m) => { try { m.acquireDirLock(${JSON.stringify(dir)}); process.stdout.write('locked'); setTimeout(() => process.exit(0), 1500); } catch (e) { process.stdout.write(e.code); process.exit(0); } })`;
    const run = () =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.on('exit', () => resolve(out));
      });
    const outcomes = await Promise.all(Array.from({ length: 5 }, run));
    expect(outcomes.filter((o) => o === 'locked')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'db_locked')).toHaveLength(4);
    expect(fs.readdirSync(dir).filter((f) => f !== 'intune-connector.lock')).toEqual([]);
  });

  it('takes over a lock left by a process that no longer exists', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-lock-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'intune-connector.lock'), '999999999\n');
    const db = await openPGlite({ dataDir: dir });
    await db.query('SELECT 1');
    await db.close();
  });
});
