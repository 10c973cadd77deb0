/**
 * One small query interface over node-postgres (DATABASE_URL) and PGlite (the embedded default).
 *
 * The two drivers differ in ways that matter to callers; this module hides them:
 *  - int8 (bigint, bigserial, count(*)) comes back as a JS number from both (and throws past 2^53
 *    rather than silently rounding); numeric stays a string.
 *  - bytea comes back as a Buffer from both.
 *  - `transaction(fn)` runs fn on one connection between BEGIN and COMMIT (ROLLBACK if fn throws)
 *    on both; PGlite serialises transactions itself, node-postgres takes a pooled client.
 *  - errors carry the SQLSTATE `code` from both.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { PGlite as PGliteType } from '@electric-sql/pglite';
import { runMigrations, type Migration } from './migrate.js';
import { MIGRATIONS } from './migrations/index.js';
import { acquireDirLock, liveLockHolder, type DirLock } from './lock.js';
import { createSessionGate, shareOverSocket, socketPath, SOCKET_PORT, type SessionGate, type SharedSocket } from './share.js';
import { DbError, reasonOfCode } from './errors.js';
import { KEY_ORDER, clientConfig, copyBinaryOn } from './copy.js';
import type { Db, Queryable, QueryResult, ReaderConnection } from './types.js';
import { defined } from '../common/values.js';

export type { Db, Queryable, QueryResult, ReaderConnection } from './types.js';
export { DbError } from './errors.js';
export { KEY_ORDER } from './copy.js';

const INT8_OID = 20;

function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`int8 value ${text} is outside the safe integer range`);
  return value;
}

// node-postgres type parsers are process-global; these are the ones both drivers share.
pg.types.setTypeParser(INT8_OID, parseInt8);

function toBuffer(value: unknown): unknown {
  return value instanceof Uint8Array && !Buffer.isBuffer(value) ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : value;
}

export interface PostgresOptions {
  readonly url: string;
  readonly maxConnections?: number;
  /** How long to wait for a connection before failing (default 5 s): a down database fails fast. */
  readonly connectTimeoutMs?: number;
  /** Server-side statement timeout (default 30 s). */
  readonly statementTimeoutMs?: number;
  readonly applicationName?: string;
}

export function openPostgres(options: PostgresOptions): Db {
  const connection: ReaderConnection = {
    connectionString: options.url,
    connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    statementTimeoutMs: options.statementTimeoutMs ?? 30_000,
    applicationName: options.applicationName ?? 'intune-connector',
  };
  const pool = new pg.Pool({ ...clientConfig(connection), max: options.maxConnections ?? 10 });
  // Another thread's client: the pool's settings, told apart by its application name.
  const reader: ReaderConnection = { ...connection, applicationName: `${connection.applicationName} reader` };
  return { ...overPool(pool, () => pool.connect()), readerConnection: () => reader };
}

/**
 * The embedded database of a data directory another process holds, through the socket it serves
 * (see share.ts). That server takes one client at a time, so this process keeps at most one
 * connection, gives it back when idle for a moment, and waits its turn when another has it.
 */
export function openSharedPGlite(dataDir: string, { waitMs = 30_000 }: { waitMs?: number } = {}): Db {
  const pool = new pg.Pool({
    host: path.dirname(socketPath(dataDir)),
    port: SOCKET_PORT,
    user: 'postgres',
    database: 'postgres',
    max: 1,
    idleTimeoutMillis: 200,
    connectionTimeoutMillis: 5_000,
  });
  const connect = async (): Promise<pg.PoolClient> => {
    const deadline = Date.now() + waitMs;
    for (let delayMs = 20; ; delayMs = Math.min(delayMs * 2, 250)) {
      try {
        return await pool.connect();
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 'ECONNREFUSED' || code === 'ENOENT') {
          // Nobody listens: a socket file left by a server that died, while another process holds the directory.
          throw new DbError(
            `the embedded database in ${dataDir} is in use by process ${liveLockHolder(dataDir) ?? '(gone)'}, which does not share it: stop that process, give this one its own INTUNE_DATA_DIR, or set DATABASE_URL to share a PostgreSQL server`,
            'db_locked',
            { cause: err },
          );
        }
        // Dropped at once: another client has the socket's one connection; wait for its turn.
        if (Date.now() + delayMs > deadline) {
          throw new DbError(
            `database unavailable: the embedded database in ${dataDir} is held by a running server, and its socket ${socketPath(dataDir)} did not answer within ${Math.round(waitMs / 1000)} s (${(err as Error).message})`,
            'db_unavailable',
            { cause: err },
          );
        }
        await sleep(delayMs);
      }
    }
  };
  return { ...overPool(pool, connect), kind: 'pglite' };
}

function overPool(pool: pg.Pool, connect: () => Promise<pg.PoolClient>): Db {
  // An idle client that loses its server emits 'error' on the pool; without a listener Node exits.
  pool.on('error', () => undefined);
  // The pool listens only to its idle clients: one that is out of the pool but runs no statement
  // (between a transaction's statements) and loses its backend would emit an 'error' nobody hears,
  // and end the process. Each client listens for its life; its next statement fails instead, as
  // db_unavailable, and the lease gives it back broken.
  pool.on('connect', (client) => client.on('error', () => undefined));

  const wrap = async <R>(run: () => Promise<pg.QueryResult>): Promise<QueryResult<R>> => {
    try {
      const result = await run();
      return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
    } catch (err) {
      throw asDbError(err);
    }
  };

  /** Runs fn on a client of the pool; the client goes back afterwards, or is discarded when fn marks it broken. */
  const withClient = async <T>(fn: (client: pg.PoolClient, lease: { broken: boolean }) => Promise<T>): Promise<T> => {
    let client: pg.PoolClient;
    try {
      client = await connect();
    } catch (err) {
      throw asDbError(err);
    }
    const lease = { broken: false };
    try {
      return await fn(client, lease);
    } finally {
      client.release(lease.broken);
    }
  };

  return {
    kind: 'postgres',
    query: <R>(sql: string, params: readonly unknown[] = []) =>
      wrap<R>(() =>
        withClient(async (client, lease) => {
          try {
            return await client.query(sql, params as unknown[]);
          } catch (err) {
            lease.broken = asDbError(err) instanceof DbError;
            throw err;
          }
        }),
      ),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>): Promise<T> =>
      withClient(async (client, lease) => {
        try {
          await client.query('BEGIN');
          const tx: Queryable = {
            query: <R>(sql: string, params: readonly unknown[] = []) => wrap<R>(() => client.query(sql, params as unknown[])),
          };
          const result = await fn(tx);
          await client.query('COMMIT');
          return result;
        } catch (err) {
          try {
            await client.query('ROLLBACK');
          } catch {
            lease.broken = true;
          }
          throw asDbError(err);
        }
      }),
    copyBinary: (query: string, into?: Buffer, framing?: { lastRowAt: number }): Promise<Buffer> =>
      withClient(async (client, lease) => {
        try {
          return await copyBinaryOn(client, query, into, framing);
        } catch (err) {
          lease.broken = asDbError(err) instanceof DbError;
          throw asDbError(err);
        }
      }),
    spareConnections: () => Math.max(0, pool.idleCount + Math.max(0, (pool.options.max ?? 10) - pool.totalCount) - pool.waitingCount),
    close: () => pool.end(),
  };
}

/**
 * Connection-level failures, and a database that refuses writes (read-only 25006, out of disk or
 * other resources 53xxx, shutting down 57P0x), become DbError('db_unavailable'): a 503 for the
 * caller, never a 500. Other SQL errors pass through with their code.
 */
function asDbError(err: unknown): unknown {
  if (err instanceof DbError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const reason = reasonOfCode(code);
  const connectionLevel =
    reason !== undefined ||
    (typeof code === 'string' && /^(ECONN|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EPIPE|EHOSTUNREACH|08)/.test(code)) ||
    /timeout exceeded when trying to connect|Connection terminated|Client has encountered a connection error|Cannot use a pool after calling end/i.test(message);
  return connectionLevel ? new DbError(`database unavailable: ${message}`, 'db_unavailable', { cause: err, reason }) : err;
}

/**
 * Runs one query ordered by an index's key, read through that index (sorting off for it alone, in
 * a transaction of its own): for ranges of one chain in seq order, which the planner otherwise
 * sorts when the chain's rows lie among other tenants' (see copyBinaryOn in copy.ts).
 */
export function queryInKeyOrder<R>(db: Db, sql: string, params: readonly unknown[]): Promise<QueryResult<R>> {
  return db.transaction(async (tx) => {
    await tx.query(KEY_ORDER);
    return tx.query<R>(sql, params);
  });
}

export interface PGliteOptions {
  /** A directory, or 'memory://' for a throwaway in-memory database (tests). */
  readonly dataDir: string;
  /**
   * Serve the database to other processes over a Unix socket in dataDir while it is open (what
   * `serve` does, so the CLI works beside it). Ignored for memory://.
   */
  readonly share?: boolean;
  /** Told when sharing was asked for but the socket path is too long for a Unix socket. */
  readonly onShareUnavailable?: (socketFile: string) => void;
}

export async function openPGlite(options: PGliteOptions): Promise<Db> {
  const [{ PGlite }, { copyBinaryEmbedded }] = await Promise.all([import('@electric-sql/pglite'), import('./embedded-copy.js')]);
  const inMemory = options.dataDir.startsWith('memory://');
  let lock: DirLock | undefined;
  if (!inMemory) {
    fs.mkdirSync(options.dataDir, { recursive: true });
    lock = acquireDirLock(options.dataDir);
  }
  let db: PGliteType;
  try {
    db = new PGlite(inMemory ? options.dataDir : path.join(options.dataDir, 'pgdata'), {
      parsers: { [INT8_OID]: parseInt8 },
    });
    await db.waitReady;
  } catch (err) {
    lock?.release();
    throw new DbError(`could not open the embedded database in ${options.dataDir}: ${(err as Error).message}`, 'db_unavailable', { cause: err });
  }

  let gate: SessionGate | undefined;
  let shared: SharedSocket | undefined;
  if (options.share === true && !inMemory) {
    gate = createSessionGate();
    try {
      shared = await shareOverSocket(db, options.dataDir, gate);
    } catch (err) {
      await db.close().catch(() => undefined);
      lock?.release();
      throw new DbError(`could not share the embedded database in ${options.dataDir} over ${socketPath(options.dataDir)}: ${(err as Error).message}`, 'db_unavailable', { cause: err });
    }
    if (shared === undefined) options.onShareUnavailable?.(socketPath(options.dataDir));
  }
  const turn = <T>(run: () => Promise<T>): Promise<T> => (gate === undefined ? run() : gate.run(run));

  const normalise = <R>(result: { rows: unknown[]; affectedRows?: number; rowCount?: number }): QueryResult<R> => {
    const rows = result.rows.map((row) => {
      const out = row as Record<string, unknown>;
      for (const key of Object.keys(out)) out[key] = toBuffer(out[key]);
      return out;
    });
    return { rows: rows as R[], rowCount: result.rowCount ?? result.affectedRows ?? rows.length };
  };

  // After close (or a fatal WASM error) PGlite throws plain errors; callers see the same typed
  // db_unavailable as for a lost PostgreSQL server, so they answer 503, not 500.
  const guard = async <T>(run: () => Promise<T>): Promise<T> => {
    if (db.closed) throw new DbError('database unavailable: the embedded database is closed', 'db_unavailable');
    try {
      return await turn(run);
    } catch (err) {
      if (db.closed) throw new DbError('database unavailable: the embedded database is closed', 'db_unavailable', { cause: err });
      throw err;
    }
  };

  return {
    kind: 'pglite',
    query: <R>(sql: string, params: readonly unknown[] = []) => guard(async () => normalise<R>(await db.query(sql, params as unknown[]))),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) =>
      guard(() =>
        db.transaction(async (tx) =>
          fn({ query: async <R>(sql: string, params: readonly unknown[] = []) => normalise<R>(await tx.query(sql, params as unknown[])) }),
        ),
      ),
    copyBinary: (query: string) => guard(() => copyBinaryEmbedded(db, query)),
    async close() {
      try {
        await shared?.close();
        if (!db.closed) await db.close();
      } finally {
        lock?.release();
      }
    },
  };
}

/**
 * The embedded database of dataDir: opened here, or, when a live process of ours holds the
 * directory (a running `serve`), reached through the socket it shares it on.
 */
async function openEmbedded(dataDir: string, share: boolean, onShareUnavailable?: (socketFile: string) => void): Promise<Db> {
  // A process that shares the directory must own it: a second server is refused, never a client.
  if (!share && !dataDir.startsWith('memory://')) {
    const holder = liveLockHolder(dataDir);
    if (holder !== undefined && holder !== process.pid && fs.existsSync(socketPath(dataDir))) return openSharedPGlite(dataDir);
  }
  return openPGlite({ dataDir, share, ...defined({ onShareUnavailable }) });
}

/** Opens the configured database (PostgreSQL with a URL, else PGlite under dataDir) and migrates it. */
export interface OpenDatabaseOptions {
  readonly migrations?: readonly Migration[];
  readonly migrate?: boolean;
  /** Embedded database: serve it to the CLI over a socket while open (`serve`). */
  readonly share?: boolean;
  readonly onShareUnavailable?: (socketFile: string) => void;
}

export async function openDatabase(
  database: { readonly url?: string; readonly dataDir: string },
  { migrations = MIGRATIONS, migrate = true, share = false, onShareUnavailable }: OpenDatabaseOptions = {},
): Promise<Db> {
  const db = database.url !== undefined ? openPostgres({ url: database.url }) : await openEmbedded(database.dataDir, share, onShareUnavailable);
  if (migrate) {
    try {
      await runMigrations(db, migrations);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
  }
  return db;
}

export { runMigrations, type Migration } from './migrate.js';
