import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyncRunSummary } from '../../src/posture/index.js';
import { runCli } from '../helpers/cli.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';

// PostgreSQL keeps these fast: a fresh embedded database spends many seconds in initdb, and the
// embedded path of the CLI is the same code as serve's, which the e2e test runs.
describe.skipIf(!pgAvailable())('intune-connector sync [postgres]', () => {
  let sim: SimulatorHandle;
  let dir: string;
  const databases: TestDatabase[] = [];
  const freshDatabaseUrl = async () => {
    const database = await createPostgresDatabase();
    databases.push(database);
    return database.url as string;
  };
  beforeAll(async () => {
    sim = await startSimulator({ devices: 1_500, seed: 'posture-cli' });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'posture-cli-'));
  });
  afterAll(async () => {
    await sim?.close();
    for (const database of databases) await database.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('syncs the ENTRA_* tenant, reports progress on stderr and the summary on stdout, and exits by outcome', async () => {
    const env = { ...sim.env, DATABASE_URL: await freshDatabaseUrl(), INTUNE_DATA_DIR: path.join(dir, 'real') };
    const ok = await runCli(['sync', '--json'], env);
    expect(ok.code, ok.stderr).toBe(0);
    const run = JSON.parse(ok.stdout) as SyncRunSummary;
    expect(run).toMatchObject({ status: 'succeeded', trigger: 'manual', devices: 1_500, pages: 2, error_code: null });
    expect(ok.stderr).toMatch(/^sync: 1000 devices, 1 pages, \d+ devices\/s$/m);
    expect(ok.stderr).toMatch(/^sync: 1500 devices, 2 pages/m);

    // A wrong secret: the run fails, the table says why, the exit code is 1, the secret is not echoed.
    const bad = await runCli(['sync'], { ...env, ENTRA_CLIENT_SECRET: 'wrong-secret-for-cli-test' });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^status\s+failed$/m);
    expect(bad.stdout).toMatch(/^error\s+auth_failed: /m);
    expect(bad.stdout + bad.stderr).not.toContain('wrong-secret-for-cli-test');

    const unknown = await runCli(['sync', '--connection', '00000000-0000-4000-8000-000000000000'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no connection 00000000-0000-4000-8000-000000000000/);
  });

  it('without ENTRA_* syncs the labelled demo tenant', async () => {
    const demo = await runCli(['sync'], { DATABASE_URL: await freshDatabaseUrl(), INTUNE_DATA_DIR: path.join(dir, 'demo') });
    expect(demo.code, demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(/^status\s+succeeded$/m);
    expect(demo.stdout).toMatch(/^devices\s+200$/m);
    expect(demo.stdout).toMatch(/Demo tenant \(simulated devices/);
  });
});
