/** `intune-connector simulator` as a user runs it: the built CLI in a child process. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import type { SimulatorHandle } from '../../src/simulator/index.js';
import { acquireToken, request } from './helpers.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/cli.js');
const EXPECTED = ['ENTRA_TENANT_ID', 'ENTRA_CLIENT_ID', 'ENTRA_CLIENT_SECRET', 'INTUNE_CLOUD', 'INTUNE_LOGIN_URL', 'INTUNE_GRAPH_URL', 'INTUNE_CA_FILE'];

const children: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

function run(args: string[]): ChildProcessWithoutNullStreams {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const child = spawn(process.execPath, [CLI, ...args], { stdio: 'pipe' });
  children.push(child);
  return child;
}

function firstLines(child: ChildProcessWithoutNullStreams, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      lines.push(line);
      if (lines.length === count) {
        rl.close();
        resolve(lines);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${String(code)} after ${lines.length} lines; stderr: ${stderr}`)));
  });
}

function exitOf(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

describe('intune-connector simulator', () => {
  it('prints the export lines first, serves the tenant, and on SIGTERM stops and removes its CA file', async () => {
    const child = run(['simulator', '--port', '0', '--devices', '10', '--seed', 'cli']);
    const lines = await firstLines(child, 7);
    const env: Record<string, string> = {};
    for (const line of lines) {
      const match = /^export ([A-Z_]+)=(.*)$/.exec(line);
      expect(match, line).not.toBeNull();
      env[String(match?.[1])] = String(match?.[2]);
    }
    expect(Object.keys(env)).toEqual(EXPECTED);
    expect(env['INTUNE_CLOUD']).toBe('custom');
    expect(env['INTUNE_LOGIN_URL']).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const caFile = String(env['INTUNE_CA_FILE']);
    const caPem = readFileSync(caFile, 'utf8');

    // The printed values are enough for a real client: msal-node for the token, HTTPS for Graph.
    const sim = {
      tenantId: env['ENTRA_TENANT_ID'],
      clientId: env['ENTRA_CLIENT_ID'],
      clientSecret: env['ENTRA_CLIENT_SECRET'],
      loginUrl: env['INTUNE_LOGIN_URL'],
      graphUrl: env['INTUNE_GRAPH_URL'],
      caPem,
    } as unknown as SimulatorHandle;
    const token = await acquireToken(sim);
    const res = await request(sim, '/v1.0/deviceManagement/managedDevices', { token });
    expect((res.json as { value: unknown[] }).value).toHaveLength(10);

    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
    expect(existsSync(caFile)).toBe(false);
  });

  it('stops cleanly on SIGINT (Ctrl-C) too', async () => {
    const child = run(['simulator', '--devices', '3']);
    const lines = await firstLines(child, 7);
    const caFile = String(lines.at(-1)?.replace(/^export INTUNE_CA_FILE=/, ''));
    expect(existsSync(caFile)).toBe(true);
    child.kill('SIGINT');
    expect(await exitOf(child)).toBe(0);
    expect(existsSync(caFile)).toBe(false);
  });

  it('exits 2 with a sentence that says what to fix on a bad flag', async () => {
    const child = run(['simulator', '--faults', 'error=2']);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    expect(await exitOf(child)).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/fault "error" is "2"; set it to a fraction from 0 to 1/);
  });
});
