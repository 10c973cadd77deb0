/**
 * The gate's other surfaces, run as a user runs them: `intune-connector check` (the built CLI, a
 * child process, demo tenant, embedded database) and the README's TypeScript host example. Also
 * that the README shows exactly the examples these tests run.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTenant } from '../../src/simulator/index.js';
import { DEMO_DEVICES, DEMO_SEED } from '../../src/runtime/index.js';
import { GateResponseSchema } from '../../src/gate/schemas.js';
import { LOOKUP_NOT_PERFORMED, decide, loadGatePolicy, resolveAccordPolicy } from '../../src/gate/index.js';
import { redactDevice } from '../../src/connector/index.js';
import type { ManagedDevice } from '../../src/connector/graph/types.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const POLICY_FILE = path.join(ROOT, 'examples', 'accord-policy.yaml');

/**
 * Entra ids of demo devices (the runtime's simulator: same size and seed) in a state, with no
 * re-enrolled twin. A compliant one also meets device-management's posture rules in the example
 * policy (encryption, minimum OS, check-in age), so it is allowed there.
 */
function demoDevice(state: string): string {
  const devices = generateTenant(DEMO_DEVICES, DEMO_SEED);
  const counts = new Map<unknown, number>();
  for (const d of devices) counts.set(d['azureADDeviceId'], (counts.get(d['azureADDeviceId']) ?? 0) + 1);
  const policy = resolveAccordPolicy(
    loadGatePolicy({ intuneEnabled: true, compliance: { requiredByDefault: false, strict: false, staleMaxMs: 0, policyFile: POLICY_FILE } }),
    'device-management',
  );
  const allowed = (d: Record<string, unknown>): boolean => {
    const posture = redactDevice(d as unknown as ManagedDevice, Buffer.alloc(32));
    const lookup = { ok: true as const, records: [posture], cacheHit: false, servedStale: false, fetchedAt: Date.now(), graphRequestId: null };
    const id = { kind: 'guid' as const, azureADDeviceId: String(d['azureADDeviceId']) };
    return decide({ deviceId: id, lookup: state === 'compliant' ? lookup : LOOKUP_NOT_PERFORMED, policy, now: Date.now() }).decision === 'allow';
  };
  const found = devices.find(
    (d) => d['complianceState'] === state && typeof d['azureADDeviceId'] === 'string' && counts.get(d['azureADDeviceId']) === 1 && (state !== 'compliant' || allowed(d)),
  );
  if (found === undefined) throw new Error(`the demo tenant has no ${state} device`);
  return found['azureADDeviceId'] as string;
}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function execute(file: string, args: string[], env: Record<string, string>): Promise<Outcome> {
  const base: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: process.env['HOME'], LOG_LEVEL: 'silent', ...env };
  try {
    const { stdout, stderr } = await run(file, args, { cwd: ROOT, env: base, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw err;
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

let dataDir: string;
let database: TestDatabase | undefined;
/** Where the child processes keep their data: PostgreSQL when the test server is there (it opens faster than PGlite), else PGlite. */
let storage: Record<string, string>;
beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-gate-cli-'));
  database = pgAvailable() ? await createPostgresDatabase() : undefined;
  storage = { INTUNE_DATA_DIR: dataDir, ...(database?.url !== undefined ? { DATABASE_URL: database.url } : {}) };
});
afterAll(async () => {
  await database?.drop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('intune-connector check', () => {
  const cli = (args: string[], env: Record<string, string> = {}) =>
    execute(process.execPath, [CLI, 'check', ...args], { ...storage, INTUNE_POLICY_FILE: POLICY_FILE, ...env });

  beforeAll(() => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  });

  it('a compliant demo device: prints the GateResult, exit 0; a noncompliant one via --claims: exit 1; both recorded on one chain', async () => {
    const allowed = await cli(['--accord', 'device-management', '--device-id', demoDevice('compliant')]);
    expect(allowed.code, allowed.stderr).toBe(0);
    const result = GateResponseSchema.parse(JSON.parse(allowed.stdout));
    expect(result).toMatchObject({ decision: 'allow', reason: 'compliant', evaluated: true, device: { compliance_state: 'compliant' } });

    const denied = await cli(['--accord', 'infrastructure-operations', '--claims', JSON.stringify({ deviceid: demoDevice('noncompliant'), sub: 'u1' })]);
    expect(denied.code, denied.stderr).toBe(1);
    const deny = GateResponseSchema.parse(JSON.parse(denied.stdout));
    expect(deny).toMatchObject({ decision: 'deny', reason: 'noncompliant' });
    expect(deny.event?.seq).toBe((result.event?.seq ?? 0) + 1);
  });

  it('without INTUNE_POLICY_FILE the demo tenant answers with the example policy, as serve does', async () => {
    // The README's second line: no policy file named, device-management still requires compliance and macOS 14.0.
    const old = JSON.stringify({ deviceid: '51de1ad0-49d3-4db9-b2f2-8e7aff1f7119' });
    const denied = await cli(['--accord', 'device-management', '--claims', old], { INTUNE_POLICY_FILE: '' });
    expect(denied.code, denied.stderr).toBe(1);
    expect(JSON.parse(denied.stdout)).toMatchObject({ decision: 'deny', reason: 'os_version_below_minimum', message: "This accord's device rules are not met: macOS 13.6.9 is below 14.0." });
    expect(denied.stderr).not.toMatch(/does not require a compliant device/);
    // Another accord follows the environment's defaults: not required.
    const other = await cli(['--accord', 'reporting', '--claims', old], { INTUNE_POLICY_FILE: '' });
    expect(JSON.parse(other.stdout)).toMatchObject({ decision: 'allow', reason: 'compliance_not_required' });
  });

  it('usage mistakes exit 2 before anything starts', async () => {
    for (const args of [['--claims', '[1]'], ['--device-id', 'x', '--claims', '{}'], ['--accord', 'no spaces please'], ['--bogus']]) {
      const outcome = await cli(args);
      expect(outcome.code, args.join(' ')).toBe(2);
      expect(outcome.stdout).toBe('');
      expect(outcome.stderr).toMatch(/error/);
    }
  });

  it('configuration errors exit 3 and name the variable', async () => {
    const contradiction = await cli(['--accord', 'device-management'], { INTUNE_ENABLED: 'false' });
    expect(contradiction.code).toBe(3);
    expect(contradiction.stderr).toMatch(/INTUNE_ENABLED=false contradicts INTUNE_POLICY_FILE .*accord "infrastructure-operations"/);
    const badFile = path.join(dataDir, 'policy.yaml');
    fs.writeFileSync(badFile, 'accords:\n  device-management:\n    max_checkin_age_days: soon\n');
    const invalid = await cli([], { INTUNE_POLICY_FILE: badFile });
    expect(invalid.code).toBe(3);
    expect(invalid.stderr).toMatch(/accords\.device-management\.max_checkin_age_days: expected a number/);
  });
});

/** The fenced blocks of one language inside the README's gate section. */
function readmeBlocks(language: string): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = /<!-- section:gate -->([\s\S]*?)<!-- \/section:gate -->/.exec(readme)?.[1] ?? '';
  return [...section.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1] as string);
}

describe('the README gate section', () => {
  it('shows the Python client exactly as examples/gate_client.py (run against a live server in http.test.ts)', () => {
    const example = fs.readFileSync(path.join(ROOT, 'examples', 'gate_client.py'), 'utf8');
    expect(readmeBlocks('python')).toContain(example);
    expect(example.trim().split('\n').length).toBeLessThanOrEqual(22);
  });

  it('shows the TypeScript host example, which runs: a compliant demo device is allowed and recorded', async () => {
    const example = fs.readFileSync(path.join(ROOT, 'examples', 'gate_host.ts'), 'utf8');
    // The README imports the package by name; the example in the repository imports the sources.
    expect(readmeBlocks('ts').map((block) => block.replace("from 'intune-connector'", "from '../src/index.js'"))).toContain(example);
    const outcome = await execute(process.execPath, ['--import', 'tsx', 'examples/gate_host.ts', 'device-management', demoDevice('compliant')], {
      ...storage,
      INTUNE_POLICY_FILE: POLICY_FILE,
    });
    expect(outcome.code, outcome.stderr).toBe(0);
    expect(outcome.stdout.trim()).toMatch(/^allow compliant \d+$/);
  });
});
