/**
 * `intune-connector doctor`: the pre-flight of a connection (src/posture/preflight.ts) before its
 * first sync: the first thing to fix comes first, then every check. Exit 0 when nothing failed,
 * 1 when a check failed, 2 usage, 3 configuration, 4 database unavailable. Writes nothing.
 */
import type { Command } from 'commander';
import { DEFAULT_TENANT } from '../common/ids.js';
import { guidArg, tenantArg } from './args.js';
import { openRuntime } from '../runtime/index.js';
import type { PostureService } from '../posture/index.js';
import { openCliPostureService } from './posture-service.js';
import { runPreflight, type PreflightCheck, type PreflightReport } from '../posture/preflight.js';
import { EXIT, configFromEnv } from './shared.js';

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

async function runDoctor(options: DoctorOptions): Promise<number> {
  const config = configFromEnv();
  let posture: PostureService | undefined;
  const runtime = await openRuntime(config, { graphFor: (tenant) => posture?.graphFor(tenant) });
  try {
    posture = await openCliPostureService(runtime, config);
    const report = await runPreflight({
      db: runtime.db,
      chronicle: runtime.chronicle,
      posture,
      tenant: options.tenant,
      ...(options.connection !== undefined ? { connectionId: options.connection } : {}),
      capabilities: config.mcp.defaultCapabilities,
      checkpointIntervalMs: config.chronicle.checkpointIntervalMs,
    });
    process.stdout.write(options.json === true ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
    return report.ok ? EXIT.ok : EXIT.failure;
  } finally {
    await posture?.close();
    await runtime.close();
  }
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
