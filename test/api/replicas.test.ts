/**
 * `serve` against a real Entra/Graph tenant (here the simulator, reached the way a real tenant is:
 * ENTRA_* credentials, MSAL over HTTPS) and as two replicas on one PostgreSQL database: no demo
 * simulator is started, one bootstrap admin key is issued between them, keys made on one replica
 * work on the other, and a revocation reaches the other within its key cache lifetime.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { describeServer, startServer, type RunningServer } from '../../src/api/server.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { quietServerEnv } from '../helpers/server.js';

const KEY_CACHE_TTL_MS = 300;

describe.skipIf(!pgAvailable())('serve with ENTRA_* as two replicas on one PostgreSQL [postgres]', () => {
  let sim: SimulatorHandle;
  let database: TestDatabase;
  const replicas: RunningServer[] = [];
  let dataDir: string;

  beforeAll(async () => {
    sim = await startSimulator({ devices: 30, seed: 'replicas' });
    database = await createPostgresDatabase();
    // Shared, as a mounted volume would be: it holds the Chronicle signing key and the fingerprint key.
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-replicas-'));
    const env = quietServerEnv(dataDir, database, {
      ...sim.env,
      ENTRA_TENANT_ID: sim.tenantId,
      ENTRA_CLIENT_ID: sim.clientId,
      ENTRA_CLIENT_SECRET: sim.clientSecret,
    });
    const config = loadConfig(env);
    const options = { logger: createLogger({ level: 'silent' }), env, keyCacheTtlMs: KEY_CACHE_TTL_MS, initialSync: 'wait' as const };
    // Started together, as an orchestrator would.
    replicas.push(...(await Promise.all([startServer(config, options), startServer(config, options)])));
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.close()));
    await database?.drop();
    await sim?.close();
    if (dataDir !== undefined) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('connects the configured tenant and never starts the demo simulator', async () => {
    for (const replica of replicas) {
      expect(replica.demo).toBe(false);
      expect(replica.runtime.demo).toBeUndefined();
      expect(replica.connection).toMatchObject({ tenant: 'default', demo: false, entra_tenant_id: sim.tenantId, client_id: sim.clientId });
      const banner = describeServer(replica).join('\n');
      expect(banner).not.toContain('DEMO');
      expect(banner).toContain(`connected to Entra tenant ${sim.tenantId}`);
    }
    // Both replicas bootstrap the same connection row.
    expect(replicas[0]!.connection!.id).toBe(replicas[1]!.connection!.id);
  });

  it('issues one bootstrap admin key between the replicas, valid on both', async () => {
    const keys = replicas.map((r) => r.adminKey).filter((k) => k !== undefined);
    expect(keys).toHaveLength(1);
    expect(replicas.filter((r) => r.adminKeyIssuedBefore)).toHaveLength(1);
    for (const replica of replicas) {
      const res = await fetch(`${replica.url}/api/v1/integrations/intune/devices?limit=500`, { headers: { authorization: `Bearer ${keys[0]}` } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { total: number; devices: Array<{ device_id: string }> };
      expect(body.total).toBe(sim.devices.length);
      expect(new Set(body.devices.map((d) => d.device_id))).toEqual(new Set(sim.devices.map((d) => d['id'])));
    }
  });

  it('ran one initial sync, not two', async () => {
    const admin = replicas.find((r) => r.adminKey !== undefined)!.adminKey!;
    const res = await fetch(`${replicas[0]!.url}/api/v1/integrations/intune/connections/${replicas[0]!.connection!.id}/runs`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    const { runs } = (await res.json()) as { runs: Array<{ status: string; trigger: string }> };
    expect(runs.filter((r) => r.trigger === 'startup')).toHaveLength(1);
    expect(runs[0]!.status).toBe('succeeded');
  });

  it('honours a key made on one replica on the other, and a revocation within the cache lifetime', async () => {
    const admin = replicas.find((r) => r.adminKey !== undefined)!.adminKey!;
    const [a, b] = replicas as [RunningServer, RunningServer];
    const created = await fetch(`${a.url}/api/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ role: 'reader' }),
    });
    expect(created.status).toBe(201);
    const { key, key_id: keyId } = (await created.json()) as { key: string; key_id: string };
    const read = (url: string) => fetch(`${url}/api/v1/integrations/intune/summary`, { headers: { authorization: `Bearer ${key}` } });
    expect((await read(b.url)).status).toBe(200);

    const revoked = await fetch(`${a.url}/api/v1/keys/${keyId}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
    expect(revoked.status).toBe(200);
    expect((await read(a.url)).status).toBe(401);
    await delay(KEY_CACHE_TTL_MS + 50);
    expect((await read(b.url)).status).toBe(401);
  });
});
