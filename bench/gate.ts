/**
 * Gate benchmark: audited decisions per second over HTTP, on a warm compliance cache, with
 * PostgreSQL.
 *
 * Two processes, as in production: this one generates load with autocannon; a child process
 * (`bench/gate.ts --serve`) runs the real main job (`startServer`, as `intune-connector serve`
 * does: every hook, metrics, the API key store, the gate, the connector with its Graph client
 * pointed at the demo simulator, used only to warm the cache, and Chronicle on a fresh PostgreSQL
 * database). Every 200 is a
 * decision recorded in Chronicle before it was sent: after each run the DEVICE_COMPLIANCE_CHECKED
 * rows are counted and must equal the 200 responses. Each run sends a fixed number of requests
 * (not a duration) so that no request is in flight when the rows are counted.
 *
 * Env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_RUNS (5),
 * BENCH_REQUESTS per run (50000), BENCH_CONNECTIONS (32), INTUNE_GATE_AGENT_CACHE_TTL (passed to
 * the server; 0 reads agents on every check), BENCH_POLICY_FILE (default
 * examples/accord-policy.yaml, whose device-management accord has posture rules; point it at a
 * file without rules to compare, such as bench/policies/compliance-only.yaml). Prints medians, with
 * the CPU time per decision of the server process and of the database's PostgreSQL backends (read
 * from /proc: on a shared machine a steadier figure than the rate), and what the server process saw
 * during each run: Chronicle's commit round trips (p50/p90/p99, from sending a batch to its answer)
 * and its event loop's utilisation and delay; writes bench/results/gate.json.
 *
 * The start-up sync runs and an agent that agrees with Intune is enrolled on every Mac of the load,
 * so with posture rules every Mac the gate allows is one whose agent measurements it reads.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { createHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log/index.js';
import { startServer as startMainJob } from '../src/api/server.js';
import { GATE_PATH } from '../src/gate/http.js';
import { APPEND_EXPECTING_SQL } from '../src/chronicle/writer.js';
import { adminQuery, backendCpuMs, backendCpuSpent, median } from './lib.js';
import { DEFAULT_TENANT } from '../src/common/ids.js';
import { runSimulatedAgent } from '../src/agents/reference-agent.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const SERVER_URL = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const REQUESTS = Number(process.env['BENCH_REQUESTS'] ?? 50_000);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 32);
const POLICY_FILE = path.resolve(process.env['BENCH_POLICY_FILE'] ?? path.join(ROOT, 'examples', 'accord-policy.yaml'));
const WARM_DEVICES = 100;
const ACCORD = 'device-management';
/** BENCH_CPU_PROF=dir: the gate server writes a V8 CPU profile there when it stops (node --cpu-prof). */
const PROFILE_FLAGS = process.env['BENCH_CPU_PROF'] !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_CPU_PROF']}`] : [];

/** The slice of autocannon's programmatic API used here (it ships no type declarations). */
interface AutocannonResult {
  readonly requests: { readonly average: number; readonly total: number };
  readonly latency: { readonly p50: number; readonly p99: number; readonly average: number; readonly max: number };
  readonly duration: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly '2xx': number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

interface ServerReady {
  readonly url: string;
  readonly key: string;
  readonly deviceIds: readonly string[];
  readonly warmDecisions: Readonly<Record<string, number>>;
  /** Agents enrolled on the Macs of the load, and how many of those Macs the gate allows (each check of one reads its agents). */
  readonly agentsEnrolled: number;
  readonly allowedMacsWithAgents: number;
  readonly pid: number;
}

/**
 * What the server process saw since the last ask (SIGUSR2; one JSON line on stdout): its event
 * loop's delay and utilisation, and Chronicle's commit round trips (from sending a batch to its
 * answer, as the writer sees them, event-loop lag included).
 */
interface ServerWindow {
  readonly eventLoopDelayP50Ms: number;
  readonly eventLoopDelayP99Ms: number;
  readonly eventLoopDelayMaxMs: number;
  readonly eventLoopUtilization: number;
  readonly commits: number;
  readonly commitP50Ms: number;
  readonly commitP90Ms: number;
  readonly commitP99Ms: number;
}

// ---------------------------------------------------------------------------------------------
// The server process.

async function serve(): Promise<void> {
  const config = loadConfig({ ...process.env, PORT: '0' });
  const logger = createLogger({ level: 'warn' });
  // The real main job (`intune-connector serve`): every hook, the key store, metrics and Chronicle.
  // The start-up sync runs so that asset identity knows the Intune records the agents below join.
  const server = await startMainJob(config, { logger, env: process.env, initialSync: 'wait', bootstrapKey: false, scheduler: false, demoAgents: 0 });
  const { key } = await server.keys.create({ tenant: DEFAULT_TENANT, role: 'gate', name: 'bench' }, { kind: 'system', id: 'bench' });
  const url = server.url;

  const simulator = server.runtime.demo?.simulator;
  if (simulator === undefined) throw new Error('the benchmark needs the demo simulator: unset ENTRA_*');
  const seen = new Set<string>();
  const warm: Array<Record<string, unknown>> = [];
  for (const device of simulator.devices) {
    const id = device['azureADDeviceId'];
    if (typeof id === 'string' && !seen.has(id)) {
      seen.add(id);
      warm.push(device);
    }
    if (warm.length === WARM_DEVICES) break;
  }
  const deviceIds = warm.map((d) => d['azureADDeviceId'] as string);

  // An enrolled agent on every Mac of the load, agreeing with Intune (FileVault on, the same macOS
  // version): with posture rules, every Mac the gate allows is one whose agents it must read.
  const agentKey = await server.keys.create({ tenant: DEFAULT_TENANT, role: 'admin', name: 'bench-agents' }, { kind: 'system', id: 'bench' });
  const agentUrl = server.agentListener.url.replace(/^https:\/\/(0\.0\.0\.0|\[::\])/, 'https://127.0.0.1');
  let agentsEnrolled = 0;
  for (const mac of warm.filter((d) => d['operatingSystem'] === 'macOS' && typeof d['serialNumber'] === 'string' && d['serialNumber'] !== '')) {
    const token = await fetch(`${url}/api/v1/agents/enrollment-tokens`, { method: 'POST', headers: { authorization: `Bearer ${agentKey.key}`, 'content-type': 'application/json' }, body: '{}' });
    const osVersion = /^\d+(\.\d+){0,2}/.exec(String(mac['osVersion']))?.[0] ?? '14.5';
    await runSimulatedAgent({
      url,
      token: ((await token.json()) as { token: string }).token,
      agentUrl,
      enroll: { osVersion, serialNumber: mac['serialNumber'] as string, hardwareUuid: crypto.randomUUID().toUpperCase() },
      posture: { filevault: mac['isEncrypted'] === true, firewall: true, sip: true, gatekeeper: true },
      heartbeats: 1,
    });
    agentsEnrolled += 1;
  }

  // Warm the compliance cache: one Graph lookup per device, over HTTP, before any measured request.
  const warmDecisions: Record<string, number> = {};
  let allowedMacsWithAgents = 0;
  for (const deviceid of deviceIds) {
    const response = await fetch(`${url}${GATE_PATH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ accord: ACCORD, claims: { deviceid } }),
    });
    const result = (await response.json()) as { decision: string; reason: string; device: { device_id: string; os_family: string } | null };
    warmDecisions[result.reason] = (warmDecisions[result.reason] ?? 0) + 1;
    if (result.decision === 'allow' && result.device?.os_family === 'macos' && (await server.assets.endpointAgents(DEFAULT_TENANT, [result.device.device_id])).length > 0) {
      allowedMacsWithAgents += 1;
    }
  }
  // Observed, not changed: the writer's append statements are timed through the Db it calls.
  const db = server.runtime.db;
  const query = db.query.bind(db);
  const commitNs = createHistogram();
  db.query = (async (sql: string, params?: readonly unknown[]) => {
    if (sql !== APPEND_EXPECTING_SQL) return query(sql, params);
    const started = process.hrtime.bigint();
    try {
      return await query(sql, params);
    } finally {
      commitNs.record(Math.max(1, Number(process.hrtime.bigint() - started)));
    }
  }) as typeof db.query;
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  let utilization = performance.eventLoopUtilization();
  const ms = (ns: number) => Number((ns / 1e6).toFixed(2));
  process.on('SIGUSR2', () => {
    const window: ServerWindow = {
      eventLoopDelayP50Ms: ms(loopDelay.percentile(50)),
      eventLoopDelayP99Ms: ms(loopDelay.percentile(99)),
      eventLoopDelayMaxMs: ms(loopDelay.max),
      eventLoopUtilization: Number(performance.eventLoopUtilization(utilization).utilization.toFixed(2)),
      commits: commitNs.count,
      commitP50Ms: ms(commitNs.percentile(50)),
      commitP90Ms: ms(commitNs.percentile(90)),
      commitP99Ms: ms(commitNs.percentile(99)),
    };
    loopDelay.reset();
    commitNs.reset();
    utilization = performance.eventLoopUtilization();
    process.stdout.write(`${JSON.stringify(window)}\n`);
  });
  process.stdout.write(`${JSON.stringify({ url, key, deviceIds, warmDecisions, agentsEnrolled, allowedMacsWithAgents, pid: process.pid } satisfies ServerReady)}\n`);

  const stop = async () => {
    await server.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

// ---------------------------------------------------------------------------------------------
// The ceiling: a bare Fastify POST route in its own process, the same layout as the gate's.

/** Fastify with one POST route that parses the same JSON body and answers a small JSON object: no auth, no gate, no audit. */
async function serveBare(): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  app.post(GATE_PATH, async (request) => ({ decision: 'allow', reason: 'compliant', accord: (request.body as { accord?: unknown }).accord ?? null }));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`${JSON.stringify({ url, key: '', deviceIds: [], warmDecisions: {}, agentsEnrolled: 0, allowedMacsWithAgents: 0, pid: process.pid } satisfies ServerReady)}\n`);
  const stop = async () => {
    await app.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

// ---------------------------------------------------------------------------------------------
// The load generator.

async function startServer(
  databaseUrl: string,
  dataDir: string,
  mode: '--serve' | '--bare' = '--serve',
): Promise<{ child: ChildProcess; ready: ServerReady; window: () => Promise<ServerWindow> }> {
  const child = spawn(process.execPath, [...(mode === '--serve' ? PROFILE_FLAGS : []), '--import', 'tsx', fileURLToPath(import.meta.url), mode], {
    cwd: ROOT,
    env: {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      DATABASE_URL: databaseUrl,
      INTUNE_DATA_DIR: dataDir,
      INTUNE_POLICY_FILE: POLICY_FILE,
      INTUNE_COMPLIANCE_CACHE_TTL: '86400',
      CHRONICLE_CHECKPOINT_INTERVAL: '0',
      LOG_LEVEL: 'warn',
      // Passed through so a run can compare with reading agents on every check (0).
      ...(process.env['INTUNE_GATE_AGENT_CACHE_TTL'] !== undefined ? { INTUNE_GATE_AGENT_CACHE_TTL: process.env['INTUNE_GATE_AGENT_CACHE_TTL'] } : {}),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const ready = await new Promise<ServerReady>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the gate server exited (${code}) before it was ready`)));
    lines.once('line', (line) => resolve(JSON.parse(line) as ServerReady));
  });
  /** Asks the server for what it saw since the last ask, and starts a new window. */
  const window = () =>
    new Promise<ServerWindow>((resolve) => {
      lines.once('line', (line) => resolve(JSON.parse(line) as ServerWindow));
      child.kill('SIGUSR2');
    });
  return { child, ready, window };
}

const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time (user + system, ms) a process has used so far; 0 once it has gone. */
function cpuMsOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function main(): Promise<void> {
  const dbName = `ic_bench_gate_${crypto.randomBytes(4).toString('hex')}`;
  const databaseUrl = new URL(SERVER_URL);
  databaseUrl.pathname = `/${dbName}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-bench-gate-'));
  await adminQuery(SERVER_URL, `CREATE DATABASE ${dbName}`);
  const db = new pg.Client({ connectionString: databaseUrl.toString() });
  let child: ChildProcess | undefined;
  let bareChild: ChildProcess | undefined;
  try {
    process.stdout.write(`gate benchmark: ${RUNS} runs x ${REQUESTS} requests, ${CONNECTIONS} connections, ${os.cpus().length} CPUs\n`);
    const started = await startServer(databaseUrl.toString(), dataDir);
    child = started.child;
    const { url, key, deviceIds, warmDecisions } = started.ready;
    process.stdout.write(
      `server ready at ${url}; cache warmed with ${deviceIds.length} devices: ${JSON.stringify(warmDecisions)}; ` +
        `${started.ready.agentsEnrolled} agents enrolled on the load's Macs, ${started.ready.allowedMacsWithAgents} allowed Macs with agents\n`,
    );
    const bare = await startServer(databaseUrl.toString(), dataDir, '--bare');
    bareChild = bare.child;
    await db.connect();
    // CPU time of the gate server and of this database's PostgreSQL backends: on a shared machine the
    // rate moves with others' load, the CPU a decision costs much less.
    const serverPid = child.pid as number;
    const cpuSnapshot = async () => ({ serverMs: cpuMsOf(serverPid), backends: await backendCpuMs(db) });
    const cpuSince = async (before: Awaited<ReturnType<typeof cpuSnapshot>>): Promise<{ serverMs: number; postgresMs: number }> => {
      const after = await cpuSnapshot();
      return { serverMs: after.serverMs - before.serverMs, postgresMs: backendCpuSpent(before.backends, after.backends) ?? 0 };
    };
    // Transactions committed in the gate's database (Chronicle batches, and any other write): how well appends are grouped.
    const countCommits = async (): Promise<number> =>
      Number((await db.query<{ n: string }>('SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()')).rows[0]?.n ?? 0);
    const countRows = async (): Promise<number> =>
      Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM chronicle_event WHERE type = 'DEVICE_COMPLIANCE_CHECKED'`)).rows[0]?.n ?? 0);

    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const requests = deviceIds.map((deviceid) => ({ method: 'POST', path: GATE_PATH, headers, body: JSON.stringify({ accord: ACCORD, claims: { deviceid } }) }));
    // autocannon notices the end of a fixed-amount run at its next sample tick: ticks of 20 ms (not
    // the default second) keep `duration`, and so the rate, accurate.
    const load = (target: string, amount: number) => autocannon({ url: target, connections: CONNECTIONS, amount, requests, timeout: 10, sampleInt: 20 });

    // JIT and pool warm-up, not reported
    await load(url, Math.min(5_000, REQUESTS));
    await load(bare.ready.url, Math.min(5_000, REQUESTS));
    const runs: Array<{ decisionsPerSecond: number; p50Ms: number; p99Ms: number; ok: number; rowsAdded: number; non2xx: number; errors: number; bareRequestsPerSecond: number; bareP99Ms: number; serverCpuMsPerDecision: number; postgresCpuMsPerDecision: number; bareCpuMsPerRequest: number; decisionsPerCommit: number; loadAverage: number; server: ServerWindow }> = [];
    // Gate and ceiling alternate, so both see the same machine load.
    for (let i = 0; i < RUNS; i++) {
      const before = await countRows();
      const commitsBefore = await countCommits();
      const cpuBefore = await cpuSnapshot();
      await started.window();
      const result = await load(url, REQUESTS);
      const seen = await started.window();
      const cpu = await cpuSince(cpuBefore);
      const commits = (await countCommits()) - commitsBefore;
      const rowsAdded = (await countRows()) - before;
      const bareCpuBefore = cpuMsOf(bare.ready.pid);
      const ceiling = await load(bare.ready.url, REQUESTS);
      const bareCpuMs = cpuMsOf(bare.ready.pid) - bareCpuBefore;
      const ok = result['2xx'];
      const run = {
        decisionsPerSecond: Math.round(ok / result.duration),
        p50Ms: result.latency.p50,
        p99Ms: result.latency.p99,
        ok,
        rowsAdded,
        non2xx: result.non2xx,
        errors: result.errors + result.timeouts,
        bareRequestsPerSecond: Math.round(ceiling['2xx'] / ceiling.duration),
        bareP99Ms: ceiling.latency.p99,
        serverCpuMsPerDecision: Number((cpu.serverMs / ok).toFixed(3)),
        postgresCpuMsPerDecision: Number((cpu.postgresMs / ok).toFixed(3)),
        bareCpuMsPerRequest: Number((bareCpuMs / Math.max(1, ceiling['2xx'])).toFixed(3)),
        decisionsPerCommit: Number((rowsAdded / Math.max(1, commits)).toFixed(1)),
        loadAverage: Number((os.loadavg()[0] ?? 0).toFixed(1)),
        server: seen,
      };
      runs.push(run);
      process.stdout.write(
        `run ${i + 1}: ${run.decisionsPerSecond} audited decisions/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, 200s ${ok}, rows ${rowsAdded}${run.non2xx + run.errors > 0 ? `, non-2xx ${run.non2xx}, errors ${run.errors}` : ''}; ` +
          `bare Fastify ${run.bareRequestsPerSecond} req/s (p99 ${run.bareP99Ms} ms), ratio ${(run.decisionsPerSecond / run.bareRequestsPerSecond).toFixed(2)}; ` +
          `CPU per decision: server ${run.serverCpuMsPerDecision} ms, PostgreSQL ${run.postgresCpuMsPerDecision} ms (bare Fastify ${run.bareCpuMsPerRequest} ms per request); ` +
          `${run.decisionsPerCommit} decisions per commit; commit round trip p50 ${seen.commitP50Ms} ms, p90 ${seen.commitP90Ms} ms, p99 ${seen.commitP99Ms} ms; ` +
          `server event loop: utilisation ${seen.eventLoopUtilization}, delay p99 ${seen.eventLoopDelayP99Ms} ms; load average ${run.loadAverage}\n`,
      );
      if (rowsAdded !== ok) throw new Error(`run ${i + 1}: ${ok} decisions answered but ${rowsAdded} recorded: every 200 must have its DEVICE_COMPLIANCE_CHECKED row`);
    }

    const summary = {
      date: new Date().toISOString(),
      cpus: os.cpus().length,
      runs: RUNS,
      requestsPerRun: REQUESTS,
      connections: CONNECTIONS,
      policyFile: path.relative(ROOT, POLICY_FILE),
      warmDevices: deviceIds.length,
      medianDecisionsPerSecond: median(runs.map((r) => r.decisionsPerSecond)),
      medianP50Ms: median(runs.map((r) => r.p50Ms)),
      medianP99Ms: median(runs.map((r) => r.p99Ms)),
      medianBareRequestsPerSecond: median(runs.map((r) => r.bareRequestsPerSecond)),
      medianRatioToBare: Number(median(runs.map((r) => r.decisionsPerSecond / r.bareRequestsPerSecond)).toFixed(3)),
      medianServerCpuMsPerDecision: Number(median(runs.map((r) => r.serverCpuMsPerDecision)).toFixed(3)),
      medianPostgresCpuMsPerDecision: Number(median(runs.map((r) => r.postgresCpuMsPerDecision)).toFixed(3)),
      medianBareCpuMsPerRequest: Number(median(runs.map((r) => r.bareCpuMsPerRequest)).toFixed(3)),
      medianDecisionsPerCommit: median(runs.map((r) => r.decisionsPerCommit)),
      medianCommitP50Ms: median(runs.map((r) => r.server.commitP50Ms)),
      medianCommitP99Ms: median(runs.map((r) => r.server.commitP99Ms)),
      medianEventLoopUtilization: median(runs.map((r) => r.server.eventLoopUtilization)),
      medianEventLoopDelayP99Ms: median(runs.map((r) => r.server.eventLoopDelayP99Ms)),
      medianLoadAverage: median(runs.map((r) => r.loadAverage)),
      agentsEnrolled: started.ready.agentsEnrolled,
      allowedMacsWithAgents: started.ready.allowedMacsWithAgents,
      warmDecisions,
      everyAnswerRecorded: runs.every((r) => r.rowsAdded === r.ok),
      targets: { ratioToBare: 0.5, p99Ms: 10 },
      perRun: runs,
    };
    process.stdout.write(
      `median: ${summary.medianDecisionsPerSecond} audited decisions/s, p50 ${summary.medianP50Ms} ms, p99 ${summary.medianP99Ms} ms (target <= 10); ` +
        `bare Fastify ${summary.medianBareRequestsPerSecond} req/s; gate/bare ${summary.medianRatioToBare} (target >= 0.5); ` +
        `CPU per decision: server ${summary.medianServerCpuMsPerDecision} ms, PostgreSQL ${summary.medianPostgresCpuMsPerDecision} ms; rows = 200s in every run: ${summary.everyAnswerRecorded}\n`,
    );
    const out = path.join(HERE, 'results', 'gate.json');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
    process.stdout.write(`wrote ${path.relative(ROOT, out)}\n`);
  } finally {
    await Promise.all([child, bareChild].map(stopChild));
    await db.end().catch(() => undefined);
    await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--serve')) await serve();
else if (process.argv.includes('--bare')) await serveBare();
else await main();
