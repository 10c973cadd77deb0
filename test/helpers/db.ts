/**
 * Real databases for tests: a fresh PostgreSQL database per call (created on the test server and
 * dropped afterwards), and a fresh in-memory PGlite. Use `forEachDatabase` to run a suite on both.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, inject } from 'vitest';
import './global-setup.js';
import { openDatabase, openPGlite, openPostgres, type Db } from '../../src/db/index.js';
import { runMigrations } from '../../src/db/migrate.js';
import { MIGRATIONS } from '../../src/db/migrations/index.js';

export const pgAvailable = (): boolean => inject('pgAvailable');
export const serverUrl = (): string => inject('testDatabaseUrl');

export interface TestDatabase {
  readonly kind: 'postgres' | 'pglite';
  /** For PostgreSQL, the URL of the fresh database (give it to child processes). */
  readonly url?: string;
  /** Opens a new handle (migrated). Close it yourself or let drop() do it. */
  open(): Promise<Db>;
  /** Closes every handle opened and drops the database. */
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** One statement as the server's administrator (on its maintenance database). */
export async function adminQuery(sql: string, params: unknown[] = []): Promise<void> {
  await admin((c) => c.query(sql, params));
}

/**
 * Ends every session of a database but the caller's, as an administrator, a restart or a failover
 * would, and waits a moment for their clients to see it.
 */
export async function endSessions(database: string): Promise<void> {
  await adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);
  await new Promise((r) => setTimeout(r, 300));
}

export async function createPostgresDatabase(): Promise<TestDatabase> {
  const name = `ic_test_${crypto.randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(serverUrl());
  url.pathname = `/${name}`;
  const handles: Db[] = [];
  return {
    kind: 'postgres',
    url: url.toString(),
    async open() {
      const db = openPostgres({ url: url.toString() });
      await runMigrations(db, MIGRATIONS);
      handles.push(db);
      return db;
    },
    async drop() {
      await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

export async function createPGliteDatabase(): Promise<TestDatabase> {
  // One in-memory PGlite is one database: every open() shares it, even when called concurrently.
  let opening: Promise<Db> | undefined;
  return {
    kind: 'pglite',
    async open() {
      opening ??= (async () => {
        const db = await openPGlite({ dataDir: 'memory://' });
        await runMigrations(db, MIGRATIONS);
        return db;
      })();
      const db = await opening;
      return { ...db, close: async () => undefined };
    },
    async drop() {
      await (await opening?.catch(() => undefined))?.close();
    },
  };
}

/**
 * One database for the suite this is called in: created and opened before its tests, dropped
 * after them (after hooks registered later, such as closing a Chronicle on it). Read `db` in tests
 * and hooks, not while the suite is being declared.
 */
export function suiteDatabase(create: () => Promise<TestDatabase>): { readonly db: Db; readonly database: TestDatabase } {
  let database: TestDatabase | undefined;
  let db: Db | undefined;
  beforeAll(async () => {
    database = await create();
    db = await database.open();
  });
  afterAll(async () => {
    await database?.drop();
  });
  const opened = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('suiteDatabase: read db inside a test or hook, once the suite has started');
    return value;
  };
  return {
    get db() {
      return opened(db);
    },
    get database() {
      return opened(database);
    },
  };
}

/** Runs `suite` once for PostgreSQL (skipped loudly when no server) and once for PGlite. */
export function forEachDatabase(name: string, suite: (create: () => Promise<TestDatabase>) => void): void {
  describe.skipIf(!pgAvailable())(`${name} [postgres]`, () => suite(createPostgresDatabase));
  describe(`${name} [pglite]`, () => suite(createPGliteDatabase));
}

export { openDatabase };
