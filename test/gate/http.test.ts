/**
 * POST /api/v1/gate/device-compliance, as a host in another language calls it: a Fastify app with
 * the gate plugin and the real API key store, over the real gate, connector, simulator and
 * Chronicle. Also the README's Python client, run with python3 against the live server.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { Ajv } from 'ajv';
import Fastify, { type FastifyInstance } from 'fastify';
import { SignJWT, exportJWK, generateKeyPair, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyStore, type KeyStore } from '../../src/auth/keys.js';
import type { Role } from '../../src/auth/types.js';
import { GATE_PATH, gateRoutes, type GateRoutesOptions } from '../../src/gate/http.js';
import { GATE_ERROR_JSON_SCHEMA, GATE_RESPONSE_JSON_SCHEMA } from '../../src/gate/schemas.js';
import { createPGliteDatabase, createPostgresDatabase, pgAvailable } from '../helpers/db.js';
import { HOUR_MS, NO_GRACE, TENANT, deviceAllocator, isoAgo, lookupsOf, openGateWorld, randomGuid, recordedChecks, type GateWorld } from './helpers.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const ajv = new Ajv({ strict: false, allErrors: true });
const validResponse = ajv.compile(GATE_RESPONSE_JSON_SCHEMA);
const validError = ajv.compile(GATE_ERROR_JSON_SCHEMA);

const POLICY = {
  accords: {
    'device-management': { device_compliance_required: true, strict: true },
    'byod-reporting': { device_compliance_required: true, strict: false },
  },
};

let world: GateWorld;
let keys: KeyStore;
let nextDevice: () => { id: string; azureADDeviceId: string };
const apps: FastifyInstance[] = [];

async function gateApp(extra: Partial<GateRoutesOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(gateRoutes, { gate: world.gate, authenticator: keys, ...extra });
  await app.ready();
  apps.push(app);
  return app;
}

async function keyFor(role: Role, tenant = TENANT): Promise<string> {
  return (await keys.create({ tenant, role }, { kind: 'human', id: 'test-admin' })).key;
}

function device(state: string): { id: string; azureADDeviceId: string } {
  const d = nextDevice();
  world.sim.updateDevice(d.id, { complianceState: state, complianceGracePeriodExpirationDateTime: NO_GRACE, lastSyncDateTime: isoAgo(world.clock, HOUR_MS) });
  return d;
}

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: any;
}

async function post(app: FastifyInstance, init: { key?: string | undefined; body?: unknown; raw?: string; contentType?: string | null; headers?: Record<string, string> }): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.key !== undefined) headers['authorization'] = `Bearer ${init.key}`;
  if (init.contentType !== null) headers['content-type'] = init.contentType ?? 'application/json';
  const payload = init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
  const response = await app.inject({ method: 'POST', url: GATE_PATH, headers, ...(payload !== undefined ? { payload } : {}) });
  let body: unknown;
  try {
    body = response.json();
  } catch {
    body = response.body;
  }
  return { status: response.statusCode, headers: response.headers, body };
}

function expectError(answer: Answer, status: number, code: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
  expect(validError(answer.body), JSON.stringify(validError.errors)).toBe(true);
  expect(answer.body.error.message).toMatch(/^[a-zA-Z`'"].{15,}/);
}

beforeAll(async () => {
  world = await openGateWorld(pgAvailable() ? createPostgresDatabase : createPGliteDatabase, { policy: POLICY });
  keys = createKeyStore({ db: world.db, chronicle: world.chronicle });
  nextDevice = deviceAllocator(world.sim);
});
afterAll(async () => {
  for (const app of apps) await app.close();
  await world?.close();
});

describe('authentication and roles', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await gateApp();
  });

  it.each([
    ['no Authorization header', {}],
    ['another scheme', { headers: { authorization: 'Basic dXNlcjpwYXNz' } }],
    ['an unknown key', { key: 'icn_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }],
    ['garbage', { key: "' or 1=1 --" }],
  ])('%s: 401 with WWW-Authenticate, before the body is looked at', async (_label, init) => {
    const answer = await post(app, { ...init, raw: 'not even json' });
    expectError(answer, 401, 'unauthorized');
    expect(answer.headers['www-authenticate']).toBe('Bearer realm="intune-connector"');
  });

  it('a revoked key: 401', async () => {
    const created = await keys.create({ tenant: TENANT, role: 'gate' }, { kind: 'human', id: 'test-admin' });
    expect((await post(app, { key: created.key, body: { accord: 'a', claims: {} } })).status).toBe(200);
    await keys.revoke(created.record.key_id, { kind: 'human', id: 'test-admin' });
    expectError(await post(app, { key: created.key, body: { accord: 'a', claims: {} } }), 401, 'unauthorized');
  });

  it.each(['reader', 'auditor', 'agent'] as const)('a %s key: 403', async (role) => {
    const answer = await post(app, { key: await keyFor(role), body: { accord: 'a', claims: {} } });
    expectError(answer, 403, 'forbidden');
    expect(answer.body.error.message).toContain('gate or admin');
  });

  it.each(['gate', 'admin'] as const)('a %s key: answered', async (role) => {
    const answer = await post(app, { key: await keyFor(role), body: { accord: 'anything', claims: {} } });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ decision: 'allow', reason: 'compliance_not_required' });
  });

  it("the decision is recorded on the key's tenant, with the key as actor", async () => {
    const otherKey = await keys.create({ tenant: 'globex', role: 'gate' }, { kind: 'human', id: 'test-admin' });
    const answer = await post(app, { key: otherKey.key, body: { accord: 'device-management', claims: { deviceid: randomGuid() } } });
    // globex has no Intune connection in this process: the gate cannot ask, so it denies.
    expect(answer.body).toMatchObject({ decision: 'deny', reason: 'compliance_unavailable' });
    const [event] = await recordedChecks(world.db, 'globex');
    expect(event).toMatchObject({ seq: answer.body.event.seq, hash: answer.body.event.hash, actor: { kind: 'service' }, data: { channel: 'api' } });
    expect(event?.actor.id).toContain(otherKey.record.key_id);
  });
});

describe('answers', () => {
  let app: FastifyInstance;
  let key: string;
  beforeAll(async () => {
    app = await gateApp();
    key = await keyFor('gate');
  });

  it('allow and deny are both 200 and match the response schema, each with its event', async () => {
    const good = device('compliant');
    const bad = device('noncompliant');
    const allowed = await post(app, { key, body: { accord: 'device-management', claims: { deviceid: good.azureADDeviceId } } });
    const denied = await post(app, { key, body: { accord: 'device-management', claims: { deviceid: bad.azureADDeviceId } } });
    for (const answer of [allowed, denied]) {
      expect(answer.status).toBe(200);
      expect(validResponse(answer.body), JSON.stringify(validResponse.errors)).toBe(true);
      expect(answer.headers['cache-control']).toBe('no-store');
    }
    expect(allowed.body).toMatchObject({ decision: 'allow', reason: 'compliant', evaluated: true, device: { device_id: good.id } });
    expect(denied.body).toMatchObject({ decision: 'deny', reason: 'noncompliant', device: { device_id: bad.id } });
    const events = await recordedChecks(world.db);
    for (const answer of [allowed, denied]) {
      expect(events.find((e) => e.seq === answer.body.event.seq)).toMatchObject({ hash: answer.body.event.hash, data: { channel: 'api', reason: answer.body.reason } });
    }
  });

  it("an injection attempt in the device id is a 400 device_id_invalid, recorded as a deny, never a Graph filter", async () => {
    const before = world.sim.requests().length;
    const answer = await post(app, { key, body: { accord: 'device-management', claims: { deviceid: "' or 1 eq 1" } } });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: { code: 'device_id_invalid', field: 'claims.deviceid', decision: 'deny' } });
    expect(answer.body.error.message).toMatch(/GUID/i);
    const events = await recordedChecks(world.db);
    expect(events.find((e) => e.seq === answer.body.error.event.seq)).toMatchObject({
      hash: answer.body.error.event.hash,
      data: { reason: 'device_id_invalid', decision: 'deny', azure_ad_device_id: null },
    });
    expect(JSON.stringify(events)).not.toContain("' or 1 eq 1");
    expect(world.sim.requests().length).toBe(before);
  });
});

describe('malformed requests: 4xx with a code and a message, never 5xx', () => {
  let app: FastifyInstance;
  let key: string;
  beforeAll(async () => {
    app = await gateApp();
    key = await keyFor('gate');
  });

  it.each([
    ['invalid JSON', { raw: '{"accord": "device-management", ' }, 400, 'invalid_json'],
    ['an empty body', { raw: '' }, 400, 'invalid_json'],
    ['a prototype-polluting key', { raw: '{"accord":"a","claims":{"__proto__":{"deviceid":"x"}}}' }, 400, 'invalid_json'],
    ['an array', { body: [{ accord: 'a' }] }, 400, 'invalid_body'],
    ['a JSON string', { body: 'device-management' }, 400, 'invalid_body'],
    ['no accord', { body: { claims: {} } }, 400, 'invalid_body'],
    ['a numeric accord', { body: { accord: 7, claims: {} } }, 400, 'invalid_accord'],
    ['an accord with spaces and quotes', { body: { accord: "x' or 1 eq 1", claims: {} } }, 400, 'invalid_accord'],
    ['an accord of 129 characters', { body: { accord: 'a'.repeat(129), claims: {} } }, 400, 'invalid_accord'],
    ['an unknown field', { body: { accord: 'a', claims: {}, tenant: 'other' } }, 400, 'invalid_body'],
    ['neither claims nor user_token', { body: { accord: 'a' } }, 400, 'invalid_body'],
    ['claims as an array', { body: { accord: 'a', claims: ['deviceid'] } }, 400, 'invalid_body'],
    ['claims as a string', { body: { accord: 'a', claims: 'deviceid=x' } }, 400, 'invalid_body'],
    ['claims and user_token', { body: { accord: 'a', claims: {}, user_token: 'x.y.z' } }, 400, 'invalid_body'],
    ['a user_token that is not a string', { body: { accord: 'a', user_token: 42 } }, 400, 'invalid_body'],
    ['a user_token when no JWKS is configured', { body: { accord: 'a', user_token: 'x.y.z' } }, 400, 'user_token_not_accepted'],
    ['a 20 KiB body', { body: { accord: 'a', claims: { pad: 'x'.repeat(20 * 1024) } } }, 413, 'payload_too_large'],
    ['a 2 MiB body', { raw: `{"accord":"a","claims":{"pad":"${'x'.repeat(2 * 1024 * 1024)}"}}` }, 413, 'payload_too_large'],
    ['text/plain', { body: { accord: 'a', claims: {} }, contentType: 'text/plain' }, 415, 'unsupported_media_type'],
    ['a form', { raw: 'accord=a', contentType: 'application/x-www-form-urlencoded' }, 415, 'unsupported_media_type'],
    ['XML', { raw: '<accord>a</accord>', contentType: 'application/xml' }, 415, 'unsupported_media_type'],
    ['no content type', { raw: '{"accord":"a","claims":{}}', contentType: null }, 415, 'unsupported_media_type'],
  ] as const)('%s → %i %s', async (_label, init, status, code) => {
    const answer = await post(app, { key, ...(init as object) });
    expectError(answer, status, code);
  });

  it('says what to fix, naming the first problem a caller would correct', async () => {
    const cases: [unknown, string, RegExp][] = [
      [{ claims: {}, tenant: 'other' }, 'invalid_body', /^accord is required/],
      [{ accord: 'a b', tenant: 'other' }, 'invalid_accord', /^accord must be 1 to 128 letters/],
      [{ accord: 'a', claims: {}, 'ten\u0000ant': 'other' }, 'invalid_body', /unknown field "ten\?ant"; send only accord and claims/],
      [{ accord: 'a', claims: {}, user_token: 'x.y.z' }, 'invalid_body', /^send claims or user_token, not both$/],
      [{ accord: 'a' }, 'invalid_body', /^claims is required/],
      [{ accord: 'a', user_token: '' }, 'invalid_body', /^user_token must be the user's JWT as a string of at most 8192 characters$/],
      [{ accord: 'a', claims: ['deviceid'] }, 'invalid_body', /^claims must be a JSON object/],
      [[{ accord: 'a' }], 'invalid_body', /^the body must be a JSON object/],
    ];
    for (const [body, code, message] of cases) {
      const answer = await post(app, { key, body });
      expectError(answer, 400, code);
      expect(answer.body.error.message).toMatch(message);
    }
  });
});

describe('user_token instead of claims', () => {
  it('verified against a pinned key set: the deviceid claim decides; expired, foreign, unsigned or HS256 tokens are 400 invalid_token', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
    const app = await gateApp({ jwt: { jwks, issuer: 'https://login.microsoftonline.com/tenant/v2.0', audience: 'api://authorize' } });
    const key = await keyFor('gate');
    const sign = (claims: Record<string, unknown>, { exp = '5m', iss = 'https://login.microsoftonline.com/tenant/v2.0', aud = 'api://authorize' } = {}) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(iss).setAudience(aud).setIssuedAt().setExpirationTime(exp).sign(privateKey);

    const good = device('compliant');
    const allowed = await post(app, { key, body: { accord: 'device-management', user_token: await sign({ deviceid: good.azureADDeviceId, upn: 'u@contoso.example' }) } });
    expect(allowed.body).toMatchObject({ decision: 'allow', reason: 'compliant', device: { device_id: good.id } });

    const noDevice = await post(app, { key, body: { accord: 'device-management', user_token: await sign({ sub: 'keycloak-user' }) } });
    expect(noDevice.body).toMatchObject({ decision: 'deny', reason: 'device_id_missing' });

    const expired = await post(app, { key, body: { accord: 'a', user_token: await sign({}, { exp: Math.floor(Date.now() / 1000) - 3600 } as never) } });
    expectError(expired, 400, 'invalid_token');
    expect(expired.body.error.message).toMatch(/expired/);
    const wrongAudience = await post(app, { key, body: { accord: 'a', user_token: await sign({}, { aud: 'api://other' }) } });
    expectError(wrongAudience, 400, 'invalid_token');
    expect(wrongAudience.body.error.message).toMatch(/"aud" claim/);
    const foreign = await generateKeyPair('ES256');
    const forged = await new SignJWT({ deviceid: good.azureADDeviceId }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://login.microsoftonline.com/tenant/v2.0').setAudience('api://authorize').setExpirationTime('5m').sign(foreign.privateKey);
    expectError(await post(app, { key, body: { accord: 'a', user_token: forged } }), 400, 'invalid_token');
    const hs256 = await new SignJWT({ deviceid: good.azureADDeviceId }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new Uint8Array(32));
    expectError(await post(app, { key, body: { accord: 'a', user_token: hs256 } }), 400, 'invalid_token');
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const unsigned = `${b64({ alg: 'none' })}.${b64({ deviceid: good.azureADDeviceId })}.`;
    expectError(await post(app, { key, body: { accord: 'a', user_token: unsigned } }), 400, 'invalid_token');
    expectError(await post(app, { key, body: { accord: 'a', user_token: 'not-a-jwt' } }), 400, 'invalid_token');
  });

  it("verified against a live JWKS endpoint (the simulator's Entra keys, over HTTPS with its CA)", async () => {
    const sim = world.sim;
    const app = await gateApp({
      jwt: { jwksUrl: `${sim.loginUrl}/${sim.tenantId}/discovery/v2.0/keys`, issuer: `https://sts.windows.net/${sim.tenantId}/`, audience: sim.graphUrl, caPem: sim.caPem },
    });
    const key = await keyFor('gate');
    // An Entra app token carries no deviceid: strict accords deny, permissive ones allow unevaluated.
    const token = await sim.mintToken();
    expect((await post(app, { key, body: { accord: 'device-management', user_token: token } })).body).toMatchObject({ decision: 'deny', reason: 'device_id_missing' });
    expect((await post(app, { key, body: { accord: 'byod-reporting', user_token: token } })).body).toMatchObject({ decision: 'allow', reason: 'device_id_missing_permissive' });
    expectError(await post(app, { key, body: { accord: 'a', user_token: await sim.mintToken({ untrustedKey: true }) } }), 400, 'invalid_token');
    expectError(await post(app, { key, body: { accord: 'a', user_token: await sim.mintToken({ expiresInSeconds: -600 }) } }), 400, 'invalid_token');
  });

  it('an unreachable JWKS endpoint: 503 jwks_unavailable, not a decision', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const app = await gateApp({ jwt: { jwksUrl: `https://127.0.0.1:${closedPort}/keys` } });
    const token = await world.sim.mintToken();
    const answer = await post(app, { key: await keyFor('gate'), body: { accord: 'a', user_token: token } });
    expect(answer.status).toBe(503);
    expect(answer.body.error.code).toBe('jwks_unavailable');
    expect(answer.headers['retry-after']).toBe('5');
  });
});

describe('the README Python client (standard library only)', () => {
  it('asks the live server and prints the decision', async () => {
    const app = await gateApp();
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const env = { ...process.env, INTUNE_GATE_URL: url, INTUNE_GATE_KEY: await keyFor('gate') };
    const script = path.join(ROOT, 'examples', 'gate_client.py');

    const good = device('compliant');
    const allowed = await run('python3', [script, 'device-management', good.azureADDeviceId], { env });
    const [decision, reason, seq] = allowed.stdout.trim().split(' ');
    expect([decision, reason]).toEqual(['allow', 'compliant']);
    const event = (await recordedChecks(world.db)).find((e) => e.seq === Number(seq));
    expect(event?.data).toMatchObject({ decision: 'allow', azure_ad_device_id: good.azureADDeviceId, channel: 'api' });

    const bad = device('conflict');
    expect((await run('python3', [script, 'device-management', bad.azureADDeviceId], { env })).stdout.trim()).toMatch(/^deny compliance_conflict \d+$/);
    expect((await run('python3', [script, 'device-management'], { env })).stdout.trim()).toMatch(/^deny device_id_missing \d+$/);
    expect(lookupsOf(world.sim, good.azureADDeviceId)).toBe(1);
  });

  it('turns every failure into a deny with the reason, never a traceback: 400, 401, a server that is down or silent', async () => {
    const app = await gateApp();
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const script = path.join(ROOT, 'examples', 'gate_client.py');
    const gateKey = await keyFor('gate');
    const ask = (env: Record<string, string>, args: string[]) => run('python3', [script, ...args], { env: { ...process.env, INTUNE_GATE_TIMEOUT: '1', ...env } });

    const notGuid = await ask({ INTUNE_GATE_URL: url, INTUNE_GATE_KEY: gateKey }, ['device-management', "x' or 1 eq 1"]);
    expect(notGuid.stdout.trim()).toMatch(/^deny device_id_invalid \d+$/);
    const badAccord = await ask({ INTUNE_GATE_URL: url, INTUNE_GATE_KEY: gateKey }, ['no spaces allowed', randomGuid()]);
    expect(badAccord.stdout.trim()).toBe('deny invalid_accord None');
    expect(badAccord.stderr).toMatch(/accord/);
    const badKey = await ask({ INTUNE_GATE_URL: url, INTUNE_GATE_KEY: 'icn_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, ['device-management', randomGuid()]);
    expect(badKey.stdout.trim()).toBe('deny unauthorized None');
    const noKey = await ask({ INTUNE_GATE_URL: url, INTUNE_GATE_KEY: '' }, ['device-management', randomGuid()]);
    expect(noKey.stdout.trim()).toBe('deny unauthorized None');

    const closedPort = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const down = await ask({ INTUNE_GATE_URL: `http://127.0.0.1:${closedPort}`, INTUNE_GATE_KEY: gateKey }, ['device-management', randomGuid()]);
    expect(down.stdout.trim()).toBe('deny gate_unavailable None');
    expect(down.stderr).toMatch(/refused/i);

    const held: net.Socket[] = [];
    const silent = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as net.AddressInfo;
      const timedOut = await ask({ INTUNE_GATE_URL: `http://127.0.0.1:${port}`, INTUNE_GATE_KEY: gateKey }, ['device-management', randomGuid()]);
      expect(timedOut.stdout.trim()).toBe('deny gate_unavailable None');
      expect(timedOut.stderr).toMatch(/timed out/i);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
    for (const outcome of [notGuid, badAccord, badKey, noKey, down]) expect(outcome.stderr).not.toContain('Traceback');
  });
});
