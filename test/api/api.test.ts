/**
 * The REST API of a real server (startServer on PostgreSQL and on PGlite, the demo simulator as
 * tenant `default`, a second simulator behind tenant `acme`'s connection): every route's happy
 * path and errors, each response checked against specs/openapi.yaml; roles; tenant isolation;
 * events from real calls checked against specs/asyncapi.yaml; readiness when the database goes.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES, type Role } from '../../src/auth/types.js';
import { registeredRoutes } from '../../src/api/app.js';
import { PATTERN_WORDS } from '../../src/api/validation-words.js';
import { adminQuery, endSessions, pgAvailable } from '../helpers/db.js';
import { OTHER_SECRET_VAR, OTHER_TENANT, findPii, piiValues, startTestServer, waitForRun, type TestServer } from './helpers.js';
import { specChecker } from './openapi.js';
import { eventChecker } from './asyncapi.js';

const I = '/api/v1/integrations/intune';
const spec = specChecker();
const events = eventChecker();
const UNKNOWN_GUID = '7d1c1f0e-0000-4000-8000-000000000000';

function suite(kind: 'postgres' | 'pglite') {
  let t: TestServer;
  let admin: string; // tenant default
  const keys = {} as Record<'default' | 'acme', Record<Role, string>>;
  let acmeConnection: any;
  let demoConnection: any;
  let pii: string[];
  /** Everything the API answered, for the PII search at the end. */
  const seen: string[] = [];

  const call = async (method: string, template: string, urlPath: string, init: Parameters<TestServer['request']>[2] = {}) => {
    const res = await t.request(method, urlPath, init);
    spec.check(method, template, res);
    seen.push(res.text);
    return res;
  };

  beforeAll(async () => {
    t = await startTestServer(kind);
    admin = t.server.adminKey as string;
    expect(admin).toMatch(/^icn_/);
    for (const tenant of ['default', OTHER_TENANT] as const) {
      keys[tenant] = {} as Record<Role, string>;
      for (const role of ROLES) keys[tenant][role] = await t.key(tenant, role, role === 'agent' || role === 'admin' ? ['READ', 'PROPOSE'] : undefined);
    }
    pii = [...piiValues(t.server.runtime.demo!.simulator.devices), ...piiValues(t.otherSim.devices)];
  });
  afterAll(async () => {
    await t?.close();
  });

  it('creates, reads and changes a connection, and syncs it (202, then 409 while it runs)', async () => {
    const list = await call('GET', `${I}/connections`, `${I}/connections`, { key: admin });
    expect(list.status).toBe(200);
    demoConnection = list.body.connections.find((c: any) => c.demo);
    expect(demoConnection).toMatchObject({ tenant: 'default', status: 'active', demo: true });
    expect(demoConnection.last_sync).toMatchObject({ status: 'succeeded', trigger: 'startup', devices: 200 });

    const created = await call('POST', `${I}/connections`, `${I}/connections`, {
      key: keys.acme.admin,
      body: {
        display_name: 'Acme Intune',
        entra_tenant_id: t.otherSim.tenantId,
        client_id: t.otherSim.clientId,
        cloud: 'custom',
        secret_ref: `env:${OTHER_SECRET_VAR}`,
      },
    });
    expect(created.status).toBe(201);
    acmeConnection = created.body;
    expect(created.headers.get('location')).toBe(`${I}/connections/${acmeConnection.id}`);
    expect(acmeConnection).toMatchObject({ tenant: OTHER_TENANT, status: 'active', demo: false, last_sync: null, secret_ref: `env:${OTHER_SECRET_VAR}` });
    expect(created.text).not.toContain(t.otherSim.clientSecret);

    const got = await call('GET', `${I}/connections/{connection_id}`, `${I}/connections/${acmeConnection.id}`, { key: keys.acme.reader });
    expect(got.status).toBe(200);
    expect(got.body.id).toBe(acmeConnection.id);

    const patched = await call('PATCH', `${I}/connections/{connection_id}`, `${I}/connections/${acmeConnection.id}`, {
      key: keys.acme.admin,
      body: { display_name: 'Acme production tenant' },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.display_name).toBe('Acme production tenant');

    // A slow Graph makes the run last long enough for the second request to meet it.
    t.otherSim.setFaults({ latencyMs: 400 });
    const started = await call('POST', `${I}/connections/{connection_id}/sync`, `${I}/connections/${acmeConnection.id}/sync`, { key: keys.acme.admin });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ connection_id: acmeConnection.id, status: 'running', trigger: 'manual' });
    const conflict = await call('POST', `${I}/connections/{connection_id}/sync`, `${I}/connections/${acmeConnection.id}/sync`, {
      key: keys.acme.admin,
      body: {},
    });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error).toMatchObject({ code: 'sync_in_progress', run_id: started.body.id });
    t.otherSim.setFaults({});

    const run = await waitForRun(t, keys.acme.reader, acmeConnection.id, started.body.id);
    expect(run).toMatchObject({ status: 'succeeded', devices: t.otherSim.devices.length });
    const runRes = await call('GET', `${I}/connections/{connection_id}/runs/{run_id}`, `${I}/connections/${acmeConnection.id}/runs/${run.id}`, {
      key: keys.acme.reader,
    });
    expect(runRes.status).toBe(200);
    const runs = await call('GET', `${I}/connections/{connection_id}/runs`, `${I}/connections/${acmeConnection.id}/runs?limit=5`, { key: keys.acme.reader });
    expect(runs.status).toBe(200);
    expect(runs.body.runs[0].id).toBe(run.id);
  });

  it('lists devices with filters and paging, gets one, and the counts agree with the summary', async () => {
    const summary = await call('GET', `${I}/summary`, `${I}/summary`, { key: keys.default.reader });
    expect(summary.status).toBe(200);
    expect(summary.body.devices).toBe(200);
    const byState: Record<string, number> = summary.body.counts_by_compliance_state;
    expect(Object.values(byState).reduce((a, b) => a + b, 0)).toBe(200);

    for (const [state, count] of Object.entries(byState)) {
      const res = await call('GET', `${I}/devices`, `${I}/devices?compliance_state=${state}&limit=500`, { key: keys.default.reader });
      expect(res.status).toBe(200);
      expect(res.body.total).toBe(count);
      expect(res.body.devices.every((d: any) => d.compliance_state === state)).toBe(true);
    }

    // Paging walks every device exactly once.
    const ids = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: any = await call('GET', `${I}/devices`, `${I}/devices?limit=70${cursor !== null ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, {
        key: keys.default.admin,
      });
      for (const d of res.body.devices) ids.add(d.device_id);
      cursor = res.body.next_cursor;
      pages += 1;
    } while (cursor !== null && pages < 10);
    expect(ids.size).toBe(200);
    expect(pages).toBe(3);

    const macs = await call('GET', `${I}/devices`, `${I}/devices?os_family=macos&ownership=company&limit=5`, { key: keys.default.reader });
    expect(macs.body.devices.every((d: any) => d.os_family === 'macos' && d.ownership === 'company')).toBe(true);

    const one = macs.body.devices[0];
    const device = await call('GET', `${I}/devices/{device_id}`, `${I}/devices/${one.device_id}`, { key: keys.default.reader });
    expect(device.status).toBe(200);
    expect(device.body).toMatchObject({ device_id: one.device_id, connection_id: demoConnection.id });

    // A device Intune does not call compliant says what to fix, by setting id and in the product's words.
    const noncompliant = await call('GET', `${I}/devices`, `${I}/devices?compliance_state=noncompliant&os_family=macos&limit=1`, { key: keys.default.reader });
    const bad = await call('GET', `${I}/devices/{device_id}`, `${I}/devices/${noncompliant.body.devices[0].device_id}`, { key: keys.default.reader });
    expect(bad.body.failing_settings.status).toBe('listed');
    expect(bad.body.failing_settings.settings.length).toBeGreaterThan(0);
    for (const s of bad.body.failing_settings.settings) {
      expect(s.setting).toMatch(/^MacOSCompliancePolicy\.\w+$/);
      expect(s.fix).not.toMatch(/^setting /);
    }
    const compliant = await call('GET', `${I}/devices`, `${I}/devices?compliance_state=compliant&limit=1`, { key: keys.default.reader });
    const good = await call('GET', `${I}/devices/{device_id}`, `${I}/devices/${compliant.body.devices[0].device_id}`, { key: keys.default.reader });
    expect(good.body.failing_settings).toEqual({ status: 'none', settings: [] });

    const prefix = await call('GET', `${I}/devices`, `${I}/devices?q=${one.device_id.slice(0, 6)}`, { key: keys.default.reader });
    expect(prefix.body.devices.map((d: any) => d.device_id)).toContain(one.device_id);

    const missing = await call('GET', `${I}/devices/{device_id}`, `${I}/devices/${UNKNOWN_GUID}`, { key: keys.default.reader });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');

    // Every read above left a record a reviewer can find: by type, by device, by request id.
    const reads = async () => (await t.server.runtime.chronicle.query({ tenant: 'default', types: ['integration.intune.posture_read'], limit: 1000 })).events;
    const deadline = Date.now() + 15_000;
    const wanted = [macs, device, missing].map((r) => r.headers.get('x-request-id'));
    // Written off the request path, within a second: wait for them as a reviewer would.
    for (;;) {
      const found = new Set((await reads()).map((e) => e.requestId));
      if (wanted.every((id) => found.has(id)) || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const byRequest = new Map((await reads()).map((e) => [e.requestId, e]));
    const readerActor = (await t.server.runtime.chronicle.query({ tenant: 'default', types: ['integration.intune.posture_read'], limit: 1 })).events[0]?.actor;
    expect(readerActor?.id).toMatch(/^key:/);
    expect(byRequest.get(macs.headers.get('x-request-id'))).toMatchObject({
      actor: { kind: 'human' },
      data: { route: 'GET /api/v1/integrations/intune/devices', status: 200, filter: { os_family: 'macos', ownership: 'company', limit: 5 }, count: macs.body.devices.length, total: macs.body.total },
    });
    expect(byRequest.get(device.headers.get('x-request-id'))?.data).toEqual({ route: 'GET /api/v1/integrations/intune/devices/{device_id}', status: 200, device_id: one.device_id.toLowerCase(), count: 1 });
    expect(byRequest.get(missing.headers.get('x-request-id'))?.data).toMatchObject({ status: 404, device_id: UNKNOWN_GUID, count: 0 });
    const paged = [...byRequest.values()].filter((e) => (e.data['filter'] as { paged?: boolean } | undefined)?.paged === true);
    expect(paged).toHaveLength(2); // the second and third page of the walk above
    // Reviewers find who looked at one device, as they find gate decisions about it.
    const aboutOne = await t.server.runtime.chronicle.query({ tenant: 'default', types: ['integration.intune.posture_read'], deviceId: one.device_id });
    expect(aboutOne.events.map((e) => e.requestId)).toEqual([device.headers.get('x-request-id')]);
    const overHttp = await call('GET', '/api/v1/chronicle/events', '/api/v1/chronicle/events?type=integration.intune.posture_read&limit=1000', { key: keys.default.auditor });
    expect(overHttp.status).toBe(200);
    expect(overHttp.body.events.length).toBeGreaterThanOrEqual(wanted.length);
  });

  it('keeps tenants apart: another tenant’s ids are 404 and its lists show nothing of the other', async () => {
    const acmeDevice = (await t.request('GET', `${I}/devices?limit=1`, { key: keys.acme.reader })).body.devices[0];
    const demoDevice = (await t.request('GET', `${I}/devices?limit=1`, { key: keys.default.reader })).body.devices[0];
    const acmeRun = acmeConnection.id;

    const attempts: Array<[string, string, string, unknown?]> = [
      ['GET', `${I}/connections/{connection_id}`, `${I}/connections/${acmeConnection.id}`],
      ['PATCH', `${I}/connections/{connection_id}`, `${I}/connections/${acmeConnection.id}`, { status: 'disabled' }],
      ['POST', `${I}/connections/{connection_id}/sync`, `${I}/connections/${acmeConnection.id}/sync`],
      ['GET', `${I}/connections/{connection_id}/runs`, `${I}/connections/${acmeRun}/runs`],
      ['GET', `${I}/devices/{device_id}`, `${I}/devices/${acmeDevice.device_id}`],
    ];
    for (const [method, template, url, body] of attempts) {
      const res = await call(method, template, url, { key: admin, ...(body !== undefined ? { body } : {}) });
      expect(res.status, `${method} ${url} with the other tenant's admin key`).toBe(404);
    }
    const run = (await t.request('GET', `${I}/connections/${acmeConnection.id}/runs`, { key: keys.acme.reader })).body.runs[0];
    expect((await call('GET', `${I}/connections/{connection_id}/runs/{run_id}`, `${I}/connections/${acmeConnection.id}/runs/${run.id}`, { key: admin })).status).toBe(404);
    expect((await call('GET', `${I}/connections/{connection_id}/runs/{run_id}`, `${I}/connections/${demoConnection.id}/runs/${run.id}`, { key: admin })).status).toBe(404);
    expect((await call('GET', `${I}/devices/{device_id}`, `${I}/devices/${demoDevice.device_id}`, { key: keys.acme.admin })).status).toBe(404);

    // The PATCH above changed nothing.
    expect((await t.request('GET', `${I}/connections/${acmeConnection.id}`, { key: keys.acme.admin })).body.status).toBe('active');

    const acmeIds = new Set((await t.request('GET', `${I}/devices?limit=500`, { key: keys.acme.reader })).body.devices.map((d: any) => d.device_id));
    const demoList = (await t.request('GET', `${I}/devices?limit=500`, { key: keys.default.reader })).body;
    expect(demoList.total).toBe(200);
    expect(demoList.devices.some((d: any) => acmeIds.has(d.device_id))).toBe(false);
    expect((await t.request('GET', `${I}/devices?connection_id=${acmeConnection.id}`, { key: keys.default.reader })).body.total).toBe(0);
    expect((await t.request('GET', `${I}/connections`, { key: keys.default.reader })).body.connections.map((c: any) => c.id)).not.toContain(acmeConnection.id);
    const acmeSummary = (await t.request('GET', `${I}/summary`, { key: keys.acme.reader })).body;
    expect(acmeSummary.devices).toBe(t.otherSim.devices.length);
    expect(acmeSummary.connections.map((c: any) => c.id)).toEqual([acmeConnection.id]);

    const acmeEvents = (await t.request('GET', '/api/v1/chronicle/events?limit=1000', { key: keys.acme.auditor })).body.events;
    expect(acmeEvents.every((e: any) => e.tenant === OTHER_TENANT)).toBe(true);
    expect(JSON.stringify(acmeEvents)).not.toContain(demoConnection.id);
    const acmeKeys = (await t.request('GET', '/api/v1/keys', { key: keys.acme.admin })).body.keys;
    expect(acmeKeys.every((k: any) => k.tenant === OTHER_TENANT)).toBe(true);
  });

  it('grants each role exactly its permissions (401 without a key, 403 with the wrong role)', async () => {
    const deviceId = (await t.request('GET', `${I}/devices?limit=1`, { key: admin })).body.devices[0].device_id;
    const probes: Array<{ name: string; allowed: readonly Role[]; method: string; template: string; url: string; body?: unknown; ok: number }> = [
      { name: 'list connections', allowed: ['admin', 'reader'], method: 'GET', template: `${I}/connections`, url: `${I}/connections`, ok: 200 },
      { name: 'get device', allowed: ['admin', 'reader'], method: 'GET', template: `${I}/devices/{device_id}`, url: `${I}/devices/${deviceId}`, ok: 200 },
      { name: 'summary', allowed: ['admin', 'reader'], method: 'GET', template: `${I}/summary`, url: `${I}/summary`, ok: 200 },
      {
        name: 'patch connection',
        allowed: ['admin'],
        method: 'PATCH',
        template: `${I}/connections/{connection_id}`,
        url: `${I}/connections/${demoConnection.id}`,
        body: { display_name: 'Demo tenant (simulated devices, not a real Intune tenant)' },
        ok: 200,
      },
      {
        name: 'gate',
        allowed: ['admin', 'gate'],
        method: 'POST',
        template: '/api/v1/gate/device-compliance',
        url: '/api/v1/gate/device-compliance',
        body: { accord: 'device-management', claims: {} },
        ok: 200,
      },
      { name: 'chronicle events', allowed: ['admin', 'auditor'], method: 'GET', template: '/api/v1/chronicle/events', url: '/api/v1/chronicle/events?limit=1', ok: 200 },
      { name: 'chronicle verify', allowed: ['admin', 'auditor'], method: 'GET', template: '/api/v1/chronicle/verify', url: '/api/v1/chronicle/verify', ok: 200 },
      { name: 'keys', allowed: ['admin'], method: 'GET', template: '/api/v1/keys', url: '/api/v1/keys', ok: 200 },
    ];
    for (const probe of probes) {
      const anonymous = await call(probe.method, probe.template, probe.url, probe.body !== undefined ? { body: probe.body } : {});
      expect(anonymous.status, `${probe.name} without a key`).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="intune-connector"');
      const bogus = await call(probe.method, probe.template, probe.url, { key: `icn_${'0'.repeat(16)}_${'A'.repeat(43)}`, ...(probe.body !== undefined ? { body: probe.body } : {}) });
      expect(bogus.status, `${probe.name} with an unknown key`).toBe(401);
      for (const role of ROLES) {
        const res = await call(probe.method, probe.template, probe.url, { key: keys.default[role], ...(probe.body !== undefined ? { body: probe.body } : {}) });
        expect(res.status, `${probe.name} as ${role}`).toBe(probe.allowed.includes(role) ? probe.ok : 403);
        if (res.status === 403) expect(res.body.error.code).toBe('forbidden');
      }
    }

    // MCP: agent and admin keys, through the real SDK client; others are refused.
    const connect = async (key: string) => {
      const client = new Client({ name: 'api-test', version: '1.0.0' });
      const transport = new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${key}` } } });
      await client.connect(transport);
      return client;
    };
    for (const role of ['agent', 'admin'] as const) {
      const client = await connect(keys.default[role]);
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name)).toEqual(expect.arrayContaining(['list_devices', 'get_device', 'get_device_compliance', 'sync_device']));
      const result = await client.callTool({ name: 'get_device', arguments: { device_id: deviceId } });
      expect(result.isError ?? false).toBe(false);
      seen.push(JSON.stringify(result));
      await client.close();
    }
    for (const role of ['reader', 'gate', 'auditor'] as const) {
      await expect(connect(keys.default[role])).rejects.toThrow();
      const raw = await call('POST', '/mcp', '/mcp', {
        key: keys.default[role],
        body: { jsonrpc: '2.0', id: 1, method: 'tools/list' },
        headers: { accept: 'application/json, text/event-stream' },
      });
      expect(raw.status).toBe(403);
    }
    const stream = await call('GET', '/mcp', '/mcp', { key: keys.default.agent });
    expect(stream.status).toBe(405);
  });

  it('answers the gate for a real device, recorded in Chronicle', async () => {
    const device = t.server.runtime.demo!.simulator.devices.find((d) => d['complianceState'] === 'compliant' && typeof d['azureADDeviceId'] === 'string');
    const res = await call('POST', '/api/v1/gate/device-compliance', '/api/v1/gate/device-compliance', {
      key: keys.default.gate,
      body: { accord: 'device-management', claims: { deviceid: device!['azureADDeviceId'] } },
    });
    expect(res.status).toBe(200);
    expect(res.body.event).not.toBeNull();
    const recorded = await call('GET', '/api/v1/chronicle/events', `/api/v1/chronicle/events?type=DEVICE_COMPLIANCE_CHECKED&device=${device!['azureADDeviceId']}`, {
      key: keys.default.auditor,
    });
    expect(recorded.body.events.map((e: any) => e.seq)).toContain(res.body.event.seq);
    expect(recorded.body.events.every((e: any) => e.code === '0x2801')).toBe(true);
  });

  it('manages API keys of its own tenant over HTTP; a revoked key stops working at once', async () => {
    const created = await call('POST', '/api/v1/keys', '/api/v1/keys', { key: admin, body: { role: 'reader', name: 'settings panel' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ tenant: 'default', role: 'reader', capabilities: ['READ'], name: 'settings panel', revoked_at: null });
    const key: string = created.body.key;
    expect((await t.request('GET', `${I}/devices?limit=1`, { key })).status).toBe(200);

    const listed = await call('GET', '/api/v1/keys', '/api/v1/keys', { key: admin });
    expect(listed.body.keys.map((k: any) => k.key_id)).toContain(created.body.key_id);
    expect(listed.text).not.toContain(key);

    const scoped = await call('POST', '/api/v1/keys', '/api/v1/keys', { key: admin, body: { role: 'gate', capabilities: ['READ', 'PROPOSE'] } });
    expect(scoped.status).toBe(400);
    expect(scoped.body.error.code).toBe('invalid_capabilities');

    const foreign = await call('DELETE', '/api/v1/keys/{key_id}', `/api/v1/keys/${created.body.key_id}`, { key: keys.acme.admin });
    expect(foreign.status).toBe(404);
    const revoked = await call('DELETE', '/api/v1/keys/{key_id}', `/api/v1/keys/${created.body.key_id}`, { key: admin });
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked_at).not.toBeNull();
    expect((await t.request('GET', `${I}/devices?limit=1`, { key })).status).toBe(401);
    expect((await call('DELETE', '/api/v1/keys/{key_id}', '/api/v1/keys/not-a-key-id', { key: admin })).status).toBe(400);
  });

  it('serves the chronicle to reviewers: filtered events and an intact chain; real events match asyncapi.yaml', async () => {
    const verify = await call('GET', '/api/v1/chronicle/verify', '/api/v1/chronicle/verify', { key: keys.default.auditor });
    expect(verify.status).toBe(200);
    expect(verify.body.ok).toBe(true);
    expect(verify.body.chains.map((c: any) => c.tenant)).toEqual(['default']);

    const all: any[] = [];
    for (const key of [keys.default.auditor, keys.acme.auditor]) {
      let cursor: string | null = null;
      do {
        const res: any = await call('GET', '/api/v1/chronicle/events', `/api/v1/chronicle/events?limit=200${cursor !== null ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { key });
        all.push(...res.body.events);
        cursor = res.body.next_cursor;
      } while (cursor !== null);
    }
    const types = new Set(all.map((e) => e.type));
    for (const type of [
      'integration.intune.sync_completed',
      'integration.intune.connection_created',
      'integration.intune.connection_updated',
      'admin.api_key_created',
      'admin.api_key_revoked',
      'CONNECTOR_INVOKED',
      'DEVICE_COMPLIANCE_CHECKED',
      'integration.intune.posture_read',
    ]) {
      expect(types, `no ${type} event was produced`).toContain(type);
    }
    for (const event of all) expect(events.errorsFor(event), `${event.type} #${event.seq}`).toEqual([]);

    const syncs = await call('GET', '/api/v1/chronicle/events', '/api/v1/chronicle/events?type=integration.intune.sync_completed', { key: keys.acme.auditor });
    expect(syncs.body.events.length).toBeGreaterThanOrEqual(1);
    expect(syncs.body.events.every((e: any) => e.type === 'integration.intune.sync_completed')).toBe(true);
    const mine = await call('GET', '/api/v1/chronicle/events', `/api/v1/chronicle/events?actor=key:${(await keyIdOf(admin))}&type=admin.api_key_created&type=admin.api_key_revoked`, {
      key: keys.default.auditor,
    });
    expect(mine.body.events.map((e: any) => e.type).sort()).toEqual(['admin.api_key_created', 'admin.api_key_revoked']);
    const bad = await call('GET', '/api/v1/chronicle/events', '/api/v1/chronicle/events?cursor=garbage', { key: keys.default.auditor });
    expect(bad.status).toBe(400);
    seen.push(JSON.stringify(all));
  });

  it('reports health, readiness and metrics without a key', async () => {
    expect((await call('GET', '/healthz', '/healthz')).status).toBe(200);
    const ready = await call('GET', '/readyz', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks.map((c: any) => c.name)).toEqual(['database', 'migrations', 'chronicle']);
    const metrics = await call('GET', '/metrics', '/metrics');
    expect(metrics.status).toBe(200);
    for (const name of [
      'http_requests_total{method="GET",route="/api/v1/integrations/intune/devices",status="200"}',
      'http_request_duration_seconds_bucket',
      'intune_compliance_cache_misses_total',
      'intune_sync_runs{status="succeeded"}',
      'intune_sync_last_duration_seconds',
      'chronicle_appends_total',
      'process_cpu_user_seconds_total',
    ]) {
      expect(metrics.text).toContain(name);
    }
    expect((await call('GET', '/', '/')).status).toBe(302);
    for (const path of ['/settings', '/settings/integrations/intune', '/settings/assets/panel.js', '/settings/assets/panel.css', '/settings/assets/icon.svg']) {
      const res = await call('GET', path, path);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    }
  });

  it('refuses bad input with 4xx and { error: { code, message } }, never 5xx', async () => {
    const demo = (await t.request('GET', `${I}/connections`, { key: admin })).body.connections[0];
    const conn = `${I}/connections/${demo.id}`;
    const valid = { display_name: 'x', entra_tenant_id: 'contoso.example', client_id: UNKNOWN_GUID, secret_ref: 'env:NOPE' };
    const cases: Array<{ name: string; method: string; template: string; url: string; init: Parameters<TestServer['request']>[2]; status: number; code?: string; says?: string }> = [
      { name: 'invalid JSON', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { rawBody: '{"display_name": ', headers: { 'content-type': 'application/json' } }, status: 400, code: 'invalid_json' },
      { name: 'empty JSON body', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { rawBody: '', headers: { 'content-type': 'application/json' } }, status: 400, code: 'invalid_json' },
      { name: 'JSON array', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { body: [valid] }, status: 400, code: 'invalid_body' },
      { name: 'wrong type', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { body: { ...valid, display_name: 123 } }, status: 400, code: 'invalid_body' },
      { name: 'missing field', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { body: { display_name: 'x' } }, status: 400, code: 'invalid_body' },
      { name: 'unknown field', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { body: { ...valid, client_secret: 'hunter2' } }, status: 400, code: 'invalid_body' },
      { name: 'a secret value where a reference belongs', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { body: { ...valid, secret_ref: 'Zx8Q~not-a-reference' } }, status: 400 },
      { name: 'unregistered secret reference', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { body: { ...valid, secret_ref: 'env:DATABASE_URL' } }, status: 400 },
      { name: 'prototype pollution', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { rawBody: `{"__proto__":{"admin":true},"display_name":"x"}`, headers: { 'content-type': 'application/json' } }, status: 400 },
      { name: 'huge body', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { body: { ...valid, display_name: 'x'.repeat(200_000) } }, status: 413, code: 'payload_too_large' },
      { name: 'text/plain', method: 'POST', template: `${I}/connections`, url: `${I}/connections`, init: { rawBody: JSON.stringify(valid), headers: { 'content-type': 'text/plain' } }, status: 415, code: 'unsupported_media_type' },
      { name: 'form body', method: 'PATCH', template: `${I}/connections/{connection_id}`, url: conn, init: { rawBody: 'status=disabled', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415, code: 'unsupported_media_type' },
      { name: 'XML body', method: 'POST', template: '/api/v1/keys', url: '/api/v1/keys', init: { rawBody: '<role>admin</role>', headers: { 'content-type': 'application/xml' } }, status: 415 },
      { name: 'empty patch', method: 'PATCH', template: `${I}/connections/{connection_id}`, url: conn, init: { body: {} }, status: 400, code: 'invalid_body' },
      { name: 'status error set by a caller', method: 'PATCH', template: `${I}/connections/{connection_id}`, url: conn, init: { body: { status: 'error' } }, status: 400, code: 'invalid_body' },
      { name: 'sync with parameters', method: 'POST', template: `${I}/connections/{connection_id}/sync`, url: `${conn}/sync`, init: { body: { full: true } }, status: 400, code: 'invalid_body' },
      { name: 'non-GUID connection id', method: 'GET', template: `${I}/connections/{connection_id}`, url: `${I}/connections/1%20OR%201=1`, init: {}, status: 400, code: 'invalid_request' },
      { name: 'non-GUID device id', method: 'GET', template: `${I}/devices/{device_id}`, url: `${I}/devices/abc'%20or%201%20eq%201`, init: {}, status: 400, code: 'invalid_request', says: 'params.device_id must be a GUID such as 0fa4e5e1-6a7b-4c1d-9e2f-3a4b5c6d7e8f' },
      { name: 'non-GUID run id', method: 'GET', template: `${I}/connections/{connection_id}/runs/{run_id}`, url: `${conn}/runs/42`, init: {}, status: 400 },
      { name: 'unknown query parameter', method: 'GET', template: `${I}/devices`, url: `${I}/devices?complianceState=compliant`, init: {}, status: 400, code: 'invalid_request' },
      { name: 'unknown enum value', method: 'GET', template: `${I}/devices`, url: `${I}/devices?os_family=beos`, init: {}, status: 400, says: 'querystring.os_family must be one of macos, windows, ios, android, linux, other' },
      { name: 'limit out of range', method: 'GET', template: `${I}/devices`, url: `${I}/devices?limit=100000`, init: {}, status: 400, says: 'querystring.limit must be at most 500' },
      { name: 'limit not a number', method: 'GET', template: `${I}/devices`, url: `${I}/devices?limit=ten`, init: {}, status: 400, says: 'querystring.limit must be a whole number' },
      { name: 'bad date', method: 'GET', template: `${I}/devices`, url: `${I}/devices?last_sync_after=yesterday`, init: {}, status: 400, says: 'must be a date such as 2025-01-31 (midnight UTC) or a date and time with a time zone' },
      { name: 'a date that does not exist', method: 'GET', template: `${I}/devices`, url: `${I}/devices?last_sync_after=2025-02-30`, init: {}, status: 400, says: 'last_sync_after must be a date such as 2025-01-31' },
      { name: 'a chronicle date that does not exist', method: 'GET', template: '/api/v1/chronicle/events', url: '/api/v1/chronicle/events?from=2025-04-31', init: {}, status: 400, says: 'from: must be a date such as 2025-01-31' },
      { name: 'OData injection in q', method: 'GET', template: `${I}/devices`, url: `${I}/devices?q=${encodeURIComponent("' or 1 eq 1")}`, init: {}, status: 400, says: 'querystring.q must be the start of an Intune device id: 1 to 36 hex digits and dashes' },
      { name: 'forged device cursor', method: 'GET', template: `${I}/devices`, url: `${I}/devices?cursor=eyJvZmZzZXQiOjB9`, init: {}, status: 400 },
      { name: 'bad chronicle type', method: 'GET', template: '/api/v1/chronicle/events', url: '/api/v1/chronicle/events?type=DROP_TABLE', init: {}, status: 400, says: 'querystring.type must be one of CONNECTOR_INVOKED, DEVICE_COMPLIANCE_CHECKED' },
      { name: 'bad key role', method: 'POST', template: '/api/v1/keys', url: '/api/v1/keys', init: { body: { role: 'root' } }, status: 400, says: 'body.role must be one of admin, reader' },
    ];
    for (const c of cases) {
      const res = await call(c.method, c.template, c.url, { key: admin, ...c.init });
      if (process.env['DEBUG_BAD_INPUT']) console.log(c.name, res.status, res.text.slice(0, 200));
      expect(res.status, `${c.name}: ${res.text.slice(0, 200)}`).toBe(c.status);
      expect(res.body?.error?.code, c.name).toMatch(/^[a-z_]+$/);
      expect(res.body.error.message.length, c.name).toBeGreaterThan(10);
      if (c.code !== undefined) expect(res.body.error.code, c.name).toBe(c.code);
      if (c.says !== undefined) expect(res.body.error.message, c.name).toContain(c.says);
      // Words, never a validator's regular expression or its phrasing.
      expect(res.body.error.message, c.name).not.toMatch(/must match pattern|must be equal to one of|\^\[|\{1,|\\d/);
      expect(res.text).not.toMatch(/\bat \S+\.(js|ts):\d+|SELECT |node_modules/);
    }

    // Outside the documented routes: still JSON errors, still 4xx.
    for (const [method, url] of [
      ['GET', '/api/v1/nope'],
      ['PUT', `${I}/connections`],
      ['GET', `${I}/devices/${'a'.repeat(5000)}`],
      ['GET', '/%E0%A4%A'],
    ] as const) {
      const res = await t.request(method, url, { key: admin });
      expect(res.status, `${method} ${url}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${method} ${url}`).toBeLessThan(500);
      expect(res.body.error.code).toMatch(/^[a-z_]+$/);
    }
    // A date alone is one of the documented forms (midnight UTC), on the API as on the CLI.
    for (const url of [`${I}/devices?last_sync_after=2000-01-01`, '/api/v1/chronicle/events?from=2000-01-01&to=2099-12-31T23:59:59%2B14:00']) {
      const res = await t.request('GET', url, { key: admin });
      expect(res.status, `${url}: ${res.text.slice(0, 200)}`).toBe(200);
    }
    const malformedAuth = await call('GET', `${I}/devices`, `${I}/devices`, { headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } });
    expect(malformedAuth.status).toBe(401);
    // Nothing above changed the connection.
    expect((await t.request('GET', conn, { key: admin })).body.status).toBe('active');
  });

  it('has words for every pattern a route validates, so no regular expression reaches a person', () => {
    const patterns = new Set<string>();
    const walk = (node: unknown): void => {
      if (node === null || typeof node !== 'object') return;
      for (const [key, value] of Object.entries(node)) {
        if (key === 'pattern' && typeof value === 'string') patterns.add(value);
        else walk(value);
      }
    };
    // What callers send (answers are checked against openapi.yaml elsewhere).
    for (const route of registeredRoutes(t.server.app)) for (const part of ['body', 'querystring', 'params', 'headers']) walk(route.schema?.[part]);
    expect(patterns.size).toBeGreaterThan(5);
    expect([...patterns].filter((p) => !PATTERN_WORDS.has(p))).toEqual([]);
  });

  it('registers exactly the routes openapi.yaml documents', () => {
    // Both listeners: the main app and the agents' mTLS listener.
    const registered = new Set(
      [...registeredRoutes(t.server.app), ...t.server.agentListener.routes]
        .filter((r) => r.method !== 'HEAD')
        .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z_]+)/g, '{$1}')}`),
    );
    const documented = new Set(
      Object.entries(spec.doc.paths).flatMap(([p, ops]) =>
        Object.keys(ops)
          .filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
          .map((m) => `${m.toUpperCase()} ${p}`),
      ),
    );
    expect([...registered].filter((r) => !documented.has(r)), 'registered but not in openapi.yaml').toEqual([]);
    expect([...documented].filter((r) => !registered.has(r)), 'in openapi.yaml but not registered').toEqual([]);
  });

  it('never shows a PII value of either simulated tenant in any answer', () => {
    expect(pii.length).toBeGreaterThan(100);
    expect(findPii(seen.join('\n'), pii)).toEqual([]);
  });

  // PostgreSQL only: the embedded database has no read-only mode to switch on.
  if (kind === 'postgres') it('says the database is read-only: 503 service_unavailable naming it, and /readyz saying why Chronicle cannot append', async () => {
    const name = new URL(t.config.database.url as string).pathname.slice(1);
    // New sessions of the database start read-only; the server's open ones are ended so its pool opens new ones.
    try {
      await adminQuery(`ALTER DATABASE "${name}" SET default_transaction_read_only = on`);
      await endSessions(name);
      t.server.keys.clearCache();
      // The pool may still hand out a session it has not yet seen ended: the second call is the one judged.
      await call('POST', '/api/v1/keys', '/api/v1/keys', { key: admin, body: { role: 'reader', name: 'read-only' } });
      const refused = await call('POST', '/api/v1/keys', '/api/v1/keys', { key: admin, body: { role: 'reader', name: 'read-only' } });
      expect(refused.status).toBe(503);
      expect(refused.body.error).toMatchObject({ code: 'service_unavailable', database: 'read_only' });
      expect(refused.body.error.message).toMatch(/refuses writes \(it is read-only/);
      expect(refused.headers.get('retry-after')).toBe('5');
      const ready = await call('GET', '/readyz', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.find((c: any) => c.name === 'chronicle')).toMatchObject({ ok: false, detail: expect.stringMatching(/the database is read-only/) });
    } finally {
      await adminQuery(`ALTER DATABASE "${name}" RESET default_transaction_read_only`);
      await endSessions(name);
    }
    const created = await call('POST', '/api/v1/keys', '/api/v1/keys', { key: admin, body: { role: 'reader', name: 'writable again' } });
    expect(created.status).toBe(201);
    expect((await call('GET', '/readyz', '/readyz')).status).toBe(200);
  });

  it('answers 503 (not 500) and reports not ready when the database goes away', async () => {
    await t.server.runtime.db.close();
    const ready = await call('GET', '/readyz', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.find((c: any) => c.name === 'database').ok).toBe(false);
    t.server.keys.clearCache();
    const res = await call('GET', `${I}/connections`, `${I}/connections`, { key: admin });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('service_unavailable');
    expect(res.text).not.toMatch(/select|pglite|postgres|stack/i);
  });
}

const keyIdOf = async (key: string): Promise<string> => key.slice(4, 20);

describe.skipIf(!pgAvailable())('REST API [postgres]', () => suite('postgres'));
describe('REST API [pglite]', () => suite('pglite'));
