/**
 * Agents benchmark: enrollments and identity-bound heartbeats over mutual TLS, against the real main
 * job (`startServer`) on a fresh PostgreSQL database.
 *
 * Each run enrolls BENCH_AGENTS agents (token, CSR, certificate: the enrollment latency is the
 * median of those), then every agent sends BENCH_HEARTBEATS heartbeats on its own keep-alive TLS
 * connection, all agents at once. Every heartbeat is a database read (revocation check) and a
 * conditional update. The load runs in this process too, so the figures are a floor.
 *
 * Env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_RUNS (3),
 * BENCH_AGENTS (50), BENCH_HEARTBEATS per agent (100). Prints medians; writes bench/results/agents.json.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log/index.js';
import { startServer } from '../src/api/server.js';
import { enroll, heartbeatBody } from '../src/agents/reference-agent.js';
import { adminQuery, median } from './lib.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER_URL = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const AGENTS = Number(process.env['BENCH_AGENTS'] ?? 50);
const HEARTBEATS = Number(process.env['BENCH_HEARTBEATS'] ?? 100);

function post(agent: https.Agent, url: URL, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const percentile = (values: number[], p: number): number => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))] as number;

async function run(index: number) {
  const name = `ic_bench_agents_${crypto.randomBytes(4).toString('hex')}`;
  await adminQuery(SERVER_URL, `CREATE DATABASE ${name}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-bench-agents-'));
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  const env = { DATABASE_URL: url.toString(), INTUNE_DATA_DIR: dataDir, INTUNE_SYNC_INTERVAL: '0', CHRONICLE_CHECKPOINT_INTERVAL: '0', PORT: '0' };
  const server = await startServer(loadConfig(env), {
    logger: createLogger({ level: 'silent' }),
    env,
    demo: false,
    agentListener: { rateLimit: { burst: 1_000_000, refillMs: 1 } },
  });
  try {
    const enrollMs: number[] = [];
    const agents: Array<{ agent: https.Agent }> = [];
    for (let i = 0; i < AGENTS; i += 1) {
      const { token } = await server.agents.createToken('default', {}, { kind: 'human', id: 'bench' });
      const started = performance.now();
      const e = await enroll(server.url, token, { osVersion: '14.5', serialNumber: `BENCH${i}` });
      enrollMs.push(performance.now() - started);
      agents.push({ agent: new https.Agent({ keepAlive: true, maxSockets: 1, cert: e.certificate, key: e.keyPem, ca: e.server_ca as string }) });
    }
    const target = new URL('/api/v1/agents/heartbeat', server.agentListener.url);
    const latencies: number[] = [];
    let failures = 0;
    const started = performance.now();
    await Promise.all(
      agents.map(async ({ agent }) => {
        for (let i = 0; i < HEARTBEATS; i += 1) {
          const t0 = performance.now();
          const status = await post(agent, target, JSON.stringify(heartbeatBody({ osVersion: '14.5', filevault: true, uptimeSeconds: i })));
          latencies.push(performance.now() - t0);
          if (status !== 200) failures += 1;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    for (const { agent } of agents) agent.destroy();
    const result = {
      run: index + 1,
      heartbeatsPerSecond: (AGENTS * HEARTBEATS) / seconds,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      enrollP50Ms: median(enrollMs),
      failures,
    };
    process.stdout.write(
      `run ${result.run}: ${Math.round(result.heartbeatsPerSecond)} heartbeats/s (p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms), enrollment p50 ${result.enrollP50Ms.toFixed(1)} ms, ${failures} failures\n`,
    );
    return result;
  } finally {
    await server.close();
    await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const results = [];
for (let i = 0; i < RUNS; i += 1) results.push(await run(i));
const summary = {
  agents: AGENTS,
  heartbeatsPerAgent: HEARTBEATS,
  runs: results,
  median: {
    heartbeatsPerSecond: median(results.map((r) => r.heartbeatsPerSecond)),
    p50Ms: median(results.map((r) => r.p50Ms)),
    p99Ms: median(results.map((r) => r.p99Ms)),
    enrollP50Ms: median(results.map((r) => r.enrollP50Ms)),
  },
};
process.stdout.write(
  `median of ${RUNS}: ${Math.round(summary.median.heartbeatsPerSecond)} heartbeats/s over mTLS (p50 ${summary.median.p50Ms.toFixed(2)} ms, p99 ${summary.median.p99Ms.toFixed(2)} ms); enrollment p50 ${summary.median.enrollP50Ms.toFixed(1)} ms\n`,
);
fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
fs.writeFileSync(path.join(HERE, 'results', 'agents.json'), `${JSON.stringify(summary, null, 2)}\n`);
if (results.some((r) => r.failures > 0)) process.exitCode = 1;
