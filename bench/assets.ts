/**
 * Asset identity benchmark: match BENCH_DEVICES Intune records (default 100,000; 5 % of them
 * re-enrolled copies of another record) and BENCH_AGENTS enrolled agents (default 20,000; three
 * quarters of them machines Intune knows) from scratch, then re-match after one sync changed 1 %
 * of the records (compliance flips, and a third of them a new serial that now matches an agent).
 * Real PostgreSQL (or PGlite), the real asset service and Chronicle (the merge events commit with the match).
 * The re-match gets the list of changed records the sync computes (snapshotDiff, one pass the sync
 * makes for the compliance cache anyway; its time is printed apart, as "diff in the sync"), and is
 * measured a second time without it: the full comparison serve's reconcile at start makes.
 *
 * The rows are made by SQL (generate_series) in a fresh database, so this process holds only what
 * matching needs. Peak RSS is the process's high-water mark (getrusage maxrss) after the runs, and
 * per run after each phase; with PGlite it includes the embedded database's own memory.
 *
 * On a shared machine wall time says more about the neighbours than about the code, so every run
 * also reports CPU time: this process's (process.cpuUsage), and on PostgreSQL the server backends'
 * serving the benchmark database (from /proc, when the server runs on this machine), plus the
 * 1-minute load average at the start of the run.
 *
 * Env: BENCH_BACKEND (postgres | pglite, default postgres), BENCH_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres), BENCH_RUNS (3), BENCH_DEVICES (100000), BENCH_AGENTS
 * (20000), BENCH_TRACE=1 (the time of every statement, summed by statement). Prints medians; writes
 * bench/results/assets.json (assets-pglite.json for PGlite).
 * Targets: from scratch < 10 s, incremental < 1 s, peak RSS < 300 MB.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log/index.js';
import { openRuntime } from '../src/runtime/index.js';
import { createAssetService } from '../src/assets/index.js';
import type { Queryable } from '../src/db/index.js';
import { snapshotDiff, type SnapshotChanges } from '../src/posture/snapshots.js';
import { adminQuery, backendCpuMs, backendCpuSpent, median, type Querier } from './lib.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER_URL = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const DEVICES = Number(process.env['BENCH_DEVICES'] ?? 100_000);
const AGENTS = Number(process.env['BENCH_AGENTS'] ?? 20_000);
const BACKEND = process.env['BENCH_BACKEND'] ?? 'postgres';
const TENANT = 'bench';
const CONNECTION = '0b0b0b0b-0000-4000-8000-000000000001';
/** Unchanged records keep their last check-in from one sync to the next; changed ones checked in since. */
const BASE_MS = Date.now() - 86_400_000;

const fpSql = (expr: string) => `'hmac-sha256:' || encode(sha256(convert_to(${expr}, 'UTF8')), 'hex')`;

/** One snapshot of DEVICES records; records past 95 % repeat an earlier serial and Entra id (re-enrolment). */
function snapshotSql(snapshot: string, changedEvery: number | null, round: number): string {
  // m: the machine a record belongs to; c: whether this record changed in this sync.
  const changed = changedEvery === null ? 'false' : `(i % ${changedEvery} = ${round % changedEvery})`;
  const machine = `(CASE WHEN i > ${Math.floor(DEVICES * 0.95)} THEN i - ${Math.floor(DEVICES * 0.95)} ELSE i END)`;
  return `INSERT INTO intune_device_postures (snapshot_id, device_id, connection_id, tenant, os_family, compliance_state, ownership, last_sync_at, posture)
    SELECT '${snapshot}', d.device_id, '${CONNECTION}', '${TENANT}', d.os_family, d.state, 'company', d.seen::timestamptz, jsonb_build_object(
      'device_id', d.device_id, 'azure_ad_device_id', d.entra, 'os_family', d.os_family, 'os_version', '14.5', 'compliance_state', d.state,
      'grace_period_expires_at', null, 'is_encrypted', (d.i % 7 <> 0), 'jailbroken', 'false', 'management_agent', 'mdm', 'management_state', 'managed',
      'ownership', 'company', 'enrolled_at', '2026-01-01T00:00:00.000Z', 'last_sync_at', d.seen,
      'model', 'MacBook Pro', 'manufacturer', 'Apple', 'serial_fingerprint', d.serial)
    FROM (SELECT i, md5('device' || i)::uuid::text AS device_id, md5('entra' || ${machine})::uuid::text AS entra,
                 CASE WHEN i % 3 = 0 THEN 'windows' ELSE 'macos' END AS os_family,
                 CASE WHEN ${changed} THEN 'noncompliant' ELSE 'compliant' END AS state,
                 CASE WHEN ${changed} THEN '${new Date(BASE_MS + 60_000 * (round + 1)).toISOString()}' ELSE '${new Date(BASE_MS).toISOString()}' END AS seen,
                 CASE WHEN ${changed} AND i % 3 = 1 THEN ${fpSql(`'agent-only' || (i % ${Math.max(1, Math.floor(AGENTS / 4))})`)} ELSE ${fpSql(`'serial' || ${machine}`)} END AS serial
            FROM generate_series(1, ${DEVICES}) AS i) d`;
}

export async function seed(db: Queryable): Promise<void> {
  const run = crypto.randomUUID();
  await db.query(
    `INSERT INTO intune_connections (id, tenant, display_name, entra_tenant_id, client_id, cloud, secret_ref, status, origin, created_at, updated_at)
     VALUES ($1, $2, 'bench', 'contoso.onmicrosoft.com', $3, 'public', 'env:BENCH_SECRET', 'active', 'api', now(), now())`,
    [CONNECTION, TENANT, crypto.randomUUID()],
  );
  await snapshotInto(db, run, null, 0);
  const known = Math.floor(AGENTS * 0.75);
  await db.query(
    `INSERT INTO agents (agent_id, tenant, enrollment_id, token_id, platform, agent_class, os_family, os_version, model, serial_fingerprint, hardware_fingerprint,
       certificate_serial, certificate_expires_at, enrolled_at, last_seen_at, posture, posture_observed_at, posture_received_at)
     SELECT md5('agent' || i)::uuid, '${TENANT}', md5('enrollment' || i)::uuid, lpad(to_hex(i), 16, '0'), 'darwin', 'endpoint', 'macos', '14.5', 'MacBookPro18,3',
            CASE WHEN i <= ${known} THEN ${fpSql(`'serial' || (i * 4)`)} ELSE ${fpSql(`'agent-only' || (i - ${known})`)} END,
            ${fpSql(`'hardware' || i`)}, to_hex(i), now() + interval '30 days', now(), now(),
            jsonb_build_object('filevault', i % 5 <> 0, 'firewall', true, 'sip', true, 'gatekeeper', true, 'uptime_seconds', 3600, 'agent_version', '1.0.0'), now(), now()
       FROM generate_series(1, ${AGENTS}) AS i`,
  );
}

/** Writes a snapshot and makes it current, as a sync does; answers what the sync tells asset identity (null for the first). */
export async function snapshotInto(
  db: Queryable,
  run: string,
  changedEvery: number | null,
  round: number,
  onDiff?: (diff: () => Promise<SnapshotChanges | null>) => Promise<SnapshotChanges | null>,
): Promise<SnapshotChanges | null> {
  const [previous] = (await db.query<{ id: string | null }>('SELECT current_snapshot_id::text AS id FROM intune_connections WHERE id = $1', [CONNECTION])).rows;
  await db.query(`INSERT INTO intune_sync_runs (id, connection_id, tenant, status, trigger, holder, started_at, finished_at) VALUES ($1, $2, $3, 'succeeded', 'manual', 'bench', now(), now())`, [
    run,
    CONNECTION,
    TENANT,
  ]);
  await db.query(snapshotSql(run, changedEvery, round));
  const diff = async () => (previous?.id == null ? null : (await snapshotDiff(db, previous.id, run)).records);
  const changes = onDiff === undefined ? await diff() : await onDiff(diff);
  await db.query('UPDATE intune_connections SET current_snapshot_id = $1, snapshot_at = now() WHERE id = $2', [run, CONNECTION]);
  await db.query('DELETE FROM intune_device_postures WHERE snapshot_id <> $1', [run]);
  return changes;
}

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
/** The process's high-water mark so far, in MB: read after each phase, it says which phase set the peak. */
const maxRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);

/** Wall, client CPU and server CPU of one phase. */
async function measured<T>(db: Querier | null, work: () => Promise<T>): Promise<{ result: T; wallMs: number; clientCpuMs: number; serverCpuMs: number | null }> {
  const server0 = db === null ? null : await backendCpuMs(db);
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const result = await work();
  const wallMs = ms(start);
  const cpu = process.cpuUsage(cpu0);
  const server1 = db === null || server0 === null ? null : await backendCpuMs(db);
  return { result, wallMs, clientCpuMs: (cpu.user + cpu.system) / 1000, serverCpuMs: backendCpuSpent(server0, server1) };
}

type Traced = { query(sql: string, params?: readonly unknown[]): Promise<unknown> };
/** BENCH_TRACE=1: the wall time of every statement the asset service runs, summed by statement. */
const trace = new Map<string, { n: number; ms: number }>();
function traced<Q extends Traced>(q: Q): Q {
  if (process.env['BENCH_TRACE'] !== '1') return q;
  const wrapped = Object.create(q) as Q & { transaction?: unknown };
  wrapped.query = (async (sql: string, params?: readonly unknown[]) => {
    const start = process.hrtime.bigint();
    try {
      return await q.query(sql, params);
    } finally {
      const key = sql.replace(/\s+/g, ' ').slice(0, 110);
      const entry = trace.get(key) ?? { n: 0, ms: 0 };
      entry.n += 1;
      entry.ms += ms(start);
      trace.set(key, entry);
    }
  }) as Q['query'];
  const tx = (q as unknown as { transaction?: (fn: (t: Traced) => Promise<unknown>) => Promise<unknown> }).transaction;
  if (tx !== undefined) wrapped.transaction = (fn: (t: Traced) => Promise<unknown>) => tx.call(q, (t: Traced) => fn(traced(t)));
  return wrapped;
}
function printTrace(label: string): void {
  if (trace.size === 0) return;
  process.stdout.write(`  statements (${label}):\n`);
  for (const [sql, { n, ms: total }] of [...trace].sort((a, b) => b[1].ms - a[1].ms)) process.stdout.write(`    ${total.toFixed(0).padStart(7)} ms ${String(n).padStart(4)}x  ${sql}\n`);
  trace.clear();
}

interface Phase {
  wallMs: number;
  clientCpuMs: number;
  serverCpuMs: number | null;
}

async function main() {
  const postgres = BACKEND !== 'pglite';
  const name = `ic_bench_assets_${crypto.randomBytes(4).toString('hex')}`;
  if (postgres) await adminQuery(SERVER_URL, `CREATE DATABASE ${name}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-bench-assets-'));
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  const env: Record<string, string> = { INTUNE_DATA_DIR: dataDir, CHRONICLE_CHECKPOINT_INTERVAL: '0', INTUNE_ENABLED: 'false' };
  if (postgres) env['DATABASE_URL'] = url.toString();
  const logger = createLogger({ level: 'silent' });
  const runtime = await openRuntime(loadConfig(env), { logger, demo: false });
  const rows: {
    loadAvg1m: number;
    scratch: Phase & { report: unknown };
    diff: Phase;
    incremental: Phase & { report: unknown };
    fullComparison: Phase & { report: unknown };
    /** Peak RSS so far (MB) before the run and after each of its phases. */
    maxRssMb: { before: number; scratch: number; incremental: number; fullComparison: number };
  }[] = [];
  try {
    await seed(runtime.db);
    await runtime.db.query('ANALYZE');
    const assets = createAssetService({ db: traced(runtime.db), chronicle: runtime.chronicle, logger });
    const serverDb = postgres ? (runtime.db as unknown as Querier) : null;
    for (let i = 0; i < RUNS; i += 1) {
      // From scratch: nothing stored for the tenant.
      await runtime.db.query('DELETE FROM asset_sources WHERE tenant = $1', [TENANT]);
      await runtime.db.query('DELETE FROM assets WHERE tenant = $1', [TENANT]);
      await runtime.db.query('DELETE FROM asset_conflicts WHERE tenant = $1', [TENANT]);
      await snapshotInto(runtime.db, crypto.randomUUID(), null, 0);
      const loadAvg1m = os.loadavg()[0] as number;
      const rssBefore = maxRssMb();
      const { result: scratchReport, ...scratch } = await measured(serverDb, () => assets.rebuild(TENANT));
      const rssScratch = maxRssMb();
      printTrace('from scratch');
      await runtime.db.query('ANALYZE asset_sources');
      // One sync changed 1 % of the records, and says which.
      let diff: Phase | undefined;
      const changes = await snapshotInto(runtime.db, crypto.randomUUID(), 100, i + 1, async (compute) => {
        const { result, ...phase } = await measured(serverDb, compute);
        diff = phase;
        return result;
      });
      if (changes === null || diff === undefined) throw new Error('the bench sync listed no changes');
      const { result: incrementalReport, ...incremental } = await measured(serverDb, () => assets.rematchConnection(TENANT, CONNECTION, changes));
      const rssIncremental = maxRssMb();
      printTrace('incremental');
      // The same 1 % changed back, re-matched without the list: what serve's reconcile at start does.
      await snapshotInto(runtime.db, crypto.randomUUID(), null, 0);
      const { result: fullReport, ...fullComparison } = await measured(serverDb, () => assets.rematchConnection(TENANT, CONNECTION));
      printTrace('incremental, full comparison');
      rows.push({
        loadAvg1m,
        scratch: { ...scratch, report: scratchReport },
        diff,
        incremental: { ...incremental, report: incrementalReport },
        fullComparison: { ...fullComparison, report: fullReport },
        maxRssMb: { before: rssBefore, scratch: rssScratch, incremental: rssIncremental, fullComparison: maxRssMb() },
      });
      const peak = rows[rows.length - 1]?.maxRssMb;
      const line = (p: Phase) => `${p.wallMs.toFixed(0)} ms (cpu: client ${p.clientCpuMs.toFixed(0)} ms, server ${p.serverCpuMs === null ? '-' : `${p.serverCpuMs.toFixed(0)} ms`})`;
      process.stdout.write(
        `run ${i + 1} (load ${loadAvg1m.toFixed(1)}): from scratch ${line(scratch)} ${JSON.stringify(scratchReport)}; incremental ${line(incremental)} ${JSON.stringify(incrementalReport)}; ` +
          `diff in the sync ${line(diff)}; incremental without the list ${line(fullComparison)} ${JSON.stringify(fullReport)}; ` +
          `peak RSS so far ${JSON.stringify(peak)} MB\n`,
      );
    }
  } finally {
    await runtime.close();
    if (postgres) await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  const med = (pick: (r: (typeof rows)[number]) => number | null) => {
    const values = rows.map(pick).filter((v): v is number => v !== null);
    return values.length === 0 ? null : Math.round(median(values));
  };
  const summary = {
    backend: postgres ? 'postgres' : 'pglite',
    devices: DEVICES,
    agents: AGENTS,
    changedFraction: 0.01,
    runs: rows,
    median: {
      fromScratchMs: med((r) => r.scratch.wallMs),
      incrementalMs: med((r) => r.incremental.wallMs),
      fromScratchCpuMs: { client: med((r) => r.scratch.clientCpuMs), server: med((r) => r.scratch.serverCpuMs) },
      incrementalCpuMs: { client: med((r) => r.incremental.clientCpuMs), server: med((r) => r.incremental.serverCpuMs) },
      syncDiffMs: med((r) => r.diff.wallMs),
      syncDiffCpuMs: { client: med((r) => r.diff.clientCpuMs), server: med((r) => r.diff.serverCpuMs) },
      fullComparisonMs: med((r) => r.fullComparison.wallMs),
      fullComparisonCpuMs: { client: med((r) => r.fullComparison.clientCpuMs), server: med((r) => r.fullComparison.serverCpuMs) },
      loadAvg1m: median(rows.map((r) => r.loadAvg1m)),
    },
    peakRssMb: Math.round(peakRssMb),
    targets: { fromScratchMs: 10_000, incrementalMs: 1_000, peakRssMb: 300 },
  };
  const m = summary.median;
  process.stdout.write(
    `median of ${RUNS} (${summary.backend}, load ${m.loadAvg1m.toFixed(1)}): ${DEVICES} Intune records + ${AGENTS} agents matched from scratch in ${m.fromScratchMs} ms ` +
      `(target < 10000; cpu client ${m.fromScratchCpuMs.client} ms, server ${m.fromScratchCpuMs.server ?? '-'} ms); ` +
      `re-match after a sync changed 1 %: ${m.incrementalMs} ms (target < 1000; cpu client ${m.incrementalCpuMs.client} ms, server ${m.incrementalCpuMs.server ?? '-'} ms); ` +
      `peak RSS ${summary.peakRssMb} MB (target < 300); the sync's diff ${m.syncDiffMs} ms (cpu server ${m.syncDiffCpuMs.server ?? '-'} ms); ` +
      `re-match without the list ${m.fullComparisonMs} ms (cpu client ${m.fullComparisonCpuMs.client} ms, server ${m.fullComparisonCpuMs.server ?? '-'} ms)\n`,
  );
  fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
  fs.writeFileSync(path.join(HERE, 'results', postgres ? 'assets.json' : 'assets-pglite.json'), `${JSON.stringify(summary, null, 2)}\n`);
}

// Run when invoked as a script; importable (seed, snapshotInto) for profiling one step at a time.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
