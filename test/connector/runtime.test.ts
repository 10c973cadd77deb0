/**
 * openRuntime: composition from a Config, against real PostgreSQL, the real Chronicle, the real
 * Graph client and the simulator (in-process as the demo tenant, or standalone behind ENTRA_*).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { DEFAULT_TENANT } from '../../src/common/ids.js';
import { FINGERPRINT_KEY_FILE, openRuntime } from '../../src/runtime/index.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { InvocationContext } from '../../src/connector/contract.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function captureLogs(): { logger: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger({ level: 'info' }, sink), lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function setup(): Promise<{ dataDir: string; database: TestDatabase }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-runtime-'));
  const database = await createPostgresDatabase();
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  cleanups.push(() => database.drop());
  return { dataDir, database };
}

const ctx: InvocationContext = {
  tenant: DEFAULT_TENANT,
  actor: { kind: 'service', id: 'runtime-test' },
  scope: { capabilities: ['READ'], ceremonyRequiredFor: [] },
  requestId: 'runtime-test',
};

describe.skipIf(!pgAvailable())('openRuntime', () => {
  it('without ENTRA_* starts the labelled demo tenant, creates the fingerprint key, audits calls, and closes in order', async () => {
    const { dataDir, database } = await setup();
    const { logger, lines } = captureLogs();
    const config = loadConfig({ INTUNE_DATA_DIR: dataDir, DATABASE_URL: database.url });
    const runtime = await openRuntime(config, { logger });
    let closed = false;
    cleanups.push(async () => {
      if (!closed) await runtime.close();
    });

    expect(runtime.demo?.simulator.devices.length).toBe(200);
    expect(runtime.graph).toBeDefined();
    expect(lines().some((l) => String(l['msg']).startsWith('DEMO tenant: simulated devices, not a real Intune tenant'))).toBe(true);
    const keyFile = path.join(dataDir, FINGERPRINT_KEY_FILE);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(runtime.fingerprintKeyFor(DEFAULT_TENANT)).toHaveLength(32);

    const deviceId = String(runtime.demo?.simulator.devices[0]?.['id']);
    const outcome = await runtime.connector.invoke('get_compliance', { device_id: deviceId }, ctx);
    expect(outcome).toMatchObject({ ok: true, value: { device_id: deviceId } });
    const events = await runtime.chronicle.query({ tenant: DEFAULT_TENANT, types: ['CONNECTOR_INVOKED'] });
    expect(events.events.map((e) => e.data['operation'])).toEqual(['get_compliance']);

    const simulator = runtime.demo!.simulator;
    await runtime.close();
    closed = true;
    await runtime.close(); // twice is fine
    // the demo simulator is gone with the runtime
    await expect(fetch(`${simulator.graphUrl}/v1.0/deviceManagement/managedDevices`)).rejects.toThrow();
  });

  it('with ENTRA_* talks to that tenant and never starts the simulator', async () => {
    const { dataDir, database } = await setup();
    const tenantSim = await startSimulator({ devices: 30, seed: 'runtime-entra' });
    cleanups.push(() => tenantSim.close());
    const config = loadConfig({ ...tenantSim.env, INTUNE_DATA_DIR: dataDir, DATABASE_URL: database.url, LOG_LEVEL: 'silent' });
    expect(config.entra).toBeDefined();
    const runtime = await openRuntime(config);
    cleanups.push(() => runtime.close());

    expect(runtime.demo).toBeUndefined();
    const deviceId = String(tenantSim.devices[3]?.['id']);
    expect(await runtime.connector.invoke('get_device', { device_id: deviceId }, ctx)).toMatchObject({ ok: true, value: { device: { device_id: deviceId } } });
    expect(tenantSim.requests().some((r) => r.url.includes(deviceId))).toBe(true);
    // Other tenants have no connection unless the host supplies graphFor.
    expect(await runtime.connector.invoke('get_device', { device_id: deviceId }, { ...ctx, tenant: 'other' })).toMatchObject({ reason: 'intune_disabled' });
  });

  it('with demo off and no ENTRA_*, tenant default has no connection', async () => {
    const { dataDir, database } = await setup();
    const config = loadConfig({ INTUNE_DATA_DIR: dataDir, DATABASE_URL: database.url, LOG_LEVEL: 'silent' });
    const runtime = await openRuntime(config, { demo: false });
    cleanups.push(() => runtime.close());
    expect(runtime.graph).toBeUndefined();
    expect(runtime.demo).toBeUndefined();
    const outcome = await runtime.connector.invoke('get_device', { device_id: '0fa4e5e1-0000-4000-8000-00000000a001' }, ctx);
    expect(outcome).toMatchObject({ ok: false, kind: 'denied', reason: 'intune_disabled' });
  });

  it('closes what it opened when a part fails to start', async () => {
    const { dataDir, database } = await setup();
    fs.writeFileSync(path.join(dataDir, FINGERPRINT_KEY_FILE), 'not a key');
    const config = loadConfig({ INTUNE_DATA_DIR: dataDir, DATABASE_URL: database.url, LOG_LEVEL: 'silent' });
    await expect(openRuntime(config, { demo: false })).rejects.toThrow(/fingerprint key file .* is not 64 hex characters/);
    // the database pool opened before the failure was closed: no session of ours is left on the server
    const dbName = new URL(database.url as string).pathname.slice(1);
    const admin = await createPostgresDatabase();
    cleanups.push(() => admin.drop());
    const probe = await admin.open();
    const sessions = await probe.query<{ n: number }>('SELECT count(*)::int8 AS n FROM pg_stat_activity WHERE datname = $1', [dbName]);
    expect(sessions.rows[0]?.n).toBe(0);
  });
});
