/**
 * The README quick start, for real: `node dist/cli.js serve` (what `npm start` runs) on a fresh
 * machine with no configuration. It must print where everything is and an admin key, serve the
 * demo tenant's devices after its initial sync, shut down cleanly on SIGTERM (exit 0, lock file
 * gone), and on the next start say a key was issued before instead of minting another.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

interface Served {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: string[];
  readonly url: string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** The environment of a fresh machine: nothing of ours set, no Entra tenant, no PostgreSQL. */
function freshEnv(dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(ENTRA_|INTUNE_|DATABASE_URL|CHRONICLE_|PORT|HOST|LOG_LEVEL)/.test(name)) env[name] = value;
  }
  return { ...env, PORT: '0', INTUNE_DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
}

async function serve(cwd: string, dataDir: string): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve'], { cwd, env: freshEnv(dataDir), stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  let buffered = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no URL within 60 s; stderr:\n${stderr}`)), 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      lines.push(...parts);
      // The banner ends with the key line, or with the line telling how to make one.
      if (lines.some((l) => /^\s+icn_/.test(l) || /Create more with/.test(l))) {
        const match = /serving at (http:\/\/\S+)/.exec(lines.join('\n'));
        clearTimeout(timer);
        if (match) resolve(match[1] as string);
        else reject(new Error(`no URL in:\n${lines.join('\n')}`));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before it was ready; stderr:\n${stderr}`));
    });
  });
  return { child, lines, url, stderr: () => stderr, exited };
}

const execFileAsync = promisify(execFile);

/** Runs `intune-connector keys …` as an operator would, against the same data directory. */
async function keysCli(cwd: string, dataDir: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return execFileAsync(process.execPath, [CLI, 'keys', ...args], { cwd, env: freshEnv(dataDir), timeout: 60_000 });
}

async function stop(served: Served): Promise<number | null> {
  served.child.kill('SIGTERM');
  return Promise.race([served.exited, new Promise<null>((_, reject) => setTimeout(() => reject(new Error('serve did not exit within 20 s of SIGTERM')), 20_000))]);
}

describe('README quick start: intune-connector serve with no configuration', () => {
  let dir: string;
  let dataDir: string;

  beforeAll(() => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-e2e-'));
    dataDir = path.join(dir, '.data');
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves the demo tenant with a printed admin key, and shuts down cleanly on SIGTERM', async () => {
    const served = await serve(dir, dataDir);
    try {
      const banner = served.lines.join('\n');
      for (const where of ['/api/v1/integrations/intune/devices', '/api/v1/gate/device-compliance', '/mcp', '/settings/integrations/intune', '/healthz']) {
        expect(banner).toContain(`${served.url}${where}`);
      }
      expect(banner).toMatch(/DEMO tenant/);
      const key = served.lines.map((l) => l.trim()).find((l) => l.startsWith('icn_'));
      expect(key).toMatch(/^icn_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
      // The key is shown once: never in the logs.
      expect(served.stderr()).not.toContain(key);

      const res = await fetch(`${served.url}/api/v1/integrations/intune/devices?limit=5`, { headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { devices: unknown[]; total: number };
      expect(body.total).toBe(200);
      expect(body.devices).toHaveLength(5);

      const panel = await fetch(`${served.url}/settings/integrations/intune`);
      expect(panel.status).toBe(200);
      expect(await panel.text()).toContain('Device posture (Intune)');
      // The panel script npm run build compiled from src/api/panel/client/panel.ts, as the page loads it.
      const script = await fetch(`${served.url}/settings/assets/panel.js`);
      expect(script.status).toBe(200);
      expect(script.headers.get('content-type')).toContain('text/javascript');
      expect(await script.text()).toBe(fs.readFileSync(path.join(ROOT, 'dist', 'api', 'panel', 'client', 'panel.js'), 'utf8'));
      expect(fs.existsSync(path.join(dataDir, 'intune-connector.lock'))).toBe(true);
    } finally {
      const code = await stop(served);
      expect(code, served.stderr()).toBe(0);
    }
    expect(fs.existsSync(path.join(dataDir, 'intune-connector.lock'))).toBe(false);
    expect(served.lines.join('\n')).toContain('intune-connector stopped');
  });

  let readerKey: string;
  let revokedKey: string;

  it('creates, lists and revokes keys from the CLI; a new key is the only thing on stdout', async () => {
    const reader = await keysCli(dir, dataDir, ['create', '--role', 'reader', '--name', 'settings panel']);
    expect(reader.stdout).toMatch(/^icn_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/);
    readerKey = reader.stdout.trim();
    expect(reader.stderr).toContain('not shown again');

    const agent = await keysCli(dir, dataDir, ['create', '--role', 'agent', '--scope', 'read,propose']);
    revokedKey = agent.stdout.trim();
    const agentId = revokedKey.slice(4, 20);

    expect((await keysCli(dir, dataDir, ['revoke', agentId])).stdout).toContain(`revoked key ${agentId}`);

    const output = (await keysCli(dir, dataDir, ['list', '--all', '--json'])).stdout;
    const listed = JSON.parse(output) as Array<{ key_id: string; role: string; capabilities: string[]; name: string | null; revoked_at: string | null }>;
    expect(listed.map((k) => k.role).sort()).toEqual(['admin', 'agent', 'reader']);
    expect(listed.find((k) => k.key_id === agentId)).toMatchObject({ capabilities: ['READ', 'PROPOSE'], revoked_at: expect.any(String) });
    expect(listed.find((k) => k.role === 'reader')).toMatchObject({ name: 'settings panel', revoked_at: null });
    expect(output).not.toContain(readerKey.slice(21));
    expect(output).not.toContain(revokedKey.slice(21));

    const refused = await keysCli(dir, dataDir, ['create', '--role', 'gate', '--scope', 'READ,PROPOSE']).catch((err: { code: number; stderr: string }) => err);
    expect((refused as { code: number }).code).toBe(2);
    expect((refused as { stderr: string }).stderr).toContain('only agent and admin keys');
  });

  it('does not print a second admin key on the next start, and honours keys made with the CLI', async () => {
    const served = await serve(dir, dataDir);
    try {
      const banner = served.lines.join('\n');
      expect(banner).not.toMatch(/icn_/);
      expect(banner).toContain('intune-connector keys create --role admin');
      expect((await fetch(`${served.url}/readyz`)).status).toBe(200);
      const devices = (url: string, key: string) => fetch(`${served.url}/api/v1/integrations/intune/${url}`, { headers: { authorization: `Bearer ${key}` } });
      expect((await devices('devices?limit=1', readerKey)).status).toBe(200);
      expect((await devices('devices?limit=1', revokedKey)).status).toBe(401);
    } finally {
      expect(await stop(served)).toBe(0);
    }
    expect(fs.existsSync(path.join(dataDir, 'intune-connector.lock'))).toBe(false);
  });

  it('refuses to start on a contradictory configuration, naming the accord and the variable, before opening anything', async () => {
    const otherData = path.join(dir, 'never-created');
    const env = { ...freshEnv(otherData), INTUNE_ENABLED: 'false', INTUNE_POLICY_FILE: path.join(ROOT, 'examples', 'accord-policy.yaml') };
    const failed = await promisify(execFile)(process.execPath, [CLI, 'serve'], { cwd: dir, env }).catch((err: { code: number; stdout: string; stderr: string }) => err);
    expect((failed as { code: number }).code).toBe(3);
    expect((failed as { stderr: string }).stderr).toMatch(/INTUNE_ENABLED/);
    expect((failed as { stderr: string }).stderr).toMatch(/infrastructure-operations|device-management/);
    expect((failed as { stdout: string }).stdout).not.toMatch(/icn_/);
    expect(fs.existsSync(otherData)).toBe(false);
  });
});
