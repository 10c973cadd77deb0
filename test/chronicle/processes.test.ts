/**
 * Chronicle across OS processes: concurrent writers on one chain, and a writer killed with
 * SIGKILL in the middle of its batches.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { openPGlite, type Db } from '../../src/db/index.js';
import { GENESIS_HASH, createChronicle, type AppendReceipt } from '../../src/chronicle/index.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { rows, tempDir } from './helpers.js';

const WRITER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'writer.ts');

interface Writer {
  readonly child: ChildProcessWithoutNullStreams;
  readonly receipts: AppendReceipt[];
  readonly ready: Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  /** Resolves once at least n receipts were printed. */
  printed(n: number): Promise<void>;
}

function startWriter(target: string, tenant: string, count: number, inFlight: number): Writer {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, target, tenant, String(count), String(inFlight)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const receipts: AppendReceipt[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'ready') return markReady();
    receipts.push(JSON.parse(line) as AppendReceipt);
    for (const w of waiters.filter((x) => receipts.length >= x.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    receipts,
    ready: Promise.race([ready, exited.then(() => Promise.reject(new Error(`writer exited before ready: ${stderr}`)))]),
    exited,
    stderr: () => stderr,
    printed: (n) =>
      receipts.length >= n
        ? Promise.resolve()
        : Promise.race([
            new Promise<void>((resolve) => waiters.push({ n, resolve })),
            exited.then(() => Promise.reject(new Error(`writer exited after ${receipts.length} receipts: ${stderr}`))),
          ]),
  };
}

const live: Writer[] = [];
afterEach(() => {
  for (const w of live.splice(0)) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
});

function spawnWriter(target: string, tenant: string, count: number, inFlight: number): Writer {
  const writer = startWriter(target, tenant, count, inFlight);
  live.push(writer);
  return writer;
}

/** The chain is whole: contiguous from 1, each row linked to the one before, every receipt stored as given. */
async function expectWholeChain(db: Db, tenant: string, receipts: readonly AppendReceipt[]): Promise<number> {
  if (db.kind === 'postgres') {
    // A killed client's backend finishes the statement it was running (and commits it, or not)
    // before it notices: wait for it, so the checks below see the final state.
    await expect
      .poll(async () => (await db.query<{ n: number }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'")).rows[0]?.n, {
        timeout: 20_000,
        interval: 100,
      })
      .toBe(0);
  }
  // Rows and head from one snapshot.
  const { stored, head } = await db.transaction(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    return {
      stored: await rows(tx, tenant),
      head: (await tx.query<{ head_seq: number; head_hash: string }>('SELECT head_seq, head_hash FROM chronicle_chain WHERE tenant = $1', [tenant])).rows[0],
    };
  });
  expect(stored.map((r) => r.seq)).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1));
  expect(new Set(stored.map((r) => r.prev_hash)).size).toBe(stored.length);
  stored.forEach((row, i) => expect(row.prev_hash).toBe(i === 0 ? GENESIS_HASH : stored[i - 1]?.hash));
  const bySeq = new Map(stored.map((r) => [r.seq, r.hash]));
  for (const receipt of receipts) expect(bySeq.get(receipt.seq), `receipt seq ${receipt.seq}`).toBe(receipt.hash);
  expect(head).toEqual({ head_seq: stored.length, head_hash: stored.at(-1)?.hash });
  const chronicle = await createChronicle({ db });
  try {
    expect(await chronicle.verify({ tenant })).toMatchObject({ ok: true, eventsChecked: stored.length });
  } finally {
    await chronicle.close();
  }
  return stored.length;
}

describe.skipIf(!pgAvailable())('chronicle across processes [postgres]', () => {
  let tdb: TestDatabase;
  afterEach(async () => tdb?.drop());

  it('four processes appending to one chain from an empty table: seq contiguous, never forked, verify passes', async () => {
    tdb = await createPostgresDatabase();
    const db = await tdb.open(); // migrates the fresh database; the chain has no head row yet
    const writers = [1, 2, 3, 4].map(() => spawnWriter(tdb.url as string, 'race', 120, 12));
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.child.stdin.end('go\n');
    const exits = await Promise.all(writers.map((w) => w.exited));
    expect(exits.map((e) => e.code), writers.map((w) => w.stderr()).join('\n')).toEqual([0, 0, 0, 0]);

    const receipts = writers.flatMap((w) => w.receipts);
    expect(receipts).toHaveLength(480);
    expect(new Set(receipts.map((r) => r.seq)).size).toBe(480);
    expect(await expectWholeChain(db, 'race', receipts)).toBe(480);
    // Every process took part, interleaved on the one chain.
    for (const w of writers) expect(w.receipts.length).toBe(120);
  });

  it('a writer killed with SIGKILL mid-batch leaves the old head or the new one, never a torn chain', async () => {
    tdb = await createPostgresDatabase();
    const db = await tdb.open();
    const doomed = spawnWriter(tdb.url as string, 'killed', 0, 32);
    await doomed.ready;
    doomed.child.stdin.end('go\n');
    await doomed.printed(400);
    doomed.child.kill('SIGKILL');
    expect((await doomed.exited).signal).toBe('SIGKILL');

    // Whatever was in flight either committed whole or not at all; every receipt it printed is stored.
    const afterKill = await expectWholeChain(db, 'killed', doomed.receipts);
    expect(afterKill).toBeGreaterThanOrEqual(doomed.receipts.length);

    // The chain carries on from the surviving head.
    const next = spawnWriter(tdb.url as string, 'killed', 50, 8);
    await next.ready;
    next.child.stdin.end('go\n');
    expect((await next.exited).code).toBe(0);
    expect(Math.min(...next.receipts.map((r) => r.seq))).toBe(afterKill + 1);
    expect(await expectWholeChain(db, 'killed', [...doomed.receipts, ...next.receipts])).toBe(afterKill + 50);
  });
});

describe('chronicle across processes [pglite]', () => {
  it('a writer killed with SIGKILL leaves its data directory with a whole, verifiable chain', async () => {
    const dir = tempDir('pglite-kill');
    try {
      const doomed = spawnWriter(`pglite:${dir.dir}`, 'killed', 0, 16);
      await doomed.ready;
      doomed.child.stdin.end('go\n');
      await doomed.printed(300);
      doomed.child.kill('SIGKILL');
      await doomed.exited;
      // The lock file of the dead process is taken over; the chain is whole.
      const db = await openPGlite({ dataDir: dir.dir });
      try {
        expect(await expectWholeChain(db, 'killed', doomed.receipts)).toBeGreaterThanOrEqual(doomed.receipts.length);
      } finally {
        await db.close();
      }
    } finally {
      dir.remove();
    }
  });
});
