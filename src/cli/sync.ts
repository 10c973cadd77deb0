/**
 * `intune-connector sync`: one posture sync now, with progress on stderr and the run's summary on
 * stdout. It opens the runtime like `serve` does (the demo simulator when no ENTRA_* are set),
 * bootstraps the default connection, and exits 0 when the run succeeded, 1 when it failed.
 */
import os from 'node:os';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { openRuntime } from '../runtime/index.js';
import { DEFAULT_TENANT } from '../common/ids.js';
import { guidArg, tenantArg } from './args.js';
import type { PostureService, SyncProgress, SyncRunSummary } from '../posture/index.js';
import { openCliPostureService } from './posture-service.js';
import type { Actor } from '../chronicle/types.js';
import { configFromEnv, EXIT } from './shared.js';

interface SyncCommandOptions {
  readonly connection?: string;
  readonly tenant: string;
  readonly json?: boolean;
}

export function registerSync(program: Command): void {
  program
    .command('sync')
    .description('Run one posture sync now: progress on stderr, the run summary on stdout; exit 0 on success, 1 on failure')
    .option('--connection <id>', "connection to sync (default: the tenant's only enabled connection)", guidArg)
    .option('--tenant <tenant>', 'tenant of the connection', tenantArg, DEFAULT_TENANT)
    .option('--json', 'print the summary as JSON')
    .action(async (options: SyncCommandOptions) => {
      process.exitCode = await runSyncCommand(options);
    });
}

function cliActor(): Actor {
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry (containers): the actor stays generic
  }
  return { kind: 'human', id: `cli:${user}`.slice(0, 200) };
}

async function pickConnection(posture: PostureService, tenant: string, requested: string | undefined): Promise<string> {
  if (requested !== undefined) return requested;
  const enabled = (await posture.listConnections(tenant)).filter((c) => c.status !== 'disabled');
  if (enabled.length === 1) return (enabled[0] as { id: string }).id;
  if (enabled.length === 0) {
    throw new Error(
      `tenant ${tenant} has no enabled Intune connection: set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET for tenant ${DEFAULT_TENANT}, or create one through the API`,
    );
  }
  throw new Error(`tenant ${tenant} has ${enabled.length} connections; choose one with --connection: ${enabled.map((c) => `${c.id} (${c.display_name})`).join(', ')}`);
}

/** A progress bar on a terminal; one plain line per page otherwise (logs, CI). */
function progressReporter(stream: NodeJS.WriteStream): { update(p: SyncProgress): void; stop(): void } {
  const started = Date.now();
  const rate = (devices: number) => Math.round(devices / Math.max(0.001, (Date.now() - started) / 1000));
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { stream, format: 'sync | {devices} devices | {pages} pages | {rate} devices/s | {duration_formatted}', hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    bar.start(1, 0, { devices: 0, pages: 0, rate: 0 });
    return {
      update: (p) => bar.update(0, { devices: p.devices, pages: p.pages, rate: rate(p.devices) }),
      stop: () => bar.stop(),
    };
  }
  return {
    update: (p) => stream.write(`sync: ${p.devices} devices, ${p.pages} pages, ${rate(p.devices)} devices/s\n`),
    stop: () => undefined,
  };
}

const counts = (record: Readonly<Record<string, number | undefined>>): string =>
  Object.entries(record)
    .filter(([, n]) => (n ?? 0) > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ') || '-';

function summaryTable(run: SyncRunSummary, connectionName: string): string {
  const rows: [string, string][] = [
    ['run', run.id],
    ['status', run.status],
    ['connection', `${run.connection_id} (${connectionName})`],
    ['trigger', run.trigger],
    ['started', run.started_at],
    ['finished', run.finished_at ?? '-'],
    ['duration', run.duration_ms === null ? '-' : `${(run.duration_ms / 1000).toFixed(2)} s`],
    ['devices', String(run.devices)],
    ['pages', String(run.pages)],
    ['graph requests', String(run.graph_requests)],
    ['throttled waits', String(run.throttled_waits)],
    ['compliance', counts(run.counts_by_compliance_state)],
    ['os family', counts(run.counts_by_os_family)],
  ];
  if (run.error_code !== null) rows.push(['error', `${run.error_code}: ${run.error_message ?? ''}`]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
}

export async function runSyncCommand(options: SyncCommandOptions): Promise<number> {
  const config = configFromEnv();
  let posture: PostureService | undefined;
  const runtime = await openRuntime(config, { graphFor: (tenant) => posture?.graphFor(tenant) });
  const interrupt = () => {
    process.stderr.write('\ninterrupted: cancelling the run (the previous snapshot stays current)\n');
    void posture?.close();
  };
  try {
    posture = await openCliPostureService(runtime, config);
    const connectionId = await pickConnection(posture, options.tenant, options.connection);
    const connection = await posture.getConnection(options.tenant, connectionId);
    if (connection === null) throw new Error(`no connection ${connectionId} in tenant ${options.tenant}: list them with the API (GET /api/v1/integrations/intune/connections)`);

    process.once('SIGINT', interrupt);
    process.once('SIGTERM', interrupt);
    const progress = progressReporter(process.stderr);
    const { done } = await posture.startSync(options.tenant, connection.id, cliActor(), { trigger: 'manual', onProgress: (p) => progress.update(p) });
    const run = await done;
    progress.stop();
    process.stdout.write(options.json === true ? `${JSON.stringify(run, null, 2)}\n` : summaryTable(run, connection.display_name));
    return run.status === 'succeeded' ? EXIT.ok : EXIT.failure;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    await posture?.close();
    await runtime.close();
  }
}
