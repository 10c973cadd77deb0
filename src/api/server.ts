/**
 * The main job: everything `intune-connector serve` runs, in one process. With no configuration it
 * is a complete demo (embedded database under ./.data, the simulated tenant as `default`, an
 * initial sync, the API, the gate, MCP and the Settings panel, and an admin key on first start);
 * with ENTRA_* it serves the real tenant and never starts the simulator.
 *
 * Shutdown runs in reverse: stop scheduling syncs, stop accepting requests and let in-flight ones
 * finish, cancel this process's sync runs, then close Chronicle (flushing pending appends), the
 * database (releasing the PGlite lock) and the demo simulator.
 */
import type { FastifyInstance } from 'fastify';
import type { Config, Env } from '../config/index.js';
import { createLogger, type Logger } from '../log/index.js';
import type { Actor } from '../chronicle/types.js';
import { openRuntime, type Runtime } from '../runtime/index.js';
import { DEFAULT_TENANT } from '../common/ids.js';
import { createPostureService, secretProviderFromConfig, SyncInProgressError } from '../posture/index.js';
import { runPreflight } from '../posture/preflight.js';
import type { Connection, PostureService, SyncRunSummary } from '../posture/types.js';
import { createGate, demoPolicyFile, loadGatePolicy, type Gate } from '../gate/index.js';
import { gateJwtOptions } from '../gate/http.js';
import { serveLocalChannel } from './local-channel.js';
import { localIdentity } from './local-client.js';
import { createApp } from './app.js';
import { createKeyStore, type KeyStore } from '../auth/keys.js';
import { createSyncRunStats } from './sync-stats.js';
import { createCloserStack } from '../runtime/closers.js';
import { createAgentService, type AgentService } from '../agents/service.js';
import { createAssetService, type AssetService } from '../assets/index.js';
import { startAgentListener, type AgentListener } from '../agents/listener.js';
import { listenerTls } from '../agents/tls.js';
import { enrollDemoAgents, type DemoMac } from '../agents/demo.js';
import { defined } from '../common/values.js';

export interface ServerOptions {
  readonly logger?: Logger;
  /** The environment `env:` secret references read (the CLI passes process.env). */
  readonly env?: Env;
  /** Start the simulated demo tenant when ENTRA_* are unset (default true). */
  readonly demo?: boolean;
  /** Embedded database: share it with CLI commands over a Unix socket in the data directory (default true). */
  readonly shareDatabase?: boolean;
  /**
   * The sync at start: 'wait' finishes it before startServer resolves, 'background' does not wait,
   * 'off' skips it. Default: 'wait' for the demo tenant (a second or so), 'background' otherwise.
   */
  readonly initialSync?: 'wait' | 'background' | 'off';
  /** Issue the first admin key of tenant `default` when none was ever issued (default true). */
  readonly bootstrapKey?: boolean;
  /** How long authenticated keys are cached: the revocation bound for other replicas (default 5 s). */
  readonly keyCacheTtlMs?: number;
  /** Answer `check` and `doctor` on `<data dir>/serve.sock` with this server's parts (default true). */
  readonly localChannel?: boolean;
  /** Run the scheduled sync (default true; it also needs INTUNE_SYNC_INTERVAL > 0). */
  readonly scheduler?: boolean;
  /** Enroll simulated macOS agents in the demo tenant (default: 5 when the demo runs, 0 otherwise). */
  readonly demoAgents?: number;
  /** Agent listener tuning (tests): trust reload interval and per-agent rate limit. */
  readonly agentListener?: { readonly trustRefreshMs?: number; readonly rateLimit?: { readonly burst: number; readonly refillMs: number } };
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  /** The bootstrap admin key, only on the first start of a data store. */
  readonly adminKey?: string;
  /** Set when the bootstrap key was issued before: the key is not shown again. */
  readonly adminKeyIssuedBefore: boolean;
  /** The simulated tenant is serving (no ENTRA_*). */
  readonly demo: boolean;
  /** The connection of tenant `default` (ENTRA_* or demo), if any. */
  readonly connection: Connection | null;
  /** The start-up sync (settled when it ends; null when none ran). */
  readonly initialSync: Promise<SyncRunSummary | null>;
  readonly app: FastifyInstance;
  readonly runtime: Runtime;
  readonly posture: PostureService;
  readonly keys: KeyStore;
  readonly agents: AgentService;
  /** Asset identity over the Intune records and agents. */
  readonly assets: AssetService;
  /** The mTLS listener for enrolled agents. */
  readonly agentListener: AgentListener;
  /** The agents the demo enrolled at start (empty otherwise). */
  readonly demoAgentIds: readonly string[];
  /** Graceful shutdown; safe to call twice. */
  close(): Promise<void>;
}

/** The agent service, whose changes re-match the tenant's assets and drop the gate's cached agent readings. */
function openAgentService(config: Config, runtime: Runtime, assets: AssetService, gate: Gate, logger: Logger): AgentService {
  return createAgentService({
    db: runtime.db,
    chronicle: runtime.chronicle,
    logger,
    caDir: config.agents.caDir,
    fingerprintKeyFor: (tenant) => runtime.fingerprintKeyFor(tenant),
    certValidityDays: config.agents.certValidityDays,
    tokenTtlSeconds: config.agents.tokenTtlSeconds,
    onAgentChanged: async (tenant, agentId) => {
      // A heartbeat that changed nothing but the time (null) can only turn this agent fresh or stale;
      // anything else (enrollment, revocation, a posture or identity change) may move agents between machines.
      let report: Awaited<ReturnType<AssetService['rematchAgent']>> | undefined;
      try {
        report = await assets.rematchAgent(tenant, agentId);
        return report;
      } finally {
        gate.forgetAgents(tenant, report === null ? agentId : undefined);
      }
    },
  });
}

const SYSTEM_ACTOR: Actor = { kind: 'system', id: 'serve' };

export async function startServer(config: Config, options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  // Configuration that can be wrong is read before anything is opened, so a bad policy file, a
  // contradiction with INTUNE_ENABLED or a bad grant stops start-up at once, with nothing to undo.
  const policy = startupPolicy(config, options.demo ?? true, logger);
  const secrets = secretProviderFromConfig(config, options.env ?? {});
  const gateJwt = gateJwtOptions(config);
  const closers = createCloserStack(logger);
  const closeAll = () => closers.closeAll();

  try {
    // The posture service supplies each tenant's Graph client; it exists only after the runtime.
    let posture: PostureService | undefined;
    let assetService: AssetService | undefined;
    const runtime = await openRuntime(config, {
      logger,
      demo: options.demo ?? true,
      shareDatabase: options.shareDatabase ?? true,
      graphFor: (tenant) => posture?.graphFor(tenant),
      assets: () => assetService,
    });
    closers.push('runtime', () => runtime.close());

    const chronicle = runtime.chronicle;
    const assets = createAssetService({ db: runtime.db, chronicle, logger });
    assetService = assets;
    const gate = createGate({
      connector: runtime.connector,
      chronicle,
      tenant: DEFAULT_TENANT,
      logger,
      endpointAgents: (tenant: string, ids: readonly string[]) => assets.endpointAgents(tenant, ids),
      agentCacheTtlMs: config.compliance.agentCacheTtlMs,
      policy,
      channel: 'api',
    });
    const service = createPostureService({
      db: runtime.db,
      chronicle,
      logger,
      secrets,
      config,
      fingerprintKeyFor: (tenant) => runtime.fingerprintKeyFor(tenant),
      // A sync may move Intune records between machines: the gate reads the tenant's agents afresh.
      onSnapshotChanged: (tenant, connectionId, changes) => assets.rematchConnection(tenant, connectionId, changes).finally(() => gate.forgetAgents(tenant)),
      graphBudget: runtime.sharing.graphBudget,
      onSynced: (tenant, changed) => runtime.connector.invalidateSynced(tenant, changed),
    });
    posture = service;
    closers.push('posture', () => service.close());

    const connection = await service.bootstrapFromConfig(config, runtime.demo !== undefined ? { demo: runtime.demo } : {});
    const keys = createKeyStore({ db: runtime.db, chronicle, logger, ...defined({ cacheTtlMs: options.keyCacheTtlMs }) });

    const agents = openAgentService(config, runtime, assets, gate, logger);
    // What changed while this process was not running (a CLI sync or revocation, a missed re-match).
    for (const tenant of await assets.tenants()) {
      await assets.reconcile(tenant).catch((err: unknown) => logger.warn({ err, tenant }, 'could not bring the assets in step at start'));
    }
    // The default tenant's CA exists before either listener opens, so every replica trusts it from the start.
    await agents.cas.caFor(DEFAULT_TENANT);
    const agentTls = await listenerTls({
      dir: config.agents.caDir,
      hostnames: [config.http.host],
      ...defined({ certFile: config.agents.tlsCertFile, keyFile: config.agents.tlsKeyFile }),
    });
    let agentListener: AgentListener | undefined;

    if (options.localChannel ?? true) {
      // `check` and `doctor` beside this server get its gate and pre-flight (./local-channel.ts).
      const local = await serveLocalChannel({
        dataDir: config.database.dataDir,
        identity: localIdentity(config),
        gate,
        preflight: ({ tenant, connectionId, capabilities, checkpointIntervalMs }) =>
          runPreflight({ db: runtime.db, chronicle, posture: service, tenant, ...defined({ connectionId }), capabilities, checkpointIntervalMs }),
        logger,
      });
      if (local !== undefined) closers.push('local channel', () => local.close());
    }

    const app = await createApp({
      runtime,
      posture: service,
      assets,
      gate,
      authenticator: keys,
      keys,
      agents: {
        agents,
        listener: () =>
          agentListener === undefined
            ? undefined
            : { port: agentListener.port, ...defined({ serverCaPem: agentTls.caPem }) },
      },
      mcpDefaultCapabilities: config.mcp.defaultCapabilities,
      preflight: (tenant, connectionId) =>
        runPreflight({
          db: runtime.db,
          chronicle,
          posture: service,
          tenant,
          connectionId,
          capabilities: config.mcp.defaultCapabilities,
          checkpointIntervalMs: config.chronicle.checkpointIntervalMs,
        }),
      ...defined({ gateJwt }),
      metrics: { syncRuns: createSyncRunStats(runtime.db) },
    });
    closers.push('http', () => app.close());

    // Listen before the first sync and before minting the bootstrap key: a port in use must fail
    // start-up before a key is issued that nobody would ever see.
    const base = await listenHttp(app, config);

    const openedAgentListener = await startAgentListener({
      service: agents,
      logger,
      tls: agentTls,
      host: config.http.host,
      port: config.agents.port,
      ...options.agentListener,
    });
    agentListener = openedAgentListener;
    // Registered after 'http', so it closes first.
    closers.push('agent listener', () => openedAgentListener.close());

    const initialMode = options.initialSync ?? (runtime.demo !== undefined ? 'wait' : 'background');
    const { initialSync } = await startInitialSync(service, connection, initialMode, logger);

    const demoAgentCount = options.demoAgents ?? (runtime.demo !== undefined ? 5 : 0);
    const demoAgentIds = await enrollDemo({ runtime, demoAgentCount, agents, base, openedAgentListener, agentTls, logger });

    const { adminKey, adminKeyIssuedBefore } = await issueAdminKey(keys, options.bootstrapKey ?? true);

    if (options.scheduler ?? true) {
      service.startScheduler();
      // Registered after 'http' so it runs first on close: no new runs while the server drains.
      closers.push('scheduler', () => service.stopScheduler());
    }

    let closing: Promise<void> | undefined;
    return {
      url: base,
      ...defined({ adminKey }),
      adminKeyIssuedBefore,
      demo: runtime.demo !== undefined,
      connection,
      initialSync,
      app,
      runtime,
      posture: service,
      keys,
      agents,
      assets,
      agentListener: openedAgentListener,
      demoAgentIds,
      close() {
        closing ??= closeAll();
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** The gate policy: INTUNE_POLICY_FILE, or in a demo without one the example policy. */
function startupPolicy(config: Config, demo: boolean, logger: Logger): ReturnType<typeof loadGatePolicy> {
  const demoPolicy = demoPolicyFile(config, demo);
  if (demoPolicy !== undefined) logger.info({ policy_file: demoPolicy }, 'demo: no INTUNE_POLICY_FILE, so the gate uses the example policy');
  return loadGatePolicy(demoPolicy === undefined ? config : { ...config, compliance: { ...config.compliance, policyFile: demoPolicy } });
}

/** The default tenant's first admin key, minted once (shown once); later starts say it was issued before. */
async function issueAdminKey(keys: KeyStore, bootstrapKey: boolean): Promise<{ adminKey: string | undefined; adminKeyIssuedBefore: boolean }> {
  let adminKey: string | undefined;
  let adminKeyIssuedBefore = false;
  if (bootstrapKey) {
    const created = await keys.issueBootstrapKey(DEFAULT_TENANT, SYSTEM_ACTOR);
    if (created === null) adminKeyIssuedBefore = true;
    else adminKey = created.key;
  }
  return { adminKey, adminKeyIssuedBefore };
}

/**
 * The sync at start of the default tenant's connection: awaited with 'wait', left running with
 * 'background'. `initialSync` settles with the run (null when none could start).
 */
async function startInitialSync(
  service: PostureService,
  connection: Connection | null,
  initialMode: NonNullable<ServerOptions['initialSync']>,
  logger: Logger,
): Promise<{ initialSync: Promise<SyncRunSummary | null> }> {
  let initialSync: Promise<SyncRunSummary | null> = Promise.resolve(null);
  if (connection !== null && connection.status !== 'disabled' && initialMode !== 'off') {
    initialSync = service
      .startSync(DEFAULT_TENANT, connection.id, SYSTEM_ACTOR, { trigger: 'startup' })
      .then(({ done }) => done)
      .catch((err: unknown) => {
        // Another replica may be syncing already: its run serves the same purpose.
        if (err instanceof SyncInProgressError) logger.info({ runId: err.runId }, 'initial sync skipped: a sync is already running');
        else logger.error({ err }, 'initial sync could not start');
        return null;
      });
    if (initialMode === 'wait') await initialSync;
  }
  // Wrapped: an async function returning the promise itself would wait for it.
  return { initialSync };
}

/** Listens on HOST:PORT; a port in use fails with the fix. Returns the base URL. */
async function listenHttp(app: Awaited<ReturnType<typeof createApp>>, config: Config): Promise<string> {
  let address: string;
  try {
    address = await app.listen({ host: config.http.host, port: config.http.port });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new Error(`${config.http.host}:${config.http.port} is already in use: stop the other process, or set PORT (and HOST) to a free address`, { cause: err });
    }
    throw err;
  }
  const url = new URL(address);
  const base = `${url.protocol}//${url.host}`;
  return base;
}

/** DEMO: enrolls simulated macOS agents over mTLS, some matching simulated Intune Macs; their ids, or none when they could not enroll. */
async function enrollDemo({
  runtime,
  demoAgentCount,
  agents,
  base,
  openedAgentListener,
  agentTls,
  logger,
}: {
  runtime: Runtime;
  demoAgentCount: number;
  agents: AgentService;
  base: string;
  openedAgentListener: AgentListener;
  agentTls: Awaited<ReturnType<typeof listenerTls>>;
  logger: Logger;
}): Promise<string[]> {
  let demoAgentIds: string[] = [];
  if (runtime.demo !== undefined && demoAgentCount > 0) {
    const macs: DemoMac[] = runtime.demo.simulator.devices
      .filter((d) => d['operatingSystem'] === 'macOS' && typeof d['serialNumber'] === 'string' && d['serialNumber'] !== '')
      .slice(0, Math.ceil(demoAgentCount / 2) + 1)
      .map((d) => ({ serialNumber: d['serialNumber'] as string, ...(typeof d['model'] === 'string' ? { model: d['model'] } : {}) }));
    try {
      demoAgentIds = await enrollDemoAgents({
        agents,
        tenant: DEFAULT_TENANT,
        mainUrl: base,
        agentUrl: openedAgentListener.url.replace(/^https:\/\/(0\.0\.0\.0|\[::\])/, 'https://127.0.0.1'),
        ...defined({ serverCa: agentTls.caPem }),
        intuneMacs: macs.slice(0, Math.max(0, demoAgentCount - 2)),
        unknown: Math.min(2, demoAgentCount),
        logger,
      });
    } catch (err) {
      logger.warn({ err }, 'DEMO: the simulated agents could not enroll');
    }
  }
  return demoAgentIds;
}

/** The lines `serve` prints: where everything is, and the admin key when there is one to show. */
export function describeServer(server: RunningServer): string[] {
  const u = server.url;
  const lines = [
    `intune-connector is serving at ${u}`,
    `  REST API        ${u}/api/v1/integrations/intune/devices   (and /connections)`,
    `  Compliance gate POST ${u}/api/v1/gate/device-compliance`,
    `  MCP             ${u}/mcp`,
    `  Settings panel  ${u}/settings/integrations/intune`,
    `  Chronicle       ${u}/api/v1/chronicle/events   ${u}/api/v1/chronicle/verify`,
    `  Agents          ${u}/api/v1/agents   (enroll: POST ${u}/api/v1/agents/enroll)`,
    `  Agents (mTLS)   ${server.agentListener.url}`,
    `  Assets          ${u}/api/v1/assets   (one machine, Intune and agents merged)`,
    `  Health          ${u}/healthz   ${u}/readyz   ${u}/metrics`,
  ];
  if (server.demo) {
    lines.push(`  DEMO tenant "default": simulated devices from the built-in simulator, not a real Intune tenant.`);
    lines.push(`  Connect a real tenant with ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET.`);
    if (server.demoAgentIds.length > 0) lines.push(`  DEMO agents: ${server.demoAgentIds.length} simulated macOS agents enrolled over mTLS (GET ${u}/api/v1/agents).`);
  } else if (server.connection !== null) {
    lines.push(`  Tenant "default" is connected to Entra tenant ${server.connection.entra_tenant_id}.`);
  }
  if (server.adminKey !== undefined) {
    lines.push(`  Admin key (tenant "default"; shown once, store it now):`);
    lines.push(`  ${server.adminKey}`);
  } else if (server.adminKeyIssuedBefore) {
    lines.push(`  An admin key was issued on first start. Create more with: intune-connector keys create --role admin`);
    lines.push(`  (with the embedded database stop serve first, or POST ${u}/api/v1/keys with an admin key)`);
  }
  return lines;
}
