/**
 * Property-based fuzzing of every registered route of a real server (the demo simulator as tenant
 * `default`, a second simulator behind tenant `acme`'s connection): arbitrary path ids (GUIDs of
 * both tenants, OData-ish strings, unicode, percent-encoding), query strings, bodies, content
 * types and Authorization headers, with valid keys of every role of both tenants. Whatever comes
 * in: never a 5xx, every error is `{ error: { code, message } }`, no PII of the simulators' devices
 * and no client secret in any answer, and a key of one tenant never gets the other's ids in a 2xx.
 */
import crypto from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES, type Role } from '../../src/auth/types.js';
import { registeredRoutes } from '../../src/api/app.js';
import { pgAvailable } from '../helpers/db.js';
import { OTHER_SECRET_VAR, OTHER_TENANT, findPii, piiValues, startTestServer, waitForRun, type TestResponse, type TestServer } from './helpers.js';

const I = '/api/v1/integrations/intune';
const TENANTS = ['default', OTHER_TENANT] as const;
type Tenant = (typeof TENANTS)[number];

describe('API fuzz (fast-check)', () => {
  let t: TestServer;
  const keys = {} as Record<Tenant, Record<Role, string>>;
  /** The ids each tenant owns (connections, runs, devices). */
  const ids = {} as Record<Tenant, string[]>;
  let pii: string[];
  let secrets: string[];
  let routes: { method: string; url: string }[];
  const connectionIds: string[] = [];
  const runIds: string[] = [];
  const cursors: string[] = [];
  const sentEarlier: Record<Tenant, Set<string>> = { default: new Set(), acme: new Set() };

  beforeAll(async () => {
    t = await startTestServer(pgAvailable() ? 'postgres' : 'pglite', {
      otherDevices: 20,
      // Accords require compliance, so the gate looks devices up instead of allowing without a look.
      env: { INTUNE_COMPLIANCE_REQUIRED: 'true' },
    });
    for (const tenant of TENANTS) {
      keys[tenant] = {} as Record<Role, string>;
      for (const role of ROLES) keys[tenant][role] = await t.key(tenant, role, role === 'agent' || role === 'admin' ? ['READ', 'PROPOSE'] : undefined);
    }
    const created = await t.request('POST', `${I}/connections`, {
      key: keys.acme.admin,
      body: { display_name: 'Acme', entra_tenant_id: t.otherSim.tenantId, client_id: t.otherSim.clientId, cloud: 'custom', secret_ref: `env:${OTHER_SECRET_VAR}` },
    });
    expect(created.status).toBe(201);
    const sync = await t.request('POST', `${I}/connections/${created.body.id}/sync`, { key: keys.acme.admin });
    expect(sync.status).toBe(202);
    await waitForRun(t, keys.acme.admin, created.body.id, sync.body.id);

    for (const tenant of TENANTS) {
      const key = keys[tenant].admin;
      const connections = (await t.request('GET', `${I}/connections`, { key })).body.connections as any[];
      const own: string[] = [];
      for (const c of connections) {
        own.push(c.id);
        const runs = (await t.request('GET', `${I}/connections/${c.id}/runs`, { key })).body.runs as any[];
        own.push(...runs.map((r) => r.id));
      }
      connectionIds.push(...connections.map((c) => c.id));
      runIds.push(...own.filter((id) => !connectionIds.includes(id)));
      const devices = (await t.request('GET', `${I}/devices?limit=500`, { key })).body.devices as any[];
      own.push(...devices.map((d) => d.device_id));
      // The Entra device ids too: the gate looks devices up by them.
      own.push(...devices.map((d) => d.azure_ad_device_id).filter((v): v is string => typeof v === 'string'));
      expect(own.length).toBeGreaterThan(2);
      ids[tenant] = own;
      // Real cursors of each tenant, to be replayed by the other.
      cursors.push((await t.request('GET', `${I}/devices?limit=3`, { key })).body.next_cursor);
      cursors.push((await t.request('GET', '/api/v1/chronicle/events?limit=2', { key })).body.next_cursor);
    }
    const demo = t.server.runtime.demo!.simulator;
    pii = [...piiValues(demo.devices), ...piiValues(t.otherSim.devices)];
    expect(pii.length).toBeGreaterThan(50);
    secrets = [demo.clientSecret, t.otherSim.clientSecret];
    expect(cursors.every((c) => typeof c === 'string')).toBe(true);
    // The gate evaluates devices here (compliance required), so its device lookup is fuzzed too.
    const device = (await t.request('GET', `${I}/devices?limit=1`, { key: keys.default.admin })).body.devices[0];
    const gate = await t.request('POST', '/api/v1/gate/device-compliance', { key: keys.default.gate, body: { accord: 'x', claims: { deviceid: device.azure_ad_device_id } } });
    expect(gate.body).toMatchObject({ evaluated: true });
    routes = [...registeredRoutes(t.server.app)].filter((r) => r.method !== 'HEAD');
    expect(routes.length).toBeGreaterThan(15);
  });
  afterAll(async () => {
    await t?.close();
  });

  const allIdsOf = () => [...ids.default, ...ids.acme];
  function check(method: string, route: string, urlPath: string, auth: { tenant?: Tenant | undefined; role?: Role | undefined }, res: TestResponse, sent = ''): void {
    const what = `${method} ${urlPath.slice(0, 200)} [${auth.tenant ?? '-'}/${auth.role ?? '-'}] -> ${res.status} ${res.text.slice(0, 300)}`;
    expect(res.status, what).toBeLessThan(500);
    if (res.status >= 400) {
      const jsonRpc = route === '/mcp' && res.body?.jsonrpc === '2.0';
      if (jsonRpc) expect(res.body, what).toMatchObject({ error: { code: expect.any(Number), message: expect.any(String) } });
      else expect(res.body, what).toMatchObject({ error: { code: expect.stringMatching(/^[a-z_]+$/), message: expect.any(String) } });
    }
    expect(findPii(res.text, pii), what).toEqual([]);
    for (const secret of secrets) expect(res.text.includes(secret), what).toBe(false);
    const lowerSent = sent.toLowerCase();
    if (auth.tenant !== undefined) for (const id of allIdsOf()) if (lowerSent.includes(id.toLowerCase())) sentEarlier[auth.tenant].add(id);
    // /metrics needs no key and labels sync durations by connection id, as the README documents.
    if (res.status < 300 && auth.tenant !== undefined && route !== '/metrics') {
      const other = auth.tenant === 'default' ? OTHER_TENANT : 'default';
      // An id the caller sent itself may be echoed ("device … not found"); any other is a leak.
      // Its own audit trail records the ids it sent in earlier calls (a gate check of a device id).
      const echoed = (id: string) => lowerSent.includes(id.toLowerCase()) || (route === '/api/v1/chronicle/events' && sentEarlier[auth.tenant!].has(id));
      const leaked = ids[other].filter((id) => res.text.toLowerCase().includes(id.toLowerCase()) && !echoed(id));
      expect(leaked, what).toEqual([]);
    }
  }

  it('refuses crafted edge values with a 400, not a 500 (dates PostgreSQL cannot hold, NUL bytes, forged cursors)', async () => {
    const key = keys.default.admin;
    // A device cursor is base64url JSON whose h is a hash of the tenant and filters: anyone can forge one.
    const h = crypto.createHash('sha256').update(JSON.stringify(['default', []])).digest('base64url').slice(0, 16);
    const cursor = (p: unknown) => Buffer.from(JSON.stringify(p)).toString('base64url');
    const cases = [
      `${I}/devices?last_sync_before=0000-01-01T00:00:00Z`,
      `${I}/devices?last_sync_before=${encodeURIComponent('2024-01-01T00:00:00+23:59')}`,
      `${I}/devices?last_sync_after=9999-12-31T23:59:59-23:59`,
      `${I}/devices?cursor=${cursor({ d: 'x', c: '-'.repeat(36), h })}`,
      `${I}/devices?cursor=${cursor({ d: 'a\u0000b', c: '7d1c1f0e-0000-4000-8000-000000000000', h })}`,
      '/api/v1/chronicle/events?from=0000-01-01T00:00:00Z',
      '/api/v1/chronicle/events?actor=a%00b',
    ];
    for (const urlPath of cases) {
      const res = await t.request('GET', urlPath, { key });
      expect(res.status, `${urlPath} -> ${res.text}`).toBe(400);
      expect(res.body).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
    }
    // The forged cursor's hash is right: a cursor with a well-formed position is still accepted.
    const ok = await t.request('GET', `${I}/devices?cursor=${cursor({ d: '0', c: '7d1c1f0e-0000-4000-8000-000000000000', h })}`, { key });
    expect(ok.status).toBe(200);
  });

  it('answers arbitrary input on every route without a 5xx, a leak or another tenant\'s ids', async () => {
    const allIds = [...ids.default, ...ids.acme];
    const odata = fc.constantFrom(
      "('x')",
      "x')?$filter=id eq 'y'",
      '$metadata',
      '..',
      '%2e%2e',
      '%00',
      '%ZZ',
      '%',
      '%C0%AF',
      '%F0%9F%98%80',
      "' OR 1=1 --",
      'null',
      'undefined',
      '00000000-0000-0000-0000-000000000000',
      'ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ',
      '0123456789abcdef',
      'x'.repeat(201),
      'a'.repeat(5000),
    );
    const pathId = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...connectionIds, ...runIds) },
      fc.constantFrom(...allIds),
      fc.constantFrom(...allIds).map((id) => id.toUpperCase()),
      fc.uuid(),
      odata,
      fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => encodeURIComponent(s)),
      fc.string({ unit: 'binary', maxLength: 20 }).map((s) => encodeURIComponent(s)),
      fc.string({ maxLength: 20 }),
    );
    const queryKeys = fc.constantFrom(
      'limit', 'cursor', 'os_family', 'compliance_state', 'ownership', 'connection_id', 'last_sync_before', 'last_sync_after',
      'q', 'type', 'actor', 'device', 'decision', 'from', 'to', 'include_revoked', '$filter', '$top', 'limit[]', '__proto__', 'constructor',
    );
    const queryValue = fc.oneof(
      fc.constantFrom(...allIds),
      fc.constantFrom(...connectionIds, ...cursors),
      fc.constantFrom(...cursors).map((c) => c.slice(0, -2)),
      fc.integer().map(String),
      fc.constantFrom('0', '-1', '1e3', '500', '501', '1.5', 'NaN', 'Infinity', 'true', 'false', '', 'windows', 'compliant', 'company',
        '2024-01-01T00:00:00Z', '2024-13-45T99:99:99Z', '9999-12-31T23:59:59.999999999+14:00', '0000-01-01T00:00:00Z', '2024-01-01T00:00:00+23:59', '9999-12-31T23:59:59-23:59', 'a\u0000b', 'device_compliance_checked', 'eyJ9', 'eyJzZXEiOi0xfQ'),
      fc.string({ unit: 'grapheme', maxLength: 30 }),
      fc.base64String({ maxLength: 80 }),
      fc.string({ maxLength: 1100, minLength: 1000 }),
    );
    const query = fc.oneof(
      fc.constant(''),
      fc.array(fc.tuple(queryKeys, queryValue), { maxLength: 5 }).map((pairs) => `?${new URLSearchParams(pairs).toString()}`),
      fc.string({ maxLength: 40 }).map((s) => `?${s}`),
    );
    const body = fc.oneof(
      fc.constant(undefined),
      fc.jsonValue({ maxDepth: 3 }).map((v) => ({ raw: JSON.stringify(v), type: 'application/json' })),
      fc
        .record(
          {
            display_name: queryValue, entra_tenant_id: queryValue, client_id: fc.oneof(fc.uuid(), queryValue), cloud: fc.constantFrom('public', 'custom', 'x'),
            secret_ref: fc.constantFrom('env:NOPE', `env:${OTHER_SECRET_VAR}`, 'file:/etc/passwd', 'vault:x', '', 'env:'), status: fc.constantFrom('active', 'disabled', 'x'),
            role: fc.constantFrom(...ROLES, 'root'), capabilities: fc.array(fc.constantFrom('READ', 'PROPOSE', 'MUTATE', 'X')), name: queryValue,
            accord: fc.string(), claims: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 })), user_token: fc.string(),
            device_id: fc.oneof(fc.constantFrom(...allIds), queryValue), jsonrpc: fc.constant('2.0'), method: fc.constantFrom('tools/list', 'tools/call', 'initialize', 'x'),
            id: fc.oneof(fc.integer(), fc.string()), params: fc.jsonValue({ maxDepth: 2 }),
          },
          { requiredKeys: [] },
        )
        .map((v) => ({ raw: JSON.stringify(v), type: 'application/json' })),
      fc.tuple(
        fc.string({ maxLength: 60 }),
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16',
          'application/xml', 'application/octet-stream', 'application/merge-patch+json', '', 'json'),
      ).map(([raw, type]) => ({ raw, type })),
    );
    const validKey = fc.constantFrom(...TENANTS).chain((tenant) => fc.constantFrom(...ROLES).map((role) => ({ tenant, role })));
    const auth = fc.oneof(
      { weight: 6, arbitrary: validKey.map((k) => ({ ...k, header: `Bearer ${keys[k.tenant][k.role]}` })) },
      {
        weight: 2,
        arbitrary: fc
          .oneof(
            fc.string({ maxLength: 40 }).map((s) => `Bearer ${s}`),
            fc.string({ maxLength: 40 }).map((s) => `Bearer icn_${s}`),
            fc.constantFrom('Bearer', 'bearer icn_', 'Basic dXNlcjpwYXNz', 'Bearer  ', `Bearer ${'x'.repeat(300)}`, 'Token abc', 'Bearer icn_ icn_'),
            fc.string({ maxLength: 20 }),
          )
          .map((header) => ({ tenant: undefined, role: undefined, header })),
      },
      { weight: 1, arbitrary: fc.constant({ tenant: undefined, role: undefined, header: undefined }) },
    );
    const methodOf = (route: { method: string }) => fc.oneof({ weight: 5, arbitrary: fc.constant(route.method) }, fc.constantFrom('GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS'));
    const request = fc
      .integer({ min: 0, max: routes.length - 1 })
      .chain((i) => fc.record({ route: fc.constant(routes[i]!), method: methodOf(routes[i]!), ids: fc.array(pathId, { minLength: 2, maxLength: 2 }), query, body, auth }));

    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        let n = 0;
        const urlPath = r.route.url.replace(/:[a-z_]+/g, () => r.ids[n++ % r.ids.length]!) + r.query;
        const headers: Record<string, string> = {};
        if (r.auth.header !== undefined) headers['authorization'] = r.auth.header;
        const withBody = r.body !== undefined && r.method !== 'GET' && r.method !== 'HEAD';
        if (withBody && r.body!.type !== '') headers['content-type'] = r.body!.type;
        let res;
        try {
          res = await t.request(r.method, urlPath, { headers, ...(withBody ? { rawBody: r.body!.raw } : {}) });
        } catch (err) {
          // fetch refuses some inputs itself (a header that is not a ByteString, an unparsable URL).
          if (err instanceof TypeError) return;
          throw err;
        }
        check(r.method, r.route.url, urlPath, r.auth, res, `${urlPath} ${withBody ? r.body!.raw : ''}`);
      }),
      { numRuns: Number(process.env['FUZZ_RUNS'] ?? 300), interruptAfterTimeLimit: Number(process.env['FUZZ_MS'] ?? 25_000) },
    );
  });
  it('answers well-formed calls with real ids of both tenants without a 5xx, a leak or another tenant\'s ids', async () => {
    const allIds = [...ids.default, ...ids.acme];
    const valid = fc.record({
      tenant: fc.constantFrom(...TENANTS),
      role: fc.oneof({ weight: 3, arbitrary: fc.constant<Role>('admin') }, { weight: 2, arbitrary: fc.constant<Role>('reader') }, fc.constantFrom(...ROLES)),
    });
    const getTemplates = routes.filter((r) => r.method === 'GET' && r.url.startsWith('/api/')).map((r) => r.url);
    // Ids of the other tenant come up most: they are the ones that must never answer.
    const callFor = (tenant: Tenant) => {
      const other = tenant === 'default' ? OTHER_TENANT : 'default';
      const id = fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...ids[other]) },
        { weight: 2, arbitrary: fc.constantFrom(...connectionIds, ...runIds) },
        fc.constantFrom(...allIds),
        fc.uuid(),
      );
      const value = fc.oneof(id, fc.constantFrom(...cursors), fc.constantFrom('1', '2', '500', 'windows', 'macos', 'compliant', 'noncompliant', 'company', 'personal', '2024-01-01T00:00:00Z', 'true'));
      const filters = fc
        .dictionary(fc.constantFrom('limit', 'cursor', 'os_family', 'compliance_state', 'ownership', 'connection_id', 'q', 'device', 'actor', 'type', 'decision', 'last_sync_after'), value, { maxKeys: 3 })
        .map((d) => (Object.keys(d).length === 0 ? '' : `?${new URLSearchParams(d).toString()}`));
      return fc.oneof(
        { weight: 3, arbitrary: fc.record({ kind: fc.constant('get' as const), template: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...getTemplates.filter((u) => u.includes(':'))) }, fc.constantFrom(...getTemplates)), a: id, b: id, query: filters }) },
        fc.record({ kind: fc.constant('gate' as const), deviceid: fc.oneof(id, fc.string()), accord: fc.constantFrom('payments.refund', 'x') }),
        fc.record({
          kind: fc.constant('mcp' as const),
          tool: fc.constantFrom('list_devices', 'get_device', 'get_device_compliance', 'sync_device', 'remote_lock', 'nope'),
          args: fc.dictionary(fc.constantFrom('device_id', 'azure_ad_device_id', 'limit', 'cursor', 'compliance_state', 'os_family', 'reason', 'confirm'),
            fc.oneof(id, fc.constantFrom(...cursors), fc.integer({ min: -1, max: 600 }), fc.boolean(), fc.string({ maxLength: 20 })), { maxKeys: 3 }),
        }),
        fc.record({ kind: fc.constant('patch' as const), a: id, body: fc.record({ display_name: fc.string({ minLength: 1, maxLength: 30 }), status: fc.constant('active') }, { requiredKeys: [] }) }),
      );
    };
    await fc.assert(
      fc.asyncProperty(valid.chain((auth) => fc.tuple(fc.constant(auth), callFor(auth.tenant))), async ([auth, c]) => {
        const key = keys[auth.tenant][auth.role];
        if (c.kind === 'get') {
          let n = 0;
          const urlPath = c.template.replace(/:[a-z_]+/g, () => (n++ === 0 ? c.a : c.b)) + c.query;
          check('GET', c.template, urlPath, auth, await t.request('GET', urlPath, { key }), urlPath);
        } else if (c.kind === 'gate') {
          const body = { accord: c.accord, claims: { deviceid: c.deviceid } };
          const res = await t.request('POST', '/api/v1/gate/device-compliance', { key, body });
          check('POST', '/api/v1/gate/device-compliance', '/api/v1/gate/device-compliance', auth, res, JSON.stringify(body));
        } else if (c.kind === 'mcp') {
          const body = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: c.tool, arguments: c.args } };
          const res = await t.request('POST', '/mcp', { key, body, headers: { accept: 'application/json, text/event-stream' } });
          check('POST', '/mcp', '/mcp', auth, res, JSON.stringify(body));
        } else {
          const urlPath = `${I}/connections/${c.a}`;
          check('PATCH', `${I}/connections/:connection_id`, urlPath, auth, await t.request('PATCH', urlPath, { key, body: c.body }), urlPath);
        }
      }),
      { numRuns: Number(process.env['FUZZ_RUNS'] ?? 300), interruptAfterTimeLimit: Number(process.env['FUZZ_MS'] ?? 15_000) },
    );
  });
});
