/**
 * The posture service: composes the store, the run pipeline, the scheduler and the per-tenant
 * Graph client cache behind PostureService. Everything is scoped by tenant: another tenant's ids
 * behave exactly like unknown ids.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Actor, ChronicleWriter, EventType } from '../chronicle/types.js';
import { CLOUD_ENDPOINTS, ConfigError, type Config } from '../config/index.js';
import { splitCertificateFile } from '../connector/graph/auth.js';
import { createGraphClient } from '../connector/graph/index.js';
import type { GraphClient } from '../connector/graph/types.js';
import type { Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import type { SimulatorHandle } from '../simulator/types.js';
import { PostureInputError, PostureNotFoundError, SecretRefError, SyncInProgressError } from './errors.js';
import { connectionFromRow, iso, type ConnectionRow } from './rows.js';
import { createScheduler, jitteredIntervalMs } from './scheduler.js';
import { BOOTSTRAP_TENANT, DEMO_SECRET_REF, parseSecretRef } from './secrets.js';
import * as snapshots from './snapshots.js';
import * as store from './store.js';
import { executeRun, recordCompletion, SyncFailure, type RunContext } from './sync.js';
import { SYNC_TRIGGERS, type Connection, type ConnectionInput, type ConnectionPatch, type PostureService, type SecretProvider, type SyncRunSummary } from './types.js';
import { assertTenant, isGuid, parseConnectionInput, parseConnectionPatch, parseDeviceQuery } from './validation.js';

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
}

const BOOTSTRAP_ACTOR: Actor = { kind: 'system', id: 'bootstrap' };
const SCHEDULER_ACTOR: Actor = { kind: 'system', id: 'scheduler' };
const LEASE_EXPIRY_ACTOR: Actor = { kind: 'system', id: 'lease-expiry' };
const DEMO_DISPLAY_NAME = 'Demo tenant (simulated devices, not a real Intune tenant)';
const DEMO_DISABLED_REASON = 'real Entra credentials are configured (ENTRA_*); the simulated demo tenant is off';
const CLOSED_MESSAGE = 'the posture service is closed';

type Closable = GraphClient & { close?: () => Promise<void> };
const closeClient = (client: GraphClient | undefined) => (client as Closable | undefined)?.close?.().catch(() => undefined);

function auditData(values: store.ConnectionValues & { id: string }, changed?: readonly string[]): Record<string, unknown> {
  return {
    connection_id: values.id,
    entra_tenant_id: values.entra_tenant_id,
    client_id: values.client_id,
    cloud: values.cloud,
    secret_ref: values.secret_ref,
    status: values.status,
    ...(changed !== undefined ? { changed_fields: changed } : {}),
  };
}

function valuesOf(row: ConnectionRow): store.ConnectionValues {
  return {
    display_name: row.display_name,
    entra_tenant_id: row.entra_tenant_id,
    client_id: row.client_id,
    cloud: row.cloud,
    secret_ref: row.secret_ref,
    status: row.status,
    status_reason: row.status_reason,
  };
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

  /** The simulator serving the demo connection in this process (there is at most one demo connection). */
  let demoHosts: Pick<SimulatorHandle, 'loginUrl' | 'graphUrl' | 'caFile'> | undefined;
  /** Runs of this process, for close(). */
  const activeRuns = new Map<string, { abort: AbortController; done: Promise<SyncRunSummary> }>();
  /** graphFor's cache: tenant → the client of its chosen connection, keyed by that connection's version. */
  const clients = new Map<string, { version: string; client: GraphClient }>();
  let closed = false;

  const graphSettingsFor = (row: ConnectionRow): Config['graph'] => {
    if (row.origin === 'demo') {
      const sim = demoHosts;
      if (sim === undefined) {
        throw new SyncFailure(
          'demo_unavailable',
          'the demo tenant is served by the simulator built into serve and sync; no simulator runs in this process',
        );
      }
      return { cloud: 'custom', loginUrl: sim.loginUrl, graphUrl: sim.graphUrl, caFile: sim.caFile, timeoutMs: config.graph.timeoutMs, maxRetries: config.graph.maxRetries };
    }
    if (row.cloud === 'custom') {
      if (config.graph.cloud !== 'custom') {
        throw new SyncFailure('cloud_not_configured', 'the connection uses cloud custom, but this process has no INTUNE_CLOUD=custom hosts configured', true);
      }
      return config.graph;
    }
    return { ...config.graph, cloud: row.cloud, ...CLOUD_ENDPOINTS[row.cloud] };
  };

  const clientFor = (row: ConnectionRow, secret: string): GraphClient => {
    if (deps.graphClientFor !== undefined) return deps.graphClientFor(connectionFromRow(row, null), secret);
    return createGraphClient({
      tenantId: row.entra_tenant_id,
      clientId: row.client_id,
      // A file: reference may hold a certificate and its key (client-assertion auth) instead of a secret.
      credential: secret.includes('-----BEGIN') ? splitCertificateFile(secret) : { clientSecret: secret },
      graph: graphSettingsFor(row),
      logger: deps.logger,
    });
  };

  const runContext: RunContext = {
    db,
    chronicle,
    logger,
    secrets,
    fingerprintKeyFor: deps.fingerprintKeyFor,
    now,
    leaseTtlMs,
    pageSize,
    concurrency: config.sync.concurrency,
    requestsPer20s: Math.max(1, options.syncRequestsPer20s ?? 1000),
    clientFor,
  };

  // --- graphFor: one client per tenant, for the connector's live reads --------------------------

  const refreshOnce = async (): Promise<void> => {
    let rows: ConnectionRow[];
    try {
      rows = await store.enabledConnectionRows(db);
    } catch (err) {
      logger.warn({ err }, 'could not refresh Graph clients');
      return;
    }
    // Per tenant: the oldest enabled real connection, else the demo one (rows come in that order).
    const chosen = new Map<string, ConnectionRow>();
    for (const row of rows) if (!chosen.has(row.tenant)) chosen.set(row.tenant, row);
    for (const [tenant, cached] of clients) {
      if (!chosen.has(tenant)) {
        clients.delete(tenant);
        void closeClient(cached.client);
      }
    }
    for (const [tenant, row] of chosen) {
      const cached = clients.get(tenant);
      try {
        // The secret is part of the version (as a digest, in memory only): a rotated secret file gets a new client.
        const secret = await secrets.resolve(row.secret_ref, 'intune', { tenant });
        const digest = crypto.createHash('sha256').update(secret).digest('base64url');
        const version = `${row.id}|${iso(row.updated_at)}|${row.origin === 'demo' ? (demoHosts?.graphUrl ?? '') : ''}|${digest}`;
        if (cached?.version === version) continue;
        clients.set(tenant, { version, client: clientFor(row, secret) });
      } catch (err) {
        clients.delete(tenant);
        logger.warn({ tenant, connection_id: row.id, code: (err as { code?: unknown }).code ?? 'error' }, 'no Graph client for this tenant: its connection cannot be used yet');
      }
      if (cached !== undefined) void closeClient(cached.client);
    }
  };
  let refreshChain: Promise<void> = Promise.resolve();
  const refreshClients = (): Promise<void> => (refreshChain = refreshChain.then(refreshOnce));

  // --- connections ------------------------------------------------------------------------------

  const checkCloud = (cloud: string) => {
    if (cloud === 'custom' && config.graph.cloud !== 'custom') {
      throw new PostureInputError(
        'cloud_not_configured',
        'cloud',
        'cloud custom uses the hosts the operator configured with INTUNE_CLOUD=custom, and none are configured: pick public, usgov, usgov-dod or china',
      );
    }
  };

  /** Normalises the reference and proves it resolves for purpose intune in this tenant. */
  const checkSecretRef = async (tenant: string, ref: string): Promise<string> => {
    try {
      const normalised = parseSecretRef(ref).ref;
      await secrets.resolve(normalised, 'intune', { tenant });
      return normalised;
    } catch (err) {
      if (err instanceof SecretRefError) throw new PostureInputError(err.code, 'secret_ref', err.message);
      throw err;
    }
  };

  const audit = (type: EventType, tenant: string, actor: Actor, values: store.ConnectionValues & { id: string }, changed?: readonly string[]) =>
    chronicle.append({ tenant, type, actor, data: auditData(values, changed) });

  const readConnection = async (tenant: string, id: string): Promise<Connection> => {
    const [connection] = await store.listConnections(db, tenant, id);
    if (connection === undefined) throw new PostureNotFoundError('connection_not_found', `no connection ${id} in this tenant`);
    return connection;
  };

  /** Inserts, then audits; if Chronicle refuses, the row is removed again: no unaudited connection stays. */
  const insertAudited = async (tenant: string, values: store.ConnectionValues, origin: 'api' | 'config' | 'demo', actor: Actor): Promise<string> => {
    const id = crypto.randomUUID();
    await store.insertConnection(db, { id, tenant, origin, at: new Date(now()).toISOString(), ...values });
    try {
      await audit('integration.intune.connection_created', tenant, actor, { id, ...values });
    } catch (err) {
      await store.deleteConnection(db, id).catch((deleteErr: unknown) => logger.error({ err: deleteErr, connection_id: id }, 'could not remove an unaudited connection'));
      throw err;
    }
    return id;
  };

  /**
   * Applies changes under the row lock, then audits them; if Chronicle refuses, the old values are
   * written back. Returns null for an unknown id.
   */
  const updateAudited = async (
    tenant: string,
    id: string,
    change: (current: ConnectionRow) => Promise<Partial<store.ConnectionValues>>,
    actor: Actor,
  ): Promise<Connection | null> => {
    const outcome = await db.transaction(async (tx) => {
      const current = await store.lockConnection(tx, tenant, id);
      if (current === undefined) return null;
      const before = valuesOf(current);
      const after: store.ConnectionValues = { ...before, ...(await change(current)) };
      if (after.status !== before.status && after.status_reason === before.status_reason) after.status_reason = null;
      const changed = store.EDITABLE_FIELDS.filter((f) => after[f] !== before[f]);
      if (changed.length > 0) await store.updateConnectionValues(tx, id, after, new Date(now()).toISOString());
      return { before, after, changed, updatedAt: current.updated_at };
    });
    if (outcome === null) return null;
    if (outcome.changed.length > 0) {
      try {
        await audit('integration.intune.connection_updated', tenant, actor, { id, ...outcome.after }, outcome.changed);
      } catch (err) {
        await store
          .updateConnectionValues(db, id, outcome.before, iso(outcome.updatedAt))
          .catch((revertErr: unknown) => logger.error({ err: revertErr, connection_id: id }, 'could not revert an unaudited connection change'));
        throw err;
      }
      await refreshClients();
    }
    return readConnection(tenant, id);
  };

  const upsertBootstrap = async (
    origin: 'config' | 'demo',
    desired: Pick<store.ConnectionValues, 'entra_tenant_id' | 'client_id' | 'cloud' | 'secret_ref'>,
    displayName: string,
  ): Promise<Connection> => {
    const tenant = BOOTSTRAP_TENANT;
    for (let attempt = 0; ; attempt++) {
      const existing = await store.bootstrapRow(db, tenant, origin);
      if (existing !== undefined) {
        const updated = await updateAudited(
          tenant,
          existing.id,
          async (current) => ({
            ...desired,
            // A demo tenant switched off because ENTRA_* were set comes back when they are unset.
            ...(origin === 'demo' && current.status === 'disabled' && current.status_reason === DEMO_DISABLED_REASON ? { status: 'active', status_reason: null } : {}),
          }),
          BOOTSTRAP_ACTOR,
        );
        if (updated !== null) return updated;
      } else {
        try {
          const id = await insertAudited(tenant, { ...desired, display_name: displayName, status: 'active', status_reason: null }, origin, BOOTSTRAP_ACTOR);
          return await readConnection(tenant, id);
        } catch (err) {
          // Another replica bootstrapped the same connection at the same moment: use theirs.
          if ((err as { code?: unknown }).code !== '23505' || attempt > 0) throw err;
        }
      }
    }
  };

  const scheduler = createScheduler({
    db,
    logger,
    now,
    random,
    intervalMs,
    maxSleepMs: options.schedulerMaxSleepMs ?? 30_000,
    beforeTick: refreshClients,
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
      const input = parseConnectionInput(rawInput);
      const cloud = input.cloud ?? 'public';
      checkCloud(cloud);
      const secretRef = await checkSecretRef(tenant, input.secret_ref);
      const duplicate = (await store.connectionRows(db, tenant)).find(
        (row) => row.status !== 'disabled' && row.entra_tenant_id.toLowerCase() === input.entra_tenant_id.toLowerCase() && row.client_id === input.client_id,
      );
      if (duplicate !== undefined) {
        throw new PostureInputError(
          'connection_exists',
          'client_id',
          `connection ${duplicate.id} already syncs this Entra tenant with this client id: update it, or disable it first`,
        );
      }
      const id = await insertAudited(
        tenant,
        { display_name: input.display_name, entra_tenant_id: input.entra_tenant_id, client_id: input.client_id, cloud, secret_ref: secretRef, status: input.status ?? 'active', status_reason: null },
        'api',
        actor,
      );
      await refreshClients();
      return readConnection(tenant, id);
    },

    async updateConnection(tenant, id, rawPatch: ConnectionPatch, actor) {
      assertTenant(tenant);
      const patch = parseConnectionPatch(rawPatch);
      if (!isGuid(id)) return null;
      return updateAudited(
        tenant,
        id.toLowerCase(),
        async (current) => {
          if (current.origin === 'demo') {
            const field = Object.keys(patch).find((k) => k !== 'display_name' && k !== 'status');
            if (field !== undefined) {
              throw new PostureInputError('demo_connection', field, 'the demo connection takes its credentials from the built-in simulator: only display_name and status can change');
            }
          }
          if (patch.cloud !== undefined && patch.cloud !== current.cloud) checkCloud(patch.cloud);
          const secretRef = patch.secret_ref === undefined ? undefined : await checkSecretRef(tenant, patch.secret_ref);
          const { secret_ref: _ignored, ...rest } = patch;
          return { ...rest, ...(secretRef !== undefined ? { secret_ref: secretRef } : {}) };
        },
        actor,
      );
    },

    async startSync(tenant, connectionId, actor, startOptions = {}) {
      assertTenant(tenant);
      if (closed) throw new Error(CLOSED_MESSAGE);
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
      const done = executeRun(runContext, {
        connection: acquired.connection,
        run: acquired.run,
        actor,
        abort,
        ...(startOptions.onProgress !== undefined ? { onProgress: startOptions.onProgress } : {}),
      })
        .catch((err: unknown): SyncRunSummary => {
          logger.error({ err, run_id: acquired.run.id }, 'sync run ended with an unexpected error');
          return { ...acquired.run, status: 'failed', error_code: 'internal_error', error_message: 'the run failed unexpectedly' };
        })
        .finally(() => activeRuns.delete(acquired.run.id));
      activeRuns.set(acquired.run.id, { abort, done });
      return { run: acquired.run, done };
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
      return clients.get(tenant)?.client;
    },

    async bootstrapFromConfig(bootConfig, bootOptions = {}) {
      if (bootConfig.entra !== undefined) {
        const { entra } = bootConfig;
        if (!isGuid(entra.clientId)) {
          throw new ConfigError([`ENTRA_CLIENT_ID is "${entra.clientId}"; set it to the application (client) id of the app registration, a GUID`]);
        }
        const connection = await upsertBootstrap(
          'config',
          {
            entra_tenant_id: entra.tenantId,
            client_id: entra.clientId.toLowerCase(),
            cloud: bootConfig.graph.cloud,
            secret_ref: entra.clientSecret !== undefined ? 'env:ENTRA_CLIENT_SECRET' : `file:${path.resolve(entra.clientCertFile ?? '')}`,
          },
          `Entra tenant ${entra.tenantId}`,
        );
        const demo = await store.bootstrapRow(db, BOOTSTRAP_TENANT, 'demo');
        if (demo !== undefined && demo.status !== 'disabled') {
          await updateAudited(BOOTSTRAP_TENANT, demo.id, async () => ({ status: 'disabled', status_reason: DEMO_DISABLED_REASON }), BOOTSTRAP_ACTOR);
        }
        await refreshClients();
        return connection;
      }
      const simulator = bootOptions.demo?.simulator;
      if (simulator === undefined) return null;
      secrets.register(DEMO_SECRET_REF, { purpose: 'intune', tenants: [BOOTSTRAP_TENANT], value: simulator.clientSecret });
      demoHosts = { loginUrl: simulator.loginUrl, graphUrl: simulator.graphUrl, caFile: simulator.caFile };
      const connection = await upsertBootstrap(
        'demo',
        { entra_tenant_id: simulator.tenantId, client_id: simulator.clientId.toLowerCase(), cloud: 'custom', secret_ref: DEMO_SECRET_REF },
        DEMO_DISPLAY_NAME,
      );
      await refreshClients();
      return connection;
    },

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
      await refreshChain.catch(() => undefined);
      for (const { client } of clients.values()) await closeClient(client);
      clients.clear();
    },
  };
  return service;
}
