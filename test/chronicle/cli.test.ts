/**
 * `intune-connector chronicle …` as a reviewer runs it: a real process, configured by environment,
 * with the exit codes scripts rely on (0 intact, 1 tampering, 2 bad arguments, 3 configuration,
 * 4 database unavailable).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { openDatabase } from '../../src/db/index.js';
import { createChronicle } from '../../src/chronicle/index.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { changeBodyByte, invoked, tempDir } from './helpers.js';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli.ts');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: readonly string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(DATABASE_URL|INTUNE_|CHRONICLE_|ENTRA_)/.test(k)));
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'chronicle', ...args], { env: { ...clean, LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!pgAvailable())('chronicle CLI on PostgreSQL', () => {
  let tdb: TestDatabase;
  let data: ReturnType<typeof tempDir>;
  let env: Record<string, string>;

  beforeAll(async () => {
    tdb = await createPostgresDatabase();
    data = tempDir('cli');
    env = { DATABASE_URL: tdb.url as string, INTUNE_DATA_DIR: data.dir };
    // The server's side of things: events appended with the key and directory the config names.
    const config = loadConfig(env);
    const chronicle = await createChronicle({ db: await tdb.open(), signingKeyFile: config.chronicle.signingKeyFile, checkpointDir: config.chronicle.checkpointDir });
    for (let i = 1; i <= 5; i++) await chronicle.append(invoked('acme', i, i === 4 ? { decision: 'denied', reason: 'capability_not_granted', outcome: 'denied' } : {}));
    await chronicle.append(invoked('other', 1));
    await chronicle.close();
  });
  afterAll(async () => {
    await tdb?.drop();
    data?.remove();
  });

  it('checkpoints, verifies, queries and exports; then names the tampered seq and exits 1', async () => {
    const checkpoint = await cli(['checkpoint'], env);
    expect(checkpoint.stderr).toBe('');
    expect(checkpoint.code).toBe(0);
    expect(checkpoint.stdout).toMatch(/tenant acme: seq 5 [0-9a-f]{64}/);
    expect(checkpoint.stdout).toMatch(/wrote 2 checkpoints to .*checkpoints-\d{4}-\d{2}-\d{2}\.jsonl/);

    const [intact, query, exported] = await Promise.all([
      cli(['verify'], env),
      cli(['query', '--tenant', 'acme', '--decision', 'deny'], env),
      cli(['export', '--format', 'jsonl', '--tenant', 'acme', '--out', path.join(data.dir, 'acme.jsonl')], env),
    ]);
    expect(intact.code).toBe(0);
    // One checkpoint from the writer closing, one from the command.
    expect(intact.stdout).toContain('tenant acme: intact (5 events, head seq 5, 2 checkpoints)');
    expect(query.code).toBe(0);
    const denied = query.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { seq: number; data: { decision: string } });
    expect(denied.map((e) => [e.seq, e.data.decision])).toEqual([[4, 'denied']]);
    expect(Object.keys(denied[0] ?? {})).toEqual(['seq', 'tenant', 'time', 'type', 'code', 'actor', 'request_id', 'data', 'prev_hash', 'hash']);
    expect(exported.code).toBe(0);
    expect(exported.stderr).toContain('exported 5 events');
    expect(fs.readFileSync(path.join(data.dir, 'acme.jsonl'), 'utf8').trimEnd().split('\n')).toHaveLength(5);

    await changeBodyByte(await tdb.open(), 'acme', 3, 40);
    const tampered = await cli(['verify'], env);
    expect(tampered.code).toBe(1);
    expect(tampered.stdout).toContain('TAMPERING FOUND');
    expect(tampered.stdout).toMatch(/tenant acme: seq 3: hash_mismatch: /);
    expect(tampered.stdout).toContain('tenant other: intact');
    const json = await cli(['verify', '--tenant', 'acme', '--json'], env);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, chains: [{ tenant: 'acme', first_bad_seq: 3, reason: 'hash_mismatch', events_checked: 2 }] });
    // One vocabulary: the same snake_case names as the API, nothing in camelCase.
    expect(json.stdout).not.toMatch(/"[a-z]+[A-Z][A-Za-z]*":/);
    expect(JSON.parse(json.stdout)).toHaveProperty('exposure.uncovered_events');
  });

  it('refuses, with a sentence and exit 2, a tenant without a chain, a device that is not a GUID and a date that does not exist', async () => {
    const [noTenant, noQueryTenant, badDevice, badDate, zoneless] = await Promise.all([
      cli(['verify', '--tenant', 'nosuch'], env),
      cli(['query', '--tenant', 'nosuch'], env),
      cli(['query', '--tenant', 'acme', '--device', 'not-a-guid'], env),
      cli(['query', '--tenant', 'acme', '--from', '2025-02-30'], env),
      cli(['query', '--tenant', 'acme', '--to', '2025-01-31T08:00'], env),
    ]);
    for (const run of [noTenant, noQueryTenant, badDevice, badDate, zoneless]) {
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
    }
    expect(noTenant.stderr).toContain('--tenant nosuch: no audit trail for this tenant in this database (tenants with a chain here: acme, other)');
    expect(noQueryTenant.stderr).toContain('no audit trail for this tenant');
    expect(badDevice.stderr).toContain('a GUID such as 0fa4e5e1-6a7b-4c1d-9e2f-3a4b5c6d7e8f');
    expect(badDevice.stderr).not.toContain('no events match');
    expect(badDate.stderr).toContain('a date such as 2025-01-31 (midnight UTC) or a date and time with a time zone');
    expect(zoneless.stderr).toContain('with a time zone');
  });

  it('takes a date alone as midnight UTC, as the API does', async () => {
    const [all, none] = await Promise.all([
      cli(['query', '--tenant', 'other', '--from', '2000-01-01'], env),
      cli(['query', '--tenant', 'other', '--to', '2000-01-01'], env),
    ]);
    expect(all.code).toBe(0);
    expect(all.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('no events match');
  });

  it('exits 2 for a malformed filter or option, 3 for bad configuration, 4 when the database is unreachable', async () => {
    const [badFilter, badOption, badConfig, unreachable] = await Promise.all([
      cli(['verify', '--tenant', 'no spaces'], env),
      cli(['query', '--decision', 'maybe'], env),
      cli(['verify'], { ...env, DATABASE_URL: 'mysql://db/intune' }),
      cli(['verify'], { ...env, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' }),
    ]);
    expect(badFilter.code).toBe(2);
    expect(badFilter.stderr).toContain('a tenant is 1 to 64 letters');
    expect(badOption.code).toBe(2); // never 1: that means tampering
    expect(badOption.stderr).toContain('Allowed choices are allow, deny');
    expect(badConfig.code).toBe(3);
    expect(badConfig.stderr).toContain('DATABASE_URL must be a postgres:// or postgresql:// URL');
    expect(unreachable.code).toBe(4);
    expect(unreachable.stderr).toMatch(/database unavailable/);
  });
});

describe('chronicle CLI on the embedded database', () => {
  it('verifies the chain in the data directory', async () => {
    const data = tempDir('cli-pglite');
    try {
      const config = loadConfig({ INTUNE_DATA_DIR: data.dir });
      const db = await openDatabase(config.database);
      const chronicle = await createChronicle({ db, signingKeyFile: config.chronicle.signingKeyFile, checkpointDir: config.chronicle.checkpointDir });
      for (let i = 1; i <= 3; i++) await chronicle.append(invoked('default', i));
      await chronicle.close(); // signs the head it wrote
      await db.close();
      const run = await cli(['verify'], { INTUNE_DATA_DIR: data.dir });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('tenant default: intact (3 events, head seq 3, 1 checkpoint)');
    } finally {
      data.remove();
    }
  });
});
