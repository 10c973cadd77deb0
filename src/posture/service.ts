/**
 * The posture service: composes the store, the run pipeline, the scheduler, the per-tenant Graph
 * client cache (graph-clients.ts), audited connection changes (connections.ts) and the start-up
 * connection (bootstrap.ts) behind PostureService. Everything is scoped by tenant: another
 * tenant's ids behave exactly like unknown ids.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import type { Actor, ChronicleWriter } from '../chronicle/types.js';
import type { Config } from '../config/index.js';
import type { GraphClient } from '../connector/graph/types.js';
import type { GraphBudget } from '../connector/graph/budget.js';
import type { Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import { createBootstrap } from './bootstrap.js';
import { createConnectionChanges } from './connections.js';
import { PostureInputError, PostureNotFoundError, SyncInProgressError } from './errors.js';
import { createGraphClientCache, createGraphClientFactory, type DemoHostsSlot } from './graph-clients.js';
import { createScheduler, jitteredIntervalMs } from './scheduler.js';
import * as snapshots from './snapshots.js';
import type { SnapshotChanges, SnapshotDiff, SyncedDevices } from './snapshots.js';
import * as store from './store.js';
import { executeRun, recordCompletion, SyncFailure, type RunContext } from './sync.js';
import { SYNC_TRIGGERS, type Connection, type ConnectionInput, type ConnectionPatch, type PostureService, type SecretProvider, type StartSyncOptions, type SyncRunSummary } from './types.js';
import { assertTenant, parseDeviceQuery } from './validation.js';
import { isGuid } from '../common/ids.js';
import { defined } from '../common/values.js';

export interface PostureServiceOptions {
  /** How long a run's lease lasts without renewal (default 60 s); renewed every third of it. */
  readonly leaseTtlMs?: number;
  /** Graph page size, 1..1000 (default 1000). */
  readonly pageSize?: number;
  /** Graph requests one sync run may start per 20 s (default 1000: half of Intune's per-app budget, the rest for live lookups). */
  readonly syncRequestsPer20s?: number;
  /** Identifies this replica in leases (default host:pid:random). */
  readonly holderId?: string;
  /** Jitter source for the scheduler, [0, 1) (default Math.random). */
  readonly random?: () => number;
  /** Longest sleep between scheduler ticks (default 30 s): how soon other replicas' new connections are seen. */
  readonly schedulerMaxSleepMs?: number;
}

export interface PostureServiceDeps {
  readonly db: Db;
  readonly chronicle: ChronicleWriter;
  readonly logger: Logger;
  readonly secrets: SecretProvider;
  /** Graph settings (cloud hosts, CA file, timeouts) and the sync interval. */
  readonly config: Config;
  readonly fingerprintKeyFor: (tenant: string) => Buffer;
  /**
   * Builds the Graph client of a connection from its resolved secret. Default: createGraphClient
   * with the connection's cloud and config.graph (custom: the configured hosts; demo: the simulator's).
   */
  readonly graphClientFor?: (connection: Connection, secret: string) => GraphClient;
  readonly now?: () => number;
  readonly options?: PostureServiceOptions;
  /**
   * Called when a connection's current snapshot or status changed (a run succeeded, an update):
   * asset identity re-matches what changed. After a run, `changes` lists the records it changed
   * (absent when they were too many, or after an update). A run's `done` settles after it; its
   * failure is logged, never the run's.
   */
  readonly onSnapshotChanged?: (tenant: string, connectionId: string, changes?: SnapshotChanges) => Promise<unknown>;
  /** Intune's per-app Graph budget every client keeps to (shared by replicas with REDIS_URL). */
  readonly graphBudget?: GraphBudget;
  /**
   * After a run succeeded: the devices its snapshot changed (or all of them), so the connector
   * forgets those cached answers, on every replica.
   */
  readonly onSynced?: (tenant: string, changed: SyncedDevices) => Promise<void>;
}

const SCHEDULER_ACTOR: Actor = { kind: 'system', id: 'scheduler' };
const LEASE_EXPIRY_ACTOR: Actor = { kind: 'system', id: 'lease-expiry' };
const CLOSED_MESSAGE = 'the posture service is closed';

/** What starting a run needs beyond its arguments. */
interface RunStarter {
  readonly runContext: RunContext;
  /** Identifies this replica in leases. */
  readonly holder: string;
  readonly intervalMs: number;
  readonly random: () => number;
  readonly onSnapshotChanged: ((tenant: string, connectionId: string, changes?: SnapshotChanges) => Promise<unknown>) | undefined;
  /** Runs of this process, for close(). */
  readonly activeRuns: Map<string, { abort: AbortController; done: Promise<SyncRunSummary> }>;
  readonly onSynced: ((tenant: string, changed: SyncedDevices) => Promise<void>) | undefined;
}

/** Takes the connection's lease, records runs whose lease expired, and starts the run in the background. */
async function startRun(
  starter: RunStarter,
  tenant: string,
  connectionId: string,
  actor: Actor,
  startOptions: StartSyncOptions,
): Promise<{ run: SyncRunSummary; done: Promise<SyncRunSummary> }> {
  const { runContext, holder, intervalMs, random, activeRuns, onSnapshotChanged } = starter;
  const { db, logger, now, leaseTtlMs } = runContext;
  const trigger = startOptions.trigger ?? 'manual';
  if (!(SYNC_TRIGGERS as readonly string[]).includes(trigger)) {
    throw new PostureInputError('invalid_field', 'trigger', `trigger must be one of ${SYNC_TRIGGERS.join(', ')}`);
  }
  if (!isGuid(connectionId)) throw new PostureNotFoundError('connection_not_found', `no connection ${String(connectionId).slice(0, 64)} in this tenant`);
  const startedMs = now();
  let acquired: store.AcquiredRun;
  try {
    acquired = await store.acquireRun(db, {
      tenant,
      connectionId: connectionId.toLowerCase(),
      runId: crypto.randomUUID(),
      holder,
      trigger,
      startedAt: new Date(startedMs).toISOString(),
      leaseTtlMs,
      nextSyncAt: intervalMs > 0 ? new Date(startedMs + jitteredIntervalMs(intervalMs, random)).toISOString() : null,
    });
  } catch (err) {
    // The one-running-run index is the backstop should two acquisitions ever interleave.
    if ((err as { code?: unknown }).code === '23505') {
      const running = (await store.listRuns(db, tenant, connectionId.toLowerCase(), 1)).find((r) => r.status === 'running');
      throw new SyncInProgressError(running?.id ?? 'unknown', connectionId);
    }
    throw err;
  }
  for (const abandoned of acquired.abandoned) await recordCompletion(runContext, tenant, LEASE_EXPIRY_ACTOR, abandoned);

  const abort = new AbortController();
  let changed: SnapshotDiff = { synced: { all: true }, records: null };
  const done = executeRun(runContext, {
    connection: acquired.connection,
    run: acquired.run,
    actor,
    abort,
    ...defined({ onProgress: startOptions.onProgress }),
    onSucceeded: (devices) => {
      changed = devices;
    },
  })
    .then(async (summary) => {
      if (summary.status === 'succeeded') {
        await starter.onSynced?.(tenant, changed.synced).catch((err: unknown) => logger.warn({ err, run_id: acquired.run.id }, 'could not drop cached compliance answers after the sync'));
      }
      return summary;
    })
    .catch((err: unknown): SyncRunSummary => {
      logger.error({ err, run_id: acquired.run.id }, 'sync run ended with an unexpected error');
      return { ...acquired.run, status: 'failed', error_code: 'internal_error', error_message: 'the run failed unexpectedly' };
    })
    .then(async (summary) => {
      if (summary.status === 'succeeded' && onSnapshotChanged !== undefined) {
        await onSnapshotChanged(tenant, acquired.run.connection_id, changed.records ?? undefined).catch((err: unknown) => logger.warn({ err, run_id: acquired.run.id }, 'could not re-match assets after the sync'));
      }
      return summary;
    })
    .finally(() => activeRuns.delete(acquired.run.id));
  activeRuns.set(acquired.run.id, { abort, done });
  return { run: acquired.run, done };
}

export function createPostureService(deps: PostureServiceDeps): PostureService {
  const { db, chronicle, secrets, config } = deps;
  const logger = deps.logger.child({ component: 'posture' });
  const now = deps.now ?? Date.now;
  const options = deps.options ?? {};
  const leaseTtlMs = options.leaseTtlMs ?? 60_000;
  const pageSize = Math.min(1000, Math.max(1, options.pageSize ?? 1000));
  const holder = options.holderId ?? `${os.hostname()}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;
  const random = options.random ?? Math.random;
  const intervalMs = config.sync.intervalMs;

  const demo: DemoHostsSlot = { hosts: undefined };
  /** Runs of this process, for close(). */
  const activeRuns = new Map<string, { abort: AbortController; done: Promise<SyncRunSummary> }>();
  let closed = false;

  const clientFor = createGraphClientFactory({ config, logger: deps.logger, demo, graphClientFor: deps.graphClientFor, budget: deps.graphBudget });
  const runContext: RunContext = { db, chronicle, logger, secrets, fingerprintKeyFor: deps.fingerprintKeyFor, now, leaseTtlMs, pageSize, concurrency: config.sync.concurrency, requestsPer20s: Math.max(1, options.syncRequestsPer20s ?? 1000), clientFor };
  const runs: RunStarter = { runContext, holder, intervalMs, random, activeRuns, onSnapshotChanged: deps.onSnapshotChanged, onSynced: deps.onSynced };
  /** One client per tenant, for the connector's live reads. */
  const clients = createGraphClientCache({ db, secrets, logger, demo, clientFor });
  const connections = createConnectionChanges({ db, chronicle, logger, secrets, config, now, afterChange: clients.refresh });
  const bootstrapFromConfig = createBootstrap({ db, secrets, connections, demo, afterChange: clients.refresh });

  const scheduler = createScheduler({
    db,
    logger,
    now,
    random,
    intervalMs,
    maxSleepMs: options.schedulerMaxSleepMs ?? 30_000,
    beforeTick: clients.refresh,
    startRun: async ({ id, tenant }) => {
      try {
        await service.startSync(tenant, id, SCHEDULER_ACTOR, { trigger: 'scheduled' });
      } catch (err) {
        if (err instanceof SyncInProgressError) logger.debug({ connection_id: id }, 'scheduled sync skipped: a run is in progress');
        else if (err instanceof PostureInputError || err instanceof PostureNotFoundError) logger.debug({ connection_id: id, code: err.code }, 'scheduled sync skipped');
        else throw err;
      }
    },
  });

  const service: PostureService = {
    async listConnections(tenant) {
      assertTenant(tenant);
      return store.listConnections(db, tenant);
    },

    async getConnection(tenant, id) {
      assertTenant(tenant);
      if (!isGuid(id)) return null;
      const [connection] = await store.listConnections(db, tenant, id.toLowerCase());
      return connection ?? null;
    },

    async createConnection(tenant, rawInput: ConnectionInput, actor) {
      assertTenant(tenant);
      return connections.create(tenant, rawInput, actor);
    },

    async updateConnection(tenant, id, rawPatch: ConnectionPatch, actor) {
      assertTenant(tenant);
      const updated = await connections.update(tenant, id, rawPatch, actor);
      if (updated !== null && rawPatch.status !== undefined && deps.onSnapshotChanged !== undefined) {
        // Disabling a connection takes its records out of the assets; enabling brings them back.
        await deps.onSnapshotChanged(tenant, updated.id).catch((err: unknown) => logger.warn({ err, connection_id: updated.id }, 'could not re-match assets after the change'));
      }
      return updated;
    },

    async startSync(tenant, connectionId, actor, startOptions = {}) {
      assertTenant(tenant);
      if (closed) throw new Error(CLOSED_MESSAGE);
      return startRun(runs, tenant, connectionId, actor, startOptions);
    },

    async getRun(tenant, runId) {
      assertTenant(tenant);
      return isGuid(runId) ? store.getRun(db, tenant, runId.toLowerCase()) : null;
    },

    async listRuns(tenant, connectionId, limit = 20) {
      assertTenant(tenant);
      if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new PostureInputError('invalid_field', 'limit', 'limit must be a whole number from 1 to 200');
      return isGuid(connectionId) ? store.listRuns(db, tenant, connectionId.toLowerCase(), limit) : [];
    },

    async listDevices(tenant, query = {}) {
      assertTenant(tenant);
      return snapshots.listDevices(db, tenant, parseDeviceQuery(query));
    },

    async getDevice(tenant, deviceId) {
      assertTenant(tenant);
      return isGuid(deviceId) ? snapshots.getDevice(db, tenant, deviceId.toLowerCase()) : null;
    },

    async summary(tenant) {
      assertTenant(tenant);
      const [connections, totals, lastRun] = await Promise.all([
        store.listConnections(db, tenant),
        snapshots.currentTotals(db, tenant),
        store.lastRunOfTenant(db, tenant),
      ]);
      return {
        connections,
        devices: totals.devices,
        counts_by_compliance_state: totals.byComplianceState,
        counts_by_os_family: totals.byOsFamily,
        last_run: lastRun,
      };
    },

    graphFor(tenant) {
      return clients.get(tenant);
    },

    async withConnectionClient(tenant, id, fn) {
      const [row] = await store.connectionRows(db, tenant, id);
      const [connection] = await store.listConnections(db, tenant, id);
      if (row === undefined || connection === undefined) return null;
      const secret = await secrets.resolve(row.secret_ref, 'intune', { tenant });
      const client = clientFor(row, secret);
      try {
        return await fn(client, connection);
      } finally {
        await client.close().catch(() => undefined);
      }
    },

    bootstrapFromConfig,

    startScheduler() {
      if (closed) throw new Error(CLOSED_MESSAGE);
      if (intervalMs <= 0) {
        logger.info('scheduled sync is off (INTUNE_SYNC_INTERVAL=0)');
        return;
      }
      scheduler.start();
    },

    stopScheduler() {
      return scheduler.stop();
    },

    async close() {
      if (closed) return;
      closed = true;
      await scheduler.stop();
      const runs = [...activeRuns.values()];
      for (const { abort } of runs) {
        abort.abort(new SyncFailure('cancelled', 'the service shut down during the run; the previous snapshot stays current'));
      }
      await Promise.all(runs.map((r) => r.done));
      await clients.close();
    },
  };
  return service;
}
