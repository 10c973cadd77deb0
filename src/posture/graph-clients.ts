/**
 * Graph clients for posture: how a connection becomes a client (its cloud's hosts, or the demo
 * simulator's), and the per-tenant cache the connector's live reads use. A cached client is keyed
 * by its connection's version, so an edited connection or a rotated secret gets a new client and
 * the old one is closed.
 */
import crypto from 'node:crypto';
import { CLOUD_ENDPOINTS, type Config } from '../config/index.js';
import { splitCertificateFile } from '../connector/graph/auth.js';
import { createGraphClient, type GraphBudget } from '../connector/graph/index.js';
import type { GraphClient } from '../connector/graph/types.js';
import type { Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import { connectionFromRow, type ConnectionRow } from './rows.js';
import { iso, defined } from '../common/values.js';
import * as store from './store.js';
import { SyncFailure } from './sync.js';
import type { Connection, SecretProvider } from './types.js';

/** The simulator serving the demo connection in this process (there is at most one demo connection). */
export interface DemoHosts {
  readonly loginUrl: string;
  readonly graphUrl: string;
  readonly caFile: string;
}

/** Where this process finds the demo simulator; set once the demo connection is bootstrapped. */
export interface DemoHostsSlot {
  hosts: DemoHosts | undefined;
}

export interface GraphClientFactoryDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly demo: DemoHostsSlot;
  /** Replaces createGraphClient (tests and benchmarks). */
  readonly graphClientFor?: ((connection: Connection, secret: string) => GraphClient) | undefined;
  /** Intune's per-app budget the clients keep to. */
  readonly budget?: GraphBudget | undefined;
}

/** Builds the Graph client of a connection row from its resolved secret. */
export function createGraphClientFactory(deps: GraphClientFactoryDeps): (row: ConnectionRow, secret: string) => GraphClient {
  const { config, demo } = deps;

  const graphSettingsFor = (row: ConnectionRow): Config['graph'] => {
    if (row.origin === 'demo') {
      const sim = demo.hosts;
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

  return (row, secret) => {
    if (deps.graphClientFor !== undefined) return deps.graphClientFor(connectionFromRow(row, null), secret);
    return createGraphClient({
      tenantId: row.entra_tenant_id,
      clientId: row.client_id,
      // A file: reference may hold a certificate and its key (client-assertion auth) instead of a secret.
      credential: secret.includes('-----BEGIN') ? splitCertificateFile(secret) : { clientSecret: secret },
      graph: graphSettingsFor(row),
      logger: deps.logger,
      ...defined({ budget: deps.budget }),
    });
  };
}

export interface GraphClientCacheDeps {
  readonly db: Db;
  readonly secrets: SecretProvider;
  readonly logger: Logger;
  readonly demo: DemoHostsSlot;
  readonly clientFor: (row: ConnectionRow, secret: string) => GraphClient;
}

export interface GraphClientCache {
  /** The client of the tenant's chosen connection, if it has one that can be used. */
  get(tenant: string): GraphClient | undefined;
  /** Re-reads the enabled connections; refreshes run one after another, never interleaved. */
  refresh(): Promise<void>;
  /** Waits for a running refresh, then closes every client. */
  close(): Promise<void>;
}

const closeQuietly = (client: GraphClient): Promise<void> => client.close().catch(() => undefined);

export function createGraphClientCache(deps: GraphClientCacheDeps): GraphClientCache {
  const { db, secrets, logger, demo, clientFor } = deps;
  /** tenant → the client of its chosen connection, keyed by that connection's version. */
  const clients = new Map<string, { version: string; client: GraphClient }>();

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
        void closeQuietly(cached.client);
      }
    }
    for (const [tenant, row] of chosen) {
      const cached = clients.get(tenant);
      try {
        // The secret is part of the version (as a digest, in memory only): a rotated secret file gets a new client.
        const secret = await secrets.resolve(row.secret_ref, 'intune', { tenant });
        const digest = crypto.createHash('sha256').update(secret).digest('base64url');
        const version = `${row.id}|${iso(row.updated_at)}|${row.origin === 'demo' ? (demo.hosts?.graphUrl ?? '') : ''}|${digest}`;
        if (cached?.version === version) continue;
        clients.set(tenant, { version, client: clientFor(row, secret) });
      } catch (err) {
        clients.delete(tenant);
        logger.warn({ tenant, connection_id: row.id, code: (err as { code?: unknown }).code ?? 'error' }, 'no Graph client for this tenant: its connection cannot be used yet');
      }
      if (cached !== undefined) void closeQuietly(cached.client);
    }
  };

  let refreshChain: Promise<void> = Promise.resolve();
  return {
    get: (tenant) => clients.get(tenant)?.client,
    refresh: () => (refreshChain = refreshChain.then(refreshOnce)),
    async close() {
      await refreshChain.catch(() => undefined);
      for (const { client } of clients.values()) await closeQuietly(client);
      clients.clear();
    },
  };
}
