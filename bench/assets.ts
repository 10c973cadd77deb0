/**
 * Asset identity benchmark: match BENCH_DEVICES Intune records (default 100,000; 5 % of them
 * re-enrolled copies of another record) and BENCH_AGENTS enrolled agents (default 20,000; three
 * quarters of them machines Intune knows) from scratch, then re-match after one sync changed 1 %
 * of the records (compliance flips, and a third of them a new serial that now matches an agent).
 * Real PostgreSQL, the real asset service and Chronicle (the merge events commit with the match).
 *
 * The rows are made by SQL (generate_series) in a fresh database, so this process holds only what
 * matching needs. Peak RSS is the process's high-water mark (getrusage maxrss) after the runs.
 *
 * Env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_RUNS (3),
 * BENCH_DEVICES (100000), BENCH_AGENTS (20000). Prints medians; writes bench/results/assets.json.
 * Targets: from scratch < 10 s, incremental < 1 s, peak RSS < 300 MB.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log/index.js';
import { openRuntime } from '../src/runtime/index.js';
import { createAssetService } from '../src/assets/index.js';
import { adminQuery, median } from './lib.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER_URL = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const DEVICES = Number(process.env['BENCH_DEVICES'] ?? 100_000);
const AGENTS = Number(process.env['BENCH_AGENTS'] ?? 20_000);
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

async function seed(db: { query(sql: string, params?: unknown[]): Promise<unknown> }): Promise<void> {
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

async function snapshotInto(db: { query(sql: string, params?: unknown[]): Promise<unknown> }, run: string, changedEvery: number | null, round: number) {
  await db.query(`INSERT INTO intune_sync_runs (id, connection_id, tenant, status, trigger, holder, started_at, finished_at) VALUES ($1, $2, $3, 'succeeded', 'manual', 'bench', now(), now())`, [
    run,
    CONNECTION,
    TENANT,
  ]);
  await db.query(snapshotSql(run, changedEvery, round));
  await db.query('UPDATE intune_connections SET current_snapshot_id = $1, snapshot_at = now() WHERE id = $2', [run, CONNECTION]);
  await db.query('DELETE FROM intune_device_postures WHERE snapshot_id <> $1', [run]);
}

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

async function main() {
  const name = `ic_bench_assets_${crypto.randomBytes(4).toString('hex')}`;
  await adminQuery(SERVER_URL, `CREATE DATABASE ${name}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-bench-assets-'));
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  const env = { DATABASE_URL: url.toString(), INTUNE_DATA_DIR: dataDir, CHRONICLE_CHECKPOINT_INTERVAL: '0', INTUNE_ENABLED: 'false' };
  const logger = createLogger({ level: 'silent' });
  const runtime = await openRuntime(loadConfig(env), { logger, demo: false });
  const rows: { scratchMs: number; incrementalMs: number; scratch: unknown; incremental: unknown }[] = [];
  try {
    await seed(runtime.db);
    await runtime.db.query('ANALYZE');
    const assets = createAssetService({ db: runtime.db, chronicle: runtime.chronicle, logger });
    for (let i = 0; i < RUNS; i += 1) {
      // From scratch: nothing stored for the tenant.
      await runtime.db.query('DELETE FROM asset_sources WHERE tenant = $1', [TENANT]);
      await runtime.db.query('DELETE FROM assets WHERE tenant = $1', [TENANT]);
      await runtime.db.query('DELETE FROM asset_conflicts WHERE tenant = $1', [TENANT]);
      await snapshotInto(runtime.db, crypto.randomUUID(), null, 0);
      let start = process.hrtime.bigint();
      const scratch = await assets.rebuild(TENANT);
      const scratchMs = ms(start);
      await runtime.db.query('ANALYZE asset_sources');
      // One sync changed 1 % of the records.
      await snapshotInto(runtime.db, crypto.randomUUID(), 100, i + 1);
      start = process.hrtime.bigint();
      const incremental = await assets.rematchConnection(TENANT, CONNECTION);
      const incrementalMs = ms(start);
      rows.push({ scratchMs, incrementalMs, scratch, incremental });
      process.stdout.write(`run ${i + 1}: from scratch ${scratchMs.toFixed(0)} ms (${JSON.stringify(scratch)}); incremental ${incrementalMs.toFixed(0)} ms (${JSON.stringify(incremental)})\n`);
    }
  } finally {
    await runtime.close();
    await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  const summary = {
    devices: DEVICES,
    agents: AGENTS,
    changedFraction: 0.01,
    runs: rows,
    median: { fromScratchMs: median(rows.map((r) => r.scratchMs)), incrementalMs: median(rows.map((r) => r.incrementalMs)) },
    peakRssMb: Math.round(peakRssMb),
    targets: { fromScratchMs: 10_000, incrementalMs: 1_000, peakRssMb: 300 },
  };
  process.stdout.write(
    `median of ${RUNS}: ${DEVICES} Intune records + ${AGENTS} agents matched from scratch in ${summary.median.fromScratchMs.toFixed(0)} ms (target < 10000); ` +
      `re-match after a sync changed 1 %: ${summary.median.incrementalMs.toFixed(0)} ms (target < 1000); peak RSS ${summary.peakRssMb} MB (target < 300)\n`,
  );
  fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
  fs.writeFileSync(path.join(HERE, 'results', 'assets.json'), `${JSON.stringify(summary, null, 2)}\n`);
}

await main();
