/**
 * Composition: the one place that turns a Config into running parts, in dependency order
 * (logger -> database -> Chronicle -> fingerprint keys -> Graph client or demo simulator ->
 * connector), and closes them in reverse. The CLI commands (serve, mcp, check, sync) and hosts
 * that embed the connector call openRuntime; nothing here reads process.env.
 *
 * With ENTRA_* set the Graph client talks to that tenant as tenant 'default' and the simulator is
 * never started. Without them (and `demo` not false) the in-process simulator serves a labelled
 * demo tenant of 200 generated devices.
 */
import type { Config } from '../config/index.js';
import { createLogger, type Logger } from '../log/index.js';
import { openDatabase, type Db } from '../db/index.js';
import { createChronicle, type Chronicle } from '../chronicle/index.js';
import { createGraphClient, graphClientFromConfig } from '../connector/graph/index.js';
import type { GraphClient } from '../connector/graph/types.js';
import type { SimulatorHandle } from '../simulator/types.js';
import { createIntuneConnector, type ConnectorAssets, type IntuneConnector, type IntuneConnectorOptions } from '../connector/index.js';
import { fingerprintKeys } from './fingerprint-keys.js';
import { openReplicaSharing, type ReplicaSharing } from '../connector/replicas/index.js';
import { createCloserStack } from './closers.js';
import { DEFAULT_TENANT } from '../common/ids.js';
import { defined } from '../common/values.js';

export { fingerprintKeys, deriveFingerprintKeys, loadOrCreateMasterKey, FingerprintKeyError, FINGERPRINT_KEY_FILE } from './fingerprint-keys.js';

/** The tenant ENTRA_* (or the demo simulator) is connected as. */

export const DEMO_DEVICES = 200;
export const DEMO_SEED = 'demo';

export interface Runtime {
  readonly config: Config;
  readonly logger: Logger;
  readonly db: Db;
  readonly chronicle: Chronicle;
  readonly connector: IntuneConnector;
  /** The client of tenant 'default' (ENTRA_* or the demo simulator); undefined when neither. */
  readonly graph: GraphClient | undefined;
  readonly demo: { readonly simulator: SimulatorHandle } | undefined;
  /** What this process shares with other replicas (REDIS_URL) and Intune's Graph budget it keeps to. */
  readonly sharing: ReplicaSharing;
  fingerprintKeyFor(tenant: string): Buffer;
  /** Closes everything in reverse order of opening; safe to call twice. */
  close(): Promise<void>;
}

export interface OpenRuntimeOptions {
  readonly logger?: Logger;
  /** Start the in-process simulator as the labelled demo tenant when config.entra is unset (default true). */
  readonly demo?: boolean;
  /** Run migrations at open (default true). */
  readonly migrate?: boolean;
  /** Embedded database: serve it to other processes (the CLI) over a socket in the data directory while open (`serve`). */
  readonly shareDatabase?: boolean;
  /** Override: per-tenant clients (the posture runtime supplies one per connection). Default: the 'default' tenant's client only. */
  readonly graphFor?: (tenant: string) => GraphClient | undefined;
  /** Connector policy beyond the Config (e.g. enabledMutations in a later phase). */
  readonly connector?: Partial<Pick<IntuneConnectorOptions, 'enabledMutations' | 'syncCooldownMs' | 'notFoundTtlMs' | 'writeBudget'>>;
  readonly now?: () => number;
  /** The host's asset identity, read at each call (get_device and get_compliance name the agents that see a device; find_asset). */
  readonly assets?: () => ConnectorAssets | undefined;
}

/** The Graph settings that point a client at a running simulator (INTUNE_CLOUD=custom semantics). */
export function simulatorGraphSettings(config: Config, simulator: SimulatorHandle): Config['graph'] {
  return {
    cloud: 'custom',
    loginUrl: simulator.loginUrl,
    graphUrl: simulator.graphUrl,
    caFile: simulator.caFile,
    timeoutMs: config.graph.timeoutMs,
    maxRetries: config.graph.maxRetries,
  };
}

export async function openRuntime(config: Config, options: OpenRuntimeOptions = {}): Promise<Runtime> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  // Closers run in reverse order; a failure half-way closes what was opened and rethrows.
  const closers = createCloserStack(logger);
  const closeAll = () => closers.closeAll();

  try {
    const db = await openDatabase(config.database, {
      migrate: options.migrate ?? true,
      share: options.shareDatabase ?? false,
      onShareUnavailable: (socketFile) =>
        logger.warn({ socket: socketFile }, 'the data directory path is too long for a Unix socket: CLI commands cannot reach the embedded database while this process runs; use a shorter INTUNE_DATA_DIR'),
    });
    closers.push('database', () => db.close());

    const chronicle = await createChronicle({
      db,
      logger,
      ...config.chronicle,
    });
    closers.push('chronicle', () => chronicle.close());

    const keys = fingerprintKeys({ file: config.fingerprintKeyFile, logger });

    const sharing = await openReplicaSharing({ redis: config.redis, graphBudget: config.graphBudget, logger });
    closers.push('replica sharing', () => sharing.close());

    let graph: GraphClient | undefined;
    let demo: Runtime['demo'];
    if (!config.intuneEnabled) {
      logger.info('Intune connector disabled (INTUNE_ENABLED=false): no Graph client');
    } else if (config.entra !== undefined) {
      graph = graphClientFromConfig(config, logger, sharing.graphBudget);
      const client = graph;
      closers.push('graph client', () => client.close());
    } else if (options.demo ?? true) {
      // Loaded only for the demo: a command against a real tenant (or a running server's data) never pays for it.
      const { startSimulator } = await import('../simulator/index.js');
      const simulator = await startSimulator({ devices: DEMO_DEVICES, seed: DEMO_SEED });
      closers.push('demo simulator', () => simulator.close());
      demo = { simulator };
      graph = createGraphClient({
        tenantId: simulator.tenantId,
        clientId: simulator.clientId,
        credential: { clientSecret: simulator.clientSecret },
        graph: simulatorGraphSettings(config, simulator),
        logger,
        budget: sharing.graphBudget,
      });
      const client = graph;
      closers.push('graph client', () => client.close());
      logger.warn(
        { tenant: DEFAULT_TENANT, devices: DEMO_DEVICES, graphUrl: simulator.graphUrl },
        'DEMO tenant: simulated devices, not a real Intune tenant (set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET to connect a real one)',
      );
    } else {
      logger.info('no Entra credentials (ENTRA_*) and demo off: tenant default has no Intune connection');
    }

    const graphFor = options.graphFor ?? ((tenant: string) => (tenant === DEFAULT_TENANT ? graph : undefined));
    const connector = createIntuneConnector({
      chronicle,
      graphFor,
      fingerprintKeyFor: keys.keyFor,
      db,
      logger,
      ...defined({
        now: options.now,
        assets: options.assets,
        sharedCache: sharing.cacheTier,
        sharedWriteBudget: sharing.writeBudget,
      }),
      options: {
        intuneEnabled: config.intuneEnabled,
        cacheTtlMs: config.compliance.cacheTtlMs,
        cacheMaxEntries: config.compliance.cacheMaxEntries,
        staleMaxMs: config.compliance.staleMaxMs,
        ...options.connector,
      },
    });

    let closed = false;
    return {
      config,
      logger,
      db,
      chronicle,
      connector,
      graph,
      demo,
      sharing,
      fingerprintKeyFor: keys.keyFor,
      async close() {
        if (closed) return;
        closed = true;
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
