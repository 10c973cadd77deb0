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
  start_rss_mb: number;
  peak_rss_mb: number;
  peak_heap_mb: number;
  /** CPU time of the syncing process during the run (user + system). */
  cpu_ms: number;
  /** V8's spaces and memory outside the heap when RSS peaked. */
  at_peak_mb: Record<string, unknown>;
}

interface WorkerResult {
  status: string;
  error: string | null;
  devices: number;
  pages: number;
  wall_ms: number;
  current_after_ms: number;
  start_rss_mb: number;
  peak_rss_mb: number;
  peak_heap_mb: number;
  process_max_rss_mb: number;
  cpu_ms: number;
  at_peak_mb: Record<string, unknown>;
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
  // A large simulated tenant keeps the simulator busy for a while after it starts listening.
  const agent = new Agent({ connect: { ca: fs.readFileSync(env['INTUNE_CA_FILE'] as string, 'utf8'), timeout: 300_000 }, headersTimeout: 300_000 });
  const statsUrl = `${env['INTUNE_GRAPH_URL']}/_simulator/stats`;
  const readStats = async (): Promise<SimulatorStats> => (await (await fetch(statsUrl, { dispatcher: agent })).json()) as SimulatorStats;
  const resetStats = async (): Promise<void> => {
    await (await fetch(statsUrl, { method: 'DELETE', dispatcher: agent })).arrayBuffer();
  };

  const baseEnv: Record<string, string> = { ...env, DATABASE_URL: url.toString(), INTUNE_DATA_DIR: dir, INTUNE_SYNC_INTERVAL: '0', LOG_LEVEL: 'warn' };
  const heapMb = flag('heap-mb', 0);
  /** One run in a fresh plain-node process running dist/, so the figures are the product's alone. */
  const runWorker = async (which: 'sequential' | 'partitioned'): Promise<WorkerResult> => {
    // BENCH_SYNC_NODE_ARGS: flags NODE_OPTIONS refuses (e.g. --trace-gc), space-separated
    const nodeArgs = (process.env['BENCH_SYNC_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
    const worker = spawn(process.execPath, [...(heapMb > 0 ? [`--max-old-space-size=${heapMb}`] : []), ...nodeArgs, path.join(here, 'sync-worker.mjs')], {
      env: {
        PATH: process.env['PATH'] ?? '',
        ...baseEnv,
        INTUNE_SYNC_CONCURRENCY: which === 'sequential' ? '1' : String(concurrency),
        // e.g. BENCH_SYNC_NODE_OPTIONS='--heap-prof --heap-prof-dir=/tmp/prof' to see where the memory goes
        ...(process.env['BENCH_SYNC_NODE_OPTIONS'] !== undefined ? { NODE_OPTIONS: process.env['BENCH_SYNC_NODE_OPTIONS'] } : {}),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    worker.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => worker.on('exit', resolve));
    // e.g. with BENCH_SYNC_NODE_OPTIONS=--trace-gc: the worker's own lines, before its result
    if (process.env['BENCH_SYNC_WORKER_OUTPUT'] !== undefined) fs.appendFileSync(process.env['BENCH_SYNC_WORKER_OUTPUT'], out);
    const line = out.trim().split('\n').at(-1) ?? '';
    if (code !== 0 || line === '') throw new Error(`the ${which} worker exited ${code} without a result`);
    const result = JSON.parse(line) as WorkerResult;
    if (result.status !== 'succeeded') throw new Error(`${which} run failed: ${result.error}`);
    return result;
  };

  const results: RunResult[] = [];
  try {
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
      const run = await runWorker(which);
      const stats = await readStats();
      if (!measured) {
        process.stdout.write(`(seed run, sequential, not measured: ${run.devices} devices in ${(run.wall_ms / 1000).toFixed(1)} s)\n`);
        continue;
      }
      const result: RunResult = {
        round,
        mode: which,
        wall_ms: run.wall_ms,
        // until the new snapshot was current; the rest of wall_ms deletes the replaced one
        current_after_ms: run.current_after_ms,
        devices: run.devices,
        graph_requests: stats.total,
        throttled_429: stats.statuses['429'] ?? 0,
        checkins: stats.checkins,
        start_rss_mb: run.start_rss_mb,
        peak_rss_mb: Math.max(run.peak_rss_mb, run.process_max_rss_mb),
        peak_heap_mb: run.peak_heap_mb,
        cpu_ms: run.cpu_ms,
        at_peak_mb: run.at_peak_mb,
      };
      results.push(result);
      process.stdout.write(
        `round ${round} ${which.padEnd(11)}: ${result.devices} devices in ${(run.wall_ms / 1000).toFixed(2)} s ` +
          `(current after ${(result.current_after_ms / 1000).toFixed(2)} s), ${result.graph_requests} Graph requests, ` +
          `${result.throttled_429} x 429, ${result.checkins} check-ins during the run, CPU ${(result.cpu_ms / 1000).toFixed(2)} s ` +
          `(${Math.round((result.cpu_ms * 1000) / Math.max(1, result.devices))} µs/device), RSS ${result.start_rss_mb} MB before, ` +
          `peak ${result.peak_rss_mb} MB (heap ${result.peak_heap_mb} MB; at the peak ${JSON.stringify(result.at_peak_mb)})\n`,
      );
    }
  } finally {
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
      median_cpu_ms: Math.round(median(runs.map((r) => r.cpu_ms))),
      median_graph_requests: Math.round(median(runs.map((r) => r.graph_requests))),
      throttled_429: runs.reduce((n, r) => n + r.throttled_429, 0),
      peak_rss_mb: Math.max(...runs.map((r) => r.peak_rss_mb)),
    };
  };
  const sequential = summarise('sequential');
  const partitioned = summarise('partitioned');
  const speedup = sequential !== null && partitioned !== null ? sequential.median_wall_ms / partitioned.median_wall_ms : null;
  const rssTarget = devices <= 100_000 ? TARGET_RSS_MB_100K : TARGET_RSS_MB_1M;
  const processMaxRssMb = Math.max(...results.map((r) => r.peak_rss_mb));
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
    heap_mb: heapMb > 0 ? heapMb : 'node default',
    peak_rss_mb: processMaxRssMb,
    target: { speedup: TARGET_SPEEDUP, throttled_429: 0, rss_mb: rssTarget },
    machine: { cpus: os.cpus().length, node: process.version, load_average: os.loadavg().map((l) => Math.round(l * 10) / 10) },
  };
  // Rows are keyed by (snapshot, device id) and the simulator serves exactly `devices` devices (none
  // enrolled during the run), so a snapshot of `devices` rows holds every device exactly once.
  const complete = results.every((r) => r.devices === devices);
  const pass =
    complete && (speedup === null || speedup >= TARGET_SPEEDUP) && results.every((r) => r.throttled_429 === 0) && processMaxRssMb <= rssTarget;
  const line = (name: string, s: ReturnType<typeof summarise>) =>
    s === null
      ? ''
      : `${name}: median ${(s.median_wall_ms / 1000).toFixed(2)} s over ${s.runs} run(s) (CPU ${(s.median_cpu_ms / 1000).toFixed(2)} s), ${s.median_graph_requests} Graph requests, ${s.throttled_429} x 429, peak RSS ${s.peak_rss_mb} MB\n`;
  process.stdout.write(
    `\n${devices} devices, pages ${latency} ms, ${checkins} check-ins per page served\n` +
      line('sequential ', sequential) +
      line('partitioned', partitioned) +
      `every device exactly once in every run: ${complete ? 'yes' : 'NO'}\n` +
      (speedup !== null ? `speed-up ${speedup.toFixed(2)}x (target >= ${TARGET_SPEEDUP}x)\n` : '') +
      `peak RSS of the syncing process ${processMaxRssMb} MB (target <= ${rssTarget} MB). Targets: ${pass ? 'met' : 'NOT met'}. Load average ${summary.machine.load_average.join(' ')}\n`,
  );
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  const file = devices === 100_000 && latency !== 'off' ? 'sync.json' : `sync-${devices}${latency === 'off' ? '-nolatency' : ''}.json`;
  fs.writeFileSync(path.join(here, 'results', file), `${JSON.stringify({ ...summary, complete, pass }, null, 2)}\n`);
}

await main();
