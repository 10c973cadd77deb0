/**
 * The pre-flight of a connection (`intune-connector doctor`, POST …/connections/{id}/test): the
 * things that make a first sync fail, checked in the order an operator fixes them, each with one
 * sentence of what was found and one of what to do. Nothing here writes: no sync run, no event.
 */
import { z } from 'zod';
import type { Db } from '../db/index.js';
import type { Chronicle } from '../chronicle/index.js';
import type { Capability } from '../config/index.js';
import { GraphError } from '../connector/graph/errors.js';
import type { GraphClient, GraphProbe } from '../connector/graph/types.js';
import type { Connection, PostureService } from './types.js';

export const GRAPH_READ_PERMISSION = 'DeviceManagementManagedDevices.Read.All';
export const GRAPH_READ_WRITE_PERMISSION = 'DeviceManagementManagedDevices.ReadWrite.All';
export const GRAPH_PRIVILEGED_PERMISSION = 'DeviceManagementManagedDevices.PrivilegedOperations.All';

export const PREFLIGHT_CHECKS = ['database', 'connection', 'token', 'permissions', 'graph', 'devices', 'clock', 'chronicle', 'checkpoint'] as const;
export type PreflightCheckName = (typeof PREFLIGHT_CHECKS)[number];

/** Beyond these, the clock is worth a warning (Chronicle times), then a failure (token validity windows). */
const CLOCK_WARN_MS = 30_000;
const CLOCK_FAIL_MS = 5 * 60_000;
const LATENCY_WARN_MS = 2_000;

export const PreflightCheckSchema = z.strictObject({
  name: z.enum(PREFLIGHT_CHECKS),
  status: z.enum(['ok', 'warn', 'fail', 'skipped']),
  summary: z.string().describe('What was found, in one sentence.'),
  fix: z.string().nullable().describe('What to do about it; null when nothing is to be done.'),
  duration_ms: z.number().int().nonnegative(),
});
export type PreflightCheck = z.infer<typeof PreflightCheckSchema>;

export const PreflightReportSchema = z.strictObject({
  ok: z.boolean().describe('No check failed (warnings allowed).'),
  tenant: z.string(),
  connection_id: z.string().nullable(),
  checked_at: z.string(),
  first_problem: PreflightCheckSchema.nullable().describe('The first failed check (else the first warning): fix this first.'),
  checks: z.array(PreflightCheckSchema),
  facts: z.strictObject({
    token_roles: z.array(z.string()).nullable().describe("Application permissions in the connection's token."),
    token_ms: z.number().int().nullable(),
    graph_latency_ms: z.number().int().nullable(),
    device_count: z.number().int().nullable(),
    clock_skew_ms: z.number().int().nullable().describe("This machine's clock minus Graph's (positive: ahead)."),
    events_checked: z.number().int().nullable(),
    checkpoint_age_s: z.number().int().nullable(),
  }),
});
export type PreflightReport = z.infer<typeof PreflightReportSchema>;

export interface PreflightDeps {
  readonly db: Db;
  readonly chronicle: Chronicle;
  readonly posture: PostureService;
  readonly tenant: string;
  /** Default: the tenant's only enabled connection. */
  readonly connectionId?: string;
  /** Capabilities callers may be granted (INTUNE_MCP_CAPABILITIES): PROPOSE enables sync_device. */
  readonly capabilities: readonly Capability[];
  /** Config.chronicle.checkpointIntervalMs (0: no periodic checkpoints). */
  readonly checkpointIntervalMs: number;
  readonly now?: () => number;
  readonly signal?: AbortSignal;
}

type Facts = { -readonly [K in keyof PreflightReport['facts']]: PreflightReport['facts'][K] };

const GRANT_WHERE =
  'in the Microsoft Entra admin center: App registrations → the app → API permissions → Add a permission → Microsoft Graph → Application permissions';

/** What the token must carry for the operations this deployment enables, and why. */
function requiredPermissions(capabilities: readonly Capability[]): Array<{ anyOf: string[]; for: string }> {
  const needs = [{ anyOf: [GRAPH_READ_PERMISSION, GRAPH_READ_WRITE_PERMISSION], for: 'sync, list_devices, get_device, get_compliance and the gate' }];
  if (capabilities.includes('PROPOSE')) needs.push({ anyOf: [GRAPH_PRIVILEGED_PERMISSION], for: 'sync_device (PROPOSE is in INTUNE_MCP_CAPABILITIES)' });
  return needs;
}

export function permissionsCheck(roles: readonly string[], capabilities: readonly Capability[], clientId: string): Omit<PreflightCheck, 'duration_ms'> {
  const missing = requiredPermissions(capabilities).filter((need) => !need.anyOf.some((role) => roles.includes(role)));
  const first = missing[0];
  if (first === undefined) {
    return { name: 'permissions', status: 'ok', summary: `the token carries what the enabled operations need (${roles.join(', ')})`, fix: null };
  }
  const permission = first.anyOf[0] as string;
  return {
    name: 'permissions',
    status: 'fail',
    summary: `the token lacks the Graph application permission ${permission}, needed for ${first.for}; it carries ${roles.length > 0 ? roles.join(', ') : 'no application permissions'}`,
    fix: `grant ${permission} to the app ${clientId} ${GRANT_WHERE}, then "Grant admin consent" for the tenant; tokens carry it from the next acquisition (up to an hour for a cached one)`,
  };
}

async function timed(name: PreflightCheckName, run: () => Promise<Omit<PreflightCheck, 'name' | 'duration_ms'>>): Promise<PreflightCheck> {
  const started = performance.now();
  const result = await run();
  return { name, ...result, duration_ms: Math.round(performance.now() - started) };
}

const skipped = (name: PreflightCheckName, because: string): PreflightCheck => ({ name, status: 'skipped', summary: `not checked: ${because}`, fix: null, duration_ms: 0 });

async function databaseCheck(db: Db): Promise<PreflightCheck> {
  return timed('database', async () => {
    try {
      await db.query('SELECT 1');
      return { status: 'ok', summary: `the ${db.kind === 'pglite' ? 'embedded' : 'PostgreSQL'} database answers`, fix: null };
    } catch (err) {
      return { status: 'fail', summary: `the database does not answer: ${(err as Error).message}`, fix: 'check DATABASE_URL (or INTUNE_DATA_DIR) and that the database is running' };
    }
  });
}

async function pickConnection(deps: PreflightDeps): Promise<{ check: PreflightCheck; connection: Connection | null }> {
  const started = performance.now();
  const done = (status: PreflightCheck['status'], summary: string, fix: string | null, connection: Connection | null) => ({
    check: { name: 'connection' as const, status, summary, fix, duration_ms: Math.round(performance.now() - started) },
    connection,
  });
  if (deps.connectionId !== undefined) {
    const connection = await deps.posture.getConnection(deps.tenant, deps.connectionId);
    if (connection === null) return done('fail', `tenant ${deps.tenant} has no connection ${deps.connectionId}`, 'list the connections with GET /api/v1/integrations/intune/connections and pass one of their ids', null);
    return done('ok', `connection ${connection.id} (${connection.display_name}), status ${connection.status}`, null, connection);
  }
  const enabled = (await deps.posture.listConnections(deps.tenant)).filter((c) => c.status !== 'disabled');
  if (enabled.length === 0) {
    return done('fail', `tenant ${deps.tenant} has no enabled Intune connection`, 'set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (tenant default), or create a connection through the API', null);
  }
  if (enabled.length > 1) {
    return done('fail', `tenant ${deps.tenant} has ${enabled.length} connections`, `choose one with --connection: ${enabled.map((c) => c.id).join(', ')}`, null);
  }
  const connection = enabled[0] as Connection;
  return done('ok', `connection ${connection.id} (${connection.display_name}), status ${connection.status}`, null, connection);
}

/** token, permissions, graph, devices and clock, from one probe of the connection's Graph client. */
async function graphChecks(deps: PreflightDeps, connection: Connection, facts: Facts): Promise<PreflightCheck[]> {
  const now = deps.now ?? Date.now;
  const started = performance.now();
  let probe: GraphProbe | undefined;
  let failure: unknown;
  let result: Awaited<ReturnType<PostureService['withConnectionClient']>>;
  try {
    result = await deps.posture.withConnectionClient(deps.tenant, connection.id, async (client: GraphClient) => {
      try {
        probe = await client.probe(deps.signal !== undefined ? { signal: deps.signal } : {});
      } catch (err) {
        failure = err;
      }
      return true;
    });
  } catch (err) {
    // The secret reference could not be resolved: a token was never asked for.
    const code = (err as { code?: unknown }).code;
    return [
      { name: 'token', status: 'fail', summary: `the connection's secret could not be read (${typeof code === 'string' ? code : 'error'}): ${(err as Error).message}`, fix: 'fix the connection\'s secret_ref (INTUNE_SECRET_REFS and the variable or file it names)', duration_ms: Math.round(performance.now() - started) },
      skipped('permissions', 'no token'),
      skipped('graph', 'no token'),
      skipped('devices', 'no token'),
      skipped('clock', 'no token'),
    ];
  }
  if (result === null) return [skipped('token', 'the connection is gone'), skipped('permissions', 'no token'), skipped('graph', 'no token'), skipped('devices', 'no token'), skipped('clock', 'no token')];
  const tokenMs = Math.round(performance.now() - started);
  const probeToken = probe?.token ?? (failure as { probeToken?: GraphProbe['token'] } | undefined)?.probeToken;
  if (probeToken === undefined) {
    const message = failure instanceof GraphError ? failure.message : 'the token request failed';
    return [
      { name: 'token', status: 'fail', summary: `no token from Entra: ${message}`, fix: 'check the tenant id, client id and secret or certificate of the connection (ENTRA_* for tenant default)', duration_ms: tokenMs },
      skipped('permissions', 'no token'),
      skipped('graph', 'no token'),
      skipped('devices', 'no token'),
      skipped('clock', 'no token'),
    ];
  }
  facts.token_roles = [...probeToken.roles];
  facts.token_ms = probeToken.acquiredMs;
  const checks: PreflightCheck[] = [
    { name: 'token', status: 'ok', summary: `Entra issued a token in ${probeToken.acquiredMs} ms, valid until ${probeToken.expiresAt ?? 'an unstated time'}`, fix: null, duration_ms: probeToken.acquiredMs },
    { ...permissionsCheck(probeToken.roles, deps.capabilities, connection.client_id), duration_ms: 0 },
  ];
  if (probe === undefined) {
    const err = failure instanceof GraphError ? failure : undefined;
    const forbidden = err?.status === 403;
    checks.push({
      name: 'graph',
      status: 'fail',
      summary: `Graph did not answer a one-device read: ${err?.message ?? (failure as Error | undefined)?.message ?? 'unknown error'}`,
      fix: forbidden ? `grant ${GRAPH_READ_PERMISSION} to the app ${connection.client_id} ${GRANT_WHERE}, then "Grant admin consent"` : 'check that this machine reaches the Graph host (INTUNE_CLOUD, INTUNE_GRAPH_URL, proxies, INTUNE_CA_FILE)',
      duration_ms: Math.max(0, tokenMs - probeToken.acquiredMs),
    });
    checks.push(skipped('devices', 'Graph did not answer'), skipped('clock', 'Graph did not answer'));
    return checks;
  }
  const { graph } = probe;
  facts.graph_latency_ms = graph.latencyMs;
  facts.device_count = graph.deviceCount;
  checks.push({
    name: 'graph',
    status: graph.latencyMs > LATENCY_WARN_MS ? 'warn' : 'ok',
    summary: `Graph answered a one-device read in ${graph.latencyMs} ms (request ${graph.requestId})`,
    fix: graph.latencyMs > LATENCY_WARN_MS ? 'Graph is slow from here: check proxies and the network path; the gate may answer compliance_unavailable under INTUNE_GRAPH_TIMEOUT_MS' : null,
    duration_ms: graph.latencyMs,
  });
  checks.push(
    graph.deviceCount === null
      ? { name: 'devices', status: 'warn', summary: 'Graph sent no device count', fix: 'run a sync to see how many devices the connection reads', duration_ms: 0 }
      : graph.deviceCount === 0
        ? { name: 'devices', status: 'warn', summary: 'the tenant has no managed devices', fix: 'check that this is the tenant devices are enrolled in (ENTRA_TENANT_ID)', duration_ms: 0 }
        : { name: 'devices', status: 'ok', summary: `the tenant has ${graph.deviceCount} managed devices`, fix: null, duration_ms: 0 },
  );
  checks.push(clockCheck(graph.serverDate, now(), facts));
  return checks;
}

function clockCheck(serverDate: string | null, nowMs: number, facts: Facts): PreflightCheck {
  const server = serverDate === null ? Number.NaN : Date.parse(serverDate);
  if (!Number.isFinite(server)) return { name: 'clock', status: 'warn', summary: 'Graph sent no Date header to compare clocks with', fix: null, duration_ms: 0 };
  // The Date header has whole seconds: up to a second of the difference is its rounding.
  const skewMs = Math.round(nowMs - server);
  facts.clock_skew_ms = skewMs;
  const off = Math.abs(skewMs);
  const words = `this machine's clock is ${(off / 1000).toFixed(1)} s ${skewMs >= 0 ? 'ahead of' : 'behind'} Graph's`;
  if (off > CLOCK_FAIL_MS) return { name: 'clock', status: 'fail', summary: words, fix: 'synchronise the clock (NTP): tokens and certificate assertions are refused outside their validity window', duration_ms: 0 };
  if (off > CLOCK_WARN_MS) return { name: 'clock', status: 'warn', summary: words, fix: 'synchronise the clock (NTP): Chronicle records this machine\'s time', duration_ms: 0 };
  return { name: 'clock', status: 'ok', summary: words, fix: null, duration_ms: 0 };
}

async function chronicleChecks(deps: PreflightDeps, facts: Facts): Promise<PreflightCheck[]> {
  const now = deps.now ?? Date.now;
  const started = performance.now();
  let report;
  try {
    report = await deps.chronicle.verify({ tenant: deps.tenant });
  } catch (err) {
    return [
      { name: 'chronicle', status: 'fail', summary: `Chronicle could not be verified: ${(err as Error).message}`, fix: 'run `intune-connector chronicle verify` for the details', duration_ms: Math.round(performance.now() - started) },
      skipped('checkpoint', 'Chronicle could not be verified'),
    ];
  }
  const durationMs = Math.round(performance.now() - started);
  const chain = report.chains.find((c) => c.tenant === deps.tenant);
  facts.events_checked = chain?.eventsChecked ?? 0;
  const chronicle: PreflightCheck =
    chain === undefined || chain.ok
      ? { name: 'chronicle', status: 'ok', summary: `the chain of tenant ${deps.tenant} is intact (${chain?.eventsChecked ?? 0} events)`, fix: null, duration_ms: durationMs }
      : {
          name: 'chronicle',
          status: 'fail',
          summary: `the chain of tenant ${deps.tenant} is broken at seq ${chain.firstBadSeq ?? '?'}: ${chain.detail ?? chain.reason ?? 'see chronicle verify'}`,
          fix: 'stop and investigate before anything else: run `intune-connector chronicle verify` and keep the database and checkpoint directory as they are',
          duration_ms: durationMs,
        };
  const newest = report.exposure.newestCheckpointTime;
  const uncovered = report.exposure.uncoveredEvents;
  let checkpoint: PreflightCheck;
  if (newest === null) {
    checkpoint = uncovered > 0
      ? { name: 'checkpoint', status: 'warn', summary: `no signed checkpoint yet; ${uncovered} events are not covered by one`, fix: 'run `intune-connector chronicle checkpoint`, or keep serve running (it signs one every CHRONICLE_CHECKPOINT_INTERVAL seconds)', duration_ms: 0 }
      : { name: 'checkpoint', status: 'ok', summary: 'no events to cover yet', fix: null, duration_ms: 0 };
  } else {
    const ageS = Math.max(0, Math.round((now() - Date.parse(newest)) / 1000));
    facts.checkpoint_age_s = ageS;
    const limitS = deps.checkpointIntervalMs > 0 ? Math.round((3 * deps.checkpointIntervalMs) / 1000) + 60 : Number.POSITIVE_INFINITY;
    checkpoint =
      uncovered > 0 && ageS > limitS
        ? { name: 'checkpoint', status: 'warn', summary: `the newest checkpoint is ${ageS} s old and ${uncovered} events are past it`, fix: 'check that serve runs and can write CHRONICLE_CHECKPOINT_DIR; `intune-connector chronicle checkpoint` signs one now', duration_ms: 0 }
        : { name: 'checkpoint', status: 'ok', summary: `the newest checkpoint is ${ageS} s old; ${uncovered} events are past it`, fix: null, duration_ms: 0 };
  }
  return [chronicle, checkpoint];
}

export async function runPreflight(deps: PreflightDeps): Promise<PreflightReport> {
  const now = deps.now ?? Date.now;
  const facts: Facts = { token_roles: null, token_ms: null, graph_latency_ms: null, device_count: null, clock_skew_ms: null, events_checked: null, checkpoint_age_s: null };
  const checks: PreflightCheck[] = [];
  const database = await databaseCheck(deps.db);
  checks.push(database);
  let connection: Connection | null = null;
  if (database.status === 'fail') {
    checks.push(...PREFLIGHT_CHECKS.slice(1).map((name) => skipped(name, 'the database does not answer')));
  } else {
    const picked = await pickConnection(deps);
    connection = picked.connection;
    checks.push(picked.check);
    if (connection === null) checks.push(...(['token', 'permissions', 'graph', 'devices', 'clock'] as const).map((name) => skipped(name, 'no connection')));
    else checks.push(...(await graphChecks(deps, connection, facts)));
    checks.push(...(await chronicleChecks(deps, facts)));
  }
  const firstProblem = checks.find((c) => c.status === 'fail') ?? checks.find((c) => c.status === 'warn') ?? null;
  return {
    ok: !checks.some((c) => c.status === 'fail'),
    tenant: deps.tenant,
    connection_id: connection?.id ?? deps.connectionId ?? null,
    checked_at: new Date(now()).toISOString(),
    first_problem: firstProblem,
    checks,
    facts,
  };
}
