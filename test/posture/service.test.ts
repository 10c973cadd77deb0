/**
 * The posture service end to end, on PostgreSQL and on PGlite: real Chronicle, the simulator over
 * HTTPS, the real Graph client. One world per database (PGlite instances are costly to start);
 * the blocks build on each other in order: connections, then sync runs, then replicas.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createChronicle, validateEventData } from '../../src/chronicle/index.js';
import { loadConfig } from '../../src/config/index.js';
import { osFamilyOf } from '../../src/connector/redaction.js';
import { createLogger } from '../../src/log/index.js';
import {
  PostureInputError,
  PostureNotFoundError,
  SyncInProgressError,
  type Connection,
  type ConnectionInput,
  type SnapshotDevice,
  type SyncRunSummary,
} from '../../src/posture/index.js';
import { createScheduler, jitteredIntervalMs, type Scheduler } from '../../src/posture/scheduler.js';
import { insertConnection } from '../../src/posture/store.js';
import { startSimulator } from '../../src/simulator/index.js';
import { forEachDatabase } from '../helpers/db.js';
import { ADMIN, dumpDatabase, eventually, leaksIn, openWorld, piiValues, type World } from './helpers.js';

const DEVICES = 2_500;
const CONNECTION_EVENTS = ['integration.intune.connection_created', 'integration.intune.connection_updated'] as const;

describe('jitteredIntervalMs', () => {
  it('stays within ±10% of the interval for any random value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1_000, max: 604_800_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (interval, r) => {
        const ms = jitteredIntervalMs(interval, () => r);
        return ms >= Math.floor(interval * 0.9) && ms <= Math.ceil(interval * 1.1);
      }),
    );
    expect(jitteredIntervalMs(60_000, () => 0)).toBe(54_000);
    expect(jitteredIntervalMs(60_000, () => 0.5)).toBe(60_000);
  });
});

forEachDatabase('posture service', (create) => {
  let world: World;
  let acme: Connection;
  let globex: Connection;
  let connection: Connection;
  let first: SyncRunSummary;

  const secretFile = () => path.join(world.dir, 'acme-file.secret');
  const input = (overrides: Partial<ConnectionInput> = {}): ConnectionInput => ({
    display_name: 'Acme production',
    entra_tenant_id: world.sim.tenantId,
    client_id: world.sim.clientId,
    cloud: 'custom',
    secret_ref: 'env:ACME_SECRET',
    ...overrides,
  });
  const inputError = async (promise: Promise<unknown>): Promise<PostureInputError> => {
    const err = await promise.then(
      () => new Error('expected a PostureInputError'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PostureInputError);
    return err as PostureInputError;
  };
  const countBy = (key: (d: Readonly<Record<string, unknown>>) => string) => {
    const counts: Record<string, number> = {};
    for (const d of world.sim.devices) counts[key(d)] = (counts[key(d)] ?? 0) + 1;
    return counts;
  };
  /** Posture rows of the default tenant's real connection, in every snapshot (current or not). */
  const rowsInTable = async () =>
    (await world.db.query<{ n: number }>('SELECT count(*)::int AS n FROM intune_device_postures WHERE connection_id = $1', [connection.id])).rows[0]?.n;
  const allDevices = async (query: Record<string, unknown> = {}): Promise<SnapshotDevice[]> => {
    const devices: SnapshotDevice[] = [];
    let cursor: string | null = null;
    do {
      const page = await world.service.listDevices('default', { ...query, limit: 500, ...(cursor !== null ? { cursor } : {}) });
      devices.push(...page.devices);
      cursor = page.next_cursor;
    } while (cursor !== null);
    return devices;
  };
  const syncEvents = async () => (await world.chronicle.query({ tenant: 'default', types: ['integration.intune.sync_completed'], limit: 1000 })).events;

  beforeAll(async () => {
    world = await openWorld(await create(), {
      devices: DEVICES,
      seed: 'posture-service',
      env: {
        // These runs page sequentially (their failure points are counted in pages of 1000);
        // test/posture/partitioned.test.ts covers the partitioned read.
        INTUNE_SYNC_CONCURRENCY: '1',
        INTUNE_SYNC_INTERVAL: '3600',
        ACME_SECRET: 'acme-secret-value-7f3a9c',
        GLOBEX_SECRET: 'globex-secret-value-55d1e0',
        EMPTY_SECRET: '',
        INTUNE_SECRET_REFS: 'acme=env:ACME_SECRET,globex=env:GLOBEX_SECRET,acme=env:EMPTY_SECRET,acme=file:/tmp/posture-acme-does-not-exist',
      },
    });
    fs.writeFileSync(secretFile(), 'acme-file-secret-3b8e21\n', { mode: 0o600 });
    world.secrets.register(`file:${secretFile()}`, { purpose: 'intune', tenants: ['acme'] });
  });
  afterAll(() => world?.close());

  describe('connections', () => {
    it('creates a connection and records connection_created in Chronicle with the reference, never the secret', async () => {
      acme = await world.service.createConnection('acme', input(), ADMIN);
      expect(acme).toMatchObject({
        tenant: 'acme',
        display_name: 'Acme production',
        entra_tenant_id: world.sim.tenantId,
        client_id: world.sim.clientId.toLowerCase(),
        cloud: 'custom',
        secret_ref: 'env:ACME_SECRET',
        status: 'active',
        status_reason: null,
        demo: false,
        last_sync: null,
      });
      expect(acme.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(await world.service.getConnection('acme', acme.id)).toEqual(acme);
      expect(await world.service.listConnections('acme')).toEqual([acme]);

      const { events } = await world.chronicle.query({ tenant: 'acme', types: [...CONNECTION_EVENTS] });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ type: 'integration.intune.connection_created', actor: ADMIN });
      expect(events[0]?.data).toEqual({
        connection_id: acme.id,
        entra_tenant_id: world.sim.tenantId,
        client_id: world.sim.clientId.toLowerCase(),
        cloud: 'custom',
        secret_ref: 'env:ACME_SECRET',
        status: 'active',
      });
      expect(validateEventData('integration.intune.connection_created', events[0]?.data)).toEqual({ ok: true });
    });

    it('updates a connection, auditing exactly the fields that changed; a no-op change records nothing', async () => {
      const updated = await world.service.updateConnection('acme', acme.id, { display_name: 'Acme (prod)', status: 'disabled' }, ADMIN);
      expect(updated).toMatchObject({ id: acme.id, display_name: 'Acme (prod)', status: 'disabled' });
      expect(Date.parse(updated!.updated_at)).toBeGreaterThanOrEqual(Date.parse(acme.updated_at));

      const again = await world.service.updateConnection('acme', acme.id, { display_name: 'Acme (prod)' }, ADMIN);
      expect(again?.status).toBe('disabled');

      const reenabled = await world.service.updateConnection('acme', acme.id, { status: 'active', secret_ref: `file:${secretFile()}` }, ADMIN);
      expect(reenabled).toMatchObject({ status: 'active', secret_ref: `file:${secretFile()}` });

      const { events } = await world.chronicle.query({ tenant: 'acme', types: ['integration.intune.connection_updated'] });
      expect(events.map((e) => e.data['changed_fields'])).toEqual([
        ['display_name', 'status'],
        ['secret_ref', 'status'],
      ]);
      expect(events[0]?.data).toMatchObject({ connection_id: acme.id, status: 'disabled' });
      expect(events[1]?.data).toMatchObject({ status: 'active', secret_ref: `file:${secretFile()}` });
      for (const e of events) expect(validateEventData(e.type, e.data)).toEqual({ ok: true });
      // display_name values are free text: the audit names the field, not the value.
      expect(JSON.stringify(events)).not.toContain('Acme (prod)');
      acme = reenabled!;
    });

    it("isolates tenants: another tenant's id behaves like an unknown id for get, update, sync and runs", async () => {
      globex = await world.service.createConnection('globex', input({ display_name: 'Globex', secret_ref: 'env:GLOBEX_SECRET' }), ADMIN);
      expect(await world.service.getConnection('globex', acme.id)).toBeNull();
      expect(await world.service.getConnection('acme', globex.id)).toBeNull();
      expect(await world.service.updateConnection('globex', acme.id, { status: 'disabled' }, ADMIN)).toBeNull();
      expect((await world.service.getConnection('acme', acme.id))?.status).toBe('active');
      await expect(world.service.startSync('globex', acme.id, ADMIN)).rejects.toBeInstanceOf(PostureNotFoundError);
      expect(await world.service.listRuns('globex', acme.id)).toEqual([]);
      expect((await world.service.listConnections('globex')).map((c) => c.id)).toEqual([globex.id]);
      expect((await world.service.listConnections('acme')).map((c) => c.id)).toEqual([acme.id]);
      // A tenant cannot borrow another tenant's secret either.
      expect((await inputError(world.service.createConnection('acme', input({ display_name: 'x', secret_ref: 'env:GLOBEX_SECRET' }), ADMIN))).code).toBe(
        'secret_ref_not_registered',
      );
      // Nothing of globex's was audited in acme's chain.
      const { events } = await world.chronicle.query({ tenant: 'acme', types: [...CONNECTION_EVENTS] });
      expect(events.every((e) => e.data['connection_id'] === acme.id)).toBe(true);
      // Unknown and malformed ids are plain "not found".
      expect(await world.service.getConnection('acme', '00000000-0000-4000-8000-000000000000')).toBeNull();
      expect(await world.service.getConnection('acme', "x' OR 1=1 --")).toBeNull();
    });

    it('does not make a change Chronicle cannot record', async () => {
      const closed = await createChronicle({ db: world.db, checkpointIntervalMs: 0 });
      await closed.close();
      const unaudited = world.makeService({ chronicle: closed });
      await expect(unaudited.createConnection('acme', input({ display_name: 'Unrecorded', client_id: crypto.randomUUID() }), ADMIN)).rejects.toMatchObject({
        name: 'ChronicleError',
      });
      await expect(unaudited.updateConnection('acme', acme.id, { display_name: 'Unrecorded rename' }, ADMIN)).rejects.toMatchObject({ name: 'ChronicleError' });
      expect((await world.service.listConnections('acme')).map((c) => c.display_name)).toEqual([acme.display_name]);
      await unaudited.close();
    });

    it('refuses bad input with a code, the field and a sentence that says what to send', async () => {
      const cases: [unknown, string, string | null][] = [
        [{ ...input(), api_key: 'x' }, 'unknown_field', 'api_key'],
        [{ ...input(), client_id: 'not-a-guid' }, 'invalid_field', 'client_id'],
        [{ ...input(), cloud: 'mars' }, 'invalid_field', 'cloud'],
        [{ ...input(), entra_tenant_id: 'contoso tenant' }, 'invalid_field', 'entra_tenant_id'],
        [{ ...input(), display_name: '' }, 'invalid_field', 'display_name'],
        [{ ...input(), status: 'error' }, 'invalid_field', 'status'],
        [{ display_name: 'x', client_id: world.sim.clientId, secret_ref: 'env:ACME_SECRET' }, 'missing_field', 'entra_tenant_id'],
        ['a string', 'invalid_body', null],
        [null, 'invalid_body', null],
      ];
      for (const [body, code, field] of cases) {
        const err = await inputError(world.service.createConnection('acme', body as ConnectionInput, ADMIN));
        expect({ code: err.code, field: err.field }).toEqual({ code, field });
        expect(err.message.length).toBeGreaterThan(10);
      }
      const patchErr = await inputError(world.service.updateConnection('acme', acme.id, { client_id: 'nope' }, ADMIN));
      expect(patchErr).toMatchObject({ code: 'invalid_field', field: 'client_id' });
      expect((await inputError(world.service.listConnections('bad tenant!'))).code).toBe('invalid_tenant');
      // cloud custom is only for operators who configured its hosts.
      const publicService = world.makeService({ config: loadConfig({ ...world.env, INTUNE_CLOUD: 'public', INTUNE_LOGIN_URL: '', INTUNE_GRAPH_URL: '' }, { cwd: world.dir }) });
      expect(await inputError(publicService.createConnection('acme', input({ display_name: 'y' }), ADMIN))).toMatchObject({
        code: 'cloud_not_configured',
        field: 'cloud',
      });
    });

    it('refuses secret references that are unregistered, for another purpose, of an unknown scheme, or unreadable', async () => {
      const cases: [string, string][] = [
        ['env:HOME', 'secret_ref_not_registered'],
        ['env:DATABASE_URL', 'secret_ref_wrong_purpose'],
        [`file:${world.config.chronicle.signingKeyFile}`, 'secret_ref_wrong_purpose'],
        [`file:${path.join(world.config.database.dataDir, 'fingerprint.key')}`, 'secret_ref_wrong_purpose'],
        ['vault:secret/data/intune', 'secret_ref_scheme'],
        ['plain-secret-pasted-by-mistake', 'secret_ref_invalid'],
        ['env:EMPTY_SECRET', 'secret_unavailable'],
        ['file:/tmp/posture-acme-does-not-exist', 'secret_unavailable'],
        // .. is resolved before the registration is checked
        [`file:${path.dirname(secretFile())}/../${path.basename(path.dirname(secretFile()))}/acme-file.secret`, 'connection_exists'],
      ];
      for (const [ref, code] of cases) {
        const err = await inputError(world.service.createConnection('acme', input({ display_name: 'other', secret_ref: ref }), ADMIN));
        expect({ ref, code: err.code }).toEqual({ ref, code });
        if (code !== 'connection_exists') expect(err.field).toBe('secret_ref');
      }
      // Refusals are not audited as changes and change nothing.
      expect(await world.service.listConnections('acme')).toHaveLength(1);
    });
    it('bootstraps the labelled demo connection idempotently, and switches it off once real credentials are configured', async () => {
      const demoSim = await startSimulator({ devices: 20, seed: 'posture-demo' });
      try {
        const noEntra = loadConfig({ INTUNE_SYNC_INTERVAL: '0' }, { cwd: world.dir });
        const demo = (await world.service.bootstrapFromConfig(noEntra, { demo: { simulator: demoSim } })) as Connection;
        expect(demo).toMatchObject({
          tenant: 'default',
          demo: true,
          cloud: 'custom',
          entra_tenant_id: demoSim.tenantId,
          secret_ref: 'env:INTUNE_DEMO_CLIENT_SECRET',
          status: 'active',
        });
        expect(demo.display_name).toMatch(/simulated devices, not a real Intune tenant/);
        expect(await world.service.bootstrapFromConfig(noEntra, { demo: { simulator: demoSim } })).toEqual(demo);
        expect((await (await world.service.startSync('default', demo.id, ADMIN)).done).devices).toBe(20);
        expect(world.service.graphFor('default')).toBeDefined();

        const real = (await world.service.bootstrapFromConfig(world.config)) as Connection;
        expect(real).toMatchObject({ demo: false, secret_ref: 'env:ENTRA_CLIENT_SECRET', entra_tenant_id: world.sim.tenantId });
        expect(await world.service.getConnection('default', demo.id)).toMatchObject({ status: 'disabled', status_reason: expect.stringMatching(/ENTRA_/) });
        // Simulated devices are not served beside real ones.
        expect((await world.service.listDevices('default')).total).toBe(0);
        const { events } = await world.chronicle.query({ tenant: 'default', types: [...CONNECTION_EVENTS] });
        expect(events.map((e) => [e.type, e.data['connection_id'], e.data['changed_fields'] ?? null, e.actor.id])).toEqual([
          ['integration.intune.connection_created', demo.id, null, 'bootstrap'],
          ['integration.intune.connection_created', real.id, null, 'bootstrap'],
          ['integration.intune.connection_updated', demo.id, ['status'], 'bootstrap'],
        ]);
        await expect(world.service.bootstrapFromConfig(loadConfig({ ...world.env, ENTRA_CLIENT_ID: 'my-app' }, { cwd: world.dir }))).rejects.toThrow(
          /ENTRA_CLIENT_ID is "my-app"; set it to the application \(client\) id/,
        );
      } finally {
        await demoSim.close();
      }
    });
  });

  describe('sync runs and snapshots', () => {
    beforeAll(async () => {
      connection = (await world.service.bootstrapFromConfig(world.config)) as Connection;
    });

    it('streams every device into a redacted snapshot whose counts match the simulator by compliance state and OS', async () => {
      const progress: { devices: number; pages: number }[] = [];
      const { run, done } = await world.service.startSync('default', connection.id, ADMIN, { onProgress: (p) => progress.push(p) });
      expect(run).toMatchObject({ status: 'running', trigger: 'manual', connection_id: connection.id, finished_at: null });
      first = await done;

      expect(first).toMatchObject({ id: run.id, status: 'succeeded', devices: DEVICES, pages: 3, error_code: null, error_message: null });
      expect(first.graph_requests).toBeGreaterThanOrEqual(3);
      expect(first.duration_ms).toBeGreaterThanOrEqual(0);
      expect(progress).toEqual([
        { devices: 1000, pages: 1 },
        { devices: 2000, pages: 2 },
        { devices: 2500, pages: 3 },
      ]);
      expect(first.counts_by_compliance_state).toEqual(countBy((d) => String(d['complianceState'])));
      expect(first.counts_by_os_family).toEqual(countBy((d) => osFamilyOf(d['operatingSystem'])));

      const listed = await allDevices();
      expect(listed).toHaveLength(DEVICES);
      expect(new Set(listed.map((d) => d.device_id))).toEqual(new Set(world.sim.devices.map((d) => String(d['id']).toLowerCase())));
      expect(Object.keys(listed[0] ?? {}).sort()).toEqual(
        [
          'azure_ad_device_id', 'compliance_state', 'connection_id', 'device_id', 'enrolled_at', 'grace_period_expires_at', 'is_encrypted', 'jailbroken',
          'last_sync_at', 'management_agent', 'management_state', 'manufacturer', 'model', 'os_family', 'os_version', 'ownership', 'serial_fingerprint',
          'supervised', 'threat_state',
        ].sort(),
      );

      const summary = await world.service.summary('default');
      expect(summary.devices).toBe(DEVICES);
      expect(summary.counts_by_compliance_state).toMatchObject(first.counts_by_compliance_state);
      expect(summary.counts_by_os_family).toMatchObject(first.counts_by_os_family);
      expect(summary.last_run?.id).toBe(first.id);
      expect((await world.service.getConnection('default', connection.id))?.last_sync?.id).toBe(first.id);
      expect(await world.service.getRun('default', first.id)).toEqual(first);
      expect(await world.service.getRun('other', first.id)).toBeNull();
    });

    it('records sync_completed with counts and ids only: valid against its schema and free of PII', async () => {
      const events = await syncEvents();
      const event = events.find((e) => e.data['run_id'] === first.id);
      expect(event).toBeDefined();
      expect(event?.actor).toEqual(ADMIN);
      expect(validateEventData('integration.intune.sync_completed', event?.data)).toEqual({ ok: true });
      expect(event?.data).toEqual({
        connection_id: connection.id,
        run_id: first.id,
        status: 'succeeded',
        started_at: first.started_at,
        finished_at: first.finished_at,
        duration_ms: first.duration_ms,
        devices: DEVICES,
        pages: 3,
        graph_requests: first.graph_requests,
        throttled_waits: first.throttled_waits,
        counts_by_compliance_state: first.counts_by_compliance_state,
        counts_by_os_family: first.counts_by_os_family,
        invalid_azure_ad_device_ids: 0,
        error_code: null,
      });
      expect(leaksIn(JSON.stringify(events), piiValues(world.sim))).toEqual([]);
    });

    it('records device_posture_changed for compliance, encryption and OS major changes (none on the first sync; a summary past 100)', async () => {
      const changedEvents = async () =>
        (await world.chronicle.query({ tenant: 'default', types: ['integration.intune.device_posture_changed'], limit: 1000 })).events;
      expect(await changedEvents()).toEqual([]);
      const devices = world.sim.devices.slice(0, 120).map((d) => ({ ...d }));
      const [a, b, c, d, e] = devices;
      const flip = (v: unknown) => (v === 'compliant' ? 'noncompliant' : 'compliant');
      world.sim.updateDevice(String(a?.['id']), { complianceState: flip(a?.['complianceState']) });
      world.sim.updateDevice(String(b?.['id']), { isEncrypted: b?.['isEncrypted'] !== true });
      world.sim.updateDevice(String(c?.['id']), { osVersion: `${Number(String(c?.['osVersion']).split('.')[0]) + 1}.0` });
      // A minor update is not a change reviewers are told about.
      world.sim.updateDevice(String(d?.['id']), { osVersion: `${String(d?.['osVersion']).split('.')[0] ?? ''}.99` });
      // Not a GUID: stored as absent and counted.
      world.sim.updateDevice(String(e?.['id']), { azureADDeviceId: 'not-a-guid <x>' });
      const second = await (await world.service.startSync('default', connection.id, ADMIN)).done;
      expect(second.status).toBe('succeeded');
      const events = (await changedEvents()).filter((ev) => ev.data['run_id'] === second.id);
      expect(events.map((ev) => [ev.data['intune_device_id'], ev.data['changed']]).sort()).toEqual(
        [
          [String(a?.['id']).toLowerCase(), ['compliance_state']],
          [String(b?.['id']).toLowerCase(), ['is_encrypted']],
          [String(c?.['id']).toLowerCase(), ['os_major_version']],
        ].sort(),
      );
      const enc = events.find((ev) => ev.data['intune_device_id'] === String(b?.['id']).toLowerCase());
      expect(enc?.data['old']).toMatchObject({ is_encrypted: b?.['isEncrypted'] === true });
      expect(enc?.data['new']).toMatchObject({ is_encrypted: b?.['isEncrypted'] !== true });
      for (const ev of events) expect(validateEventData('integration.intune.device_posture_changed', ev.data)).toEqual({ ok: true });
      const completed = (await syncEvents()).find((ev) => ev.data['run_id'] === second.id);
      expect(completed?.data['invalid_azure_ad_device_ids']).toBe(1);
      const stored = (await allDevices()).find((x) => x.device_id === String(e?.['id']).toLowerCase());
      expect(stored?.azure_ad_device_id).toBeNull();

      // 105 changes in one run: 100 device events, then one summary naming the 5 not listed.
      for (const x of devices.slice(10, 115)) world.sim.updateDevice(String(x['id']), { isEncrypted: x['isEncrypted'] !== true });
      const third = await (await world.service.startSync('default', connection.id, ADMIN)).done;
      const many = (await changedEvents()).filter((ev) => ev.data['run_id'] === third.id);
      expect(many).toHaveLength(101);
      expect(many.filter((ev) => ev.data['summary'] === true).map((ev) => ev.data['devices_not_listed'])).toEqual([5]);
      expect(leaksIn(JSON.stringify(many), piiValues(world.sim))).toEqual([]);
      // The tests after this one read the snapshot this run made.
      first = third;
    });

    it('filters and pages the current snapshot, and refuses a cursor reused with other filters', async () => {
      const listed = await allDevices();
      const macos = await allDevices({ os_family: 'macos' });
      expect(macos).toHaveLength(listed.filter((d) => d.os_family === 'macos').length);
      const grace = await world.service.listDevices('default', { compliance_state: 'inGracePeriod', ownership: 'personal', limit: 5 });
      expect(grace.total).toBe(listed.filter((d) => d.compliance_state === 'inGracePeriod' && d.ownership === 'personal').length);
      expect(grace.devices.every((d) => d.compliance_state === 'inGracePeriod' && d.ownership === 'personal')).toBe(true);

      const cutoff = new Date(Date.now() - 14 * 86_400_000).toISOString();
      const stale = await allDevices({ last_sync_before: cutoff });
      expect(stale.length).toBe(listed.filter((d) => d.last_sync_at !== null && d.last_sync_at < cutoff).length);
      expect(stale.length).toBeGreaterThan(0);
      const fresh = await world.service.listDevices('default', { last_sync_after: cutoff, limit: 1 });
      expect(fresh.total).toBe(listed.filter((d) => d.last_sync_at !== null && d.last_sync_at > cutoff).length);

      const target = listed[1234] as SnapshotDevice;
      const byPrefix = await world.service.listDevices('default', { q: target.device_id.slice(0, 8).toUpperCase() });
      expect(byPrefix.devices.map((d) => d.device_id)).toContain(target.device_id);
      expect(await world.service.getDevice('default', target.device_id)).toMatchObject({ ...target, snapshot_at: first.finished_at });
      expect(await world.service.getDevice('other-tenant', target.device_id)).toBeNull();

      const page = await world.service.listDevices('default', { os_family: 'windows', limit: 10 });
      expect(page.next_cursor).not.toBeNull();
      await expect(world.service.listDevices('default', { os_family: 'ios', cursor: page.next_cursor as string })).rejects.toMatchObject({
        code: 'invalid_cursor',
        field: 'cursor',
      });
      await expect(world.service.listDevices('default', { cursor: 'garbage' })).rejects.toBeInstanceOf(PostureInputError);
      await expect(world.service.listDevices('default', { limit: 501 })).rejects.toMatchObject({ field: 'limit' });
      await expect(world.service.listDevices('default', { q: "%' OR 1=1" } as never)).rejects.toMatchObject({ field: 'q' });
      await expect(world.service.listDevices('default', { last_sync_before: 'yesterday' })).rejects.toMatchObject({ field: 'last_sync_before' });
    });

    it('readers never see a half sync: during a slow run they see the previous snapshot, whole', async () => {
      const flipped = world.sim.devices.filter((d) => d['complianceState'] === 'compliant').slice(0, 100);
      for (const d of flipped) world.sim.updateDevice(String(d['id']), { complianceState: 'noncompliant' });
      world.sim.setFaults({ latencyMs: 300 });
      const before = await world.service.summary('default');
      const seen: { total: number; noncompliant: number; flippedState: string | undefined; summaryDevices: number }[] = [];
      let reads: Promise<void> = Promise.resolve();
      const { done } = await world.service.startSync('default', connection.id, ADMIN, {
        onProgress: (p) => {
          if (p.pages > 2) return;
          reads = reads.then(async () => {
            const page = await world.service.listDevices('default', { compliance_state: 'noncompliant', limit: 1 });
            const all = await world.service.listDevices('default', { limit: 1 });
            const device = await world.service.getDevice('default', String(flipped[0]?.['id']).toLowerCase());
            const summary = await world.service.summary('default');
            seen.push({ total: all.total, noncompliant: page.total, flippedState: device?.compliance_state, summaryDevices: summary.devices });
          });
        },
      });
      const second = await done;
      await reads;
      world.sim.setFaults({});
      expect(second.status).toBe('succeeded');
      expect(seen).toHaveLength(2);
      for (const view of seen) {
        expect(view).toEqual({
          total: DEVICES,
          noncompliant: before.counts_by_compliance_state.noncompliant,
          flippedState: 'compliant',
          summaryDevices: DEVICES,
        });
      }
      const after = await world.service.listDevices('default', { compliance_state: 'noncompliant', limit: 1 });
      expect(after.total).toBe(before.counts_by_compliance_state.noncompliant + 100);
      expect((await world.service.getDevice('default', String(flipped[0]?.['id']).toLowerCase()))?.compliance_state).toBe('noncompliant');
      // The replaced snapshot is gone: one snapshot's worth of rows.
      expect(await rowsInTable()).toBe(DEVICES);
      first = second;
    });

    it('a run that fails mid-way leaves the previous snapshot current and is recorded failed with a code', async () => {
      const { done } = await world.service.startSync('default', connection.id, ADMIN, {
        onProgress: (p) => {
          if (p.pages === 1) world.sim.setFaults({ errorRate: 1 });
        },
      });
      const failed = await done;
      world.sim.setFaults({});
      // The next page may already be under way when the fault starts: the run fails at page 2 or 3.
      expect(failed).toMatchObject({ status: 'failed', error_code: 'graph_unavailable' });
      expect(failed.pages).toBeGreaterThanOrEqual(1);
      expect(failed.pages).toBeLessThan(3);
      expect(failed.devices).toBe(failed.pages * 1000);
      expect(failed.error_message).toMatch(/unavailable/i);
      expect(failed.finished_at).not.toBeNull();

      const listed = await world.service.listDevices('default', { limit: 1 });
      expect(listed.total).toBe(DEVICES);
      expect((await world.service.summary('default')).last_run?.id).toBe(failed.id);
      expect(await world.service.getDevice('default', String(listed.devices[0]?.device_id))).toMatchObject({ snapshot_at: first.finished_at });
      // The failed run's partial rows are deleted.
      expect(await rowsInTable()).toBe(DEVICES);
      // A transient failure is not the connection's fault.
      expect((await world.service.getConnection('default', connection.id))?.status).toBe('active');

      const event = (await syncEvents()).find((e) => e.data['run_id'] === failed.id);
      expect(event?.data).toMatchObject({ status: 'failed', error_code: 'graph_unavailable', devices: failed.devices, pages: failed.pages });
      expect(validateEventData('integration.intune.sync_completed', event?.data)).toEqual({ ok: true });
    });

    it('refuses a second sync of the connection while one runs, naming the running run', async () => {
      world.sim.setFaults({ latencyMs: 100 });
      const { run, done } = await world.service.startSync('default', connection.id, ADMIN);
      const err = await world.service.startSync('default', connection.id, { kind: 'agent', id: 'impatient' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SyncInProgressError);
      expect(err).toMatchObject({ runId: run.id, code: 'sync_in_progress' });
      expect((await world.service.listRuns('default', connection.id, 1))[0]).toMatchObject({ id: run.id, status: 'running' });
      world.sim.setFaults({});
      expect((await done).status).toBe('succeeded');
      // Once it is over, the next one starts.
      expect((await (await world.service.startSync('default', connection.id, ADMIN)).done).status).toBe('succeeded');
    });

    it('bad credentials fail the run as auth_failed and put the connection in error until it is fixed', async () => {
      world.secrets.register('env:WRONG_SECRET', { purpose: 'intune', tenants: ['default'], value: 'not-the-right-secret-42' });
      const badSim = await world.service.updateConnection('default', connection.id, { secret_ref: 'env:WRONG_SECRET' }, ADMIN);
      expect(badSim?.secret_ref).toBe('env:WRONG_SECRET');
      const failed = await (await world.service.startSync('default', connection.id, ADMIN)).done;
      expect(failed).toMatchObject({ status: 'failed', error_code: 'auth_failed' });
      expect(failed.error_message).not.toContain('not-the-right-secret-42');
      const broken = await world.service.getConnection('default', connection.id);
      expect(broken).toMatchObject({ status: 'error' });
      expect(broken?.status_reason).toBeTruthy();
      expect((await world.service.listDevices('default', { limit: 1 })).total).toBe(DEVICES);

      await world.service.updateConnection('default', connection.id, { secret_ref: 'env:ENTRA_CLIENT_SECRET' }, ADMIN);
      expect((await (await world.service.startSync('default', connection.id, ADMIN)).done).status).toBe('succeeded');
      expect(await world.service.getConnection('default', connection.id)).toMatchObject({ status: 'active', status_reason: null });
    });

    it('a transient Entra refusal (503 AADSTS90033) fails the run as graph_unavailable and leaves the connection active', async () => {
      world.sim.setFaults({ tokenErrorRate: 1 });
      try {
        const failed = await (await world.service.startSync('default', connection.id, ADMIN)).done;
        expect(failed).toMatchObject({ status: 'failed', error_code: 'graph_unavailable' });
        const after = await world.service.getConnection('default', connection.id);
        expect(after?.status).not.toBe('error');
        expect(after?.status_reason ?? null).toBeNull();
      } finally {
        world.sim.setFaults({});
      }
      expect((await (await world.service.startSync('default', connection.id, ADMIN)).done).status).toBe('succeeded');
    });

    it('never reads succeeded without its sync_completed: when Chronicle refuses it, the run fails and the snapshot stays', async () => {
      const currentSnapshot = async () =>
        (await world.db.query<{ s: string | null }>('SELECT current_snapshot_id AS s FROM intune_connections WHERE id = $1', [connection.id])).rows[0]?.s;
      const snapshotBefore = await currentSnapshot();
      const eventsBefore = (await syncEvents()).length;
      await world.db.query(`CREATE FUNCTION refuse_sync_completed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.type = 'integration.intune.sync_completed' THEN RAISE EXCEPTION 'disk full' USING ERRCODE = '53100'; END IF; RETURN NEW; END $$`);
      await world.db.query('CREATE TRIGGER refuse_sync_completed BEFORE INSERT ON chronicle_event FOR EACH ROW EXECUTE FUNCTION refuse_sync_completed()');
      let failed;
      try {
        failed = await (await world.service.startSync('default', connection.id, ADMIN)).done;
      } finally {
        await world.db.query('DROP TRIGGER refuse_sync_completed ON chronicle_event');
        await world.db.query('DROP FUNCTION refuse_sync_completed()');
      }
      expect(failed).toMatchObject({ status: 'failed' });
      expect(failed.error_code).toBe('audit_unavailable');
      const runs = await world.service.listRuns('default', connection.id, 1);
      expect(runs[0]).toMatchObject({ id: failed.id, status: 'failed' });
      // The snapshot the refused run made never became current.
      expect(await currentSnapshot()).toBe(snapshotBefore);
      expect((await syncEvents()).filter((e) => e.data['run_id'] === failed.id && e.data['status'] === 'succeeded')).toEqual([]);

      const next = await (await world.service.startSync('default', connection.id, ADMIN)).done;
      expect(next.status).toBe('succeeded');
      const events = await syncEvents();
      expect(events.length).toBeGreaterThan(eventsBefore);
      expect(events.filter((e) => e.data['run_id'] === next.id)).toEqual([expect.objectContaining({ data: expect.objectContaining({ status: 'succeeded' }) })]);
    });

    it('a disabled connection is not synced and its devices are not served', async () => {
      await world.service.updateConnection('default', connection.id, { status: 'disabled' }, ADMIN);
      await expect(world.service.startSync('default', connection.id, ADMIN)).rejects.toMatchObject({ code: 'connection_disabled' });
      expect((await world.service.listDevices('default')).total).toBe(0);
      expect((await world.service.summary('default')).devices).toBe(0);
      expect(world.service.graphFor('default')).toBeUndefined();
      await world.service.updateConnection('default', connection.id, { status: 'active' }, ADMIN);
      expect((await world.service.listDevices('default', { limit: 1 })).total).toBe(DEVICES);
      expect(world.service.graphFor('default')).toBeDefined();
    });
  });

  describe('replicas', () => {
    it('the schedulers of two replicas start one run of each due connection between them', async () => {
      const replica = world.makeService(world.database.kind === 'postgres' ? { db: await world.database.open() } : {});
      // acme and globex were never synced: they are due. default ran a moment ago: it is not.
      const due = [acme.id, globex.id];
      world.secrets.register('env:SIMULATED_TENANT_SECRET', { purpose: 'intune', tenants: ['acme', 'globex'], value: world.sim.clientSecret });
      await world.service.updateConnection('acme', acme.id, { secret_ref: 'env:SIMULATED_TENANT_SECRET' }, ADMIN);
      await world.service.updateConnection('globex', globex.id, { secret_ref: 'env:SIMULATED_TENANT_SECRET' }, ADMIN);
      const defaultRuns = (await world.service.listRuns('default', connection.id, 200)).length;
      world.service.startScheduler();
      replica.startScheduler();
      const finished = async (tenant: string, id: string) => (await world.service.listRuns(tenant, id)).find((r) => r.status !== 'running');
      await eventually(async () => ((await finished('acme', acme.id)) && (await finished('globex', globex.id)) ? true : undefined));
      await Promise.all([world.service.stopScheduler(), replica.stopScheduler()]);
      for (const [tenant, id] of [['acme', due[0]], ['globex', due[1]]] as const) {
        const runs = await world.service.listRuns(tenant, id as string);
        expect(runs).toHaveLength(1);
        expect(runs[0]).toMatchObject({ trigger: 'scheduled', status: 'succeeded', devices: DEVICES });
        const { events } = await world.chronicle.query({ tenant, types: ['integration.intune.sync_completed'] });
        expect(events.map((e) => e.actor)).toEqual([{ kind: 'system', id: 'scheduler' }]);
      }
      expect(await world.service.listRuns('default', connection.id, 200)).toHaveLength(defaultRuns);
      // The replica learned the connections on its tick: the connector can read through it.
      expect(replica.graphFor('acme')).toBeDefined();
      expect(replica.graphFor('globex')).toBeDefined();
    });

    it('of two replicas asking at the same moment, one runs and the other is told which run is in progress', async () => {
      const replica = world.makeService(world.database.kind === 'postgres' ? { db: await world.database.open() } : {});
      const results = await Promise.allSettled([
        world.service.startSync('default', connection.id, ADMIN),
        replica.startSync('default', connection.id, ADMIN),
      ]);
      const started = results.filter((r): r is PromiseFulfilledResult<{ run: SyncRunSummary; done: Promise<SyncRunSummary> }> => r.status === 'fulfilled');
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(started).toHaveLength(1);
      expect(refused).toHaveLength(1);
      expect(refused[0]?.reason).toBeInstanceOf(SyncInProgressError);
      expect((refused[0]?.reason as SyncInProgressError).runId).toBe(started[0]?.value.run.id);
      expect((await started[0]?.value.done)?.status).toBe('succeeded');
    });
  });

  describe('scheduler (fake timers)', () => {
    const T0 = Date.parse('2030-01-01T00:00:00Z');
    const INTERVAL_MS = 60_000;
    const schedulerIds: string[] = [];
    const schedulers: Scheduler[] = [];
    const calls: { scheduler: string; id: string; at: number }[] = [];
    // Only this block's connections count: the scheduler also claims the others, which are due in 2030.
    const ownCalls = () => calls.filter((c) => schedulerIds.includes(c.id));

    const makeScheduler = (name: string, random: () => number): Scheduler => {
      const scheduler = createScheduler({
        db: world.db,
        logger: createLogger({ level: 'silent' }),
        now: () => Date.now(),
        random,
        intervalMs: INTERVAL_MS,
        maxSleepMs: 30_000,
        startRun: async ({ id }) => {
          calls.push({ scheduler: name, id, at: Date.now() - T0 });
        },
      });
      schedulers.push(scheduler);
      return scheduler;
    };
    /** Moves fake time forward second by second, letting each tick's real database work finish. */
    const advanceTo = async (msSinceT0: number) => {
      while (Date.now() - T0 < msSinceT0) {
        await vi.advanceTimersByTimeAsync(Math.min(1_000, msSinceT0 - (Date.now() - T0)));
        await Promise.all(schedulers.map((s) => s.whenIdle()));
      }
    };

    beforeAll(async () => {
      for (const [i, status] of (['active', 'error', 'disabled'] as const).entries()) {
        const id = crypto.randomUUID();
        schedulerIds.push(id);
        await insertConnection(world.db, {
          id,
          tenant: 'scheduled',
          display_name: `connection ${i}`,
          entra_tenant_id: 'contoso.example',
          client_id: crypto.randomUUID(),
          cloud: 'public',
          secret_ref: 'env:X',
          status,
          status_reason: null,
          origin: 'api',
          at: new Date(T0).toISOString(),
        });
      }
    });
    afterEach(async () => {
      await Promise.all(schedulers.splice(0).map((s) => s.stop()));
      vi.useRealTimers();
    });

    it('starts never-synced connections at once, then each after the interval minus 10% jitter, one claim per slot across replicas', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: T0 });
      const a = makeScheduler('a', () => 0);
      const b = makeScheduler('b', () => 0);
      a.start();
      b.start();
      await advanceTo(0);
      await vi.advanceTimersByTimeAsync(0);
      await Promise.all(schedulers.map((s) => s.whenIdle()));
      const enabled = schedulerIds.slice(0, 2).sort();
      expect(ownCalls().map((c) => c.id).sort()).toEqual(enabled);
      expect(ownCalls().every((c) => c.at === 0)).toBe(true);

      await advanceTo(53_999);
      expect(ownCalls()).toHaveLength(2);
      await advanceTo(54_000);
      expect(ownCalls().slice(2).map((c) => c.id).sort()).toEqual(enabled);
      expect(ownCalls().slice(2).every((c) => c.at === 54_000)).toBe(true);

      await Promise.all([a.stop(), b.stop()]);
      await advanceTo(300_000);
      expect(ownCalls()).toHaveLength(4);
      calls.length = 0;
    });

    it('with the jitter at its top the next slot is 10% after the interval', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: T0 + 1_000_000 });
      // Slots claimed by the previous test lie in the past: both connections are due now.
      const s = makeScheduler('c', () => 0.999_999);
      s.start();
      await advanceTo(1_000_000);
      await vi.advanceTimersByTimeAsync(0);
      await s.whenIdle();
      expect(ownCalls()).toHaveLength(2);
      await advanceTo(1_000_000 + 65_999);
      expect(ownCalls()).toHaveLength(2);
      await advanceTo(1_000_000 + 66_000);
      expect(ownCalls()).toHaveLength(4);
      expect(ownCalls().slice(2).every((c) => c.at === 1_000_000 + 66_000)).toBe(true);
    });
  });

  it('leaves no PII and no secret anywhere: database tables, Chronicle and logs hold references and redacted postures only', async () => {
    const secrets = ['acme-secret-value-7f3a9c', 'globex-secret-value-55d1e0', 'acme-file-secret-3b8e21', 'not-the-right-secret-42', world.sim.clientSecret];
    const dump = await dumpDatabase(world.db);
    const logs = world.logs.join('');
    expect(dump).toContain('env:ACME_SECRET');
    expect(dump).toContain('env:ENTRA_CLIENT_SECRET');
    expect(dump).toContain('hmac-sha256:');
    for (const secret of secrets) {
      expect(dump).not.toContain(secret);
      expect(logs).not.toContain(secret);
    }
    // The search finds PII where there is some: a raw Graph record is full of it.
    expect(leaksIn(JSON.stringify(world.sim.devices.slice(0, 3)), piiValues(world.sim)).length).toBeGreaterThan(10);
    expect(leaksIn(dump, piiValues(world.sim))).toEqual([]);
    expect(leaksIn(logs, piiValues(world.sim))).toEqual([]);
  });
});
