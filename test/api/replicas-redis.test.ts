/**
 * Three `serve` processes on one PostgreSQL and one Redis (REDIS_URL), against one simulated tenant
 * whose Graph counts every request (GET /_simulator/stats):
 * - 300 concurrent gate checks of one uncached device, spread over the replicas, make one Graph request;
 * - a burst of lookups beyond Intune's budget is smoothed: no 429 from Graph, every check decided;
 * - with their Redis stopped mid-test (a redis-server of this test's own), replicas still decide
 *   every check and record it, never allow without Graph or a cached answer, show it on /readyz and
 *   /metrics, and share again once Redis is back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle, SimulatorStats } from '../../src/simulator/types.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';

const CLI = path.resolve('dist/cli.js');
const BUDGET = { requests: 30, windowMs: 3_000 };

interface Replica {
  readonly child: ChildProcess;
  readonly url: string;
  readonly adminKey: string | undefined;
  stderr(): string;
}

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(ENTRA_|INTUNE_|DATABASE_URL|CHRONICLE_|PORT|HOST|LOG_LEVEL|REDIS_)/.test(name)) env[name] = value;
  }
  return env;
}

async function startReplica(env: NodeJS.ProcessEnv): Promise<Replica> {
  const child = spawn(process.execPath, [CLI, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no banner within 90 s; stderr:\n${stderr}`)), 90_000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (/^\s+icn_\S+\s*$/m.test(stdout) || /Create more with/.test(stdout)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}; stderr:\n${stderr}`));
    });
  });
  const url = /serving at (http:\/\/\S+)/.exec(stdout)?.[1];
  if (url === undefined) throw new Error(`no URL in:\n${stdout}`);
  return { child, url, adminKey: /^\s+(icn_\S+)\s*$/m.exec(stdout)?.[1], stderr: () => stderr };
}

async function stopReplica(replica: Replica): Promise<void> {
  if (replica.child.exitCode !== null) return;
  const exited = new Promise((resolve) => replica.child.once('exit', resolve));
  replica.child.kill('SIGTERM');
  await Promise.race([exited, delay(15_000)]);
  if (replica.child.exitCode === null) replica.child.kill('SIGKILL');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function graphStats(sim: SimulatorHandle): Promise<SimulatorStats> {
  return sim.stats();
}

interface GateAnswer {
  readonly status: number;
  readonly decision: string;
  readonly reason: string;
  readonly event: { readonly seq: number } | null;
}

async function gateCheck(replica: Replica, key: string, deviceId: string): Promise<GateAnswer> {
  const res = await fetch(`${replica.url}/api/v1/gate/device-compliance`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ accord: 'device-management', claims: { deviceid: deviceId } }),
  });
  const body = (await res.json()) as { decision: string; reason: string; event: { seq: number } | null };
  return { status: res.status, decision: body.decision, reason: body.reason, event: body.event };
}

async function metric(replica: Replica, name: string): Promise<number> {
  const text = await (await fetch(`${replica.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

async function redisCheck(replica: Replica): Promise<{ name: string; ok: boolean; degraded?: boolean; detail?: string } | undefined> {
  const body = (await (await fetch(`${replica.url}/readyz`)).json()) as { checks: Array<{ name: string; ok: boolean; degraded?: boolean; detail?: string }> };
  return body.checks.find((c) => c.name === 'redis');
}

/** Waits until no sync run of the connection is running (the startup sync makes Graph requests of its own). */
async function syncsSettled(replica: Replica, key: string): Promise<void> {
  const headers = { authorization: `Bearer ${key}` };
  const { connections } = (await (await fetch(`${replica.url}/api/v1/integrations/intune/connections`, { headers })).json()) as { connections: Array<{ id: string }> };
  for (let i = 0; i < 120; i++) {
    let running = false;
    for (const connection of connections) {
      const { runs } = (await (await fetch(`${replica.url}/api/v1/integrations/intune/connections/${connection.id}/runs`, { headers })).json()) as { runs: Array<{ status: string }> };
      running ||= runs.length === 0 || runs.some((r) => r.status === 'running');
    }
    if (!running) return;
    await delay(250);
  }
  throw new Error('the startup sync did not finish');
}

/** Devices with an Entra id, one per Entra id (a re-enrolled device has several records under one). */
function entraDevices(sim: SimulatorHandle): Array<{ id: string; azureADDeviceId: string; complianceState: string }> {
  const byEntraId = new Map<string, { id: string; azureADDeviceId: string; complianceState: string }>();
  for (const d of sim.devices) {
    const entraId = d['azureADDeviceId'];
    if (typeof entraId !== 'string' || !/^[0-9a-f-]{36}$/i.test(entraId) || byEntraId.has(entraId)) continue;
    byEntraId.set(entraId, { id: d['id'] as string, azureADDeviceId: entraId, complianceState: d['complianceState'] as string });
  }
  return [...byEntraId.values()];
}

interface Deployment {
  readonly sim: SimulatorHandle;
  readonly database: TestDatabase;
  readonly dataDir: string;
  readonly replicas: Replica[];
  readonly adminKey: string;
}

async function deploy(count: number, redisUrl: string, seed: string): Promise<Deployment> {
  const sim = await startSimulator({ devices: 300, seed, throttle: { requestsPer20s: BUDGET.requests, windowMs: BUDGET.windowMs } });
  const database = await createPostgresDatabase();
  // Shared, as a mounted volume would be: the Chronicle signing key and the fingerprint key.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-redis-replicas-'));
  const env: NodeJS.ProcessEnv = {
    ...baseEnv(),
    ...sim.env,
    ENTRA_TENANT_ID: sim.tenantId,
    ENTRA_CLIENT_ID: sim.clientId,
    ENTRA_CLIENT_SECRET: sim.clientSecret,
    DATABASE_URL: database.url as string,
    INTUNE_DATA_DIR: dataDir,
    INTUNE_SYNC_INTERVAL: '0',
    INTUNE_COMPLIANCE_REQUIRED: 'true',
    CHRONICLE_CHECKPOINT_INTERVAL: '0',
    INTUNE_AGENT_PORT: '0',
    PORT: '0',
    LOG_LEVEL: 'info',
    REDIS_URL: redisUrl,
    // Each test deployment its own namespace, so parallel runs on one Redis never meet.
    REDIS_KEY_PREFIX: `test-${crypto.randomBytes(6).toString('hex')}`,
    // Three replicas, PostgreSQL, Redis and the simulator on two shared cores: event-loop lag alone
    // can pass the default second, and a replica that falls back keeps only its share (test/connector/shared-cache.test.ts).
    REDIS_TIMEOUT_MS: '3000',
    INTUNE_GRAPH_BUDGET_REQUESTS: String(BUDGET.requests),
    INTUNE_GRAPH_BUDGET_WINDOW_MS: String(BUDGET.windowMs),
  };
  const replicas = await Promise.all(Array.from({ length: count }, () => startReplica(env)));
  const adminKey = replicas.find((r) => r.adminKey !== undefined)?.adminKey;
  if (adminKey === undefined) throw new Error('no replica printed the bootstrap admin key');
  await syncsSettled(replicas[0] as Replica, adminKey);
  return { sim, database, dataDir, replicas, adminKey };
}

async function teardown(deployment: Deployment | undefined): Promise<void> {
  if (deployment === undefined) return;
  await Promise.all(deployment.replicas.map(stopReplica));
  await deployment.database.drop();
  await deployment.sim.close();
  fs.rmSync(deployment.dataDir, { recursive: true, force: true });
}

const redisAvailable = inject('redisAvailable');
if (!redisAvailable) process.stderr.write('\n!!! replicas-redis.test.ts SKIPPED: Redis is not reachable (see the test setup message).\n\n');

describe.skipIf(!pgAvailable() || !redisAvailable)('three serve replicas sharing one Redis [postgres] [redis]', () => {
  let deployment: Deployment | undefined;

  beforeAll(async () => {
    deployment = await deploy(3, inject('testRedisUrl'), 'redis-replicas');
  });
  afterAll(async () => {
    await teardown(deployment);
  });

  it('answers 300 concurrent checks of one uncached device with one Graph request', async () => {
    const { sim, replicas, adminKey } = deployment as Deployment;
    const device = entraDevices(sim).find((d) => d.complianceState === 'compliant');
    expect(device).toBeDefined();
    sim.resetStats();

    const answers = await Promise.all(
      Array.from({ length: 300 }, (_, i) => gateCheck(replicas[i % replicas.length] as Replica, adminKey, (device as { azureADDeviceId: string }).azureADDeviceId)),
    );

    const stats = await graphStats(sim);
    expect(stats.total).toBe(1);
    expect(Object.keys(stats.requests)).toEqual(['GET /v1.0/deviceManagement/managedDevices']);
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.event?.seq).toEqual(expect.any(Number));
    }
    // Every replica decided alike, on the one answer.
    expect(new Set(answers.map((a) => `${a.decision}:${a.reason}`)).size).toBe(1);
    // The other replicas' lookups were answered by that request, or by the entry it stored.
    let shared = 0;
    for (const replica of replicas) {
      shared += (await metric(replica, 'intune_compliance_cache_shared_coalesced_total')) + (await metric(replica, 'intune_compliance_cache_shared_hits_total'));
      expect(await metric(replica, 'intune_redis_up')).toBe(1);
      expect(await redisCheck(replica)).toEqual({ name: 'redis', ok: true });
    }
    expect(shared).toBeGreaterThan(0);
  });

  it('smooths a burst beyond the Graph budget over the replicas: no 429 from Graph, every check decided', async () => {
    const { sim, replicas, adminKey } = deployment as Deployment;
    // Not the device of the test before: every one of these is a miss, so a Graph request.
    const devices = entraDevices(sim).slice(1, 1 + BUDGET.requests * 3);
    expect(devices).toHaveLength(BUDGET.requests * 3);
    sim.resetStats();

    const answers = await Promise.all(devices.map((d, i) => gateCheck(replicas[i % replicas.length] as Replica, adminKey, d.azureADDeviceId)));

    const stats = await graphStats(sim);
    expect(stats.statuses['429'] ?? 0).toBe(0);
    // One lookup per device (a deny may also read the device's policy states, counted apart).
    expect(stats.requests['GET /v1.0/deviceManagement/managedDevices']).toBe(devices.length);
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.reason).not.toBe('compliance_unavailable');
      expect(answer.event?.seq).toEqual(expect.any(Number));
    }
    let waits = 0;
    for (const replica of replicas) waits += await metric(replica, 'intune_graph_budget_waits_total');
    expect(waits).toBeGreaterThan(0);
  });
});

describe.skipIf(!pgAvailable() || !redisAvailable)('replicas whose Redis stops mid-test [postgres] [redis]', () => {
  let deployment: Deployment | undefined;
  let redis: ChildProcess | undefined;
  let port = 0;

  const startRedis = async (): Promise<void> => {
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      const up = await new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.end();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      });
      if (up) return;
      await delay(100);
    }
    throw new Error(`redis-server did not listen on ${port}`);
  };
  const stopRedis = async (): Promise<void> => {
    const child = redis;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  };

  beforeAll(async () => {
    port = await freePort();
    await startRedis();
    deployment = await deploy(3, `redis://127.0.0.1:${port}`, 'redis-outage');
  });
  afterAll(async () => {
    await teardown(deployment);
    await stopRedis();
  });

  it('decides and records every check without Redis, allows nothing without Graph or a cached answer, and shares again when Redis is back', async () => {
    const { sim, replicas, adminKey } = deployment as Deployment;
    const [cached, ...others] = entraDevices(sim).filter((d) => d.complianceState === 'compliant');
    expect(cached).toBeDefined();
    // Cached (locally and in Redis) while Redis is up.
    expect((await gateCheck(replicas[0] as Replica, adminKey, (cached as { azureADDeviceId: string }).azureADDeviceId)).decision).toBe('allow');

    await stopRedis();
    const during = others.slice(0, 30);
    const answers = await Promise.all(during.map((d, i) => gateCheck(replicas[i % replicas.length] as Replica, adminKey, d.azureADDeviceId)));
    for (const answer of answers) {
      // Graph answers: each check is decided on the device's record, not refused for want of Redis.
      expect(answer.status).toBe(200);
      expect(['allow', 'deny']).toContain(answer.decision);
      expect(answer.reason).not.toBe('compliance_unavailable');
      expect(answer.event?.seq).toEqual(expect.any(Number));
    }
    // Each one is in Chronicle, as its answer says.
    const events = (await (
      await fetch(`${replicas[1]?.url}/api/v1/chronicle/events?type=DEVICE_COMPLIANCE_CHECKED&limit=500`, { headers: { authorization: `Bearer ${adminKey}` } })
    ).json()) as { events: Array<{ seq: number }> };
    const recorded = new Set(events.events.map((e) => e.seq));
    for (const answer of answers) expect(recorded.has((answer.event as { seq: number }).seq)).toBe(true);

    // Graph down too: an uncached device is denied (recorded), never allowed by default.
    sim.setFaults({ errorRate: 1 });
    const uncached = others[40] as { azureADDeviceId: string };
    for (const replica of replicas) {
      const answer = await gateCheck(replica, adminKey, uncached.azureADDeviceId);
      expect(answer).toMatchObject({ status: 200, decision: 'deny', reason: 'compliance_unavailable' });
      expect(answer.event?.seq).toEqual(expect.any(Number));
    }
    sim.setFaults({});

    for (const replica of replicas) {
      expect(await redisCheck(replica)).toMatchObject({ name: 'redis', ok: true, degraded: true, detail: expect.stringMatching(/Redis does not answer/) });
      expect(await metric(replica, 'intune_redis_up')).toBe(0);
      expect(await metric(replica, 'intune_redis_fallbacks_total')).toBeGreaterThan(0);
      // Said once per outage in the log, not once per lookup.
      const outages = await metric(replica, 'intune_redis_outages_total');
      expect(outages).toBeGreaterThanOrEqual(1);
      expect(replica.stderr().match(/Redis does not answer/g)?.length ?? 0).toBe(outages);
      // The readiness probe stays 200: the replica serves.
      expect((await fetch(`${replica.url}/readyz`)).status).toBe(200);
    }

    await startRedis();
    for (const replica of replicas) {
      for (let i = 0; i < 100 && (await redisCheck(replica))?.degraded === true; i++) {
        // A lookup probes Redis; the client also reconnects by itself.
        await gateCheck(replica, adminKey, (others[50] as { azureADDeviceId: string }).azureADDeviceId);
        await delay(100);
      }
      expect(await redisCheck(replica)).toEqual({ name: 'redis', ok: true });
      expect(await metric(replica, 'intune_redis_up')).toBe(1);
      expect(replica.stderr()).toMatch(/Redis answers again/);
    }
  });
});
