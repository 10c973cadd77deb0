/**
 * A real server for API tests: `startServer` from a real Config (PostgreSQL or PGlite), the demo
 * simulator as tenant `default`, and a second simulator behind a connection that tenant `acme`'s
 * admin creates through the API. Nothing is faked: Graph over HTTPS with MSAL, real Chronicle.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { loadConfig, type Config } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { startServer, type RunningServer, type ServerOptions } from '../../src/api/server.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import type { Role } from '../../src/auth/types.js';
import { createPostgresDatabase, type TestDatabase } from '../helpers/db.js';

export const OTHER_TENANT = 'acme';
export const OTHER_SECRET_VAR = 'ACME_INTUNE_SECRET';

export interface TestServer {
  readonly kind: 'postgres' | 'pglite';
  readonly server: RunningServer;
  readonly url: string;
  readonly config: Config;
  /** The simulator behind tenant acme's connection (the demo one is server.runtime.demo). */
  readonly otherSim: SimulatorHandle;
  readonly dataDir: string;
  /** A fresh key of a tenant and role. */
  key(tenant: string, role: Role, capabilities?: readonly string[]): Promise<string>;
  request(method: string, urlPath: string, init?: { key?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> }): Promise<TestResponse>;
  close(): Promise<void>;
}

export interface TestResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** Parsed JSON, or undefined when the body is not JSON. */
  readonly body: any;
}

export async function startTestServer(
  kind: 'postgres' | 'pglite',
  { otherDevices = 40, serverOptions = {}, env: extraEnv = {} }: { otherDevices?: number; serverOptions?: ServerOptions; env?: Record<string, string> } = {},
): Promise<TestServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-api-'));
  let database: TestDatabase | undefined;
  const otherSim = await startSimulator({ devices: otherDevices, seed: 'acme-tenant' });
  try {
    if (kind === 'postgres') database = await createPostgresDatabase();
    const env: Record<string, string> = {
      INTUNE_CLOUD: 'custom',
      INTUNE_LOGIN_URL: otherSim.loginUrl,
      INTUNE_GRAPH_URL: otherSim.graphUrl,
      INTUNE_CA_FILE: otherSim.caFile,
      INTUNE_SECRET_REFS: `${OTHER_TENANT}=env:${OTHER_SECRET_VAR}`,
      INTUNE_DATA_DIR: dataDir,
      INTUNE_SYNC_INTERVAL: '0',
      CHRONICLE_CHECKPOINT_INTERVAL: '0',
      LOG_LEVEL: 'silent',
      PORT: '0',
      ...(database?.url !== undefined ? { DATABASE_URL: database.url } : {}),
      ...extraEnv,
    };
    const config = loadConfig(env);
    const server = await startServer(config, {
      logger: createLogger({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' }),
      env: { ...env, [OTHER_SECRET_VAR]: otherSim.clientSecret },
      ...serverOptions,
    });

    const request: TestServer['request'] = async (method, urlPath, init = {}) => {
      const headers: Record<string, string> = { ...init.headers };
      if (init.key !== undefined) headers['authorization'] = `Bearer ${init.key}`;
      let body: string | undefined = init.rawBody;
      if (init.body !== undefined) {
        body = JSON.stringify(init.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(`${server.url}${urlPath}`, { method, headers, ...(body !== undefined ? { body } : {}), redirect: 'manual' });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      return { status: res.status, headers: res.headers, text, body: parsed };
    };

    return {
      kind,
      server,
      url: server.url,
      config,
      otherSim,
      dataDir,
      async key(tenant, role, capabilities) {
        const created = await server.keys.create(
          { tenant, role, ...(capabilities !== undefined ? { capabilities } : {}), name: `test ${role}` },
          { kind: 'human', id: 'test' },
        );
        return created.key;
      },
      request,
      async close() {
        await server.close();
        await otherSim.close();
        await database?.drop();
        fs.rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await otherSim.close();
    await database?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** Waits until a run is no longer running (polling the API, as a client would). */
export async function waitForRun(t: TestServer, key: string, connectionId: string, runId: string, timeoutMs = 30_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await t.request('GET', `/api/v1/integrations/intune/connections/${connectionId}/runs/${runId}`, { key });
    if (res.status === 200 && res.body.status !== 'running') return res.body;
    if (Date.now() > deadline) throw new Error(`run ${runId} still running after ${timeoutMs} ms`);
    await delay(50);
  }
}

export { findPii, piiValues } from '../helpers/pii.js';
