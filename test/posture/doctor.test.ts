/**
 * The pre-flight, as an operator meets it before a first sync: `intune-connector doctor` (the
 * built binary) against the Graph simulator over HTTPS with MSAL, once healthy and with tokens
 * that lack permissions; and POST …/connections/{id}/test on a real server.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { ROLE_READ, startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { PreflightReportSchema, type PreflightReport } from '../../src/posture/preflight.js';
import { startTestServer, type TestServer } from '../api/helpers.js';

describe.skipIf(!pgAvailable())('intune-connector doctor [postgres]', () => {
  const sims: SimulatorHandle[] = [];
  const databases: TestDatabase[] = [];
  let dir: string;
  const envFor = async (sim: SimulatorHandle, extra: Record<string, string> = {}) => {
    const database = await createPostgresDatabase();
    databases.push(database);
    return { ...sim.env, DATABASE_URL: database.url as string, INTUNE_DATA_DIR: fs.mkdtempSync(path.join(dir, 'd-')), ...extra };
  };
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'doctor-'));
  });
  afterAll(async () => {
    for (const sim of sims) await sim.close();
    for (const database of databases) await database.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('passes a healthy connection: exit 0, the device count, the token roles, the clock, an intact chain', async () => {
    const sim = await startSimulator({ devices: 75, seed: 'doctor-ok' });
    sims.push(sim);
    const run = await runCli(['doctor', '--json'], await envFor(sim));
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const report = PreflightReportSchema.parse(JSON.parse(run.stdout));
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(['database', 'connection', 'token', 'permissions', 'graph', 'devices', 'clock', 'chronicle', 'checkpoint']);
    expect(report.checks.filter((c) => c.status === 'fail')).toEqual([]);
    expect(report.facts.device_count).toBe(75);
    expect(report.facts.token_roles).toContain(ROLE_READ);
    expect(Math.abs(report.facts.clock_skew_ms as number)).toBeLessThan(5_000);
    // Only what a reviewer may see: no secret, no token.
    expect(run.stdout).not.toContain(sim.clientSecret);
    expect(run.stdout).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);

    const text = await runCli(['doctor'], await envFor(sim));
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ {2}ok {4}devices +the tenant has 75 managed devices$/m);
    expect(text.stdout).toContain('doctor: all checks passed');
  });

  it('names the Graph permission a token lacks for an enabled operation, and where to grant it', async () => {
    const sim = await startSimulator({ devices: 10, seed: 'doctor-read-only', roles: [ROLE_READ] });
    sims.push(sim);
    // Reads work with Read.All alone; sync_device (PROPOSE) needs PrivilegedOperations.All.
    const readOnly = await runCli(['doctor', '--json'], await envFor(sim));
    expect(readOnly.code, readOnly.stderr).toBe(0);

    const run = await runCli(['doctor'], await envFor(sim, { INTUNE_MCP_CAPABILITIES: 'READ,PROPOSE' }));
    expect(run.code).toBe(1);
    const [first, fix] = run.stdout.split('\n');
    expect(first).toMatch(/^First thing to fix: permissions: the token lacks the Graph application permission DeviceManagementManagedDevices\.PrivilegedOperations\.All, needed for sync_device/);
    expect(fix).toMatch(/^ {2}fix: grant DeviceManagementManagedDevices\.PrivilegedOperations\.All to the app \S+ in the Microsoft Entra admin center: App registrations → the app → API permissions/);
    expect(fix).toContain(sim.clientId);
    expect(run.stdout).toContain('doctor: a check failed');
  });

  it('a token without any role: the missing read permission comes first, Graph refuses, the count is skipped', async () => {
    const sim = await startSimulator({ devices: 10, seed: 'doctor-no-roles', roles: [] });
    sims.push(sim);
    const run = await runCli(['doctor', '--json'], await envFor(sim));
    expect(run.code).toBe(1);
    const report: PreflightReport = PreflightReportSchema.parse(JSON.parse(run.stdout));
    expect(report.first_problem).toMatchObject({ name: 'permissions', status: 'fail' });
    expect(report.first_problem?.summary).toContain('DeviceManagementManagedDevices.Read.All');
    expect(report.facts.token_roles).toEqual([]);
    const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    expect(byName['graph']).toMatchObject({ status: 'fail' });
    expect(byName['graph']?.summary).toMatch(/403/);
    expect(byName['devices']?.status).toBe('skipped');
    expect(byName['database']?.status).toBe('ok');
  });

  it('a wrong secret fails at the token, and usage mistakes exit 2', async () => {
    const sim = await startSimulator({ devices: 5, seed: 'doctor-bad-secret' });
    sims.push(sim);
    const bad = await runCli(['doctor', '--json'], await envFor(sim, { ENTRA_CLIENT_SECRET: 'not-the-secret-of-doctor-test' }));
    expect(bad.code).toBe(1);
    const report = PreflightReportSchema.parse(JSON.parse(bad.stdout));
    expect(report.first_problem).toMatchObject({ name: 'token', status: 'fail' });
    expect(bad.stdout).not.toContain('not-the-secret-of-doctor-test');

    const usage = await runCli(['doctor', '--connection', 'nope'], await envFor(sim));
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('use a GUID such as');
    const unknown = await runCli(['doctor', '--connection', '00000000-0000-4000-8000-000000000000'], await envFor(sim));
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toMatch(/First thing to fix: connection: tenant default has no connection 00000000-0000-4000-8000-000000000000/);
  });
});

describe.skipIf(!pgAvailable())('POST /api/v1/integrations/intune/connections/{connection_id}/test [postgres]', () => {
  let t: TestServer;
  const I = '/api/v1/integrations/intune';
  beforeAll(async () => {
    t = await startTestServer('postgres');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('answers the pre-flight report to an admin, 403 to a reader, 404 for an unknown id, 400 for a malformed one', async () => {
    const admin = await t.key('default', 'admin');
    const reader = await t.key('default', 'reader');
    const list = await t.request('GET', `${I}/connections`, { key: admin });
    const id = (list.body.connections as Array<{ id: string }>)[0]?.id as string;

    const res = await t.request('POST', `${I}/connections/${id}/test`, { key: admin });
    expect(res.status).toBe(200);
    const report = PreflightReportSchema.parse(res.body);
    expect(report).toMatchObject({ ok: true, tenant: 'default', connection_id: id });
    expect(report.checks.filter((c) => c.status === 'fail')).toEqual([]);
    expect(report.facts.device_count).toBe(200);

    expect((await t.request('POST', `${I}/connections/${id}/test`, { key: reader })).status).toBe(403);
    expect((await t.request('POST', `${I}/connections/00000000-0000-4000-8000-000000000000/test`, { key: admin })).status).toBe(404);
    const malformed = await t.request('POST', `${I}/connections/not-a-guid/test`, { key: admin });
    expect(malformed.status).toBe(400);
    const withBody = await t.request('POST', `${I}/connections/${id}/test`, { key: admin, body: { deep: true } });
    expect(withBody.status).toBe(400);
    expect(withBody.body.error.message).toContain('send no body');
  });
});

describe('intune-connector doctor beside a running demo serve (embedded database)', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('pglite');
  });
  afterAll(async () => {
    await t?.close();
  });

  it("reports on the server's own demo simulator (its Graph requests), not a second simulated tenant", async () => {
    const demo = t.server.runtime.demo?.simulator;
    expect(demo).toBeDefined();
    const simulator = demo as SimulatorHandle;
    const socket = path.join(t.dataDir, 'serve.sock');
    expect(fs.statSync(socket).isSocket()).toBe(true);
    const before = simulator.requests().length;

    // The operator's shell: no ENTRA_*, the server's data directory.
    const run = await runCli(['doctor', '--json'], { INTUNE_DATA_DIR: t.dataDir });
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const report = PreflightReportSchema.parse(JSON.parse(run.stdout));
    expect(report).toMatchObject({ ok: true, tenant: 'default', connection_id: t.server.connection?.id });
    expect(report.facts.device_count).toBe(200);
    // Its Graph reads reached the simulator built into the server.
    const received = simulator.requests().slice(before);
    expect(received.filter((r) => r.kind === 'graph').length).toBeGreaterThanOrEqual(1);
    expect(run.stdout).not.toContain(simulator.clientSecret);

    // Its usage mistakes still exit 2 before anything is asked.
    const usage = await runCli(['doctor', '--connection', 'nope'], { INTUNE_DATA_DIR: t.dataDir });
    expect(usage.code).toBe(2);
  });
});

describe('specs/openapi.yaml states the pre-flight report as the code declares it', () => {
  it('has the same fields, required fields, check names and statuses', async () => {
    const { loadOpenApi } = await import('../api/openapi.js');
    const { z } = await import('zod');
    const { PreflightCheckSchema } = await import('../../src/posture/preflight.js');
    const schemas = loadOpenApi().components['schemas'] as Record<string, any>;
    for (const [name, schema] of [
      ['PreflightReport', PreflightReportSchema],
      ['PreflightCheck', PreflightCheckSchema],
    ] as const) {
      const declared = z.toJSONSchema(schema, { io: 'output' }) as { properties: Record<string, any>; required: string[] };
      expect(Object.keys(schemas[name].properties).sort(), name).toEqual(Object.keys(declared.properties).sort());
      expect([...schemas[name].required].sort(), name).toEqual([...declared.required].sort());
    }
    const check = z.toJSONSchema(PreflightCheckSchema) as { properties: Record<string, { enum: string[] }> };
    expect(schemas['PreflightCheck'].properties.name.enum).toEqual(check.properties['name']?.enum);
    expect(schemas['PreflightCheck'].properties.status.enum).toEqual(check.properties['status']?.enum);
    const facts = (z.toJSONSchema(PreflightReportSchema) as unknown as { properties: { facts: { properties: object } } }).properties.facts.properties;
    expect(Object.keys(schemas['PreflightReport'].properties.facts.properties).sort()).toEqual(Object.keys(facts).sort());
  });
});
