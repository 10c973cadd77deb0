/**
 * `intune-connector doctor`: the pre-flight of a connection (src/posture/preflight.ts) before its
 * first sync: the first thing to fix comes first, then every check. Exit 0 when nothing failed,
 * 1 when a check failed, 2 usage, 3 configuration, 4 database unavailable. Writes nothing.
 *
 * Beside a running `serve` of the same data directory the server makes the report (over
 * serve.sock, api/local-channel.ts), so it describes the Graph the server talks to, its demo
 * simulator included, rather than one this process would start.
 */
import type { Command } from 'commander';
import { DEFAULT_TENANT } from '../common/ids.js';
import { guidArg, tenantArg } from './args.js';
import { loadConfig, type Config } from '../config/index.js';
import type { PostureService } from '../posture/index.js';
import type { PreflightCheck, PreflightReport } from '../posture/preflight.js';
import { askServer, localIdentity, LOCAL_USAGE_CODES } from '../api/local-client.js';
import { EXIT } from './exit.js';
import { defined } from '../common/values.js';

interface DoctorOptions {
  readonly connection?: string;
  readonly tenant: string;
  readonly json?: boolean;
}

const STATUS_WORD: Readonly<Record<PreflightCheck['status'], string>> = { ok: 'ok', warn: 'WARN', fail: 'FAIL', skipped: '-' };

export function renderReport(report: PreflightReport): string {
  const lines: string[] = [];
  const first = report.first_problem;
  if (first !== null) {
    lines.push(`${first.status === 'fail' ? 'First thing to fix' : 'Worth a look'}: ${first.name}: ${first.summary}`);
    if (first.fix !== null) lines.push(`  fix: ${first.fix}`);
    lines.push('');
  }
  lines.push(`tenant ${report.tenant}, connection ${report.connection_id ?? '-'}, checked ${report.checked_at}`);
  const width = Math.max(...report.checks.map((c) => c.name.length));
  for (const check of report.checks) {
    lines.push(`  ${STATUS_WORD[check.status].padEnd(4)}  ${check.name.padEnd(width)}  ${check.summary}`);
    if (check.fix !== null && check !== first) lines.push(`  ${''.padEnd(4)}  ${''.padEnd(width)}  fix: ${check.fix}`);
  }
  lines.push(report.ok ? 'doctor: all checks passed' : 'doctor: a check failed');
  return `${lines.join('\n')}\n`;
}

function print(report: PreflightReport, json: boolean | undefined): number {
  process.stdout.write(json === true ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
  return report.ok ? EXIT.ok : EXIT.failure;
}

/** The server's report, or undefined when no server of this data directory (and Graph) answers. */
async function doctorBesideServer(config: Config, options: DoctorOptions): Promise<number | undefined> {
  const outcome = await askServer(config.database.dataDir, {
    v: 1,
    kind: 'preflight',
    tenant: options.tenant,
    ...defined({ connection_id: options.connection }),
    capabilities: config.mcp.defaultCapabilities,
    checkpoint_interval_ms: config.chronicle.checkpointIntervalMs,
    identity: localIdentity(config),
  });
  if (outcome.kind === 'unreachable') return undefined;
  if (outcome.kind === 'failed') {
    process.stderr.write(`error: ${outcome.message}\n`);
    return EXIT.failure;
  }
  const { response } = outcome;
  if ('result' in response) return print(response.result, options.json);
  if (response.error.code === 'identity_mismatch') return undefined;
  process.stderr.write(`error: ${response.error.message}\n`);
  return LOCAL_USAGE_CODES.has(response.error.code) ? EXIT.usage : EXIT.failure;
}

async function doctorAlone(config: Config, options: DoctorOptions): Promise<number> {
  const [{ openRuntime }, { openCliPostureService }, { runPreflight }] = await Promise.all([
    import('../runtime/index.js'),
    import('./posture-service.js'),
    import('../posture/preflight.js'),
  ]);
  let posture: PostureService | undefined;
  const runtime = await openRuntime(config, { graphFor: (tenant) => posture?.graphFor(tenant) });
  try {
    posture = await openCliPostureService(runtime, config);
    const report = await runPreflight({
      db: runtime.db,
      chronicle: runtime.chronicle,
      posture,
      tenant: options.tenant,
      ...defined({ connectionId: options.connection }),
      capabilities: config.mcp.defaultCapabilities,
      checkpointIntervalMs: config.chronicle.checkpointIntervalMs,
    });
    return print(report, options.json);
  } finally {
    await posture?.close();
    await runtime.close();
  }
}

async function runDoctor(options: DoctorOptions): Promise<number> {
  const config = loadConfig(process.env);
  return (await doctorBesideServer(config, options)) ?? (await doctorAlone(config, options));
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description("Pre-flight a connection: token, the token's permissions against the enabled operations, Graph reachability and latency, device count, clock skew, database, Chronicle, checkpoint age")
    .option('--connection <id>', "connection to check (default: the tenant's only enabled connection)", guidArg)
    .option('--tenant <tenant>', 'tenant of the connection', tenantArg, DEFAULT_TENANT)
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nExit codes: 0 all checks passed (warnings allowed), 1 a check failed (the first thing to fix is printed first), 2 usage, 3 configuration, 4 database unavailable.\n')
    .action(async (options: DoctorOptions) => {
      process.exitCode = await runDoctor(options);
    });
}
