/**
 * Tokens through real MSAL against the simulator's Entra endpoint, over real HTTPS with the
 * simulator's CA: caching, renewal, certificates, and every Entra refusal as a safe auth_failed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { authErrorFrom } from '../../src/connector/graph/auth.js';
import { GraphError, graphClientFromConfig } from '../../src/connector/graph/index.js';
import { createClientCertificate, ROLE_READ } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { capturingLogger, clientFor, failureOf, graphRequests, simulator, tokenRequests, type TestClient } from './helpers.js';

// The connector loads msal-node's CommonJS build (one file, quicker to load); errors made here come
// from that same copy, as MSAL's own would.
const { AuthError, ServerError } = createRequire(import.meta.url)('@azure/msal-node') as typeof import('@azure/msal-node');

describe('tokens', () => {
  let sim: SimulatorHandle;
  const clients: TestClient[] = [];
  const track = (client: TestClient): TestClient => {
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    sim = await simulator();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await sim.close();
  });

  it('asks Entra once and serves later calls from the cache, with no discovery calls', async () => {
    sim.clearRequests();
    const client = track(clientFor(sim));
    const id = sim.devices[0]?.['id'] as string;
    await client.listDevicesPage({ top: 5 });
    await client.getDevice(id);
    await client.getCompliancePolicyStates(id);
    expect(tokenRequests(sim)).toHaveLength(1);
    expect(graphRequests(sim)).toHaveLength(3);
    expect(graphRequests(sim).every((r) => r.authorization === true)).toBe(true);
    // knownAuthorities + authorityMetadata + cloudDiscoveryMetadata: MSAL fetched no metadata.
    expect(sim.requests().filter((r) => r.kind === 'metadata')).toEqual([]);
    expect(client.stats()).toMatchObject({ tokenRequests: 1, requests: 3, retries: 0 });
  });

  it('shares one token request among concurrent first calls', async () => {
    sim.clearRequests();
    const client = track(clientFor(sim));
    const ids = sim.devices.slice(0, 20).map((d) => d['id'] as string);
    const results = await Promise.all(ids.map((id) => client.getDevice(id)));
    expect(results.map((r) => r.value.id)).toEqual(ids);
    expect(tokenRequests(sim)).toHaveLength(1);
  });

  it('lets MSAL renew a token close to expiry instead of sending an expired one', async () => {
    // MSAL renews tokens within five minutes of expiry; a two-minute token is renewed on each call.
    const shortLived = await simulator({ tokenLifetimeSeconds: 120 });
    try {
      const client = track(clientFor(shortLived));
      await client.listDevicesPage({ top: 1 });
      await client.listDevicesPage({ top: 1 });
      expect(tokenRequests(shortLived)).toHaveLength(2);
      expect(graphRequests(shortLived).map((r) => r.status)).toEqual([200, 200]);
    } finally {
      await shortLived.close();
    }
  });

  it('authenticates with a certificate (client assertion) instead of a secret', async () => {
    const cert = await createClientCertificate();
    const certSim = await simulator({ clientCertificates: [{ pem: cert.certificatePem }] });
    try {
      const client = track(clientFor(certSim, { credential: { certificatePem: cert.certificatePem, privateKeyPem: cert.privateKeyPem } }));
      const page = await client.listDevicesPage({ top: 3 });
      expect(page.devices).toHaveLength(3);
      expect(tokenRequests(certSim).map((r) => r.status)).toEqual([200]);

      const other = await createClientCertificate('CN=not registered');
      const stranger = track(clientFor(certSim, { credential: { certificatePem: other.certificatePem, privateKeyPem: other.privateKeyPem } }));
      const error = await failureOf(() => stranger.listDevicesPage({ top: 1 }));
      expect(error).toMatchObject({ name: 'GraphError', kind: 'auth_failed' });
      expect(error.message).toContain('ENTRA_CLIENT_CERT_FILE');
    } finally {
      await certSim.close();
    }
  });
});

describe('Entra refusals', () => {
  let sim: SimulatorHandle;
  beforeAll(async () => {
    sim = await simulator();
  });
  afterAll(async () => {
    await sim.close();
  });

  const cases: { label: string; override: (s: SimulatorHandle) => Parameters<typeof clientFor>[1]; code: string; says: string }[] = [
    { label: 'a wrong secret', override: () => ({ credential: { clientSecret: 'not-the-secret~value' } }), code: 'AADSTS7000215', says: 'ENTRA_CLIENT_SECRET' },
    { label: 'an unknown client id', override: () => ({ clientId: '11111111-2222-4333-8444-555555555555' }), code: 'AADSTS700016', says: 'ENTRA_CLIENT_ID' },
    { label: 'a wrong tenant', override: () => ({ tenantId: '99999999-2222-4333-8444-555555555555' }), code: 'AADSTS90002', says: 'ENTRA_TENANT_ID' },
    {
      label: 'a Graph URL the tenant does not know (wrong scope)',
      override: (s) => ({ graph: { graphUrl: s.graphUrl.replace('127.0.0.1', 'localhost') } }),
      code: 'AADSTS500011',
      says: 'INTUNE_GRAPH_URL',
    },
  ];

  it.each(cases)('turns $label into auth_failed ($code) with a sentence naming what to check', async ({ override, code, says }) => {
    sim.clearRequests();
    const { logger, lines } = capturingLogger();
    const secretInUse = 'not-the-secret~value';
    const client = clientFor(sim, { logger, ...override(sim) });
    try {
      const error = await failureOf(() => client.listDevicesPage({ top: 1 }));
      expect(error).toBeInstanceOf(GraphError);
      expect(error).toMatchObject({ kind: 'auth_failed', graphCode: code });
      expect(error.message).toContain(code);
      expect(error.message).toContain(says);
      // Safe to show: no secret, no Entra description, trace or correlation ids.
      for (const text of [error.message, lines()]) {
        expect(text).not.toContain(secretInUse);
        expect(text).not.toContain(sim.clientSecret);
        expect(text).not.toMatch(/Trace ID|Correlation ID|Timestamp/i);
      }
      // Nothing was sent to Graph without a token.
      expect(graphRequests(sim)).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('retries a token request Entra refuses as temporary (503, AADSTS90033) and ends as unavailable, not auth_failed', async () => {
    sim.clearRequests();
    sim.setFaults({ tokenErrorRate: 1 });
    const client = clientFor(sim, { graph: { maxRetries: 2 }, retry: { baseDelayMs: 5 } });
    try {
      const error = await failureOf(() => client.listDevicesPage({ top: 1 }));
      expect(error).toMatchObject({ kind: 'unavailable', graphCode: 'AADSTS90033', status: 503 });
      expect(tokenRequests(sim)).toHaveLength(3);
      expect(graphRequests(sim)).toEqual([]);
      // Once Entra answers again, the same client gets its token.
      sim.setFaults({});
      expect((await client.listDevicesPage({ top: 1 })).devices).toHaveLength(1);
    } finally {
      sim.setFaults({});
      await client.close();
    }
  });

  it('says to check INTUNE_CA_FILE when the login host presents a certificate it does not trust', async () => {
    const client = clientFor(sim, { graph: { caFile: undefined as never } });
    try {
      const error = await failureOf(() => client.listDevicesPage({ top: 1 }));
      expect(error).toMatchObject({ kind: 'auth_failed' });
      expect(error.message).toContain('INTUNE_CA_FILE');
    } finally {
      await client.close();
    }
  });

  it('says the login host could not be reached when nothing listens there', async () => {
    const closed = await simulator();
    const { loginUrl } = closed;
    await closed.close();
    const client = clientFor(sim, { graph: { loginUrl } });
    try {
      const error = await failureOf(() => client.listDevicesPage({ top: 1 }));
      expect(error).toMatchObject({ kind: 'auth_failed' });
      expect(error.message).toContain('INTUNE_LOGIN_URL');
    } finally {
      await client.close();
    }
  });

  it('reports a missing Graph permission as forbidden, without retrying', async () => {
    const readOnly = await simulator({ roles: [ROLE_READ] });
    const client = clientFor(readOnly);
    try {
      const id = readOnly.devices[0]?.['id'] as string;
      await client.getDevice(id);
      const error = await failureOf(() => client.performDeviceAction(id, 'syncDevice'));
      expect(error).toMatchObject({ kind: 'forbidden', status: 403, graphCode: 'Forbidden', attempts: 1 });
      expect(error.message).toContain('PrivilegedOperations.All');
      expect(graphRequests(readOnly).filter((r) => r.method === 'POST')).toHaveLength(1);
    } finally {
      await client.close();
      await readOnly.close();
    }
  });
});

describe('graphClientFromConfig', () => {
  it('builds the client from the ENTRA_* and INTUNE_* variables the simulator prints', async () => {
    const sim = await simulator();
    const client = graphClientFromConfig(loadConfig(sim.env));
    try {
      const page = await client.listDevicesPage({ top: 2 });
      expect(page.devices).toHaveLength(2);
    } finally {
      await client.close?.();
      await sim.close();
    }
  });

  it('reads a certificate and its key from ENTRA_CLIENT_CERT_FILE', async () => {
    const cert = await createClientCertificate();
    const sim = await simulator({ clientCertificates: [{ pem: cert.certificatePem }] });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graph-cert-'));
    const certFile = path.join(dir, 'client.pem');
    fs.writeFileSync(certFile, `${cert.certificatePem}\n${cert.privateKeyPem}`, { mode: 0o600 });
    const { ENTRA_CLIENT_SECRET: _secret, ...env } = sim.env;
    const client = graphClientFromConfig(loadConfig({ ...env, ENTRA_CLIENT_CERT_FILE: certFile }));
    try {
      expect((await client.listDevicesPage({ top: 1 })).devices).toHaveLength(1);
    } finally {
      await client.close?.();
      await sim.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops with a ConfigError that says what to set when credentials or files are missing', () => {
    expect(() => graphClientFromConfig(loadConfig({}))).toThrow(ConfigError);
    expect(() => graphClientFromConfig(loadConfig({}))).toThrow(/ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET/);
    const env = {
      ENTRA_TENANT_ID: 'contoso.example',
      ENTRA_CLIENT_ID: '11111111-2222-4333-8444-555555555555',
      ENTRA_CLIENT_CERT_FILE: '/nonexistent/client.pem',
    };
    expect(() => graphClientFromConfig(loadConfig(env))).toThrow(/ENTRA_CLIENT_CERT_FILE names \/nonexistent\/client.pem, which cannot be read/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graph-cert-'));
    try {
      const keyOnly = path.join(dir, 'key-only.pem');
      fs.writeFileSync(keyOnly, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
      expect(() => graphClientFromConfig(loadConfig({ ...env, ENTRA_CLIENT_CERT_FILE: keyOnly }))).toThrow(/must hold both the certificate/);
      expect(() =>
        graphClientFromConfig(
          loadConfig({ ...env, ENTRA_CLIENT_CERT_FILE: undefined, ENTRA_CLIENT_SECRET: 's', INTUNE_CA_FILE: path.join(dir, 'missing-ca.pem') }),
        ),
      ).toThrow(/INTUNE_CA_FILE names .*missing-ca.pem, which cannot be read/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the sentence for each Entra error', () => {
  const description = 'AADSTS7000215: Invalid client secret provided. Trace ID: 5f3c Correlation ID: 9a1b Timestamp: 2025-06-02 08:00:00Z';
  it.each([
    ['invalid_client', '7000215', 'ENTRA_CLIENT_SECRET'],
    ['invalid_client', '7000222', 'expired'],
    ['unauthorized_client', '700016', 'ENTRA_CLIENT_ID'],
    ['invalid_request', '90002', 'ENTRA_TENANT_ID'],
    ['invalid_scope', '1002012', 'INTUNE_GRAPH_URL'],
    ['invalid_scope', '70011', 'INTUNE_GRAPH_URL'],
    ['invalid_resource', '500011', 'INTUNE_GRAPH_URL'],
    ['invalid_client', '700027', 'ENTRA_CLIENT_CERT_FILE'],
    ['invalid_client', '12345', 'ENTRA_CLIENT_ID'],
  ])('%s %s names %s and nothing from Entra but codes', (code, number, hint) => {
    const error = authErrorFrom(new ServerError(code, 'corr-1', description, undefined, number, 400));
    expect(error).toMatchObject({ kind: 'auth_failed', status: 400, graphCode: number !== undefined ? `AADSTS${number}` : code });
    expect(error.message).toContain(hint);
    expect(error.message).not.toContain('Invalid client secret provided');
    expect(error.message).not.toMatch(/Trace ID|Correlation ID|5f3c|9a1b/);
  });

  it.each([
    ['temporarily_unavailable', '90033', 503],
    ['temporarily_unavailable', undefined, 400],
    ['server_error', undefined, 500],
    ['invalid_client', undefined, 503],
  ])('%s %s (HTTP %s) is temporary: unavailable, not a credential error', (code, number, status) => {
    const error = authErrorFrom(new ServerError(code, 'corr-1', description, undefined, number, status));
    expect(error).toMatchObject({ kind: 'unavailable', status, graphCode: number !== undefined ? `AADSTS${number}` : code });
    expect(error.message).toMatch(/^Microsoft Entra is temporarily unavailable \(.*\); retry later\.$/);
  });

  it('does not pass on a code that is not an identifier', () => {
    const error = authErrorFrom(new ServerError('<script>alert(1)</script>', 'c', 'x', undefined, 'NaN; drop', 400));
    expect(error.graphCode).toBe('server_error');
    expect(error.message).not.toContain('<script>');
  });

  it('explains client-side failures without their internals', () => {
    const network = authErrorFrom(new AuthError('network_error', 'c', 'Network request failed: connect ECONNREFUSED 10.0.0.1:443'));
    expect(network.message).toContain('INTUNE_LOGIN_URL');
    expect(network.message).not.toContain('10.0.0.1');
    expect(authErrorFrom(new Error('anything at all: secret=abc')).message).not.toContain('secret=abc');
  });
});
