/**
 * One sync run: resolve the connection's secret, stream every managed device page by page through
 * redactDevice into rows under the run's snapshot id, then flip the connection to the new snapshot
 * in one transaction. Any failure (or a lost lease, or shutdown) leaves the previous snapshot
 * current and the run failed with a code and a safe sentence. Either way sync_completed goes to
 * Chronicle with counts and ids only; a succeeded run's event commits in the completion's own
 * transaction, so a run never reads succeeded without it.
 */
import { ConfigError } from '../config/index.js';
import { ChronicleError, type Actor, type AppendInput, type ChronicleWriter } from '../chronicle/types.js';
import { GraphError } from '../connector/graph/errors.js';
import type { DevicePage, GraphClient, ManagedDevice } from '../connector/graph/types.js';
import { POSTURE_SOURCE_PROPERTIES, invalidAzureADDeviceIdOf, redactDevice } from '../connector/redaction.js';
import { POSTURE_CHANGE_EVENT_CAP, postureChangeEvents } from './posture-events.js';
import { DbError, type Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import { SecretRefError } from './errors.js';
import { pickPosture, type ConnectionRow } from './rows.js';
import { createPacer, planRanges, readPartitioned, snapshotBoundaries, type Listing, type SyncPlan } from './partitions.js';
import { PageSink, type PageRows } from './page-rows.js';
import { insertPage, postureChanges, pruneSnapshots, snapshotCounts, snapshotDiff, type SnapshotDiff } from './snapshots.js';
import { completeRun, failRun, renewLease } from './store.js';
import type { SecretProvider, SyncProgress, SyncRunSummary } from './types.js';

/** A failure with a code for the run record (`^[a-z_]{1,64}$`) and a sentence safe to show an administrator. */
export class SyncFailure extends Error {
  override readonly name = 'SyncFailure';
  constructor(
    readonly code: string,
    message: string,
    /** The connection itself needs an administrator (credentials, permissions): its status becomes error. */
    readonly connectionError = false,
  ) {
    super(message);
  }
}

export interface RunContext {
  readonly db: Db;
  readonly chronicle: ChronicleWriter;
  readonly logger: Logger;
  readonly secrets: SecretProvider;
  readonly fingerprintKeyFor: (tenant: string) => Buffer;
  readonly now: () => number;
  readonly leaseTtlMs: number;
  readonly pageSize: number;
  /** Graph list requests a run keeps in flight (1: sequential paging only). */
  readonly concurrency: number;
  /** The run's share of Intune's per-app budget of 2000 requests / 20 s. */
  readonly requestsPer20s: number;
  /** A client for this run; closed when the run ends. May throw SyncFailure (e.g. demo tenant not served here). */
  readonly clientFor: (connection: ConnectionRow, secret: string) => GraphClient;
}

export interface RunArgs {
  readonly connection: ConnectionRow;
  readonly run: SyncRunSummary;
  readonly actor: Actor;
  /** Aborted by close() (reason: a SyncFailure 'cancelled') or by a lost lease. */
  readonly abort: AbortController;
  readonly onProgress?: (progress: SyncProgress) => void;
  /** Once the run's snapshot is current: which devices it changed, for the compliance cache and asset identity. */
  readonly onSucceeded?: (changed: SnapshotDiff) => void;
}

const GRAPH_FAILURES: Readonly<Record<GraphError['kind'], { code: string; connectionError: boolean }>> = {
  auth_failed: { code: 'auth_failed', connectionError: true },
  unauthorized: { code: 'auth_failed', connectionError: true },
  forbidden: { code: 'graph_forbidden', connectionError: true },
  throttled: { code: 'graph_throttled', connectionError: false },
  unavailable: { code: 'graph_unavailable', connectionError: false },
  network: { code: 'graph_unavailable', connectionError: false },
  timeout: { code: 'graph_timeout', connectionError: false },
  malformed_response: { code: 'graph_malformed_response', connectionError: false },
  foreign_next_link: { code: 'graph_foreign_next_link', connectionError: false },
  bad_request: { code: 'graph_error', connectionError: false },
  not_found: { code: 'graph_error', connectionError: false },
  aborted: { code: 'cancelled', connectionError: false },
};

function classify(err: unknown, signal: AbortSignal, runId: string, logger: Logger): SyncFailure {
  // Our own abort reasons (shutdown, lost lease) explain whatever the aborted call threw.
  if (signal.aborted && signal.reason instanceof SyncFailure) return signal.reason;
  if (err instanceof SyncFailure) return err;
  if (err instanceof SecretRefError) return new SyncFailure(err.code, err.message, true);
  if (err instanceof GraphError) {
    const { code, connectionError } = GRAPH_FAILURES[err.kind] ?? { code: 'graph_error', connectionError: false };
    return new SyncFailure(code, err.message, connectionError);
  }
  if (err instanceof ConfigError) return new SyncFailure('invalid_connection', err.problems.join('; '), true);
  if (err instanceof ChronicleError) {
    return new SyncFailure('audit_unavailable', 'the audit trail could not record the completion, so the run did not complete; the previous snapshot stays current');
  }
  if (err instanceof DbError) {
    logger.warn({ err, runId }, 'the database failed during the sync run');
    return new SyncFailure('storage_unavailable', 'the database could not be reached during the run; the previous snapshot stays current');
  }
  logger.error({ err, runId }, 'sync run failed unexpectedly');
  return new SyncFailure('internal_error', `the run failed unexpectedly; the server log has the details (run ${runId})`);
}

/** Check-ins stamped up to this long before the plan still land in the open range: room for Intune's clock and ours to differ. */
const CLOCK_SKEW_MARGIN_MS = 5 * 60_000;
/** Splits a partitioned read may make (at least; more for a large tenant) before it falls back to sequential paging. */
const MIN_SPLITS = 64;

/**
 * The lastSyncDateTime ranges of this run, or undefined for sequential paging: concurrency 1, no
 * previous snapshot (the first sync), or one too small for ranges to pay.
 */
async function planFor(ctx: RunContext, connection: ConnectionRow): Promise<SyncPlan | undefined> {
  if (ctx.concurrency <= 1 || connection.current_snapshot_id === null) return undefined;
  // Ranges of 80% of a page leave room for devices enrolled since the previous snapshot.
  const perRange = Math.max(1, Math.floor(ctx.pageSize * 0.8));
  const { devices, boundaries } = await snapshotBoundaries(ctx.db, connection.current_snapshot_id, perRange);
  if (devices < 2 * ctx.pageSize) return undefined;
  return planRanges(boundaries, ctx.now() - CLOCK_SKEW_MARGIN_MS);
}

/** A device as the snapshot keeps it: its redacted posture, as JSON, made while its page is still arriving. */
export function postureJson(device: ManagedDevice, key: Buffer): string {
  return JSON.stringify(pickPosture(redactDevice(device, key)));
}

/**
 * Pages of a listing through `write`, fetching page n+1 while page n is written: Graph and the
 * database work at the same time, and two pages' rows are in memory at most.
 */
async function consumePages(
  listing: Listing,
  sink: PageSink,
  signal: AbortSignal,
  write: (rows: PageRows) => Promise<void>,
): Promise<void> {
  const iterator = listing(sink)[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<DevicePage<void>>> | undefined = iterator.next();
  try {
    for (;;) {
      const result: IteratorResult<DevicePage<void>> = await pending;
      pending = undefined;
      if (result.done) break;
      if (signal.aborted) throw signal.reason;
      // The page's rows are ours before the next page starts arriving into the sink.
      const rows = sink.take();
      pending = iterator.next();
      // A failure of the prefetch is handled where it is awaited; until then it must not count as unhandled.
      pending.catch(() => undefined);
      try {
        await write(rows);
      } finally {
        sink.release(rows);
      }
    }
  } finally {
    if (pending !== undefined) {
      pending.catch(() => undefined);
      void iterator.return?.()?.catch(() => undefined);
    }
  }
  if (signal.aborted) throw signal.reason;
}

/** Keeps a message to one printable line and never lets the secret through, whatever produced the text. */
function safeMessage(message: string, secret: string | undefined): string {
  let text = message.replace(/[\p{Cc}]+/gu, ' ').trim();
  if (secret !== undefined && secret.length >= 4) text = text.split(secret).join('[redacted]');
  return text.length > 500 ? `${text.slice(0, 497)}...` : text;
}

export async function executeRun(ctx: RunContext, args: RunArgs): Promise<SyncRunSummary> {
  const { connection, run, abort } = args;
  const signal = abort.signal;
  const startedMs = Date.parse(run.started_at);
  const log = ctx.logger.child({ step: 'sync', connection_id: connection.id, run_id: run.id });
  let pages = 0;
  let devices = 0;
  // Intune ids (a set: the partitioned read may see a device twice) whose azureADDeviceId was not a GUID.
  const invalidAzureIds = new Set<string>();
  let strategy = 'sequential';
  let client: GraphClient | undefined;
  let secret: string | undefined;

  // Renewal keeps the lease ours while we work; if it is gone, another replica may be syncing: stop.
  const renewEveryMs = Math.max(50, Math.floor(ctx.leaseTtlMs / 3));
  const renewTimer = setInterval(() => {
    renewLease(ctx.db, connection.id, run.id, ctx.leaseTtlMs).then(
      (held) => {
        if (!held && !signal.aborted) abort.abort(new SyncFailure('lease_lost', 'the run lost its lease (it could not renew it in time) and stopped; the previous snapshot stays current'));
      },
      (err: unknown) => log.warn({ err }, 'could not renew the sync lease; retrying'),
    );
  }, renewEveryMs);
  renewTimer.unref?.();

  const totals = () => {
    const stats = client?.stats();
    const finishedMs = Math.max(ctx.now(), startedMs);
    return {
      finishedAt: new Date(finishedMs).toISOString(),
      durationMs: finishedMs - startedMs,
      devices,
      pages,
      graphRequests: stats?.requests ?? 0,
      throttledWaits: stats?.throttledWaits ?? 0,
    };
  };

  let summary: SyncRunSummary;
  // Set once sync_completed committed with the completion itself.
  let recorded = false;
  try {
    secret = await ctx.secrets.resolve(connection.secret_ref, 'intune', { tenant: connection.tenant });
    client = ctx.clientFor(connection, secret);
    const key = ctx.fingerprintKeyFor(connection.tenant);
    const snapshot = { snapshotId: run.id, connectionId: connection.id, tenant: connection.tenant };
    const graph = client;
    const sink = (): PageSink =>
      new PageSink((device) => {
        if (invalidAzureADDeviceIdOf(device)) invalidAzureIds.add(String(device.id));
        return postureJson(device, key);
      });
    const write = async (rows: PageRows): Promise<void> => {
      devices += await insertPage(ctx.db, snapshot, rows.bytes());
      pages += 1;
      try {
        args.onProgress?.({ devices, pages });
      } catch (err) {
        log.debug({ err }, 'progress callback threw; ignored');
      }
    };
    const pagesFrom = (listing: Listing) => consumePages(listing, sink(), signal, write);
    const sequential: Listing = (into) =>
      graph.listDevices({ top: ctx.pageSize, select: POSTURE_SOURCE_PROPERTIES, signal, mapDevice: into.mapDevice, onPageStart: into.onPageStart });

    const plan = await planFor(ctx, connection);
    if (plan !== undefined) {
      const outcome = await readPartitioned({
        client: graph,
        plan,
        top: ctx.pageSize,
        select: POSTURE_SOURCE_PROPERTIES,
        concurrency: ctx.concurrency,
        signal,
        maxSplits: Math.max(MIN_SPLITS, plan.closed.length),
        pace: createPacer(ctx.requestsPer20s, 20_000),
        sink,
        write,
        consume: pagesFrom,
      });
      strategy = outcome.complete ? 'partitioned' : `sequential_after_${outcome.reason}`;
      log.info({ strategy, ranges: outcome.ranges, splits: outcome.splits }, outcome.complete ? 'partitioned read complete' : 'partitioned read abandoned; reading the tenant by sequential paging');
      if (!outcome.complete) await pagesFrom(sequential);
    } else {
      await pagesFrom(sequential);
    }
    if (signal.aborted) throw signal.reason;
    const counts = await snapshotCounts(ctx.db, run.id);
    devices = counts.devices;
    if (invalidAzureIds.size > 0) log.warn({ devices: invalidAzureIds.size }, 'devices with an azureADDeviceId that is not a GUID: stored without one');
    // Changes since the previous snapshot, read before the flip (the old rows are pruned after it).
    const changed =
      connection.current_snapshot_id === null ? undefined : await postureChanges(ctx.db, connection.current_snapshot_id, run.id, POSTURE_CHANGE_EVENT_CAP);
    const synced: SnapshotDiff =
      connection.current_snapshot_id === null ? { synced: { all: true }, records: null } : await snapshotDiff(ctx.db, connection.current_snapshot_id, run.id);
    // sync_completed commits with the completion itself when Chronicle shares this database.
    const within = ctx.chronicle.appendWithin?.bind(ctx.chronicle);
    const completed = await completeRun(
      ctx.db,
      connection.id,
      run.id,
      {
        ...totals(),
        countsByComplianceState: counts.byComplianceState,
        countsByOsFamily: counts.byOsFamily,
      },
      within !== undefined
        ? async (tx, finished) => {
            await within(tx, completionEvent(connection.tenant, args.actor, finished, invalidAzureIds.size));
            recorded = true;
          }
        : undefined,
    );
    if (completed === null) {
      throw new SyncFailure('lease_lost', 'the run lost its lease before it could make its snapshot current; the previous snapshot stays current');
    }
    summary = completed;
    try {
      args.onSucceeded?.(synced);
    } catch (err) {
      log.debug({ err }, 'onSucceeded callback threw; ignored');
    }
    if (changed !== undefined) await recordPostureChanges(ctx, connection, run.id, args.actor, changed);
  } catch (err) {
    const failure = classify(err, signal, run.id, log);
    const message = safeMessage(failure.message, secret);
    try {
      summary = await failRun(ctx.db, connection.id, run.id, { code: failure.code, message, connectionError: failure.connectionError }, totals());
    } catch (recordErr) {
      // The database is gone: the row stays 'running' until its lease expires and the next run marks it abandoned.
      log.error({ err: recordErr }, 'could not record the failed sync run');
      summary = { ...run, status: 'failed', ...finishedFields(totals()), error_code: failure.code, error_message: message };
    }
  } finally {
    clearInterval(renewTimer);
    await (client as { close?: () => Promise<void> } | undefined)?.close?.().catch(() => undefined);
  }

  try {
    await pruneSnapshots(ctx.db, connection.id);
  } catch (err) {
    log.warn({ err }, 'could not delete superseded snapshot rows; the next run will');
  }
  if (!recorded) await recordCompletion(ctx, connection.tenant, args.actor, summary, invalidAzureIds.size);
  log.info(
    { status: summary.status, strategy, devices: summary.devices, pages: summary.pages, duration_ms: summary.duration_ms, error_code: summary.error_code },
    'sync run finished',
  );
  return summary;
}

function finishedFields(t: { finishedAt: string; durationMs: number; devices: number; pages: number; graphRequests: number; throttledWaits: number }) {
  return {
    finished_at: t.finishedAt,
    duration_ms: t.durationMs,
    devices: t.devices,
    pages: t.pages,
    graph_requests: t.graphRequests,
    throttled_waits: t.throttledWaits,
  };
}

/** device_posture_changed events of a succeeded run; a Chronicle failure is logged, the snapshot stands. */
async function recordPostureChanges(
  ctx: Pick<RunContext, 'chronicle' | 'logger'>,
  connection: ConnectionRow,
  runId: string,
  actor: Actor,
  changed: Awaited<ReturnType<typeof postureChanges>>,
): Promise<void> {
  try {
    for (const event of postureChangeEvents(connection.tenant, actor, { connectionId: connection.id, runId }, changed.changes, changed.total)) {
      await ctx.chronicle.append(event);
    }
  } catch (err) {
    ctx.logger.error({ err, run_id: runId }, 'could not record device_posture_changed in Chronicle');
  }
}

/** The sync_completed event of a finished run: counts and ids only. */
function completionEvent(tenant: string, actor: Actor, run: SyncRunSummary, invalidAzureADDeviceIds = 0): AppendInput {
  return {
    tenant,
    type: 'integration.intune.sync_completed',
    actor,
    data: {
      connection_id: run.connection_id,
      run_id: run.id,
      status: run.status,
      started_at: run.started_at,
      finished_at: run.finished_at ?? run.started_at,
      duration_ms: run.duration_ms ?? 0,
      devices: run.devices,
      pages: run.pages,
      graph_requests: run.graph_requests,
      throttled_waits: run.throttled_waits,
      counts_by_compliance_state: run.counts_by_compliance_state,
      counts_by_os_family: run.counts_by_os_family,
      invalid_azure_ad_device_ids: invalidAzureADDeviceIds,
      error_code: run.error_code,
    },
  };
}

/**
 * sync_completed of a failed or abandoned run (a succeeded run records it in its completion
 * transaction). A Chronicle failure is logged; the failed run record stands.
 */
export async function recordCompletion(
  ctx: Pick<RunContext, 'chronicle' | 'logger'>,
  tenant: string,
  actor: Actor,
  run: SyncRunSummary,
  invalidAzureADDeviceIds = 0,
): Promise<void> {
  if (run.status === 'running') return;
  try {
    await ctx.chronicle.append(completionEvent(tenant, actor, run, invalidAzureADDeviceIds));
  } catch (err) {
    ctx.logger.error({ err, run_id: run.id }, 'could not record sync_completed in Chronicle');
  }
}
