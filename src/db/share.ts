/**
 * The embedded database shared while `serve` holds it: PGlite is one session in one process, so the
 * holder serves it over a Unix socket in the data directory (@electric-sql/pglite-socket speaks the
 * PostgreSQL protocol) and other processes (the CLI) connect with node-postgres.
 *
 * One session serves everyone, so its turns are handed out by one gate:
 *  - an in-process query or transaction holds the gate until it ends;
 *  - a socket client holds it from its first message until an exchange is complete (a simple Query,
 *    a Sync or a Terminate) and it is outside a transaction. So a client's Parse/Bind/Execute never
 *    interleaves with the server's own statements, and its BEGIN…COMMIT is not entered by them.
 * A client that disappears mid-exchange is rolled back and the gate freed.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';

/** pg connects to `<host>/.s.PGSQL.<port>` when host is a directory: the data directory and 5432. */
export const SOCKET_PORT = 5432;
export const SOCKET_FILE = `.s.PGSQL.${SOCKET_PORT}`;
/** sockaddr_un holds 108 bytes; longer paths cannot be bound. */
const MAX_SOCKET_PATH = 107;
/** How often a held gate checks that its socket client is still connected. */
const ORPHAN_CHECK_MS = 250;

export function socketPath(dataDir: string): string {
  return path.join(path.resolve(dataDir), SOCKET_FILE);
}

/** A FIFO mutex; re-entrant within one async context so nested in-process calls do not wait on themselves. */
export interface SessionGate {
  run<T>(fn: () => Promise<T>): Promise<T>;
  acquire(): Promise<() => void>;
}

export function createSessionGate(): SessionGate {
  // The store says whether the turn that started this async context is still going: work it
  // spawned that runs later (a timer, a flush) takes its own turn.
  const inside = new AsyncLocalStorage<{ active: boolean }>();
  let tail: Promise<void> = Promise.resolve();
  const acquire = async (): Promise<() => void> => {
    let release: () => void = () => undefined;
    const previous = tail;
    tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };
  return {
    acquire,
    async run<T>(fn: () => Promise<T>): Promise<T> {
      if (inside.getStore()?.active === true) return fn();
      const release = await acquire();
      const turn = { active: true };
      try {
        return await inside.run(turn, fn);
      } finally {
        turn.active = false;
        release();
      }
    },
  };
}

export interface SharedSocket {
  readonly path: string;
  close(): Promise<void>;
}

/** Message types that end an exchange: Query, Sync, Terminate. A startup packet has no type byte (its first byte is 0). */
function endsExchange(message: Uint8Array): boolean {
  const type = message[0];
  return type === 0x51 || type === 0x53 || type === 0x58 || type === 0x00;
}

/**
 * Serves `db` on `<dataDir>/.s.PGSQL.5432` (mode 0600), replacing a socket file left by a process
 * that died. Returns undefined when the path is too long for a Unix socket (the caller logs it).
 */
export async function shareOverSocket(db: PGlite, dataDir: string, gate: SessionGate): Promise<SharedSocket | undefined> {
  const file = socketPath(dataDir);
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH) return undefined;
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');

  let release: (() => void) | undefined;
  let lastMessage: Uint8Array | undefined;
  let orphanTimer: NodeJS.Timeout | undefined;
  const free = () => {
    if (orphanTimer !== undefined) clearInterval(orphanTimer);
    orphanTimer = undefined;
    const r = release;
    release = undefined;
    r?.();
  };

  // The socket server sees this view of PGlite: its turns go through the gate.
  const view = new Proxy(db, {
    get(target, prop) {
      if (prop === 'runExclusive') {
        return async <T>(fn: () => Promise<T>): Promise<T> => {
          if (release === undefined) {
            release = await gate.acquire();
            orphanTimer = setInterval(() => void dropOrphan(), ORPHAN_CHECK_MS);
            orphanTimer.unref();
          }
          try {
            return await target.runExclusive(fn);
          } finally {
            if (lastMessage !== undefined && endsExchange(lastMessage) && !target.isInTransaction()) free();
          }
        };
      }
      if (prop === 'execProtocolRawStream') {
        return (message: Uint8Array, options: Parameters<PGlite['execProtocolRawStream']>[1]) => {
          lastMessage = message;
          return target.execProtocolRawStream(message, options);
        };
      }
      if (prop === 'exec') {
        // The socket server's ROLLBACK for a client that left inside a transaction.
        return async (sql: string) => {
          const result = await target.exec(sql);
          if (!target.isInTransaction()) free();
          return result;
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });

  const server = new PGLiteSocketServer({ db: view, path: file, maxConnections: 1 });
  // A client gone mid-exchange (killed between Parse and Sync) would hold the gate for ever.
  const dropOrphan = async () => {
    if (release === undefined || server.getStats().activeConnections > 0) return;
    if (db.isInTransaction()) await db.exec('ROLLBACK').catch(() => undefined);
    free();
  };

  fs.rmSync(file, { force: true });
  await server.start();
  // Connecting needs write permission on the socket, which the default umask already withholds
  // from others; 0600 withholds it from the group too.
  fs.chmodSync(file, 0o600);
  let closed = false;
  return {
    path: file,
    async close() {
      if (closed) return;
      closed = true;
      await server.stop();
      free();
      fs.rmSync(file, { force: true });
    },
  };
}
