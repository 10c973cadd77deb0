/**
 * bench:sync — a full posture sync from the simulator into PostgreSQL, sequential nextLink paging
 * against the partitioned read, at Graph's real page latency and while devices check in: wall
 * time, Graph requests and 429s (counted by the simulator, GET /_simulator/stats), and peak RSS of
 * the syncing process.
 *
 * The simulator runs as its own process (`intune-connector simulator --devices N --faults
 * page-latency=800-2500,checkin=5`, its `export` lines parsed), so it does not share the sync's
 * event loop or heap: the figures are the sync's. The sync runs in this process exactly as `serve`
 * runs it: real MSAL and Graph client over HTTPS, redaction, page upserts, the snapshot flip and
 * the sync_completed append to a real Chronicle, against a fresh PostgreSQL database. Sequential
 * and partitioned runs alternate (one of each per round), so machine noise hits both alike; the
 * first sequential run also makes the snapshot the partitioned runs take their ranges from.
 *
 *   npm run bench:sync                                           # 100,000 devices, 3 rounds, 800-2500 ms pages
 *   npm run bench:sync -- --devices 20000 --runs 2 --latency 100-300 --checkins 5
 *   npm run bench:sync -- --devices 1000000 --runs 1 --latency off --mode partitioned   # memory at scale
 *
 * Targets: partitioned >= 4x faster than sequential, no 429, peak RSS <= 200 MB at 100,000
 * devices and <= 300 MB at 1,000,000.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Agent, fetch } from 'undici';
import { createChronicle } from '../src/chronicle/index.js';
import { loadConfig } from '../src/config/index.js';
import { openDatabase } from '../src/db/index.js';
import { createLogger } from '../src/log/index.js';
import { createPostureService, secretProviderFromConfig, type PostureService } from '../src/posture/index.js';
import { fingerprintKeys } from '../src/runtime/index.js';
import { median } from './lib.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const TARGET_SPEEDUP = 4;
const TARGET_RSS_MB_100K = 200;
const TARGET_RSS_MB_1M = 300;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function flag(name: string, fallback: number): number {
  const raw = arg(name);
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a whole number`);
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

async function startSimulatorProcess(devices: number, faults: string): Promise<{ child: ChildProcess; env: Record<string, string> }> {
  const child = spawn(
    process.execPath,
    [
      '--max-old-space-size=8192',
      '--import',
      'tsx',
      path.join(here, '..', 'src', 'cli.ts'),
      'simulator',
      '--devices',
      String(devices),
      '--port',
      '0',
      '--seed',
      'bench',
      ...(faults !== '' ? ['--faults', faults] : []),
    ],
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

interface SimulatorStats {
  total: number;
  requests: Record<string, number>;
  statuses: Record<string, number>;
  checkins: number;
}

interface RunResult {
  round: number;
  mode: 'sequential' | 'partitioned';
  wall_ms: number;
  current_after_ms: number;
  devices: number;
  graph_requests: number;
  throttled_429: number;
  checkins: number;
  peak_rss_mb: number;
  peak_heap_mb: number;
}

async function main(): Promise<void> {
  const devices = flag('devices', 100_000);
  const rounds = Math.max(1, flag('runs', 3));
  const latency = arg('latency') ?? '800-2500';
  const checkins = flag('checkins', 5);
  const concurrency = flag('concurrency', 16);
  const mode = arg('mode') ?? 'both';
  if (!['both', 'sequential', 'partitioned'].includes(mode)) throw new Error('--mode must be both, sequential or partitioned');
  const faults = [latency === 'off' ? '' : `page-latency=${latency}`, checkins > 0 ? `checkin=${checkins}` : ''].filter((f) => f !== '').join(',');

  const serverUrl = process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = `bench_sync_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-sync-'));

  process.stderr.write(`bench:sync: starting the simulator with ${devices} devices (child process), faults "${faults}"\n`);
  const { child, env } = await startSimulatorProcess(devices, faults);
  const agent = new Agent({ connect: { ca: fs.readFileSync(env['INTUNE_CA_FILE'] as string, 'utf8') } });
  const statsUrl = `${env['INTUNE_GRAPH_URL']}/_simulator/stats`;
  const readStats = async (): Promise<SimulatorStats> => (await (await fetch(statsUrl, { dispatcher: agent })).json()) as SimulatorStats;
  const resetStats = async (): Promise<void> => {
    await (await fetch(statsUrl, { method: 'DELETE', dispatcher: agent })).arrayBuffer();
  };

  const baseEnv = { ...env, DATABASE_URL: url.toString(), INTUNE_DATA_DIR: dir, INTUNE_SYNC_INTERVAL: '0', LOG_LEVEL: 'warn' };
  const logger = createLogger({ level: 'warn' });
  const sequentialConfig = loadConfig({ ...baseEnv, INTUNE_SYNC_CONCURRENCY: '1' }, { cwd: dir });
  const partitionedConfig = loadConfig({ ...baseEnv, INTUNE_SYNC_CONCURRENCY: String(concurrency) }, { cwd: dir });
  const db = await openDatabase(sequentialConfig.database);
  const chronicle = await createChronicle({ db, logger, ...sequentialConfig.chronicle, checkpointIntervalMs: 0 });
  const keys = fingerprintKeys({ dataDir: dir }).keyFor;
  const serviceFor = (config: typeof sequentialConfig): PostureService =>
    createPostureService({ db, chronicle, logger, secrets: secretProviderFromConfig(config, baseEnv), config, fingerprintKeyFor: keys });
  const services = { sequential: serviceFor(sequentialConfig), partitioned: serviceFor(partitionedConfig) };

  let startRssMb = 0;
  const results: RunResult[] = [];
  try {
    const connection = await services.sequential.bootstrapFromConfig(sequentialConfig);
    if (connection === null) throw new Error('the simulator printed no ENTRA_* variables');
    startRssMb = Math.round(process.memoryUsage.rss() / 1024 / 1024);
    process.stdout.write(`RSS before the first run (modules loaded, connection bootstrapped): ${startRssMb} MB\n`);
    const plan: ('sequential' | 'partitioned')[] = [];
    for (let round = 1; round <= rounds; round++) {
      if (mode !== 'partitioned' || round === 1) plan.push('sequential');
      if (mode !== 'sequential') plan.push('partitioned');
    }
    let round = 0;
    for (const [index, which] of plan.entries()) {
      if (which === 'sequential' || plan[index - 1] !== 'sequential') round += 1;
      const measured = !(mode === 'partitioned' && which === 'sequential');
      await resetStats();
      let peakRss = process.memoryUsage.rss();
      let peakHeap = process.memoryUsage().heapUsed;
      const sampler = setInterval(() => {
        const usage = process.memoryUsage();
        peakRss = Math.max(peakRss, usage.rss);
        peakHeap = Math.max(peakHeap, usage.heapUsed);
      }, 20);
      const started = performance.now();
      const { done } = await services[which].startSync('default', connection.id, { kind: 'system', id: 'bench' });
      const run = await done;
      const wallMs = performance.now() - started;
      clearInterval(sampler);
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      if (run.status !== 'succeeded') throw new Error(`${which} run failed: ${run.error_code}: ${run.error_message}`);
      const stats = await readStats();
      if (!measured) {
        process.stdout.write(`(seed run, sequential, not measured: ${run.devices} devices in ${(wallMs / 1000).toFixed(1)} s)\n`);
        continue;
      }
      const result: RunResult = {
        round,
        mode: which,
        wall_ms: Math.round(wallMs),
        // until the new snapshot was current; the rest of wall_ms deletes the replaced one
        current_after_ms: run.duration_ms ?? 0,
        devices: run.devices,
        graph_requests: stats.total,
        throttled_429: stats.statuses['429'] ?? 0,
        checkins: stats.checkins,
        peak_rss_mb: Math.round(peakRss / 1024 / 1024),
        peak_heap_mb: Math.round(peakHeap / 1024 / 1024),
      };
      results.push(result);
      process.stdout.write(
        `round ${round} ${which.padEnd(11)}: ${result.devices} devices in ${(wallMs / 1000).toFixed(2)} s ` +
          `(current after ${(result.current_after_ms / 1000).toFixed(2)} s), ${result.graph_requests} Graph requests, ` +
          `${result.throttled_429} x 429, ${result.checkins} check-ins during the run, peak RSS ${result.peak_rss_mb} MB (heap ${result.peak_heap_mb} MB)\n`,
      );
    }
  } finally {
    await services.sequential.close();
    await services.partitioned.close();
    await chronicle.close();
    await db.close();
    await agent.close();
    child.kill('SIGTERM');
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const summarise = (which: 'sequential' | 'partitioned') => {
    const runs = results.filter((r) => r.mode === which);
    if (runs.length === 0) return null;
    return {
      runs: runs.length,
      median_wall_ms: Math.round(median(runs.map((r) => r.wall_ms))),
      median_graph_requests: Math.round(median(runs.map((r) => r.graph_requests))),
      throttled_429: runs.reduce((n, r) => n + r.throttled_429, 0),
      peak_rss_mb: Math.max(...runs.map((r) => r.peak_rss_mb)),
    };
  };
  const sequential = summarise('sequential');
  const partitioned = summarise('partitioned');
  const speedup = sequential !== null && partitioned !== null ? sequential.median_wall_ms / partitioned.median_wall_ms : null;
  const rssTarget = devices <= 100_000 ? TARGET_RSS_MB_100K : TARGET_RSS_MB_1M;
  const processMaxRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  const summary = {
    benchmark: 'sync',
    devices,
    page_latency_ms: latency,
    checkins_per_page: checkins,
    concurrency,
    runs: results,
    sequential,
    partitioned,
    speedup: speedup === null ? null : Math.round(speedup * 100) / 100,
    start_rss_mb: startRssMb,
    process_max_rss_mb: processMaxRssMb,
    target: { speedup: TARGET_SPEEDUP, throttled_429: 0, rss_mb: rssTarget },
    machine: { cpus: os.cpus().length, node: process.version },
  };
  const pass =
    (speedup === null || speedup >= TARGET_SPEEDUP) && results.every((r) => r.throttled_429 === 0) && processMaxRssMb <= rssTarget;
  const line = (name: string, s: ReturnType<typeof summarise>) =>
    s === null
      ? ''
      : `${name}: median ${(s.median_wall_ms / 1000).toFixed(2)} s over ${s.runs} run(s), ${s.median_graph_requests} Graph requests, ${s.throttled_429} x 429, peak RSS ${s.peak_rss_mb} MB\n`;
  process.stdout.write(
    `\n${devices} devices, pages ${latency} ms, ${checkins} check-ins per page served\n` +
      line('sequential ', sequential) +
      line('partitioned', partitioned) +
      (speedup !== null ? `speed-up ${speedup.toFixed(2)}x (target >= ${TARGET_SPEEDUP}x)\n` : '') +
      `process max RSS ${processMaxRssMb} MB (target <= ${rssTarget} MB). Targets: ${pass ? 'met' : 'NOT met'}\n`,
  );
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  const file = devices === 100_000 && latency !== 'off' ? 'sync.json' : `sync-${devices}${latency === 'off' ? '-nolatency' : ''}.json`;
  fs.writeFileSync(path.join(here, 'results', file), `${JSON.stringify({ ...summary, pass }, null, 2)}\n`);
}

await main();
