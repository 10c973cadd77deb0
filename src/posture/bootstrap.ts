/**
 * The connection a process starts with: ENTRA_* settings become the connection of the default
 * tenant; without them, the built-in simulator becomes the demo connection. Idempotent across
 * restarts and replicas; a changed setting is an audited update.
 */
import path from 'node:path';
import type { Actor } from '../chronicle/types.js';
import { ConfigError, type Config } from '../config/index.js';
import type { Db } from '../db/index.js';
import type { DemoGraphService } from './types.js';
import type { ConnectionChanges } from './connections.js';
import type { DemoHostsSlot } from './graph-clients.js';
import { DEMO_SECRET_REF } from './secrets.js';
import { DEFAULT_TENANT as BOOTSTRAP_TENANT, isGuid } from '../common/ids.js';
import * as store from './store.js';
import type { Connection, SecretProvider } from './types.js';

const BOOTSTRAP_ACTOR: Actor = { kind: 'system', id: 'bootstrap' };
const DEMO_DISPLAY_NAME = 'Demo tenant (simulated devices, not a real Intune tenant)';
const DEMO_DISABLED_REASON = 'real Entra credentials are configured (ENTRA_*); the simulated demo tenant is off';

export interface BootstrapDeps {
  readonly db: Db;
  readonly secrets: SecretProvider;
  readonly connections: ConnectionChanges;
  readonly demo: DemoHostsSlot;
  /** Called once the bootstrapped connection is in place (the Graph client cache). */
  readonly afterChange: () => Promise<void>;
}

export type BootstrapFromConfig = (config: Config, options?: { demo?: { simulator: DemoGraphService } }) => Promise<Connection | null>;

export function createBootstrap(deps: BootstrapDeps): BootstrapFromConfig {
  const { db, secrets, connections, demo, afterChange } = deps;

  const upsertBootstrap = async (
    origin: 'config' | 'demo',
    desired: Pick<store.ConnectionValues, 'entra_tenant_id' | 'client_id' | 'cloud' | 'secret_ref'>,
    displayName: string,
  ): Promise<Connection> => {
    const tenant = BOOTSTRAP_TENANT;
    for (let attempt = 0; ; attempt++) {
      const existing = await store.bootstrapRow(db, tenant, origin);
      if (existing !== undefined) {
        const updated = await connections.updateAudited(
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
          const id = await connections.insertAudited(tenant, { ...desired, display_name: displayName, status: 'active', status_reason: null }, origin, BOOTSTRAP_ACTOR);
          return await connections.readConnection(tenant, id);
        } catch (err) {
          // Another replica bootstrapped the same connection at the same moment: use theirs.
          if ((err as { code?: unknown }).code !== '23505' || attempt > 0) throw err;
        }
      }
    }
  };

  const fromEntra = async (entra: NonNullable<Config['entra']>, cloud: Config['graph']['cloud']): Promise<Connection> => {
    if (!isGuid(entra.clientId)) {
      throw new ConfigError([`ENTRA_CLIENT_ID is "${entra.clientId}"; set it to the application (client) id of the app registration, a GUID`]);
    }
    const connection = await upsertBootstrap(
      'config',
      {
        entra_tenant_id: entra.tenantId,
        client_id: entra.clientId.toLowerCase(),
        cloud,
        secret_ref: entra.clientSecret !== undefined ? 'env:ENTRA_CLIENT_SECRET' : `file:${path.resolve(entra.clientCertFile ?? '')}`,
      },
      `Entra tenant ${entra.tenantId}`,
    );
    const demoRow = await store.bootstrapRow(db, BOOTSTRAP_TENANT, 'demo');
    if (demoRow !== undefined && demoRow.status !== 'disabled') {
      await connections.updateAudited(BOOTSTRAP_TENANT, demoRow.id, async () => ({ status: 'disabled', status_reason: DEMO_DISABLED_REASON }), BOOTSTRAP_ACTOR);
    }
    return connection;
  };

  const fromSimulator = async (simulator: DemoGraphService): Promise<Connection> => {
    secrets.register(DEMO_SECRET_REF, { purpose: 'intune', tenants: [BOOTSTRAP_TENANT], value: simulator.clientSecret });
    demo.hosts = { loginUrl: simulator.loginUrl, graphUrl: simulator.graphUrl, caFile: simulator.caFile };
    return upsertBootstrap(
      'demo',
      { entra_tenant_id: simulator.tenantId, client_id: simulator.clientId.toLowerCase(), cloud: 'custom', secret_ref: DEMO_SECRET_REF },
      DEMO_DISPLAY_NAME,
    );
  };

  return async (config, options = {}) => {
    let connection: Connection;
    if (config.entra !== undefined) {
      connection = await fromEntra(config.entra, config.graph.cloud);
    } else {
      const simulator = options.demo?.simulator;
      if (simulator === undefined) return null;
      connection = await fromSimulator(simulator);
    }
    await afterChange();
    return connection;
  };
}
