/**
 * The local channel's refusals, over a real Unix socket: a caller whose Graph or database is not
 * the server's is told so before anything is evaluated, a malformed request gets a sentence, the
 * socket is the owner's alone, and a socket file left by a dead server is replaced; and a check
 * asked over it decides as the server's own gate does, agent measurements it holds included.
 * (Its answers beside a real `serve` are in test/e2e/shared-database and test/posture/doctor.)
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveLocalChannel, type LocalChannel } from '../../src/api/local-channel.js';
import { askServer, identitiesAgree, localIdentity, serveSocketPath, type LocalIdentity } from '../../src/api/local-client.js';
import { loadConfig } from '../../src/config/index.js';
import { buildGatePolicy, loadGatePolicy, resolveAccordPolicy } from '../../src/gate/policy.js';
import { createGate } from '../../src/gate/gate.js';
import type { ComplianceLookup } from '../../src/gate/types.js';
import { samplePosture } from '../helpers/posture.js';
import { createLogger } from '../../src/log/index.js';

const ENTRA = { ENTRA_TENANT_ID: '11111111-1111-4111-8111-111111111111', ENTRA_CLIENT_ID: '22222222-2222-4222-8222-222222222222', ENTRA_CLIENT_SECRET: 's3cret-value' };

function rawRequest(file: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path: file });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(line));
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('end', () => resolve(received));
    socket.on('error', reject);
  });
}

describe('identities', () => {
  it('a caller without ENTRA_* takes the server Graph; named ones must match; the database always must', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-local-id-'));
    const demo = localIdentity(loadConfig({ INTUNE_DATA_DIR: dir }));
    const real = localIdentity(loadConfig({ INTUNE_DATA_DIR: dir, ...ENTRA }));
    const otherApp = localIdentity(loadConfig({ INTUNE_DATA_DIR: dir, ...ENTRA, ENTRA_CLIENT_ID: '33333333-3333-4333-8333-333333333333' }));
    const otherDir = localIdentity(loadConfig({ INTUNE_DATA_DIR: path.join(dir, 'x') }));
    const postgres = localIdentity(loadConfig({ INTUNE_DATA_DIR: dir, DATABASE_URL: 'postgres://u:pw@db.example/app' }));

    expect(identitiesAgree(demo, real)).toBe(true);
    expect(identitiesAgree(demo, demo)).toBe(true);
    expect(identitiesAgree(real, real)).toBe(true);
    expect(identitiesAgree(real, demo)).toBe(false);
    expect(identitiesAgree(otherApp, real)).toBe(false);
    expect(identitiesAgree(otherDir, demo)).toBe(false);
    expect(identitiesAgree(postgres, demo)).toBe(false);
    // No credential travels: neither the secret nor the database password is in the identity.
    expect(JSON.stringify([real, postgres])).not.toMatch(/s3cret-value|pw@/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('serveLocalChannel', () => {
  let dir: string;
  let channel: LocalChannel | undefined;
  let evaluated = 0;
  let serverIdentity: LocalIdentity;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-local-'));
    // A socket file left by a server that was killed: replaced, not a reason to give up.
    fs.writeFileSync(serveSocketPath(dir), '');
    serverIdentity = localIdentity(loadConfig({ INTUNE_DATA_DIR: dir, ...ENTRA }));
    channel = await serveLocalChannel({
      dataDir: dir,
      identity: serverIdentity,
      gate: {
        withPolicy: () => {
          evaluated += 1;
          throw new Error('not evaluated in these tests');
        },
      },
      preflight: () => {
        evaluated += 1;
        return Promise.reject(new Error('not evaluated in these tests'));
      },
      logger: createLogger({ level: 'silent' }),
    });
  });
  afterAll(async () => {
    await channel?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('listens on serve.sock, 0600, in place of a stale file', () => {
    expect(channel).toBeDefined();
    const stat = fs.statSync(serveSocketPath(dir));
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);
  });

  it('tells a caller of another tenant or database so, without evaluating anything', async () => {
    const config = loadConfig({ INTUNE_DATA_DIR: dir, ...ENTRA, ENTRA_TENANT_ID: '44444444-4444-4444-8444-444444444444', INTUNE_COMPLIANCE_REQUIRED: 'true' });
    const policy = resolveAccordPolicy(loadGatePolicy(config), 'default');
    const outcome = await askServer(dir, { v: 1, kind: 'check', accord: 'default', claims: {}, tenant: 'default', policy, identity: localIdentity(config) });
    expect(outcome).toMatchObject({ kind: 'answered', response: { error: { code: 'identity_mismatch' } } });
    const preflight = await askServer(dir, { v: 1, kind: 'preflight', tenant: 'default', capabilities: ['READ'], checkpoint_interval_ms: 0, identity: localIdentity(loadConfig({ INTUNE_DATA_DIR: path.join(dir, 'elsewhere') })) });
    expect(preflight).toMatchObject({ kind: 'answered', response: { error: { code: 'identity_mismatch' } } });
    expect(evaluated).toBe(0);
  });

  it('answers a malformed request with a sentence, never evaluating it', async () => {
    const file = serveSocketPath(dir);
    expect(JSON.parse(await rawRequest(file, 'not json\n'))).toEqual({ error: { code: 'invalid_request', message: 'the request is not JSON' } });
    const partial = JSON.parse(await rawRequest(file, `${JSON.stringify({ v: 1, kind: 'check', accord: 'default' })}\n`)) as { error: { code: string; message: string } };
    expect(partial.error.code).toBe('invalid_request');
    expect(partial.error.message).toMatch(/is the CLI the same version as the server\?/);
    const huge = JSON.parse(await rawRequest(file, 'x'.repeat(70 * 1024))) as { error: { code: string } };
    expect(huge.error.code).toBe('invalid_request');
    expect(evaluated).toBe(0);
  });

  it('nobody listening is unreachable (the command then works alone), and close removes the socket', async () => {
    await channel?.close();
    expect(fs.existsSync(serveSocketPath(dir))).toBe(false);
    const config = loadConfig({ INTUNE_DATA_DIR: dir, ...ENTRA });
    const outcome = await askServer(dir, { v: 1, kind: 'preflight', tenant: 'default', capabilities: ['READ'], checkpoint_interval_ms: 0, identity: localIdentity(config) });
    expect(outcome).toEqual({ kind: 'unreachable' });
  });
});

describe('a check over the local channel', () => {
  const DEVICE = samplePosture({ azure_ad_device_id: '7d3c2b1a-0f9e-4d8c-b7a6-958473625140', last_sync_at: new Date().toISOString() });
  let dir: string;
  let channel: LocalChannel | undefined;
  let agentReads = 0;
  let filevault = true;
  const recorded: Array<Record<string, unknown>> = [];
  const config = loadConfig({ INTUNE_COMPLIANCE_REQUIRED: 'true' });
  // The caller and the server resolve the same configuration: macOS needs encryption, which an agent on the Mac can deny.
  const policy = buildGatePolicy(config, { defaults: { require_encryption: true } });
  const lookup: ComplianceLookup = { ok: true, records: [DEVICE], cacheHit: false, servedStale: false, fetchedAt: Date.now(), graphRequestId: null };
  const gate = createGate({
    connector: { lookupCompliance: async () => lookup },
    chronicle: {
      append: async (input) => {
        recorded.push(input.data);
        return { tenant: input.tenant, seq: recorded.length, hash: 'a'.repeat(64), time: new Date().toISOString() };
      },
    },
    policy,
    channel: 'api',
    agentCacheTtlMs: 3_600_000,
    endpointAgents: async () => {
      agentReads += 1;
      return [{ agent_id: '0c9b8a7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d', confidence: 'agent', filevault, os_version: '14.5' }];
    },
  });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-local-check-'));
    channel = await serveLocalChannel({
      dataDir: dir,
      identity: localIdentity(loadConfig({ INTUNE_DATA_DIR: dir })),
      gate,
      preflight: () => Promise.reject(new Error('not asked in these tests')),
      logger: createLogger({ level: 'silent' }),
    });
  });
  afterAll(async () => {
    await channel?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const overHttp = () => gate.check({ accord: 'device-management', claims: { deviceid: DEVICE.azure_ad_device_id }, tenant: 'default' });
  async function besideServe(): Promise<{ decision: string; reason: string }> {
    const outcome = await askServer(dir, {
      v: 1,
      kind: 'check',
      accord: 'device-management',
      claims: { deviceid: DEVICE.azure_ad_device_id },
      tenant: 'default',
      policy: resolveAccordPolicy(policy, 'device-management'),
      identity: localIdentity(loadConfig({ INTUNE_DATA_DIR: dir })),
    });
    expect(outcome.kind).toBe('answered');
    return (outcome as { response: { result: { decision: string; reason: string } } }).response.result;
  }

  it("decides as the server's gate does, on the agent measurements that gate holds, and records with channel cli", async () => {
    expect(await overHttp()).toMatchObject({ decision: 'allow', reason: 'compliant' });
    expect(await besideServe()).toMatchObject({ decision: 'allow', reason: 'compliant' });
    // One read of the Mac's agents serves both surfaces.
    expect(agentReads).toBe(1);
    expect(recorded.map((d) => d['channel'])).toEqual(['api', 'cli']);

    // FileVault turned off, reported to another replica: neither surface knows until this one forgets its reading.
    filevault = false;
    expect(await overHttp()).toMatchObject({ decision: 'allow' });
    expect(await besideServe()).toMatchObject({ decision: 'allow' });
    gate.forgetAgents('default');
    expect(await besideServe()).toMatchObject({ decision: 'deny', reason: 'not_encrypted' });
    expect(await overHttp()).toMatchObject({ decision: 'deny', reason: 'not_encrypted' });
    expect(agentReads).toBe(2);
  });
});
