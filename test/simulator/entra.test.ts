/** The Entra side through the real msal-node client, and raw requests for the exact error shapes. */
import { ConfidentialClientApplication } from '@azure/msal-node';
import { SignJWT, importPKCS8 } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createClientCertificate,
  simulatorAuthorityMetadata,
  simulatorCloudDiscoveryMetadata,
  startSimulator,
  type ClientCertificate,
  type SimulatorHandle,
} from '../../src/simulator/index.js';
import { acquireToken, msalFor, networkClientFor, request } from './helpers.js';

let sim: SimulatorHandle;
let cert: ClientCertificate;
let stranger: ClientCertificate;
beforeAll(async () => {
  [cert, stranger] = await Promise.all([createClientCertificate(), createClientCertificate('CN=not registered')]);
  sim = await startSimulator({ devices: 20, seed: 'entra', clientCertificates: [{ pem: cert.certificatePem }] });
});
afterAll(() => sim.close());

const tokenPath = (tenant = sim.tenantId): string => `${sim.loginUrl}/${tenant}/oauth2/v2.0/token`;

async function postToken(form: Record<string, string>, tenant?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(sim, tokenPath(tenant), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'client-request-id': 'corr-1' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, body: res.json as Record<string, unknown> };
}

const secretForm = (): Record<string, string> => ({
  grant_type: 'client_credentials',
  client_id: sim.clientId,
  client_secret: sim.clientSecret,
  scope: `${sim.graphUrl}/.default`,
});

function expectEntraError(result: { status: number; body: Record<string, unknown> }, status: number, error: string, code: number): void {
  expect(result.status).toBe(status);
  expect(result.body).toMatchObject({ error, error_codes: [code], correlation_id: 'corr-1' });
  expect(String(result.body['error_description'])).toMatch(new RegExp(`^AADSTS${code}: .+ Trace ID: [0-9a-f-]{36} Correlation ID: corr-1 Timestamp: \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}Z$`));
  expect(String(result.body['timestamp'])).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z$/);
  expect(result.body['trace_id']).toMatch(/^[0-9a-f-]{36}$/);
  expect(String(result.body['error_uri'])).toContain(`code=${code}`);
}

describe('msal-node against the simulator', () => {
  it('gets a token with the client secret, and Graph accepts it', async () => {
    sim.clearRequests();
    const token = await acquireToken(sim);
    const res = await request(sim, '/v1.0/deviceManagement/managedDevices?$top=1', { token });
    expect(res.status).toBe(200);
    expect(sim.requests().map((r) => r.kind)).toEqual(['metadata', 'token', 'graph']);
  });

  it('caches the token: a second acquisition makes no token request', async () => {
    const app = msalFor(sim);
    const scopes = [`${sim.graphUrl}/.default`];
    await app.acquireTokenByClientCredential({ scopes });
    sim.clearRequests();
    const again = await app.acquireTokenByClientCredential({ scopes });
    expect(again?.accessToken).toBeTruthy();
    expect(sim.requests().filter((r) => r.kind === 'token')).toEqual([]);
  });

  it('makes no discovery call at all with authorityMetadata and cloudDiscoveryMetadata', async () => {
    sim.clearRequests();
    const app = new ConfidentialClientApplication({
      auth: {
        clientId: sim.clientId,
        clientSecret: sim.clientSecret,
        authority: `${sim.loginUrl}/${sim.tenantId}`,
        authorityMetadata: simulatorAuthorityMetadata(sim),
        cloudDiscoveryMetadata: simulatorCloudDiscoveryMetadata(sim),
      },
      system: { networkClient: networkClientFor(sim) },
    });
    const result = await app.acquireTokenByClientCredential({ scopes: [`${sim.graphUrl}/.default`] });
    expect(result?.accessToken).toBeTruthy();
    expect(sim.requests().map((r) => r.kind)).toEqual(['token']);
  });

  it('gets a token with a registered certificate (SHA-256 and SHA-1 thumbprints)', async () => {
    sim.clearRequests();
    const viaSha256 = await acquireToken(sim, { clientCertificate: { thumbprintSha256: cert.thumbprintSha256, privateKey: cert.privateKeyPem, x5c: cert.certificatePem } });
    const [, payload] = viaSha256.split('.');
    expect(JSON.parse(Buffer.from(String(payload), 'base64url').toString())).toMatchObject({ appidacr: '2', appid: sim.clientId });
    const app = new ConfidentialClientApplication({
      auth: {
        clientId: sim.clientId,
        authority: `${sim.loginUrl}/${sim.tenantId}`,
        knownAuthorities: [new URL(sim.loginUrl).host],
        clientCertificate: { thumbprint: cert.thumbprint, privateKey: cert.privateKeyPem },
      },
      system: { networkClient: networkClientFor(sim) },
    });
    expect((await app.acquireTokenByClientCredential({ scopes: [`${sim.graphUrl}/.default`] }))?.accessToken).toBeTruthy();
  });

  it.each([
    ['a wrong secret', { clientSecret: 'wrong' }, /invalid_client.*AADSTS7000215/s],
    ['an unknown client', { clientId: '22222222-2222-4222-8222-222222222222' }, /unauthorized_client.*AADSTS700016/s],
  ])('surfaces %s as an msal error with the AADSTS code', async (_name, overrides, message) => {
    const err = await acquireToken(sim, overrides).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(`${(err as { errorCode?: string }).errorCode ?? ''} ${(err as Error).message}`).toMatch(message);
  });

  it('surfaces a wrong tenant: at discovery with knownAuthorities, as AADSTS90002 with authorityMetadata', async () => {
    const wrongTenant = '33333333-3333-4333-8333-333333333333';
    sim.clearRequests();
    const atDiscovery = await acquireToken(sim, { tenantId: wrongTenant }).catch((e: unknown) => e);
    expect((atDiscovery as { errorCode?: string }).errorCode).toBe('endpoints_resolution_error');
    expect(sim.requests()).toMatchObject([{ kind: 'metadata', status: 400 }]);
    const metadata = simulatorAuthorityMetadata({ loginUrl: sim.loginUrl, tenantId: wrongTenant });
    const atToken = await acquireToken(sim, { tenantId: wrongTenant, authorityMetadata: metadata }).catch((e: unknown) => e);
    expect((atToken as Error).message).toMatch(/AADSTS90002: Tenant '33333333-3333-4333-8333-333333333333' not found/);
  });

  it('refuses an unregistered certificate through msal', async () => {
    const err = await acquireToken(sim, { clientCertificate: { thumbprintSha256: stranger.thumbprintSha256, privateKey: stranger.privateKeyPem } }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/AADSTS700027/);
  });
});

describe('the token endpoint, raw', () => {
  it('issues a bearer token in Entra’s response shape', async () => {
    const result = await postToken(secretForm());
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, ext_expires_in: 3600 });
    expect(String(result.body['access_token']).split('.')).toHaveLength(3);
  });

  it('accepts client_secret_basic', async () => {
    const { client_secret: _s, client_id: _c, ...form } = secretForm();
    const res = await request(sim, tokenPath(), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${sim.clientId}:${sim.clientSecret}`).toString('base64')}` },
      body: new URLSearchParams(form).toString(),
    });
    expect(res.status).toBe(200);
  });

  it('answers client_secret_basic with broken percent-encoding as an unknown client, not a 500', async () => {
    const { client_secret: _s, client_id: _c, ...form } = secretForm();
    const res = await request(sim, tokenPath(), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'client-request-id': 'corr-1', authorization: `Basic ${Buffer.from('%E0%A4%A:%zz').toString('base64')}` },
      body: new URLSearchParams(form).toString(),
    });
    expectEntraError({ status: res.status, body: res.json as Record<string, unknown> }, 400, 'unauthorized_client', 700016);
  });

  it('answers a wrong secret with 401 invalid_client AADSTS7000215', async () => {
    expectEntraError(await postToken({ ...secretForm(), client_secret: 'nope' }), 401, 'invalid_client', 7000215);
  });

  it('answers an unknown client with 400 unauthorized_client AADSTS700016', async () => {
    expectEntraError(await postToken({ ...secretForm(), client_id: '44444444-4444-4444-8444-444444444444' }), 400, 'unauthorized_client', 700016);
  });

  it('answers a wrong tenant with 400 invalid_request AADSTS90002', async () => {
    expectEntraError(await postToken(secretForm(), 'contoso.example'), 400, 'invalid_request', 90002);
  });

  it('answers scopes without /.default, several scopes, another resource and no scope', async () => {
    expectEntraError(await postToken({ ...secretForm(), scope: `${sim.graphUrl}/DeviceManagementManagedDevices.Read.All` }), 400, 'invalid_scope', 1002012);
    expectEntraError(await postToken({ ...secretForm(), scope: `${sim.graphUrl}/.default openid` }), 400, 'invalid_scope', 70011);
    expectEntraError(await postToken({ ...secretForm(), scope: 'https://vault.azure.net/.default' }), 400, 'invalid_resource', 500011);
    const { scope: _scope, ...noScope } = secretForm();
    expectEntraError(await postToken(noScope), 400, 'invalid_request', 900144);
  });

  it('answers other grants, missing credentials and a wrong content type', async () => {
    expectEntraError(await postToken({ ...secretForm(), grant_type: 'password' }), 400, 'unsupported_grant_type', 70003);
    const { client_secret: _secret, ...noCredential } = secretForm();
    expectEntraError(await postToken(noCredential), 401, 'invalid_client', 7000218);
    const json = await request(sim, tokenPath(), { method: 'POST', headers: { 'content-type': 'application/json', 'client-request-id': 'corr-1' }, body: JSON.stringify(secretForm()) });
    expect(json.status).toBe(400);
    const get = await request(sim, tokenPath());
    expect(get.status).toBe(405);
  });

  describe('client assertions', () => {
    const assertion = async (
      claims: { aud?: string; iss?: string; sub?: string; expSeconds?: number },
      key: ClientCertificate = cert,
      header: Record<string, string> = {},
    ): Promise<string> => {
      const now = Math.floor(Date.now() / 1000);
      const privateKey = await importPKCS8(key.privateKeyPem, 'RS256');
      return new SignJWT({ jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT', 'x5t#S256': Buffer.from(key.thumbprintSha256, 'hex').toString('base64url'), ...header })
        .setAudience(claims.aud ?? tokenPath())
        .setIssuer(claims.iss ?? sim.clientId)
        .setSubject(claims.sub ?? sim.clientId)
        .setIssuedAt(now - 10)
        .setNotBefore(now - 10)
        .setExpirationTime(now + (claims.expSeconds ?? 600))
        .sign(privateKey);
    };
    const assertionForm = (jwt: string): Record<string, string> => ({
      grant_type: 'client_credentials',
      client_id: sim.clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: jwt,
      scope: `${sim.graphUrl}/.default`,
    });

    it('accepts a valid assertion', async () => {
      expect((await postToken(assertionForm(await assertion({})))).status).toBe(200);
    });

    it('refuses a bad signature, an unregistered certificate, a wrong aud, iss or sub, and an expired assertion', async () => {
      const forged = await assertion({}, stranger, { 'x5t#S256': Buffer.from(cert.thumbprintSha256, 'hex').toString('base64url') });
      expectEntraError(await postToken(assertionForm(forged)), 401, 'invalid_client', 700027);
      expectEntraError(await postToken(assertionForm(await assertion({}, stranger))), 401, 'invalid_client', 700027);
      expectEntraError(await postToken(assertionForm(await assertion({ aud: 'https://login.microsoftonline.com/x/oauth2/v2.0/token' }))), 401, 'invalid_client', 700212);
      expectEntraError(await postToken(assertionForm(await assertion({ iss: 'someone-else' }))), 401, 'invalid_client', 700021);
      expectEntraError(await postToken(assertionForm(await assertion({ sub: 'someone-else' }))), 401, 'invalid_client', 700021);
      expectEntraError(await postToken(assertionForm(await assertion({ expSeconds: -900 }))), 401, 'invalid_client', 700024);
      expectEntraError(await postToken(assertionForm('not.a.jwt')), 400, 'invalid_client', 50027);
      expectEntraError(await postToken({ ...assertionForm(await assertion({})), client_assertion_type: 'password' }), 400, 'invalid_request', 900144);
    });
  });
});

describe('discovery documents', () => {
  it('serves the tenant’s OpenID configuration pointing back at the simulator', async () => {
    const res = await request(sim, `${sim.loginUrl}/${sim.tenantId}/v2.0/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      token_endpoint: tokenPath(),
      issuer: `${sim.loginUrl}/${sim.tenantId}/v2.0`,
      authorization_endpoint: `${sim.loginUrl}/${sim.tenantId}/oauth2/v2.0/authorize`,
      jwks_uri: `${sim.loginUrl}/${sim.tenantId}/discovery/v2.0/keys`,
    });
    const jwks = await request(sim, `${sim.loginUrl}/${sim.tenantId}/discovery/v2.0/keys`);
    expect((jwks.json as { keys: { kty: string; alg: string }[] }).keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256' });
    const wrong = await request(sim, `${sim.loginUrl}/contoso.example/v2.0/.well-known/openid-configuration`, { headers: { 'client-request-id': 'corr-1' } });
    expectEntraError({ status: wrong.status, body: wrong.json as Record<string, unknown> }, 400, 'invalid_tenant', 90002);
  });

  it('serves instance discovery naming the simulator host', async () => {
    const endpoint = encodeURIComponent(`${sim.loginUrl}/${sim.tenantId}/oauth2/v2.0/authorize`);
    const res = await request(sim, `${sim.loginUrl}/common/discovery/instance?api-version=1.1&authorization_endpoint=${endpoint}`);
    const host = new URL(sim.loginUrl).host;
    expect(res.json).toEqual({
      tenant_discovery_endpoint: `${sim.loginUrl}/${sim.tenantId}/v2.0/.well-known/openid-configuration`,
      'api-version': '1.1',
      metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
    });
  });
});
