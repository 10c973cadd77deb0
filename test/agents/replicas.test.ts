/**
 * Two replicas of `serve` on one PostgreSQL database, sharing the data directory as a mounted
 * volume would (fingerprint key, agent CA keys, the agent listener's certificate): an agent enrolled
 * through one heartbeats to the other, a revocation made on one is honoured by the other at the
 * next request, and a tenant CA made on one is trusted by the other within its reload interval.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { enroll, heartbeatBody, mtlsRequest } from '../../src/agents/reference-agent.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { quietServerEnv } from '../helpers/server.js';

const TRUST_REFRESH_MS = 500;

describe.skipIf(!pgAvailable())('agents on two replicas of one PostgreSQL [postgres]', () => {
  let database: TestDatabase;
  let dataDir: string;
  const replicas: RunningServer[] = [];
  let adminKey: string;

  beforeAll(async () => {
    database = await createPostgresDatabase();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-agent-replicas-'));
    const env = quietServerEnv(dataDir, database);
    const config = loadConfig(env);
    const options = { logger: createLogger({ level: 'silent' }), env, demo: false, agentListener: { trustRefreshMs: TRUST_REFRESH_MS } };
    replicas.push(...(await Promise.all([startServer(config, options), startServer(config, options)])));
    adminKey = (await replicas[0]!.keys.create({ tenant: 'default', role: 'admin' }, { kind: 'human', id: 'test' })).key;
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.close()));
    await database?.drop();
    if (dataDir !== undefined) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const tokenFrom = async (replica: RunningServer, key: string): Promise<string> => {
    const res = await fetch(`${replica.url}/api/v1/agents/enrollment-tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { token: string }).token;
  };

  it('shares one agent CA and one listener certificate', () => {
    const [a, b] = replicas as [RunningServer, RunningServer];
    expect(a.agentListener.tls.caPem).toBeDefined();
    expect(a.agentListener.tls.caPem).toBe(b.agentListener.tls.caPem);
    expect(a.agentListener.port).not.toBe(b.agentListener.port);
  });

  it('honours a revocation made on the other replica at the next request', async () => {
    const [a, b] = replicas as [RunningServer, RunningServer];
    const enrollment = await enroll(a.url, await tokenFrom(a, adminKey), { osVersion: '14.5', serialNumber: 'C02REPLICA01' });
    const identity = { certificate: enrollment.certificate, keyPem: enrollment.keyPem, serverCa: enrollment.server_ca as string };
    const beat = () => heartbeatBody({ osVersion: '14.5', filevault: true });
    expect((await mtlsRequest(b.agentListener.url, '/api/v1/agents/heartbeat', identity, beat())).status).toBe(200);
    expect((await mtlsRequest(a.agentListener.url, '/api/v1/agents/heartbeat', identity, beat())).status).toBe(200);

    const revoked = await fetch(`${b.url}/api/v1/agents/${enrollment.agent_id}`, { method: 'DELETE', headers: { authorization: `Bearer ${adminKey}` } });
    expect(revoked.status).toBe(200);
    const revokedAt = Date.now();
    const onA = await mtlsRequest(a.agentListener.url, '/api/v1/agents/heartbeat', identity, beat());
    expect(onA.status).toBe(403);
    expect(onA.body.error.code).toBe('agent_revoked');
    expect(Date.now() - revokedAt).toBeLessThan(5_000);
    expect((await mtlsRequest(b.agentListener.url, '/api/v1/agents/heartbeat', identity, beat())).status).toBe(403);
  });

  it('trusts a tenant CA made on the other replica within its reload interval', async () => {
    const [a, b] = replicas as [RunningServer, RunningServer];
    const acmeKey = (await a.keys.create({ tenant: 'acme', role: 'admin' }, { kind: 'human', id: 'test' })).key;
    const enrollment = await enroll(a.url, await tokenFrom(a, acmeKey), { osVersion: '15.1' });
    const identity = { certificate: enrollment.certificate, keyPem: enrollment.keyPem, serverCa: enrollment.server_ca as string };
    expect((await mtlsRequest(a.agentListener.url, '/api/v1/agents/heartbeat', identity, heartbeatBody({ osVersion: '15.1' }))).status).toBe(200);
    const deadline = Date.now() + 5_000;
    let status = 0;
    while (Date.now() < deadline) {
      status = await mtlsRequest(b.agentListener.url, '/api/v1/agents/heartbeat', identity, heartbeatBody({ osVersion: '15.1' })).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
  });
});
