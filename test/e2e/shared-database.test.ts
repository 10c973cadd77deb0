/**
 * The embedded database while `serve` runs: the README, the panel and the reviewer flow send users
 * to the CLI (`keys create`, `sync`, `chronicle verify`, `chronicle query`) while the server is up.
 * The server shares its PGlite over a Unix socket in the data directory; these run the real binary
 * against a real server on the embedded default, with the Graph simulator over HTTPS and MSAL.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const DEVICES = 60;

interface Served {
  readonly child: ChildProcessWithoutNullStreams;
  readonly url: string;
  readonly adminKey: string | undefined;
  readonly exited: Promise<number | null>;
  output(): string;
}

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(ENTRA_|INTUNE_|DATABASE_URL|CHRONICLE_|PORT|HOST|LOG_LEVEL|npm_)/.test(name)) env[name] = value;
  }
  return { ...env, PORT: '0', LOG_LEVEL: 'warn', ...extra };
}

async function serve(env: NodeJS.ProcessEnv): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve'], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no URL within 90 s:\n${output}`)), 90_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /serving at (http:\/\/\S+)/.exec(output);
      if (match && /\n\s+icn_\S+\n|Create more with/.test(output)) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before it was ready:\n${output}`));
    });
  });
  const adminKey = /^\s+(icn_\S+)$/m.exec(output)?.[1];
  return { child, url, adminKey, exited, output: () => output };
}

async function stop(served: Served): Promise<number | null> {
  served.child.kill('SIGTERM');
  return served.exited;
}

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the CLI beside a running serve, on the embedded database', () => {
  let sim: SimulatorHandle;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let served: Served | undefined;
  let socket: string;

  beforeAll(async () => {
    sim = await startSimulator({ devices: DEVICES, seed: 'shared-db' });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-shared-'));
    env = cleanEnv({ ...sim.env, INTUNE_DATA_DIR: path.join(dir, '.data') });
    socket = path.join(dir, '.data', '.s.PGSQL.5432');
  });
  afterAll(async () => {
    if (served !== undefined && served.child.exitCode === null) served.child.kill('SIGKILL');
    await sim?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keys create, sync, chronicle query and verify work while serve holds the data directory', async () => {
    served = await serve(env);
    const admin = served.adminKey as string;
    expect(admin).toMatch(/^icn_/);
    const stat = fs.statSync(socket);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);

    // The server's own sync at start, then one from the CLI, which the server then serves.
    const devices = async () => {
      const res = await fetch(`${served?.url}/api/v1/integrations/intune/devices?limit=1`, { headers: { authorization: `Bearer ${admin}` } });
      return res.status === 200 ? ((await res.json()) as { total: number }).total : 0;
    };
    for (let i = 0; i < 300 && (await devices()) !== DEVICES; i++) await new Promise((r) => setTimeout(r, 200));

    const created = await cli(['keys', 'create', '--role', 'reader', '--name', 'panel'], env);
    expect(created.code, created.stderr).toBe(0);
    const reader = created.stdout.trim();
    // Written through the socket into the server's database: the server accepts it at once.
    const asReader = await fetch(`${served.url}/api/v1/integrations/intune/devices?limit=1`, { headers: { authorization: `Bearer ${reader}` } });
    expect(asReader.status).toBe(200);

    const synced = await cli(['sync', '--json'], env);
    expect(synced.code, synced.stderr).toBe(0);
    expect(JSON.parse(synced.stdout)).toMatchObject({ status: 'succeeded', devices: DEVICES, trigger: 'manual' });

    const queried = await cli(['chronicle', 'query', '--type', 'admin.api_key_created', '--all'], env);
    expect(queried.code, queried.stderr).toBe(0);
    const events = queried.stdout.trim().split('\n').map((line) => JSON.parse(line) as { type: string });
    expect(events.map((e) => e.type)).toEqual(['admin.api_key_created', 'admin.api_key_created']);

    const verified = await cli(['chronicle', 'verify', '--json'], env);
    expect(verified.code, verified.stderr).toBe(0);
    expect((JSON.parse(verified.stdout) as { ok: boolean; chains: unknown[] }).ok).toBe(true);
  }, 300_000);

  it('the server and several CLI commands append to one chain at once without forking it', async () => {
    const url = served?.url as string;
    const admin = served?.adminKey as string;
    const gateCalls = Array.from({ length: 20 }, (_, i) =>
      fetch(`${url}/api/v1/gate/device-compliance`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ accord: 'default', claims: { deviceid: `0fa4e5e1-0000-4000-8000-${String(i).padStart(12, '0')}` } }),
      }).then((r) => r.status),
    );
    const keys = Array.from({ length: 3 }, (_, i) => cli(['keys', 'create', '--role', 'reader', '--name', `parallel ${i}`], env));
    const [statuses, created] = await Promise.all([Promise.all(gateCalls), Promise.all(keys)]);
    expect(statuses.every((s) => s === 200)).toBe(true);
    for (const run of created) expect(run.code, run.stderr).toBe(0);

    const listed = await cli(['keys', 'list', '--json'], env);
    expect((JSON.parse(listed.stdout) as unknown[]).length).toBe(5);
    const verified = await cli(['chronicle', 'verify'], env);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  }, 180_000);

  interface CheckedRecord {
    seq: number;
    actor: { kind: string; id: string };
    data: { decision: string; reason: string; channel: string; cache_hit: boolean; azure_ad_device_id: string | null };
  }
  const checkedRecords = async (deviceId: string): Promise<CheckedRecord[]> => {
    const queried = await cli(['chronicle', 'query', '--type', 'DEVICE_COMPLIANCE_CHECKED', '--device', deviceId, '--all'], env);
    expect(queried.code, queried.stderr).toBe(0);
    return queried.stdout.trim().split('\n').filter((l) => l !== '').map((line) => JSON.parse(line) as CheckedRecord);
  };
  let besideServer: { deviceId: string; decision: string; reason: string; code: number } | undefined;

  it('check asks the running server\'s gate over serve.sock: same output, its record appended by the server', async () => {
    const gateSocket = path.join(dir, '.data', 'serve.sock');
    const stat = fs.statSync(gateSocket);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);

    const device = sim.devices.find((d) => typeof d['azureADDeviceId'] === 'string' && d['complianceState'] === 'compliant') as Record<string, unknown>;
    const deviceId = device['azureADDeviceId'] as string;
    // The caller's configuration decides the policy (the server's own leaves compliance optional).
    const checkEnv = { ...env, INTUNE_COMPLIANCE_REQUIRED: 'true' };
    const first = await cli(['check', '--device-id', deviceId], checkEnv);
    const second = await cli(['check', '--device-id', deviceId], checkEnv);
    for (const run of [first, second]) {
      expect([0, 1], run.stderr).toContain(run.code);
      expect(run.stderr).toBe('');
    }
    const a = JSON.parse(first.stdout) as { decision: string; reason: string; evaluated: boolean; event: { seq: number; hash: string }; device: { azure_ad_device_id: string } };
    const b = JSON.parse(second.stdout) as typeof a;
    expect(a.evaluated).toBe(true);
    expect(a.device.azure_ad_device_id).toBe(deviceId);
    expect(first.code).toBe(a.decision === 'allow' ? 0 : 1);
    expect([b.decision, b.reason]).toEqual([a.decision, a.reason]);
    expect(b.event.seq).toBeGreaterThan(a.event.seq);

    const records = await checkedRecords(deviceId);
    const recorded = records.filter((r) => r.seq === a.event.seq || r.seq === b.event.seq);
    expect(recorded).toHaveLength(2);
    for (const r of recorded) {
      expect(r.actor).toEqual({ kind: 'human', id: 'cli' });
      expect(r.data).toMatchObject({ decision: a.decision, reason: a.reason, channel: 'cli', azure_ad_device_id: deviceId });
    }
    // The second answer came from the server's compliance cache, warmed by the first: a CLI
    // process evaluating alone starts with an empty cache every time.
    expect(recorded.map((r) => r.data.cache_hit)).toEqual([false, true]);

    // A deviceid claim that is not a GUID is denied and recorded, as when evaluating alone.
    const bad = await cli(['check', '--claims', '{"deviceid":"not-a-guid"}'], checkEnv);
    expect(bad.code, bad.stderr).toBe(1);
    expect((JSON.parse(bad.stdout) as { reason: string }).reason).toBe('device_id_invalid');
    besideServer = { deviceId, decision: a.decision, reason: a.reason, code: first.code };
  }, 180_000);

  it('removes its socket on exit; a stale socket file neither confuses the CLI nor stops the next serve', async () => {
    expect(await stop(served as Served)).toBe(0);
    expect(fs.existsSync(socket)).toBe(false);

    // A socket file left behind by a killed server.
    fs.writeFileSync(socket, '');
    const alone = await cli(['keys', 'list', '--json'], env);
    expect(alone.code, alone.stderr).toBe(0);
    expect((JSON.parse(alone.stdout) as unknown[]).length).toBe(5);

    served = await serve(env);
    expect(fs.statSync(socket).isSocket()).toBe(true);
    const listed = await cli(['keys', 'list', '--json'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as unknown[]).length).toBe(5);
    expect(await stop(served)).toBe(0);
    expect(fs.existsSync(socket)).toBe(false);
    expect(fs.existsSync(path.join(dir, '.data', 'serve.sock'))).toBe(false);
  }, 300_000);

  it('check with no server running evaluates alone and gives the decision it got beside the server', async () => {
    const before = besideServer as NonNullable<typeof besideServer>;
    expect(before).toBeDefined();
    const alone = await cli(['check', '--device-id', before.deviceId], { ...env, INTUNE_COMPLIANCE_REQUIRED: 'true' });
    expect(alone.code, alone.stderr).toBe(before.code);
    const result = JSON.parse(alone.stdout) as { decision: string; reason: string; event: { seq: number } };
    expect([result.decision, result.reason]).toEqual([before.decision, before.reason]);
    const records = await checkedRecords(before.deviceId);
    expect(records.find((r) => r.seq === result.event.seq)?.data).toMatchObject({ channel: 'cli', cache_hit: false, decision: before.decision });
  }, 180_000);
});
