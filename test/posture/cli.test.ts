import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
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

  it('matches the assets of what it synced, and re-matches what the next sync changed, without a running server', async () => {
    const url = await freshDatabaseUrl();
    const env = { ...sim.env, DATABASE_URL: url, INTUNE_DATA_DIR: path.join(dir, 'assets') };
    const client = new pg.Client({ connectionString: url });
    const assetOf = async (deviceId: string) =>
      (await client.query<{ asset_id: string }>(`SELECT asset_id::text AS asset_id FROM asset_sources WHERE kind = 'intune' AND source_id = $1`, [deviceId.toLowerCase()])).rows[0]?.asset_id;
    const first = await runCli(['sync'], env);
    expect(first.code, first.stderr).toBe(0);
    await client.connect();
    try {
      const sources = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM asset_sources WHERE tenant = 'default' AND kind = 'intune'`);
      expect(sources.rows[0]?.n).toBe(1_500);
      const withSerial = sim.devices.filter((d) => typeof d['serialNumber'] === 'string' && d['serialNumber'] !== '');
      const a = withSerial[0];
      const b = withSerial.find((d) => d['serialNumber'] !== a!['serialNumber']);
      const [idA, idB] = [String(a!['id']), String(b!['id'])];
      expect(await assetOf(idA)).toBeDefined();
      expect(await assetOf(idA)).not.toBe(await assetOf(idB));

      // B now reports A's serial: the next CLI sync joins them into one asset and records the merge.
      sim.updateDevice(idB, { serialNumber: a!['serialNumber'] });
      const second = await runCli(['sync'], env);
      expect(second.code, second.stderr).toBe(0);
      expect(await assetOf(idB)).toBe(await assetOf(idA));
      const merged = await client.query<{ data: string }>(`SELECT body AS data FROM chronicle_event WHERE tenant = 'default' AND type = 'asset.sources_merged'`);
      expect(merged.rows.map((r) => r.data).join('\n')).toContain(idB.toLowerCase());
    } finally {
      await client.end();
    }
  }, 180_000);

  it('without ENTRA_* syncs the labelled demo tenant', async () => {
    const demo = await runCli(['sync'], { DATABASE_URL: await freshDatabaseUrl(), INTUNE_DATA_DIR: path.join(dir, 'demo') });
    expect(demo.code, demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(/^status\s+succeeded$/m);
    expect(demo.stdout).toMatch(/^devices\s+200$/m);
    expect(demo.stdout).toMatch(/Demo tenant \(simulated devices/);
  });
});
