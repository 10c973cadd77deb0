/**
 * The agent commands as users run them (the built binary, a process, no TTY), beside a running
 * server on the same PostgreSQL: `agents token create` prints a token alone, `agent-sim` enrolls
 * with it and heartbeats over mTLS, `agents list` shows the agent without its serial, and
 * `agents revoke` stops it and takes it out of its asset there and then (the CLI re-matches; the
 * server only learns of the revocation from the database).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { runCli } from '../helpers/cli.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { quietServerEnv } from '../helpers/server.js';

describe.skipIf(!pgAvailable())('intune-connector agents and agent-sim [postgres]', () => {
  let database: TestDatabase;
  let dataDir: string;
  let server: RunningServer;
  let env: Record<string, string>;
  const SERIAL = 'C02CLICANARY7';

  beforeAll(async () => {
    database = await createPostgresDatabase();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-agent-cli-'));
    env = quietServerEnv(dataDir, database);
    server = await startServer(loadConfig(env), { logger: createLogger({ level: 'silent' }), env, demo: false });
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
    if (dataDir !== undefined) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('creates a token, enrolls and heartbeats with agent-sim, lists and revokes', async () => {
    const created = await runCli(['agents', 'token', 'create', '--ttl', '300'], env);
    expect(created.stderr).toMatch(/single use, expires/);
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^ice_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);

    const refused = await runCli(['agent-sim', '--url', server.url, '--token', token, '--os-version', '12.7'], env);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/os_version_unsupported/);

    const sim = await runCli(['agent-sim', '--url', server.url, '--token', token, '--serial', SERIAL, '--heartbeats', '3'], env);
    expect(sim.stderr).toMatch(/3 heartbeat\(s\) accepted/);
    expect(sim.code).toBe(0);
    const agentId = sim.stdout.trim();
    expect(agentId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await server.agents.get('default', agentId))?.last_seen_at).not.toBeNull();

    const listed = await runCli(['agents', 'list', '--json'], env);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).map((a: { agent_id: string }) => a.agent_id)).toEqual([agentId]);
    expect(listed.stdout).not.toContain(SERIAL);
    expect((await runCli(['agents', 'list'], env)).stdout).toContain(agentId);

    const used = await runCli(['agent-sim', '--url', server.url, '--token', token], env);
    expect(used.stderr).toMatch(/invalid_token/);

    // The server matched the enrolled agent into an asset; the CLI's revocation takes it out without the server's help.
    expect((await server.assets.bySource('default', 'agent', agentId))?.sources.map((s) => s.id)).toContain(agentId);
    const revoked = await runCli(['agents', 'revoke', agentId], env);
    expect(revoked.code).toBe(0);
    expect((await server.agents.get('default', agentId))?.status).toBe('revoked');
    expect(await server.assets.bySource('default', 'agent', agentId)).toBeNull();
    const { rows } = await server.runtime.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM asset_sources WHERE kind = 'agent' AND source_id = $1`, [agentId]);
    expect(rows[0]?.n).toBe(0);
    const missing = await runCli(['agents', 'revoke', '00000000-0000-4000-8000-000000000000'], env);
    expect(missing.code).toBe(1);
    const badTenant = await runCli(['agents', 'token', 'create', '--tenant', 'no/slashes'], env);
    expect(badTenant.code).not.toBe(0);
    expect(badTenant.stderr).toMatch(/tenant must be/);
  }, 180_000);
});
