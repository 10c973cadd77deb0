/**
 * The local channel's refusals, over a real Unix socket: a caller whose Graph or database is not
 * the server's is told so before anything is evaluated, a malformed request gets a sentence, the
 * socket is the owner's alone, and a socket file left by a dead server is replaced.
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
import { loadGatePolicy, resolveAccordPolicy } from '../../src/gate/policy.js';
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
      gateFor: () => {
        evaluated += 1;
        throw new Error('not evaluated in these tests');
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
