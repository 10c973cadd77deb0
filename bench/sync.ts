/**
 * bench:sync — a full posture sync of 100,000 devices from the simulator into PostgreSQL: wall
 * time, devices per second and peak RSS of the syncing process.
 *
 * The simulator runs as its own process (`intune-connector simulator --devices N --port 0`, its
 * `export` lines parsed), so it does not share the sync's event loop or heap: the figures are the
 * sync's. The sync runs in this process exactly as `serve` runs it: real MSAL and Graph client over
 * HTTPS, redaction, page inserts, the snapshot flip and the sync_completed append to a real
 * Chronicle, against a fresh PostgreSQL database. Run 1 fills an empty table; later runs replace
 * the previous snapshot (insert 100,000 rows, flip, delete the old 100,000), the steady state.
 *
 *   npm run bench:sync                               # 100,000 devices, 5 runs
 *   npm run bench:sync -- --devices 20000 --runs 3
 *
 * Target: under 20 s and under 300 MB peak RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createChronicle } from '../src/chronicle/index.js';
import { loadConfig } from '../src/config/index.js';
import { openDatabase } from '../src/db/index.js';
import { createLogger } from '../src/log/index.js';
import { createPostureService, secretProviderFromConfig } from '../src/posture/index.js';
import { fingerprintKeys } from '../src/runtime/index.js';
import { median } from './lib.js';
import { DEFAULT_TENANT } from '../src/common/ids.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const TARGET_WALL_MS = 20_000;
const TARGET_RSS_MB = 300;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive whole number`);
  return value;
}

/** `export NAME=value` or `export NAME='va'\''lue'`, as the simulator prints them. */
function parseExportLine(line: string): [string, string] | undefined {
  const match = /^export ([A-Z_]+)=(.*)$/.exec(line);
  if (match === null) return undefined;
  const raw = match[2] as string;
  const value = raw.startsWith("'") ? raw.slice(1, -1).replace(/'\\''/g, "'") : raw;
  return [match[1] as string, value];
}

async function startSimulatorProcess(devices: number): Promise<{ child: ChildProcess; env: Record<string, string> }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(here, '..', 'src', 'cli.ts'), 'simulator', '--devices', String(devices), '--port', '0', '--seed', 'bench'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const env: Record<string, string> = {};
  const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the simulator exited (${code}) before printing its variables`)));
    lines.on('line', (line) => {
      const entry = parseExportLine(line);
      if (entry !== undefined) env[entry[0]] = entry[1];
      if (env['INTUNE_CA_FILE'] !== undefined && env['ENTRA_CLIENT_SECRET'] !== undefined && env['INTUNE_GRAPH_URL'] !== undefined) resolve();
    });
  });
  return { child, env };
}

async function main(): Promise<void> {
  const devices = flag('devices', 100_000);
  const runs = flag('runs', 5);
  const serverUrl = process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = `bench_sync_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-sync-'));

  process.stderr.write(`bench:sync: starting the simulator with ${devices} devices (child process)\n`);
  const { child, env } = await startSimulatorProcess(devices);
  const fullEnv = { ...env, DATABASE_URL: url.toString(), INTUNE_DATA_DIR: dir, INTUNE_SYNC_INTERVAL: '0', LOG_LEVEL: 'warn' };
  const config = loadConfig(fullEnv, { cwd: dir });
  const logger = createLogger({ level: 'warn' });
  const db = await openDatabase(config.database);
  const chronicle = await createChronicle({
    db,
    logger,
    ...config.chronicle,
    checkpointIntervalMs: 0,
  });
  const service = createPostureService({
    db,
    chronicle,
    logger,
    secrets: secretProviderFromConfig(config, fullEnv),
    config,
    fingerprintKeyFor: fingerprintKeys({ dataDir: dir }).keyFor,
  });
  let startRssMb = 0;
  const results: { run: number; wall_ms: number; current_after_ms: number; devices: number; devices_per_s: number; peak_rss_mb: number; peak_heap_mb: number; status: string }[] = [];
  try {
    const connection = await service.bootstrapFromConfig(config);
    if (connection === null) throw new Error('the simulator printed no ENTRA_* variables');
    startRssMb = Math.round(process.memoryUsage.rss() / 1024 / 1024);
    process.stdout.write(`RSS before the first run (modules loaded, connection bootstrapped): ${startRssMb} MB\n`);
    for (let i = 1; i <= runs; i++) {
      let peakRss = process.memoryUsage.rss();
      let peakHeap = process.memoryUsage().heapUsed;
      const sampler = setInterval(() => {
        const usage = process.memoryUsage();
        peakRss = Math.max(peakRss, usage.rss);
        peakHeap = Math.max(peakHeap, usage.heapUsed);
      }, 20);
      const started = performance.now();
      const { done } = await service.startSync(DEFAULT_TENANT, connection.id, { kind: 'system', id: 'bench' });
      const run = await done;
      const wallMs = performance.now() - started;
      clearInterval(sampler);
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      if (run.status !== 'succeeded') throw new Error(`run ${i} failed: ${run.error_code}: ${run.error_message}`);
      const result = {
        run: i,
        wall_ms: Math.round(wallMs),
        // until the new snapshot was current; the rest of wall_ms deletes the replaced one
        current_after_ms: run.duration_ms ?? 0,
        devices: run.devices,
        devices_per_s: Math.round(run.devices / (wallMs / 1000)),
        peak_rss_mb: Math.round(peakRss / 1024 / 1024),
        peak_heap_mb: Math.round(peakHeap / 1024 / 1024),
        status: run.status,
      };
      results.push(result);
      process.stdout.write(
        `run ${i}${i === 1 ? ' (empty table)' : ' (replaces a snapshot)'}: ${result.devices} devices in ${(wallMs / 1000).toFixed(2)} s ` +
          `(current after ${(result.current_after_ms / 1000).toFixed(2)} s), ` +
          `${result.devices_per_s} devices/s, peak RSS ${result.peak_rss_mb} MB (heap ${result.peak_heap_mb} MB)\n`,
      );
    }
  } finally {
    await service.close();
    await chronicle.close();
    await db.close();
    child.kill('SIGTERM');
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const medianWallMs = Math.round(median(results.map((r) => r.wall_ms)));
  const summary = {
    benchmark: 'sync',
    devices,
    runs: results,
    median_wall_ms: medianWallMs,
    median_devices_per_s: Math.round(median(results.map((r) => r.devices_per_s))),
    start_rss_mb: startRssMb,
    peak_rss_mb: Math.max(...results.map((r) => r.peak_rss_mb)),
    process_max_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    target: { wall_ms: TARGET_WALL_MS, rss_mb: TARGET_RSS_MB },
    machine: { cpus: os.cpus().length, node: process.version },
  };
  const pass = summary.median_wall_ms < TARGET_WALL_MS && summary.process_max_rss_mb < TARGET_RSS_MB;
  process.stdout.write(
    `\nmedian of ${runs}: ${(medianWallMs / 1000).toFixed(2)} s, ${summary.median_devices_per_s} devices/s; ` +
      `peak RSS ${summary.peak_rss_mb} MB (process max ${summary.process_max_rss_mb} MB). ` +
      `Target < ${TARGET_WALL_MS / 1000} s and < ${TARGET_RSS_MB} MB: ${pass ? 'met' : 'NOT met'}\n`,
  );
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  fs.writeFileSync(path.join(here, 'results', 'sync.json'), `${JSON.stringify({ ...summary, pass }, null, 2)}\n`);
}

await main();
