/**
 * Endpoint agents end to end, against a real server (PostgreSQL and PGlite): enrollment tokens,
 * the rule table through HTTP, CSR checks, client certificates on the mTLS listener (none, another
 * CA's, expired, revoked, replaced), identity-bound heartbeats, renewal, tenant scoping, the demo
 * agents' fingerprints, and PII canaries searched for in every answer, event, row, log line, page
 * and export.
 */
import crypto from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/index.js';
import { createAgentService } from '../../src/agents/service.js';
import { checkCsr, issueClientCertificate } from '../../src/agents/x509.js';
import { fingerprintSerial } from '../../src/connector/redaction.js';
import { OTHER_TENANT, startTestServer, type TestResponse, type TestServer } from '../api/helpers.js';
import { specChecker } from '../api/openapi.js';
import { eventChecker } from '../api/asyncapi.js';
import { pgAvailable } from '../helpers/db.js';
import { csrFor, foreignClientCertificate, mtls, tamperSignature, type ClientIdentity } from './helpers.js';

const A = '/api/v1/agents';
const RATE_BURST = 12;

function suite(kind: 'postgres' | 'pglite') {
  let t: TestServer;
  let admin: string;
  let reader: string;
  let acmeAdmin: string;
  let agentUrl: string;
  let serverCa: string;
  const logLines: string[] = [];
  const seen: string[] = [];
  const spec = specChecker();
  const events = eventChecker();
  // Canaries: identifiers an agent sends once, which must never come back out.
  const SERIAL = `CANARY${crypto.randomBytes(5).toString('hex').toUpperCase()}`;
  const HW_UUID = crypto.randomUUID().toUpperCase();
  const canaries = [SERIAL, HW_UUID, HW_UUID.toLowerCase()];
  // Tokens are answered once, to the administrator; they must not reach logs, rows or events.
  const tokens: string[] = [];

  async function call(method: string, template: string, urlPath: string, init: Parameters<TestServer['request']>[2] = {}): Promise<TestResponse> {
    const res = await t.request(method, urlPath, init);
    seen.push(res.text);
    spec.check(method, template, res);
    return res;
  }

  async function agentCall(urlPath: string, identity: ClientIdentity | undefined, init: { body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}) {
    const res = await mtls(agentUrl, 'POST', urlPath, { ...init, serverCa, ...(identity !== undefined ? { identity } : {}) });
    seen.push(res.text);
    spec.check('POST', urlPath, res);
    return res;
  }

  async function newToken(key = admin, body: unknown = {}): Promise<string> {
    const res = await call('POST', `${A}/enrollment-tokens`, `${A}/enrollment-tokens`, { key, body });
    expect(res.status).toBe(201);
    tokens.push(res.body.token as string);
    return res.body.token as string;
  }

  async function enroll(token: string, fields: Record<string, unknown> = {}) {
    const { csrPem, keyPem } = await csrFor({ name: 'ECDSA', namedCurve: 'P-256' });
    const res = await call('POST', `${A}/enroll`, `${A}/enroll`, {
      body: { token, csr: csrPem, platform: 'darwin', agent_class: 'endpoint', os_version: '14.5', ...fields },
    });
    return { res, identity: res.status === 201 ? ({ cert: res.body.certificate as string, key: keyPem } satisfies ClientIdentity) : undefined };
  }

  const heartbeat = (overrides: Record<string, unknown> = {}) => ({
    os_version: '14.5',
    os_build: '23F79',
    uptime_seconds: 5400,
    filevault: true,
    firewall: false,
    sip: true,
    gatekeeper: 'unknown',
    agent_version: '1.0.0',
    time: new Date().toISOString(),
    ...overrides,
  });

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    t = await startTestServer(kind, {
      serverOptions: { logger: createLogger({ level: 'debug' }, sink), agentListener: { rateLimit: { burst: RATE_BURST, refillMs: 60_000 } } },
    });
    admin = await t.key('default', 'admin');
    reader = await t.key('default', 'reader');
    acmeAdmin = await t.key(OTHER_TENANT, 'admin');
    agentUrl = t.server.agentListener.url;
    serverCa = t.server.agentListener.tls.caPem as string;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('prints the agent listener in the banner and enrolls the demo agents over mTLS, some matching Intune Macs by serial fingerprint', async () => {
    const { describeServer } = await import('../../src/api/server.js');
    expect(describeServer(t.server)).toContain(`  Agents (mTLS)   ${agentUrl}`);
    expect(describeServer(t.server)).toContain(`  Assets          ${t.url}/api/v1/assets   (one machine, Intune and agents merged)`);
    expect(agentUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(t.server.demoAgentIds).toHaveLength(5);
    const posture = await call('GET', `${A}/posture`, `${A}/posture`, { key: reader });
    const demo = posture.body.devices.filter((d: any) => t.server.demoAgentIds.includes(d.agent_id));
    expect(demo).toHaveLength(5);
    for (const entry of demo) expect(entry).toMatchObject({ source: 'agent', os_family: 'macos', status: 'active', sip: true, received_at: expect.any(String) });
    const intune = await call('GET', '/api/v1/integrations/intune/devices', '/api/v1/integrations/intune/devices?limit=500&os_family=macos', { key: reader });
    const intuneFingerprints = new Set(intune.body.devices.map((d: any) => d.serial_fingerprint));
    const matched = demo.filter((d: any) => intuneFingerprints.has(d.serial_fingerprint));
    expect(matched.length).toBe(3);
    expect(demo.length - matched.length).toBe(2);
  });

  it('makes single-use enrollment tokens for admins only, audited before they are usable', async () => {
    const created = await call('POST', `${A}/enrollment-tokens`, `${A}/enrollment-tokens`, { key: admin, body: { ttl_seconds: 600, name: 'lab mac' } });
    expect(created.status).toBe(201);
    expect(created.body.token).toMatch(/^ice_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(created.body.expires_at) - Date.now()).toBeGreaterThan(590_000);
    expect(Date.parse(created.body.expires_at) - Date.now()).toBeLessThan(610_000);
    const defaults = await call('POST', `${A}/enrollment-tokens`, `${A}/enrollment-tokens`, { key: admin });
    expect(defaults.status).toBe(201);
    expect(Date.parse(defaults.body.expires_at) - Date.now()).toBeLessThanOrEqual(3_600_000);

    const tokenId = (created.body.token as string).slice(4, 20);
    const { rows } = await t.server.runtime.db.query<{ usable: boolean; secret_sha256: Buffer }>('SELECT usable, secret_sha256 FROM agent_enrollment_tokens WHERE token_id = $1', [tokenId]);
    expect(rows[0]?.usable).toBe(true);
    expect(Buffer.from(rows[0]!.secret_sha256).toString('hex')).toBe(crypto.createHash('sha256').update(created.body.token).digest('hex'));
    const audit = await t.server.runtime.chronicle.query({ tenant: 'default', types: ['agent.enrollment_token_created'] });
    expect(audit.events.map((e) => e.data['token_id'])).toContain(tokenId);
    expect(JSON.stringify(audit.events)).not.toContain(created.body.token);

    expect((await call('POST', `${A}/enrollment-tokens`, `${A}/enrollment-tokens`, { key: reader, body: {} })).status).toBe(403);
    expect((await call('POST', `${A}/enrollment-tokens`, `${A}/enrollment-tokens`, { body: {} })).status).toBe(401);
    const badTtl = await call('POST', `${A}/enrollment-tokens`, `${A}/enrollment-tokens`, { key: admin, body: { ttl_seconds: 0 } });
    expect(badTtl.status).toBe(400);
    expect(badTtl.body.error.code).toBe('invalid_body');
  });

  it('enrolls a macOS agent: a client certificate from the tenant CA, fingerprints instead of identifiers, agent.macos.enrolled', async () => {
    const token = await newToken();
    const { res } = await enroll(token, { serial_number: SERIAL, hardware_uuid: HW_UUID, model: 'Mac14,2', os_build: '23F79' });
    expect(res.status).toBe(201);
    const { agent_id: agentId, certificate, ca_chain: chain } = res.body;
    const cert = new crypto.X509Certificate(certificate);
    const ca = new crypto.X509Certificate(chain[0]);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subject).toContain(`CN=${agentId}`);
    expect(cert.subject).toContain('O=default');
    expect(cert.subjectAltName).toBe(`URI:urn:intune-connector:agent:default:${agentId}`);
    const lifetimeDays = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(lifetimeDays).toBeGreaterThan(29.9);
    expect(lifetimeDays).toBeLessThan(30.1);
    expect(res.body.agent_url).toBe(agentUrl);

    const summary = await call('GET', `${A}/{agent_id}`, `${A}/${agentId}`, { key: reader });
    const key = t.server.runtime.fingerprintKeyFor('default');
    expect(summary.body).toMatchObject({
      agent_id: agentId,
      platform: 'darwin',
      agent_class: 'endpoint',
      os_family: 'macos',
      os_version: '14.5',
      model: 'Mac14,2',
      last_seen_at: null,
      status: 'active',
      serial_fingerprint: fingerprintSerial(SERIAL, key),
    });
    // The same machine reported with other case and spacing has the same fingerprint (as Intune's).
    expect(summary.body.serial_fingerprint).toBe(fingerprintSerial(` ${SERIAL.toLowerCase()} `, key));

    const recorded = await call('GET', '/api/v1/chronicle/events', '/api/v1/chronicle/events?type=agent.macos.enrolled&limit=200', { key: admin });
    const event = recorded.body.events.find((e: any) => e.data.agent_id === agentId);
    expect(event).toBeDefined();
    expect(events.errorsFor(event)).toEqual([]);
    expect(event.data).toMatchObject({ platform: 'darwin', agent_class: 'endpoint', os_family: 'macos', os_version: '14.5', serial_fingerprint: summary.body.serial_fingerprint });
    expect(event.data.hardware_fingerprint).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);

    // Single use: the token that enrolled cannot enroll again.
    const again = await enroll(token);
    expect(again.res.status).toBe(401);
    expect(again.res.body.error.code).toBe('invalid_token');
  });

  it('refuses by the rule table, and a CSR with a bad signature or a weak key, without consuming the token', async () => {
    const token = await newToken();
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ platform: 'linux' }, 422, 'platform_not_supported'],
      [{ platform: 'windows', agent_class: 'endpoint' }, 422, 'platform_not_supported'],
      [{ agent_class: 'server' }, 422, 'agent_class_not_allowed'],
      [{ os_version: '12.7.6' }, 422, 'os_version_unsupported'],
      [{ os_version: '14.x' }, 400, 'invalid_body'],
    ];
    for (const [fields, status, code] of cases) {
      const { res } = await enroll(token, fields);
      expect(res.status, JSON.stringify(fields)).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(res.body.error.message.length).toBeGreaterThan(15);
    }
    const good = await csrFor({ name: 'ECDSA', namedCurve: 'P-256' });
    const base = { token, platform: 'darwin', agent_class: 'endpoint', os_version: '14.5' };
    const tampered = await call('POST', `${A}/enroll`, `${A}/enroll`, { body: { ...base, csr: tamperSignature(good.csrPem) } });
    expect(tampered.status).toBe(400);
    expect(tampered.body.error.code).toBe('csr_signature_invalid');
    const weak = await csrFor({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024 });
    const weakRes = await call('POST', `${A}/enroll`, `${A}/enroll`, { body: { ...base, csr: weak.csrPem } });
    expect(weakRes.status).toBe(422);
    expect(weakRes.body.error.code).toBe('weak_key');
    const p384 = await csrFor({ name: 'ECDSA', namedCurve: 'P-384' });
    const garbage = await call('POST', `${A}/enroll`, `${A}/enroll`, { body: { ...base, csr: `-----BEGIN CERTIFICATE REQUEST-----\n${'A'.repeat(80)}\n-----END CERTIFICATE REQUEST-----\n` } });
    expect(garbage.status).toBe(400);
    expect(garbage.body.error.code).toBe('invalid_csr');
    // None of that consumed the token: a good request still enrolls with it (RSA 2048 and P-384 are strong enough).
    const ok = await call('POST', `${A}/enroll`, `${A}/enroll`, { body: { ...base, csr: p384.csrPem } });
    expect(ok.status).toBe(201);
    const rsa = await csrFor({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048 });
    const rsaOk = await call('POST', `${A}/enroll`, `${A}/enroll`, { body: { ...base, token: await newToken(), csr: rsa.csrPem } });
    expect(rsaOk.status).toBe(201);
    const unknownToken = await call('POST', `${A}/enroll`, `${A}/enroll`, { body: { ...base, token: `ice_${'0'.repeat(16)}_${'A'.repeat(43)}`, csr: good.csrPem } });
    expect(unknownToken.status).toBe(401);
    const forgedSecret = await call('POST', `${A}/enroll`, `${A}/enroll`, { body: { ...base, token: `${(await newToken()).slice(0, 21)}${'B'.repeat(43)}`, csr: good.csrPem } });
    expect(forgedSecret.status).toBe(401);
  });

  it('refuses an expired token', async () => {
    const token = await newToken(admin, { ttl_seconds: 1 });
    await new Promise((r) => setTimeout(r, 1_300));
    const { res } = await enroll(token);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('invalid_token');
  });

  it('keeps tenants apart: another tenant\'s token enrolls into that tenant, whose agents are 404 here', async () => {
    const { res, identity } = await enroll(await newToken(acmeAdmin));
    expect(res.status).toBe(201);
    const acmeAgent = res.body.agent_id;
    expect(new crypto.X509Certificate(res.body.certificate).subject).toContain(`O=${OTHER_TENANT}`);
    expect((await call('GET', `${A}/{agent_id}`, `${A}/${acmeAgent}`, { key: admin })).status).toBe(404);
    expect((await call('DELETE', `${A}/{agent_id}`, `${A}/${acmeAgent}`, { key: admin })).status).toBe(404);
    expect((await call('GET', A, A, { key: admin })).body.agents.map((a: any) => a.agent_id)).not.toContain(acmeAgent);
    expect((await call('GET', A, A, { key: acmeAdmin })).body.agents.map((a: any) => a.agent_id)).toEqual([acmeAgent]);
    // The new tenant CA is trusted by the listener at once.
    const beat = await agentCall(`${A}/heartbeat`, identity, { body: heartbeat() });
    expect(beat.status).toBe(200);
    expect((await call('GET', `${A}/{agent_id}`, `${A}/${acmeAgent}`, { key: acmeAdmin })).body.status).toBe('active');

    // A certificate from acme's CA that names a default agent and tenant passes TLS (a trusted CA)
    // and is refused: the tenant in a certificate must be the one whose CA issued it.
    const victim = await enroll(await newToken());
    const csr = await csrFor({ name: 'ECDSA', namedCurve: 'P-256' });
    const forged = await issueClientCertificate({
      ca: await t.server.agents.cas.caFor(OTHER_TENANT),
      csr: await checkCsr(csr.csrPem),
      agentId: victim.res.body.agent_id,
      tenant: 'default',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
    });
    const before = (await call('GET', `${A}/{agent_id}`, `${A}/${victim.res.body.agent_id}`, { key: admin })).body;
    const refused = await agentCall(`${A}/heartbeat`, { cert: forged.certPem, key: csr.keyPem }, { body: heartbeat() });
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('unknown_agent');
    expect((await call('GET', `${A}/{agent_id}`, `${A}/${victim.res.body.agent_id}`, { key: admin })).body).toEqual(before);
  });

  it('takes heartbeats from the certificate\'s agent only: a body naming another agent changes nothing', async () => {
    const first = await enroll(await newToken());
    const second = await enroll(await newToken());
    const a = first.identity!;
    const bId = second.res.body.agent_id;
    const ok = await agentCall(`${A}/heartbeat`, a, { body: heartbeat() });
    expect(ok.status).toBe(200);
    expect(ok.body.agent_id).toBe(first.res.body.agent_id);
    const before = (await call('GET', `${A}/{agent_id}`, `${A}/${bId}`, { key: admin })).body;
    for (const extra of [{ agent_id: bId }, { tenant: OTHER_TENANT }, { agent: { id: bId } }]) {
      const res = await agentCall(`${A}/heartbeat`, a, { body: heartbeat({ ...extra, os_version: '15.0' }) });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_body');
    }
    expect((await call('GET', `${A}/{agent_id}`, `${A}/${bId}`, { key: admin })).body).toEqual(before);
    expect(before.last_seen_at).toBeNull();

    const posture = (await call('GET', `${A}/posture`, `${A}/posture`, { key: admin })).body.devices.find((d: any) => d.agent_id === first.res.body.agent_id);
    expect(posture).toMatchObject({ source: 'agent', os_family: 'macos', os_version: '14.5', os_build: '23F79', filevault: true, firewall: false, sip: true, gatekeeper: 'unknown', uptime_seconds: 5400 });

    // A strict schema, a bounded body, JSON only.
    for (const body of [heartbeat({ uptime_seconds: -1 }), heartbeat({ filevault: 'yes' }), heartbeat({ time: 'yesterday' }), { os_version: '14.5' }]) {
      const res = await agentCall(`${A}/heartbeat`, a, { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect((await agentCall(`${A}/heartbeat`, a, { body: heartbeat({ os_build: 'x'.repeat(9000) }) })).status).toBe(413);
    expect((await agentCall(`${A}/heartbeat`, a, { rawBody: 'hello', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
    expect((await agentCall(`${A}/heartbeat`, a, { rawBody: '{', headers: { 'content-type': 'application/json' } })).status).toBe(400);
  });

  it('refuses no client certificate, another CA\'s, and an expired one during the TLS handshake', async () => {
    const { res, identity } = await enroll(await newToken());
    const agentId = res.body.agent_id;
    await expect(mtls(agentUrl, 'POST', `${A}/heartbeat`, { serverCa, body: heartbeat() })).rejects.toThrow();
    const foreign = await foreignClientCertificate(agentId, 'default');
    await expect(mtls(agentUrl, 'POST', `${A}/heartbeat`, { serverCa, identity: foreign, body: heartbeat() })).rejects.toThrow();
    // A certificate from the tenant's own CA that expired: issued by a service whose clock is 40 days back.
    const past = createAgentService({
      db: t.server.runtime.db,
      chronicle: t.server.runtime.chronicle,
      logger: createLogger({ level: 'silent' }),
      caDir: t.config.agents.caDir,
      fingerprintKeyFor: t.server.runtime.fingerprintKeyFor,
      now: () => Date.now() - 40 * 86_400_000,
    });
    const { token } = await past.createToken('default', { ttlSeconds: 600 }, { kind: 'human', id: 'test' });
    const csr = await csrFor({ name: 'ECDSA', namedCurve: 'P-256' });
    const expired = await past.enroll({ token, csr: csr.csrPem, platform: 'darwin', agent_class: 'endpoint', os_version: '14.5' });
    expect(Date.parse(expired.expires_at)).toBeLessThan(Date.now());
    await expect(mtls(agentUrl, 'POST', `${A}/heartbeat`, { serverCa, identity: { cert: expired.certificate, key: csr.keyPem }, body: heartbeat() })).rejects.toThrow();
    // The valid one still works.
    expect((await agentCall(`${A}/heartbeat`, identity, { body: heartbeat() })).status).toBe(200);
  });

  it('renews over mTLS: the new certificate works, the replaced one is refused', async () => {
    const { res, identity } = await enroll(await newToken());
    const next = await csrFor({ name: 'ECDSA', namedCurve: 'P-256' });
    const renewed = await agentCall(`${A}/renew`, identity, { body: { csr: next.csrPem } });
    expect(renewed.status).toBe(200);
    expect(renewed.body.agent_id).toBe(res.body.agent_id);
    expect(new crypto.X509Certificate(renewed.body.certificate).serialNumber).not.toBe(new crypto.X509Certificate(res.body.certificate).serialNumber);
    const fresh = { cert: renewed.body.certificate, key: next.keyPem };
    expect((await agentCall(`${A}/heartbeat`, fresh, { body: heartbeat() })).status).toBe(200);
    const old = await agentCall(`${A}/heartbeat`, identity, { body: heartbeat() });
    expect(old.status).toBe(401);
    expect(old.body.error.code).toBe('certificate_superseded');
    const weak = await csrFor({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024 });
    expect((await agentCall(`${A}/renew`, fresh, { body: { csr: weak.csrPem } })).status).toBe(422);
    const audit = await t.server.runtime.chronicle.query({ tenant: 'default', types: ['agent.certificate_renewed'] });
    expect(audit.events.map((e) => e.data['agent_id'])).toContain(res.body.agent_id);
  });

  it('revokes: the certificate is refused from the next request (403), the summary says revoked, the revocation is audited', async () => {
    const { res, identity } = await enroll(await newToken());
    const agentId = res.body.agent_id;
    expect((await agentCall(`${A}/heartbeat`, identity, { body: heartbeat() })).status).toBe(200);
    expect((await call('DELETE', `${A}/{agent_id}`, `${A}/${agentId}`, { key: reader })).status).toBe(403);
    const revoked = await call('DELETE', `${A}/{agent_id}`, `${A}/${agentId}`, { key: admin });
    expect(revoked.status).toBe(200);
    expect(revoked.body.status).toBe('revoked');
    const refused = await agentCall(`${A}/heartbeat`, identity, { body: heartbeat() });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('agent_revoked');
    expect((await agentCall(`${A}/renew`, identity, { body: { csr: (await csrFor({ name: 'Ed25519' })).csrPem } })).status).toBe(403);
    // Revoking twice answers the revoked agent and records one event.
    expect((await call('DELETE', `${A}/{agent_id}`, `${A}/${agentId}`, { key: admin })).body.status).toBe('revoked');
    const audit = await t.server.runtime.chronicle.query({ tenant: 'default', types: ['agent.revoked'] });
    expect(audit.events.filter((e) => e.data['agent_id'] === agentId)).toHaveLength(1);
    expect((await call('GET', `${A}/posture`, `${A}/posture`, { key: admin })).body.devices.map((d: any) => d.agent_id)).not.toContain(agentId);
    expect((await call('GET', A, `${A}?include_revoked=false`, { key: admin })).body.agents.map((d: any) => d.agent_id)).not.toContain(agentId);
  });

  it('rate-limits heartbeats per agent with 429 and Retry-After', async () => {
    const { identity } = await enroll(await newToken());
    const other = await enroll(await newToken());
    const statuses: number[] = [];
    let limited: TestResponse | undefined;
    for (let i = 0; i < RATE_BURST + 2; i += 1) {
      const res = await agentCall(`${A}/heartbeat`, identity, { body: heartbeat() });
      statuses.push(res.status);
      if (res.status === 429) limited ??= res;
    }
    expect(statuses.slice(0, RATE_BURST).every((s) => s === 200)).toBe(true);
    expect(statuses.slice(RATE_BURST)).toEqual([429, 429]);
    expect(limited!.body.error.code).toBe('rate_limited');
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another agent is not held back by the first.
    expect((await agentCall(`${A}/heartbeat`, other.identity, { body: heartbeat() })).status).toBe(200);
  });

  it('answers bad agent ids and unknown routes with 4xx', async () => {
    expect((await call('GET', `${A}/{agent_id}`, `${A}/not-a-guid`, { key: admin })).status).toBe(400);
    expect((await call('GET', `${A}/{agent_id}`, `${A}/${crypto.randomUUID()}`, { key: admin })).status).toBe(404);
    expect((await call('GET', A, A)).status).toBe(401);
    const { identity } = await enroll(await newToken());
    const unknown = await mtls(agentUrl, 'POST', `${A}/enroll`, { serverCa, identity: identity!, body: {} });
    expect(unknown.status).toBe(404);
  });

  it('leaves no token and no enrollment behind when Chronicle cannot record them', async () => {
    const { createChronicle } = await import('../../src/chronicle/index.js');
    const closed = await createChronicle({ db: t.server.runtime.db, logger: createLogger({ level: 'silent' }), ...t.config.chronicle, checkpointIntervalMs: 0 });
    await closed.close();
    const unaudited = createAgentService({
      db: t.server.runtime.db,
      chronicle: closed,
      logger: createLogger({ level: 'silent' }),
      caDir: t.config.agents.caDir,
      fingerprintKeyFor: t.server.runtime.fingerprintKeyFor,
    });
    const count = async (table: string) => (await t.server.runtime.db.query<{ n: number }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n;
    const tokensBefore = await count('agent_enrollment_tokens');
    await expect(unaudited.createToken('default', {}, { kind: 'human', id: 'test' })).rejects.toThrow();
    expect(await count('agent_enrollment_tokens')).toBe(tokensBefore);

    const token = await newToken();
    const agentsBefore = await count('agents');
    const csr = await csrFor({ name: 'ECDSA', namedCurve: 'P-256' });
    const input = { token, csr: csr.csrPem, platform: 'darwin', agent_class: 'endpoint', os_version: '14.5' };
    await expect(unaudited.enroll(input)).rejects.toThrow();
    expect(await count('agents')).toBe(agentsBefore);
    // The token was not consumed by the enrollment that could not be recorded.
    expect((await enroll(token)).res.status).toBe(201);
  });

  it('never lets a serial number or hardware UUID out: answers, events, rows, log lines, the panel, the export', async () => {
    // The demo agents declared the serials of demo Intune Macs: those are canaries too.
    const demoSerials = t.server.runtime.demo!.simulator.devices.filter((d) => d['operatingSystem'] === 'macOS').slice(0, 4).map((d) => String(d['serialNumber']));
    const all = [...canaries, ...demoSerials];
    expect(seen.length).toBeGreaterThan(40);
    const found = (text: string) => all.filter((c) => text.includes(c));
    expect(found(seen.join('\n'))).toEqual([]);
    expect(logLines.length).toBeGreaterThan(5);
    expect(found(logLines.join('\n'))).toEqual([]);
    const db = t.server.runtime.db;
    for (const table of ['chronicle_event', 'agents', 'agent_enrollment_tokens', 'agent_cas']) {
      const { rows } = await db.query<{ row: string }>(`SELECT row_to_json(x)::text AS row FROM ${table} x`);
      expect(rows.length, table).toBeGreaterThan(0);
      expect(found(rows.map((r) => r.row).join('\n')), table).toEqual([]);
    }
    const panel = await t.request('GET', '/settings/integrations/intune');
    expect(panel.status).toBe(200);
    expect(found(panel.text)).toEqual([]);
    const chunks: string[] = [];
    const out = new Writable({
      write(chunk, _e, done) {
        chunks.push(String(chunk));
        done();
      },
    });
    const exported = await t.server.runtime.chronicle.export({ tenant: 'default', format: 'jsonl' }, out);
    expect(exported.events).toBeGreaterThan(10);
    expect(chunks.join('')).toContain('agent.macos.enrolled');
    expect(found(chunks.join(''))).toEqual([]);

    // Enrollment tokens: in no log line, row, event or export (only their digests and ids).
    expect(tokens.length).toBeGreaterThan(10);
    const secrets = tokens.map((token) => token.slice(21));
    const everything = [logLines.join('\n'), chunks.join('')];
    for (const table of ['chronicle_event', 'agents', 'agent_enrollment_tokens']) {
      everything.push((await db.query<{ row: string }>(`SELECT row_to_json(x)::text AS row FROM ${table} x`)).rows.map((r) => r.row).join('\n'));
    }
    expect(secrets.filter((secret) => everything.some((text) => text.includes(secret)))).toEqual([]);
  });
}

describe.skipIf(!pgAvailable())('endpoint agents [postgres]', () => suite('postgres'));
describe('endpoint agents [pglite]', () => suite('pglite'));
