import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DbError, openDatabase, openPGlite, openPostgres, type Db } from '../../src/db/index.js';
import { runMigrations, type Migration } from '../../src/db/migrate.js';
import { forEachDatabase, type TestDatabase } from '../helpers/db.js';

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
