/**
 * Connector benchmark.
 *
 * 1. Audited get_compliance calls per second on a warm cache: every call is a full invoke (scope
 *    check, cache hit, redacted answer) that appends CONNECTOR_INVOKED to a real Chronicle on
 *    PostgreSQL (a fresh database on the server at BENCH_DATABASE_URL, default
 *    postgres://postgres@127.0.0.1:5432/postgres) and returns only after the commit. Many
 *    invocations run concurrently so Chronicle's group commit can batch them.
 * 2. Coalescing under a burst of misses: N concurrent lookups of one cold device, and N lookups
 *    spread over K cold devices, against the simulator; the Graph requests made are counted from
 *    the simulator's request log.
 *
 * The simulator runs in this process (it only serves the warm-up and the bursts, so it does not
 * compete with the measured phase). Prints medians of several runs; writes bench/results/connector.json.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openPostgres } from '../src/db/index.js';
import { runMigrations } from '../src/db/migrate.js';
import { MIGRATIONS } from '../src/db/migrations/index.js';
import { createChronicle } from '../src/chronicle/index.js';
import { createGraphClient } from '../src/connector/graph/index.js';
import { startSimulator } from '../src/simulator/index.js';
import { createIntuneConnector, type IntuneConnector } from '../src/connector/index.js';
import type { InvocationContext } from '../src/connector/contract.js';
import { median, adminQuery } from './lib.js';

const SERVER_URL = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const CALLS_PER_RUN = Number(process.env['BENCH_CALLS'] ?? 20_000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 256);
const WARM_DEVICES = 500;

async function runConcurrently(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next;
      next += 1;
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
}

const ctx: InvocationContext = {
  tenant: 'bench',
  actor: { kind: 'agent', id: 'agent:bench' },
  scope: { capabilities: ['READ'], ceremonyRequiredFor: [] },
  requestId: 'bench',
  channel: 'library',
};

async function main(): Promise<void> {
  const dbName = `ic_bench_${crypto.randomBytes(5).toString('hex')}`;
  await adminQuery(SERVER_URL, `CREATE DATABASE ${dbName}`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${dbName}`;
  const db = openPostgres({ url: url.toString(), maxConnections: 10 });
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-bench-conn-'));
  const sim = await startSimulator({ devices: 2_000, seed: 'bench-connector' });
  const graph = createGraphClient({
    tenantId: sim.tenantId,
    clientId: sim.clientId,
    credential: { clientSecret: sim.clientSecret },
    graph: { cloud: 'custom', loginUrl: sim.loginUrl, graphUrl: sim.graphUrl, caFile: sim.caFile, timeoutMs: 30_000, maxRetries: 2 },
  });
  const chronicle = await (async () => {
    await runMigrations(db, MIGRATIONS);
    return createChronicle({ db, signingKeyFile: path.join(keyDir, 'key.pem'), checkpointDir: path.join(keyDir, 'cp'), checkpointIntervalMs: 0 });
  })();
  const key = crypto.randomBytes(32);
  const make = (): IntuneConnector =>
    createIntuneConnector({
      chronicle,
      graphFor: () => graph,
      fingerprintKeyFor: () => key,
      db,
      options: { intuneEnabled: true, cacheTtlMs: 3_600_000, cacheMaxEntries: 50_000, staleMaxMs: 0 },
    });

  try {
    const ids = sim.devices.slice(0, WARM_DEVICES).map((d) => String(d['id']));
    const connector = make();
    await runConcurrently(ids.length, 32, async (i) => {
      const r = await connector.invoke('get_compliance', { device_id: ids[i] }, ctx);
      if (!r.ok) throw new Error(`warm-up failed: ${r.message}`);
    });

    const rates: number[] = [];
    for (let run = 0; run < RUNS; run += 1) {
      const started = performance.now();
      let failures = 0;
      await runConcurrently(CALLS_PER_RUN, CONCURRENCY, async (i) => {
        const r = await connector.invoke('get_compliance', { device_id: ids[i % ids.length] }, ctx);
        if (!r.ok) failures += 1;
      });
      const seconds = (performance.now() - started) / 1000;
      const rate = CALLS_PER_RUN / seconds;
      rates.push(rate);
      process.stdout.write(`run ${run + 1}: ${CALLS_PER_RUN} audited get_compliance in ${seconds.toFixed(2)} s = ${rate.toFixed(0)}/s${failures ? ` (${failures} failed)` : ''}\n`);
    }
    const events = await db.query<{ n: number }>(`SELECT count(*)::int8 AS n FROM chronicle_event WHERE tenant = 'bench'`);
    const verify = await chronicle.verify({ tenant: 'bench' });

    // Coalescing: bursts of cold lookups, Graph requests counted at the simulator.
    const bursts: { lookups: number; devices: number; graphRequests: number; ms: number }[] = [];
    const cold = sim.devices.slice(WARM_DEVICES).map((d) => String(d['id']));
    let offset = 0;
    for (const [lookups, devices] of [
      [100, 1],
      [1_000, 1],
      [10_000, 1],
      [1_000, 50],
      [10_000, 500],
    ] as const) {
      const fresh = make();
      const targets = cold.slice(offset, offset + devices);
      offset += devices;
      sim.clearRequests();
      const started = performance.now();
      const results = await Promise.all(Array.from({ length: lookups }, (_, i) => fresh.lookupCompliance('bench', { deviceId: targets[i % devices] as string })));
      const ms = performance.now() - started;
      const graphRequests = sim.requests().filter((r) => r.kind === 'graph').length;
      if (results.some((r) => !r.ok)) throw new Error('a burst lookup failed');
      bursts.push({ lookups, devices, graphRequests, ms: Math.round(ms) });
      const statuses = sim.requests().filter((r) => r.kind === 'graph' && r.status !== 200).map((r) => r.status);
      process.stdout.write(
        `burst: ${lookups} concurrent cold lookups over ${devices} device(s) -> ${graphRequests} Graph request(s) in ${ms.toFixed(0)} ms${statuses.length ? ` (non-200: ${statuses.join(',')})` : ''}\n`,
      );
    }

    const result = {
      benchmark: 'connector',
      machine: { cpus: os.cpus().length, node: process.version },
      warmCache: {
        calls: CALLS_PER_RUN,
        concurrency: CONCURRENCY,
        runs: RUNS,
        auditedCallsPerSecondMedian: Math.round(median(rates)),
        auditedCallsPerSecondRuns: rates.map(Math.round),
        target: 5_000,
        eventsRecorded: Number(events.rows[0]?.n ?? 0),
        chainVerified: verify,
      },
      coalescing: bursts,
    };
    process.stdout.write(`\nwarm-cache audited get_compliance: median ${result.warmCache.auditedCallsPerSecondMedian}/s over ${RUNS} runs (target >= 5000/s)\n`);
    fs.mkdirSync(path.join(import.meta.dirname, 'results'), { recursive: true });
    fs.writeFileSync(path.join(import.meta.dirname, 'results', 'connector.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await chronicle.close().catch(() => undefined);
    await graph.close();
    await sim.close();
    await db.close();
    await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    fs.rmSync(keyDir, { recursive: true, force: true });
  }
}

await main();
