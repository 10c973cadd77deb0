/**
 * `npm start` under a supervisor: a container runtime or service manager signals the process it
 * started, which is npm, not node. The signal must stop the server (port closed, data directory
 * lock released, exit 0), and a server whose npm is killed outright must not stay behind either.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');

interface Started {
  readonly npm: ChildProcessWithoutNullStreams;
  readonly url: string;
  /** The pid in the data directory's lock file: the process that holds the database. */
  readonly serverPid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

function env(dataDir: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(ENTRA_|INTUNE_|DATABASE_URL|CHRONICLE_|PORT|HOST|LOG_LEVEL|npm_)/.test(name)) out[name] = value;
  }
  return { ...out, PORT: '0', INTUNE_DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
}

async function npmStart(dataDir: string): Promise<Started> {
  const npm = spawn('npm', ['start'], { cwd: ROOT, env: env(dataDir), stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  npm.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => npm.on('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm start printed no URL within 90 s:\n${output}`)), 90_000);
    npm.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /serving at (http:\/\/\S+)/.exec(output);
      if (match && /icn_|Create more with/.test(output)) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`npm start exited with ${code} before it was ready:\n${output}`));
    });
  });
  const serverPid = Number.parseInt(fs.readFileSync(path.join(dataDir, 'intune-connector.lock'), 'utf8'), 10);
  return { npm, url, serverPid, exited, output: () => output };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !alive(pid);
}

async function refused(url: string): Promise<boolean> {
  try {
    await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) });
    return false;
  } catch {
    return true;
  }
}

describe('npm start under a supervisor', () => {
  let dir: string;
  let dataDir: string;
  const leftovers: number[] = [];

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-npm-start-'));
    dataDir = path.join(dir, '.data');
  });
  afterAll(() => {
    for (const pid of leftovers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} sent to npm stops the server: exit 0, port closed, lock released`, async () => {
      const started = await npmStart(dataDir);
      leftovers.push(started.serverPid);
      expect(started.serverPid).not.toBe(started.npm.pid);
      expect((await fetch(`${started.url}/healthz`)).status).toBe(200);

      process.kill(started.npm.pid as number, signal);
      const { code } = await started.exited;
      expect(await gone(started.serverPid, 30_000), started.output()).toBe(true);
      expect(code, started.output()).toBe(0);
      expect(started.output()).toContain('intune-connector stopped');
      expect(await refused(started.url)).toBe(true);
      expect(fs.existsSync(path.join(dataDir, 'intune-connector.lock'))).toBe(false);
    });
  }

  it('a server whose npm is killed outright shuts itself down and releases the data directory', async () => {
    const started = await npmStart(dataDir);
    leftovers.push(started.serverPid);
    process.kill(started.npm.pid as number, 'SIGKILL');
    await started.exited;
    expect(await gone(started.serverPid, 30_000), started.output()).toBe(true);
    expect(await refused(started.url)).toBe(true);
    expect(fs.existsSync(path.join(dataDir, 'intune-connector.lock'))).toBe(false);
  });
});
