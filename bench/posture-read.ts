/**
 * Posture read benchmark: audited REST reads of one device per second, and the proof that every
 * answered read was recorded. The real main job (`startServer`, as `intune-connector serve` runs it)
 * on a fresh PostgreSQL database with the demo tenant; autocannon sends a fixed number of
 * `GET /api/v1/integrations/intune/devices/{id}` per run; after the server closes (a clean stop),
 * the integration.intune.posture_read rows must equal the 200 answers.
 *
 * Env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_RUNS (3),
 * BENCH_REQUESTS per run (5000), BENCH_CONNECTIONS (16). Prints medians; writes bench/results/posture-read.json.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log/index.js';
import { startServer } from '../src/api/server.js';
import { DEFAULT_TENANT } from '../src/common/ids.js';
import { adminQuery, median } from './lib.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER_URL = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const REQUESTS = Number(process.env['BENCH_REQUESTS'] ?? 5000);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 16);

interface AutocannonResult {
  readonly requests: { readonly average: number };
  readonly latency: { readonly p50: number; readonly p99: number };
  readonly errors: number;
  readonly non2xx: number;
  readonly '2xx': number;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (options: Record<string, unknown>) => Promise<AutocannonResult>;

async function oneRun(run: number): Promise<{ rps: number; p50: number; p99: number; answered: number; recorded: number }> {
  const name = `bench_reads_${crypto.randomBytes(4).toString('hex')}`;
  await adminQuery(SERVER_URL, `CREATE DATABASE ${name}`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-reads-'));
  try {
    const env = { DATABASE_URL: url.toString(), INTUNE_DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'silent', INTUNE_SYNC_INTERVAL: '0', CHRONICLE_CHECKPOINT_INTERVAL: '0' };
    const server = await startServer(loadConfig(env), { logger: createLogger({ level: 'silent' }), env, demoAgents: 0 });
    let result: AutocannonResult;
    try {
      const key = server.adminKey as string;
      const page = await server.posture.listDevices(DEFAULT_TENANT, { limit: 100 });
      const ids = page.devices.map((d) => d.device_id);
      let i = 0;
      result = await autocannon({
        url: server.url,
        connections: CONNECTIONS,
        amount: REQUESTS,
        headers: { authorization: `Bearer ${key}` },
        requests: [{ method: 'GET', setupRequest: (req: Record<string, unknown>) => ({ ...req, path: `/api/v1/integrations/intune/devices/${ids[i++ % ids.length]}` }) }],
      });
    } finally {
      await server.close(); // a clean stop: every queued read is written before Chronicle closes
    }
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM chronicle_event WHERE type = 'integration.intune.posture_read'`);
    await client.end();
    const recorded = Number(rows[0]?.n ?? 0);
    process.stdout.write(`run ${run}: ${result['2xx']} reads answered, ${recorded} recorded, ${result.requests.average.toFixed(0)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms\n`);
    return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, answered: result['2xx'], recorded };
  } finally {
    await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const runs = [];
for (let run = 1; run <= RUNS; run++) runs.push(await oneRun(run));
const summary = {
  runs: RUNS,
  requests_per_run: REQUESTS,
  connections: CONNECTIONS,
  median_reads_per_second: Math.round(median(runs.map((r) => r.rps))),
  median_p50_ms: median(runs.map((r) => r.p50)),
  median_p99_ms: median(runs.map((r) => r.p99)),
  every_answered_read_recorded: runs.every((r) => r.answered === r.recorded),
};
process.stdout.write(`${JSON.stringify(summary)}\n`);
fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
fs.writeFileSync(path.join(HERE, 'results', 'posture-read.json'), `${JSON.stringify({ ...summary, details: runs }, null, 2)}\n`);
if (!summary.every_answered_read_recorded) process.exitCode = 1;
