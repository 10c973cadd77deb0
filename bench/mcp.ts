/**
 * bench:mcp — tools/call latency of get_device_compliance on a warm compliance cache, with every
 * call audited in Chronicle, as an agent sees it: one call at a time, round trip measured at the
 * SDK client.
 *
 *   stdio: `node dist/cli.js mcp` as a child process, the SDK's stdio client in this process.
 *   HTTP:  `node dist/cli.js serve` as a child process (agent key from `keys create`), the SDK's
 *          Streamable HTTP client in this process, over loopback.
 *
 * Each on the embedded database (PGlite, the default for a desktop agent) and on PostgreSQL
 * (a fresh database at postgres://postgres@127.0.0.1:5432, skipped when unreachable). The
 * simulator runs in this process; on a warm cache no call reaches it while measuring.
 *
 *   npm run build && npm run bench:mcp
 *   npm run bench:mcp -- --calls 1000 --runs 5 --db pglite
 *
 * Target: p50 under 2 ms over stdio.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { startSimulator } from '../src/simulator/index.js';
import { median } from './lib.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'dist', 'cli.js');
const PG_SERVER = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

const CALLS = Number(arg('calls', '500'));
const RUNS = Number(arg('runs', '5'));
const WARM_DEVICES = 50;
const DBS = arg('db', 'both') === 'both' ? (['pglite', 'postgres'] as const) : ([arg('db', 'pglite')] as ['pglite' | 'postgres']);

type DbKind = 'pglite' | 'postgres';
interface RunFigures {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
}
interface Result {
  readonly transport: 'stdio' | 'http';
  readonly database: DbKind;
  readonly calls: number;
  readonly runs: readonly RunFigures[];
  readonly median: RunFigures;
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
const round = (ms: number): number => Math.round(ms * 1000) / 1000;

async function measure(client: Client, deviceIds: readonly string[]): Promise<RunFigures[]> {
  const call = async (deviceId: string): Promise<void> => {
    const result = (await client.callTool({ name: 'get_device_compliance', arguments: { device_id: deviceId } })) as CallToolResult;
    if (result.isError === true) throw new Error(`get_device_compliance failed: ${JSON.stringify(result.content)}`);
  };
  for (const id of deviceIds) await call(id); // warm the compliance cache
  const runs: RunFigures[] = [];
  for (let r = 0; r < RUNS; r += 1) {
    const samples: number[] = [];
    for (let i = 0; i < CALLS; i += 1) {
      const started = performance.now();
      await call(deviceIds[i % deviceIds.length] as string);
      samples.push(performance.now() - started);
    }
    samples.sort((a, b) => a - b);
    runs.push({ p50Ms: round(percentile(samples, 50)), p99Ms: round(percentile(samples, 99)), meanMs: round(samples.reduce((a, b) => a + b, 0) / samples.length) });
  }
  return runs;
}

function summarize(transport: Result['transport'], database: DbKind, runs: RunFigures[]): Result {
  return {
    transport,
    database,
    calls: CALLS,
    runs,
    median: { p50Ms: round(median(runs.map((r) => r.p50Ms))), p99Ms: round(median(runs.map((r) => r.p99Ms))), meanMs: round(median(runs.map((r) => r.meanMs))) },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function benchStdio(env: Record<string, string>, deviceIds: readonly string[], database: DbKind): Promise<Result> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'mcp'], env, cwd: ROOT, stderr: 'ignore' });
  const client = new Client({ name: 'bench-mcp', version: '1.0.0' });
  await client.connect(transport);
  try {
    return summarize('stdio', database, await measure(client, deviceIds));
  } finally {
    await client.close();
  }
}

async function benchHttp(env: Record<string, string>, deviceIds: readonly string[], database: DbKind): Promise<Result> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'keys', 'create', '--role', 'agent', '--name', 'bench'], { env, cwd: ROOT });
  const key = stdout.trim();
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [CLI, 'serve'], { env: { ...env, PORT: String(port), INTUNE_AGENT_PORT: '0' }, cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`serve exited with ${code} before it was ready`)));
      lines.on('line', (line) => {
        if (line.includes('serving at')) resolve();
      });
    });
    const client = new Client({ name: 'bench-mcp', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${key}` } },
        // The transport sends every request with one long-lived AbortSignal, to which Node's fetch
        // adds a listener per request until garbage collection (and warns past 1,500). The bench
        // never cancels, so its requests go without it.
        fetch: (url, init) => fetch(url, { ...init, signal: null }),
      }),
    );
    try {
      return summarize('http', database, await measure(client, deviceIds));
    } finally {
      await client.close();
    }
  } finally {
    child.removeAllListeners('exit');
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_SERVER, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function withDatabase<T>(kind: DbKind, fn: (env: Record<string, string>) => Promise<T>): Promise<T> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-bench-mcp-'));
  const name = `ic_bench_mcp_${crypto.randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_SERVER });
  let url: string | undefined;
  if (kind === 'postgres') {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const u = new URL(PG_SERVER);
    u.pathname = `/${name}`;
    url = u.toString();
  }
  try {
    return await fn({ INTUNE_DATA_DIR: dataDir, ...(url !== undefined ? { DATABASE_URL: url } : {}) });
  } finally {
    if (kind === 'postgres') {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * The floor under an audited call on PostgreSQL: one durable single-row commit (fsync), which
 * every Chronicle append waits for when calls come one at a time.
 */
async function commitFloorMs(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('CREATE TABLE bench_commit_probe (x int)');
    const samples: number[] = [];
    for (let i = 0; i < 200; i += 1) {
      const started = performance.now();
      await client.query('INSERT INTO bench_commit_probe VALUES ($1)', [i]);
      samples.push(performance.now() - started);
    }
    await client.query('DROP TABLE bench_commit_probe');
    return round(median(samples));
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const simulator = await startSimulator({ devices: 200, seed: 'bench-mcp', throttle: { requestsPer20s: 1_000_000 } });
  const deviceIds = simulator.devices.slice(0, WARM_DEVICES).map((d) => String(d['id']));
  const results: Result[] = [];
  const skipped: string[] = [];
  let postgresCommitP50Ms: number | undefined;
  try {
    for (const kind of DBS) {
      if (kind === 'postgres' && !(await postgresReachable())) {
        skipped.push(`postgres: not reachable at ${PG_SERVER}`);
        continue;
      }
      await withDatabase(kind, async (dbEnv) => {
        const env: Record<string, string> = {
          PATH: process.env['PATH'] ?? '',
          ...simulator.env,
          ...dbEnv,
          LOG_LEVEL: 'warn',
          CHRONICLE_CHECKPOINT_INTERVAL: '0',
          INTUNE_SYNC_INTERVAL: '0',
        };
        if (dbEnv['DATABASE_URL'] !== undefined) postgresCommitP50Ms = await commitFloorMs(dbEnv['DATABASE_URL']);
        results.push(await benchStdio(env, deviceIds, kind));
        results.push(await benchHttp(env, deviceIds, kind));
      });
    }
  } finally {
    await simulator.close();
  }

  process.stdout.write(`tools/call get_device_compliance, warm cache, audit on: ${CALLS} sequential calls x ${RUNS} runs (medians of the runs)\n`);
  process.stdout.write(`machine: ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
  process.stdout.write(`${'transport'.padEnd(10)}${'database'.padEnd(10)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'mean ms'.padStart(9)}   per-run p50\n`);
  for (const r of results) {
    process.stdout.write(
      `${r.transport.padEnd(10)}${r.database.padEnd(10)}${r.median.p50Ms.toFixed(3).padStart(9)}${r.median.p99Ms.toFixed(3).padStart(9)}${r.median.meanMs.toFixed(3).padStart(9)}   ${r.runs.map((x) => x.p50Ms.toFixed(3)).join(' ')}\n`,
    );
  }
  for (const s of skipped) process.stdout.write(`skipped ${s}\n`);
  if (postgresCommitP50Ms !== undefined) {
    process.stdout.write(`PostgreSQL durable single-row commit p50: ${postgresCommitP50Ms.toFixed(3)} ms (the floor of an audited call on PostgreSQL)\n`);
  }
  for (const r of results.filter((x) => x.transport === 'stdio')) {
    process.stdout.write(`target p50 < 2 ms over stdio on ${r.database}: ${r.median.p50Ms < 2 ? 'met' : 'NOT met'} (${r.median.p50Ms.toFixed(3)} ms)\n`);
  }

  const out = path.join(ROOT, 'bench', 'results', 'mcp.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(
    out,
    `${JSON.stringify({ bench: 'mcp', date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, calls: CALLS, runs: RUNS, loadAverage: os.loadavg(), postgresCommitP50Ms, results, skipped }, null, 2)}\n`,
  );
  process.stdout.write(`wrote ${path.relative(process.cwd(), out)}\n`);
}

await main();
