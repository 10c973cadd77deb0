/**
 * bench:chronicle — committed appends per second with 1, 4 and 16 concurrent writers (each an
 * async loop awaiting its append, so a writer never has more than one event in flight), p50/p99
 * append latency, and verify events per second beside its floor: a plain sequential read of the
 * same bodies from the same database in the same run (keyset ranges, no hashing), which verify
 * cannot beat; on PostgreSQL (a fresh database on the server at
 * BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres) and on PGlite (in memory).
 *
 *   npm run bench:chronicle
 *   BENCH_RUNS=5 BENCH_SECONDS=3 BENCH_VERIFY_EVENTS=300000 npm run bench:chronicle
 *
 * Targets on a 2-core machine: ≥ 5,000 committed appends/s with 16 writers on PostgreSQL, and
 * verify ≥ 250,000 events/s and ≥ 0.6 of the floor. BENCH_BACKENDS=postgres runs one backend;
 * BENCH_VERIFY_WORKERS=N sets verify's worker threads, BENCH_VERIFY_CHUNK=N its rows per range; BENCH_NO_READERS=1 has the verifying thread
 * read every range (as over the embedded database) instead of the workers. Prints medians of several runs,
 * and the CPU time per event of verify and of the floor, in this process (every thread) and, when
 * the PostgreSQL server runs on this machine, in its server processes (from /proc); writes
 * bench/results/chronicle.json.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KEY_ORDER, openPGlite, openPostgres, type Db } from '../src/db/index.js';
import { runMigrations } from '../src/db/migrate.js';
import { chronicleMigrations } from '../src/db/migrations/chronicle.js';
import { createChronicle, type AppendInput, type Chronicle } from '../src/chronicle/index.js';
import { adminQuery, backendCpuMs, backendCpuSpent, median } from './lib.js';

const SERVER_URL = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 2);
const VERIFY_EVENTS_PG = Number(process.env['BENCH_VERIFY_EVENTS'] ?? 200_000);
const VERIFY_EVENTS_PGLITE = Number(process.env['BENCH_VERIFY_EVENTS_PGLITE'] ?? 50_000);
const WRITERS = [1, 4, 16] as const;
const BACKENDS = (process.env['BENCH_BACKENDS'] ?? 'postgres,pglite').split(',');
/** Verify's worker threads (default: Chronicle's own, two on this machine). */
const VERIFY_WORKERS = process.env['BENCH_VERIFY_WORKERS'] === undefined ? undefined : Number(process.env['BENCH_VERIFY_WORKERS']);
/** Rows per range verify reads (default: Chronicle's own, 5,000). */
const VERIFY_CHUNK = process.env['BENCH_VERIFY_CHUNK'] === undefined ? undefined : Number(process.env['BENCH_VERIFY_CHUNK']);
/** Set: PostgreSQL's ranges are all read on the verifying thread, as over the embedded database, instead of by the workers over connections of their own. */
const NO_READERS = process.env['BENCH_NO_READERS'] !== undefined && process.env['BENCH_NO_READERS'] !== '';

/**
 * The floor: the same bodies read in order, in the same ranges verify uses, and nothing else done
 * with them. Read through the primary key's order as verify reads (sorting discouraged for these
 * statements: see copyBinaryOn), so that neither pays for a plan the other avoids.
 */
async function sequentialRead(db: Db, tenant: string, events: number, chunk = 5_000): Promise<number> {
  let read = 0;
  await db.transaction(async (tx) => {
    await tx.query(KEY_ORDER);
    for (let after = 0; after < events; after += chunk) {
      const { rows } = await tx.query<{ body: string }>('SELECT body FROM chronicle_event WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq', [
        tenant,
        after,
        Math.min(after + chunk, events),
      ]);
      read += rows.length;
    }
  });
  if (read !== events) throw new Error(`the floor read ${read} of ${events} events`);
  return read;
}

/** Runs fn; answers its wall seconds and the CPU µs per event of this process (every thread) and of the server. */
async function measured(db: Db, events: number, fn: () => Promise<void>): Promise<{ seconds: number; processUs: number; serverUs: number | null }> {
  const server0 = db.kind === 'postgres' ? await backendCpuMs(db) : null;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  await fn();
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const server1 = server0 === null ? null : await backendCpuMs(db);
  const serverMs = backendCpuSpent(server0, server1);
  return { seconds, processUs: (cpu.user + cpu.system) / events, serverUs: serverMs === null ? null : (serverMs * 1000) / events };
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

/** A typical event: CONNECTOR_INVOKED for a get_compliance answered from the cache (~560 bytes stored). */
function event(tenant: string, i: number): AppendInput {
  return {
    tenant,
    type: 'CONNECTOR_INVOKED',
    actor: { kind: 'agent', id: 'key:3f2a9c0d1e' },
    requestId: `req-${i}`,
    data: {
      operation: 'get_compliance',
      capability: 'READ',
      decision: 'allowed',
      reason: 'allowed',
      outcome: 'succeeded',
      target: { device_id: '0f8fad5b-d9cb-469f-a165-70867728950e', azure_ad_device_id: '7c9e6679-7425-40de-944b-e07fc1f90ae7' },
      result_count: 1,
      duration_ms: 0.42,
      graph_request_id: null,
      cache: { hit: true, stale: false },
      channel: 'mcp',
    },
  };
}

interface Backend {
  readonly name: 'postgres' | 'pglite';
  open(): Promise<Db>;
  drop(): Promise<void>;
}

function postgresBackend(): Backend {
  const name = `ic_bench_chronicle_${crypto.randomBytes(4).toString('hex')}`;
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  let created = false;
  return {
    name: 'postgres',
    async open() {
      if (!created) {
        await adminQuery(SERVER_URL, `CREATE DATABASE ${name}`);
        created = true;
      }
      const db = openPostgres({ url: url.toString(), maxConnections: 8 });
      await runMigrations(db, chronicleMigrations);
      return db;
    },
    async drop() {
      if (created) await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

function pgliteBackend(): Backend {
  return {
    name: 'pglite',
    async open() {
      const db = await openPGlite({ dataDir: 'memory://' });
      await runMigrations(db, chronicleMigrations);
      return db;
    },
    async drop() {},
  };
}

interface AppendRun {
  readonly appendsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanBatch: number;
}

async function appendRun(chronicle: Chronicle, tenant: string, writers: number): Promise<AppendRun> {
  const latencies: number[] = [];
  const before = chronicle.stats();
  const deadline = performance.now() + SECONDS * 1000;
  let i = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        await chronicle.append(event(tenant, i++));
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const after = chronicle.stats();
  latencies.sort((a, b) => a - b);
  return {
    appendsPerSecond: latencies.length / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    meanBatch: (after.appended - before.appended) / Math.max(1, after.batches - before.batches),
  };
}

async function fill(chronicle: Chronicle, tenant: string, count: number): Promise<void> {
  const inFlight = 2_000;
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) await chronicle.append(event(tenant, next++));
    }),
  );
}

async function benchBackend(backend: Backend, verifyEvents: number) {
  const opened = await backend.open();
  const db: Db = NO_READERS ? (({ readerConnection: _readers, ...rest }) => rest)(opened) : opened;
  try {
    // Defaults for the measured appends; a larger batch bound only to build the chain verify reads.
    const chronicle = await createChronicle({ db, appendTimeoutMs: 60_000, verify: { ...(VERIFY_WORKERS === undefined ? {} : { workers: VERIFY_WORKERS }), ...(VERIFY_CHUNK === undefined ? {} : { chunkSize: VERIFY_CHUNK }) } });
    const filler = await createChronicle({ db, maxBatch: 2_000, appendTimeoutMs: 60_000 });
    const appends: Record<string, { appendsPerSecond: number; p50Ms: number; p99Ms: number; meanBatch: number; runs: AppendRun[] }> = {};
    for (const writers of WRITERS) {
      const runs: AppendRun[] = [];
      // Warm-up: first appends create the head row and warm the plan cache.
      await appendRun(chronicle, `w${writers}`, writers);
      for (let r = 0; r < RUNS; r++) runs.push(await appendRun(chronicle, `w${writers}`, writers));
      appends[String(writers)] = {
        appendsPerSecond: Math.round(median(runs.map((x) => x.appendsPerSecond))),
        p50Ms: Number(median(runs.map((x) => x.p50Ms)).toFixed(3)),
        p99Ms: Number(median(runs.map((x) => x.p99Ms)).toFixed(3)),
        meanBatch: Number(median(runs.map((x) => x.meanBatch)).toFixed(1)),
        runs,
      };
      const a = appends[String(writers)];
      console.log(
        `${backend.name.padEnd(8)} ${String(writers).padStart(2)} writers: ${String(a?.appendsPerSecond).padStart(6)} appends/s  p50 ${a?.p50Ms} ms  p99 ${a?.p99Ms} ms  (mean batch ${a?.meanBatch})`,
      );
    }

    const t0 = performance.now();
    await fill(filler, 'verify', verifyEvents);
    await filler.close();
    const fillSeconds = (performance.now() - t0) / 1000;
    if (db.kind === 'postgres') await db.query('ANALYZE chronicle_event');
    const verifyRuns: number[] = [];
    const floorRuns: number[] = [];
    const verifyCpu: Array<{ processUs: number; serverUs: number | null }> = [];
    const floorCpu: Array<{ processUs: number; serverUs: number | null }> = [];
    await chronicle.verify({ tenant: 'verify' }); // warm-up: starts the worker threads, warms the cache
    await sequentialRead(db, 'verify', verifyEvents);
    // Interleaved, so both see the same machine load.
    for (let r = 0; r < Math.max(RUNS, 5); r++) {
      const v = await measured(db, verifyEvents, async () => {
        const report = await chronicle.verify({ tenant: 'verify' });
        if (!report.ok || report.eventsChecked !== verifyEvents) throw new Error(`verify failed: ${JSON.stringify(report.chains[0])}`);
      });
      verifyRuns.push(verifyEvents / v.seconds);
      verifyCpu.push(v);
      const f = await measured(db, verifyEvents, async () => void (await sequentialRead(db, 'verify', verifyEvents)));
      floorRuns.push(verifyEvents / f.seconds);
      floorCpu.push(f);
    }
    // CPU per event: what a busy machine distorts far less than events per second.
    const cpuOf = (runs: ReadonlyArray<{ processUs: number; serverUs: number | null }>) => ({
      processUs: Number(median(runs.map((x) => x.processUs)).toFixed(2)),
      serverUs: runs.some((x) => x.serverUs === null) ? null : Number(median(runs.map((x) => x.serverUs as number)).toFixed(2)),
    });
    const cpu = { verify: cpuOf(verifyCpu), floor: cpuOf(floorCpu) };
    const verifyPerSecond = Math.round(median(verifyRuns));
    const floorPerSecond = Math.round(median(floorRuns));
    // Three decimals, so that a ratio just under a target never prints as the target itself.
    const ratio = Number((verifyPerSecond / floorPerSecond).toFixed(3));
    console.log(
      `${backend.name.padEnd(8)} verify: ${verifyPerSecond} events/s over ${verifyEvents} events (runs: ${verifyRuns.map((v) => Math.round(v)).join(', ')}; chain built at ${Math.round(verifyEvents / fillSeconds)} appends/s with 2000 in flight)`,
    );
    console.log(
      `${backend.name.padEnd(8)} floor:  ${floorPerSecond} events/s, a plain sequential read of the same bodies (runs: ${floorRuns.map((v) => Math.round(v)).join(', ')}); verify/floor ${ratio}`,
    );
    const server = (us: number | null) => (us === null ? '' : ` + ${us} µs in the database server`);
    console.log(
      `${backend.name.padEnd(8)} CPU per event (medians): verify ${cpu.verify.processUs} µs in this process${server(cpu.verify.serverUs)}; floor ${cpu.floor.processUs} µs${server(cpu.floor.serverUs)}`,
    );
    await chronicle.close();
    return {
      appends,
      verify: { events: verifyEvents, eventsPerSecond: verifyPerSecond, runs: verifyRuns.map(Math.round), cpuPerEvent: cpu.verify },
      floor: { eventsPerSecond: floorPerSecond, runs: floorRuns.map(Math.round), cpuPerEvent: cpu.floor },
      verifyToFloor: ratio,
    };
  } finally {
    await db.close();
    await backend.drop();
  }
}

async function main(): Promise<void> {
  const { availableParallelism, loadavg } = await import('node:os');
  console.log(
    `bench:chronicle — ${RUNS} runs of ${SECONDS} s per writer count, medians; node ${process.version}, ${availableParallelism()} CPUs, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const results: Record<string, unknown> = { date: new Date().toISOString(), runs: RUNS, secondsPerRun: SECONDS, loadAtStart: loadavg() };
  if (BACKENDS.includes('postgres')) results['postgres'] = await benchBackend(postgresBackend(), VERIFY_EVENTS_PG);
  if (BACKENDS.includes('pglite')) results['pglite'] = await benchBackend(pgliteBackend(), VERIFY_EVENTS_PGLITE);
  const pgResult = results['postgres'] as Awaited<ReturnType<typeof benchBackend>> | undefined;
  if (pgResult !== undefined) {
    const sixteen = pgResult.appends['16']?.appendsPerSecond ?? 0;
    console.log(
      `targets: 16 writers on PostgreSQL ${sixteen} appends/s (target ≥ 5000: ${sixteen >= 5000 ? 'met' : 'NOT met'}); ` +
        `verify ${pgResult.verify.eventsPerSecond} events/s (target ≥ 250000: ${pgResult.verify.eventsPerSecond >= 250_000 ? 'met' : 'NOT met'}), ` +
        `${pgResult.verifyToFloor} of the floor (target ≥ 0.6: ${pgResult.verifyToFloor >= 0.6 ? 'met' : 'NOT met'})`,
    );
  }
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'chronicle.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
}

await main();
