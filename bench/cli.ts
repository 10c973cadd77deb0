/**
 * How fast the CLI answers, as an operator runs it: the built binary, a fresh process per run.
 *
 *   npm run bench:cli
 *
 * Against a running `serve` on the embedded database (ENTRA_* pointing at the Graph simulator):
 * `node -e 0` (Node alone: what no command can go below on this machine at this moment),
 * `--version`, `check` (answered by the server's gate over serve.sock: its token, cache and
 * Chronicle writer), `chronicle verify` of the server's small chain (through the shared database
 * socket), `keys list`; then, with the server stopped, `chronicle verify` opening the data
 * directory itself and `check` evaluating alone (database, token, Graph lookup in this process). BENCH_RUNS runs each
 * (default 10); prints medians and writes bench/results/cli.json. BENCH_CLI measures another build
 * (e.g. an older checkout's dist/cli.js). Timings on a busy machine are noisy: the load average
 * is recorded beside them.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSimulator } from '../src/simulator/index.js';
import { median } from './lib.js';

const HERE = import.meta.dirname;
const ROOT = path.resolve(HERE, '..');
const CLI = process.env['BENCH_CLI'] ?? path.join(ROOT, 'dist', 'cli.js');
const RUNS = Number(process.env['BENCH_RUNS'] ?? 10);
const TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

interface Run {
  readonly wallMs: number;
  /** User + system CPU of the process (when /usr/bin/time is there): less sensitive to a busy machine. */
  readonly cpuMs: number | null;
  readonly code: number | null;
}

/** The baseline: Node starting and exiting with nothing to do, on the same machine at the same time. */
const NODE_ALONE = ['-e', '0'];

function once(args: string[], env: NodeJS.ProcessEnv): Promise<Run & { stderr: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const argv = args === NODE_ALONE ? args : [CLI, ...args];
    const child =
      TIME !== undefined
        ? spawn(TIME, ['-f', 'BENCH_CPU %U %S', process.execPath, ...argv], { env, stdio: ['ignore', 'ignore', 'pipe'] })
        : spawn(process.execPath, argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const wallMs = performance.now() - started;
      const cpu = /BENCH_CPU ([\d.]+) ([\d.]+)/.exec(stderr);
      resolve({
        wallMs,
        cpuMs: cpu ? Math.round((Number(cpu[1]) + Number(cpu[2])) * 1000) : null,
        code: TIME !== undefined && code !== null && /Command exited with non-zero status (\d+)/.test(stderr) ? Number(/non-zero status (\d+)/.exec(stderr)?.[1]) : code,
        stderr,
      });
    });
  });
}

async function measure(label: string, args: string[], env: NodeJS.ProcessEnv, targetMs: number | null) {
  const runs: Run[] = [];
  let lastStderr = '';
  for (let i = 0; i < RUNS; i++) {
    const { stderr, ...run } = await once(args, env);
    runs.push(run);
    lastStderr = stderr;
  }
  const wall = Math.round(median(runs.map((r) => r.wallMs)));
  const cpus = runs.map((r) => r.cpuMs).filter((c): c is number => c !== null);
  const cpu = cpus.length > 0 ? Math.round(median(cpus)) : null;
  const codes = [...new Set(runs.map((r) => r.code))];
  process.stdout.write(
    `${label.padEnd(44)} median ${String(wall).padStart(5)} ms wall, ${cpu === null ? '-' : String(cpu).padStart(5)} ms cpu` +
      `${targetMs !== null ? ` (target <= ${targetMs} ms)` : ''}; exit ${codes.join('/')}\n`,
  );
  if (codes.some((c) => c !== 0 && c !== 1)) process.stdout.write(`  last stderr: ${lastStderr.replace(/BENCH_CPU.*$/m, '').trim().slice(0, 300)}\n`);
  return { label, args, medianWallMs: wall, medianCpuMs: cpu, targetMs, exitCodes: codes, wallMs: runs.map((r) => Math.round(r.wallMs)) };
}

async function serve(env: NodeJS.ProcessEnv): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn(process.execPath, [CLI, 'serve'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve was not ready within 120 s:\n${out}`)), 120_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (/\n\s+icn_\S+\n|Create more with/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}:\n${out}`)));
  });
  return child;
}

async function main(): Promise<void> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const sim = await startSimulator({ devices: 50, seed: 'bench-cli' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-bench-cli-'));
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(ENTRA_|INTUNE_|DATABASE_URL|CHRONICLE_|PORT|HOST|LOG_LEVEL|npm_)/.test(k)));
  const env: NodeJS.ProcessEnv = { ...clean, ...sim.env, INTUNE_DATA_DIR: path.join(dir, '.data'), PORT: '0', LOG_LEVEL: 'warn', INTUNE_SYNC_INTERVAL: '0' };
  const device = sim.devices.find((d) => typeof d['azureADDeviceId'] === 'string')?.['azureADDeviceId'] as string;
  let server: ChildProcessWithoutNullStreams | undefined;
  const results = [];
  const loadBefore = os.loadavg()[0] ?? 0;
  try {
    server = await serve(env);
    results.push(await measure('node -e 0 (baseline: Node alone)', NODE_ALONE, env, null));
    results.push(await measure('--version', ['--version'], env, 300));
    results.push(await measure('check (beside serve: its gate answers)', ['check', '--device-id', device], { ...env, INTUNE_COMPLIANCE_REQUIRED: 'true' }, 600));
    results.push(await measure('chronicle verify (beside serve)', ['chronicle', 'verify'], env, 1000));
    results.push(await measure('keys list (beside serve)', ['keys', 'list'], env, null));
    const stopped = new Promise((resolve) => server?.once('exit', resolve));
    server.kill('SIGTERM');
    await stopped;
    server = undefined;
    results.push(await measure('chronicle verify (data directory alone)', ['chronicle', 'verify'], env, null));
    results.push(await measure('check (no server: evaluates alone)', ['check', '--device-id', device], { ...env, INTUNE_COMPLIANCE_REQUIRED: 'true' }, null));
  } finally {
    if (server !== undefined && server.exitCode === null) server.kill('SIGKILL');
    await sim.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const summary = {
    date: new Date().toISOString(),
    cli: path.relative(ROOT, CLI),
    cpus: os.cpus().length,
    loadAverage: { before: loadBefore, after: os.loadavg()[0] ?? 0 },
    runs: RUNS,
    results,
  };
  const out = path.join(HERE, 'results', 'cli.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`load average ${loadBefore.toFixed(1)} -> ${(os.loadavg()[0] ?? 0).toFixed(1)} on ${os.cpus().length} cpus; wrote ${path.relative(ROOT, out)}\n`);
}

await main();
