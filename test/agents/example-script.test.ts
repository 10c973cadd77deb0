/**
 * examples/macos-agent-lite.sh, run for real against a server: openssl makes the key and CSR, curl
 * enrolls and speaks mTLS. The macOS commands it reads (sw_vers, ioreg, sysctl, fdesetup, csrutil,
 * spctl) are stand-ins on PATH that print what a Mac prints; everything else is the real thing.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { fingerprintSerial } from '../../src/connector/redaction.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { quietServerEnv } from '../helpers/server.js';

const run = promisify(execFile);
const SCRIPT = path.resolve(import.meta.dirname, '../../examples/macos-agent-lite.sh');
const SERIAL = 'C02SCRIPT0042';

const MAC_COMMANDS: Record<string, string> = {
  sw_vers: 'case "$1" in -productVersion) echo 14.6.1 ;; -buildVersion) echo 23G93 ;; esac',
  ioreg: `cat <<'OUT'
+-o J314sAP  <class IOPlatformExpertDevice>
    "IOPlatformSerialNumber" = "${SERIAL}"
    "IOPlatformUUID" = "5A1B7C3D-0E2F-4A6B-8C9D-0123456789AB"
OUT`,
  sysctl: 'case "$2" in kern.boottime) echo "{ sec = $(( $(date +%s) - 7200 )), usec = 0 } Mon Jan  1 00:00:00 2024" ;; hw.model) echo "Mac14,9" ;; esac',
  fdesetup: 'echo "FileVault is On."',
  csrutil: 'echo "System Integrity Protection status: enabled."',
  spctl: 'echo "assessments disabled"',
};

describe.skipIf(!pgAvailable())('examples/macos-agent-lite.sh [postgres]', () => {
  let database: TestDatabase;
  let dataDir: string;
  let server: RunningServer;
  let binDir: string;
  let agentDir: string;

  beforeAll(async () => {
    database = await createPostgresDatabase();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-agent-script-'));
    binDir = path.join(dataDir, 'bin');
    agentDir = path.join(dataDir, 'agent');
    fs.mkdirSync(binDir);
    for (const [name, body] of Object.entries(MAC_COMMANDS)) fs.writeFileSync(path.join(binDir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    const env = quietServerEnv(path.join(dataDir, 'data'), database);
    server = await startServer(loadConfig(env), { logger: createLogger({ level: 'silent' }), env, demo: false });
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
    if (dataDir !== undefined) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const script = (...args: string[]) =>
    run('sh', [SCRIPT, ...args], { env: { PATH: `${binDir}:${process.env['PATH']}`, AGENT_DIR: agentDir, HOME: dataDir }, timeout: 60_000 });

  it('enrolls with openssl and curl, heartbeats the Mac\'s posture over mTLS, and renews', async () => {
    const { token } = await server.agents.createToken('default', { ttlSeconds: 300 }, { kind: 'human', id: 'test' });
    const enrolled = await script('enroll', server.url, token);
    expect(enrolled.stdout).toMatch(/enrolled as agent [0-9a-f-]{36}/);
    expect(enrolled.stdout).toMatch(/heartbeat accepted/);
    const agentId = fs.readFileSync(path.join(agentDir, 'agent.id'), 'utf8').trim();
    expect((fs.statSync(path.join(agentDir, 'agent.key')).mode & 0o077)).toBe(0);

    const summary = await server.agents.get('default', agentId);
    expect(summary).toMatchObject({ os_version: '14.6.1', os_build: '23G93', model: 'Mac14,9', status: 'active' });
    expect(summary?.serial_fingerprint).toBe(fingerprintSerial(SERIAL, server.runtime.fingerprintKeyFor('default')));
    const posture = (await server.agents.posture('default')).find((p) => p.agent_id === agentId);
    // socketfilterfw lives at an absolute path that has no stand-in here: its state is unknown.
    expect(posture).toMatchObject({ filevault: true, sip: true, gatekeeper: false, firewall: 'unknown', agent_version: '0.1.0-sh' });
    expect(posture!.uptime_seconds).toBeGreaterThanOrEqual(7200);

    const oldCert = fs.readFileSync(path.join(agentDir, 'agent.crt'), 'utf8');
    expect((await script('renew')).stdout).toMatch(/renewed; certificate valid until/);
    expect(fs.readFileSync(path.join(agentDir, 'agent.crt'), 'utf8')).not.toBe(oldCert);
    expect((await script('heartbeat')).stdout).toMatch(/heartbeat accepted/);

    await server.agents.revoke('default', agentId, { kind: 'human', id: 'test' });
    await expect(script('heartbeat')).rejects.toThrow(/heartbeat refused \(403\)/);
  });
});
