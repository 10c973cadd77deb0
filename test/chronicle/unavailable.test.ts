/**
 * The database goes away: appends reject with ChronicleError('unavailable') within a bounded time,
 * and nothing is reported as recorded that was not.
 */
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openPGlite, openPostgres, runMigrations } from '../../src/db/index.js';
import { MIGRATIONS } from '../../src/db/migrations/index.js';
import { ChronicleError, createChronicle } from '../../src/chronicle/index.js';
import { adminQuery, createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { invoked, rows, tempDir } from './helpers.js';

describe.skipIf(!pgAvailable())('chronicle when PostgreSQL goes away', () => {
  let tdb: TestDatabase | undefined;
  let name = '';
  afterEach(async () => {
    if (name !== '') await adminQuery(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`).catch(() => undefined);
    await tdb?.drop();
    tdb = undefined;
  });

  it('rejects appends as unavailable while the database refuses connections, records none of them, and recovers', async () => {
    tdb = await createPostgresDatabase();
    name = new URL(tdb.url as string).pathname.slice(1);
    const db = await tdb.open();
    const chronicle = await createChronicle({ db, appendTimeoutMs: 3_000 });
    const first = await chronicle.append(invoked('down', 1));

    await adminQuery(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
    await adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}'`);
    const started = Date.now();
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => chronicle.append(invoked('down', 100 + i))));
    const elapsedMs = Date.now() - started;
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const err = (outcome as PromiseRejectedResult).reason as ChronicleError;
      expect(err).toBeInstanceOf(ChronicleError);
      expect(err.code).toBe('unavailable');
      expect(err.message).toMatch(/nothing was recorded|not recorded/);
    }
    expect(elapsedMs).toBeLessThan(3_000 + 2_000);
    expect(chronicle.stats().failed).toBe(20);

    await adminQuery(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
    const stored = await rows(await tdb.open(), 'down');
    expect(stored.map((r) => r.hash)).toEqual([first.hash]);
    // The same Chronicle carries on once the database is back.
    expect(await chronicle.append(invoked('down', 2))).toMatchObject({ seq: 2 });
    await chronicle.close();
  });

  it('gives up after appendTimeoutMs when the database host swallows packets', async () => {
    // A host that accepts connections and never answers, as behind a broken network path.
    const sockets = new Set<net.Socket>();
    const blackhole = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    const port = (blackhole.address() as net.AddressInfo).port;
    const db = openPostgres({ url: `postgres://postgres@127.0.0.1:${port}/nowhere`, connectTimeoutMs: 60_000 });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const chronicle = await createChronicle({ db, appendTimeoutMs: 2_000 });
      let settled: unknown = 'pending';
      const append = chronicle.append(invoked('void', 1)).then(
        () => (settled = 'resolved'),
        (err: unknown) => (settled = err),
      );
      await vi.advanceTimersByTimeAsync(1_999);
      expect(settled).toBe('pending');
      await vi.advanceTimersByTimeAsync(1);
      await append;
      expect(settled).toBeInstanceOf(ChronicleError);
      expect(settled).toMatchObject({ code: 'unavailable' });
      expect((settled as Error).message).toMatch(/within 2000 ms/);
    } finally {
      vi.useRealTimers();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => blackhole.close(() => resolve()));
      await db.close().catch(() => undefined);
    }
  });
});

describe('chronicle when the embedded database is closed', () => {
  it('rejects appends as unavailable and records nothing', async () => {
    const dir = tempDir('pglite-closed');
    try {
      const db = await openPGlite({ dataDir: dir.dir });
      await runMigrations(db, MIGRATIONS);
      const chronicle = await createChronicle({ db });
      await chronicle.append(invoked('closed', 1));
      await db.close();
      await expect(chronicle.append(invoked('closed', 2))).rejects.toMatchObject({ name: 'ChronicleError', code: 'unavailable' });

      const again = await openPGlite({ dataDir: dir.dir });
      try {
        expect((await rows(again, 'closed')).map((r) => r.seq)).toEqual([1]);
      } finally {
        await again.close();
      }
    } finally {
      dir.remove();
    }
  });
});
