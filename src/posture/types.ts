/**
 * The posture runtime's public surface: tenant-scoped Intune connections, sync runs, redacted
 * posture snapshots and the scheduler. The REST API, the Settings panel, `serve` and `sync` use
 * these types; the implementation lives beside this file.
 */
import type { Actor } from '../chronicle/types.js';
import type { GraphClient } from '../connector/graph/types.js';
import type { Config } from '../config/index.js';

export type { Actor } from '../chronicle/types.js';

export { CONNECTION_STATUSES, SYNC_STATUSES, SYNC_TRIGGERS } from './schemas.js';
import type { CONNECTION_STATUSES, SYNC_STATUSES, SYNC_TRIGGERS, Connection, PostureSummary, SnapshotDevice, SnapshotDevicePage, SyncRunSummary } from './schemas.js';
// Declared once, in zod (./schemas.ts), with the JSON Schema the REST API serialises by.
export type { Connection, PostureSummary, SnapshotDevice, SnapshotDevicePage, SyncRunSummary } from './schemas.js';
export type ConnectionStatus = (typeof CONNECTION_STATUSES)[number];
export type SyncTrigger = (typeof SYNC_TRIGGERS)[number];
export type SyncStatus = (typeof SYNC_STATUSES)[number];

import type { ConnectionInput, ConnectionPatch, DeviceQuery } from './validation.js';
import type { GraphServiceAddress } from '../common/graph-service.js';
// Declared once, in zod, beside their validation; the REST API derives its JSON Schema from the same.
export type { ConnectionInput, ConnectionPatch, DeviceQuery };

export interface SyncProgress {
  readonly devices: number;
  readonly pages: number;
}

export interface StartSyncOptions {
  readonly trigger?: SyncTrigger;
  readonly onProgress?: (progress: SyncProgress) => void;
}

export interface PostureService {
  listConnections(tenant: string): Promise<Connection[]>;
  /** null for an unknown id and for another tenant's id alike (callers answer 404). */
  getConnection(tenant: string, id: string): Promise<Connection | null>;
  /** Validates the input and that secret_ref resolves for purpose `intune` in this tenant; audited. */
  createConnection(tenant: string, input: ConnectionInput, actor: Actor): Promise<Connection>;
  /** null when no such connection in this tenant; audited with the changed fields. */
  updateConnection(tenant: string, id: string, patch: ConnectionPatch, actor: Actor): Promise<Connection | null>;
  /**
   * Starts a run and returns once it is leased and recorded; `done` settles when it ends (it
   * resolves with the failed summary too, it does not reject). Throws SyncInProgressError when a
   * run of this connection is under way anywhere, PostureNotFoundError for an unknown connection.
   */
  startSync(
    tenant: string,
    connectionId: string,
    actor: Actor,
    options?: StartSyncOptions,
  ): Promise<{ run: SyncRunSummary; done: Promise<SyncRunSummary> }>;
  getRun(tenant: string, runId: string): Promise<SyncRunSummary | null>;
  /** Most recent first; limit 1..200 (default 20). */
  listRuns(tenant: string, connectionId: string, limit?: number): Promise<SyncRunSummary[]>;
  /** From the current snapshot of each enabled connection of the tenant. */
  listDevices(tenant: string, query?: DeviceQuery): Promise<SnapshotDevicePage>;
  getDevice(tenant: string, deviceId: string): Promise<(SnapshotDevice & { readonly snapshot_at: string }) | null>;
  summary(tenant: string): Promise<PostureSummary>;
  /** The Graph client of the tenant's active connection (cached; refreshed on changes and scheduler ticks). */
  graphFor(tenant: string): GraphClient | undefined;
  /**
   * Runs fn with a fresh Graph client of one connection (its own token, nothing cached), closed
   * afterwards; null for an unknown id or another tenant's. The secret reference is resolved as
   * a sync would, so its errors (SecretRefError) are the ones a sync would meet.
   */
  withConnectionClient<T>(tenant: string, id: string, fn: (client: GraphClient, connection: Connection) => Promise<T>): Promise<T | null>;
  /**
   * ENTRA_* → the connection of tenant 'default' (secret_ref env:ENTRA_CLIENT_SECRET or
   * file:<ENTRA_CLIENT_CERT_FILE>); without them and with a demo simulator → the demo connection.
   * Idempotent: a restart with the same settings changes nothing; changed settings are an audited update.
   */
  bootstrapFromConfig(config: Config, options?: { demo?: { simulator: DemoGraphService } }): Promise<Connection | null>;
  startScheduler(): void;
  stopScheduler(): Promise<void>;
  /** Stops the scheduler, cancels runs of this process (they are marked failed: cancelled) and waits for them. */
  close(): Promise<void>;
}

/** Purposes a secret reference can be registered for; only `intune` refs may back a connection. */
export const SECRET_PURPOSES = ['intune', 'database', 'chronicle_signing', 'fingerprint'] as const;
export type SecretPurpose = (typeof SECRET_PURPOSES)[number];

export interface SecretRefDescription {
  readonly scheme: 'env' | 'file';
  /** The normalised reference (file paths resolved). */
  readonly ref: string;
  /** null: not registered for anything (it cannot be resolved). */
  readonly purpose: SecretPurpose | null;
  /** Tenants allowed to use it ('*': every tenant). Empty when unregistered. */
  readonly tenants: readonly string[];
}

export interface SecretRegistration {
  readonly purpose: SecretPurpose;
  /** Tenants allowed to use it; '*' for every tenant. */
  readonly tenants: readonly string[];
  /**
   * A value this process supplies itself instead of reading it (the demo simulator's secret).
   * Held in memory only.
   */
  readonly value?: string;
}

/**
 * Resolves secret references. A reference resolves only when the operator registered it for the
 * asked purpose and the caller's tenant; everything else is refused with a SecretRefError.
 */
export interface SecretProvider {
  resolve(ref: string, purpose: 'intune', options?: { readonly tenant?: string }): Promise<string>;
  /** Throws SecretRefError('secret_ref_invalid' | 'secret_ref_scheme') for a malformed reference. */
  describe(ref: string): SecretRefDescription;
  register(ref: string, registration: SecretRegistration): void;
}

/** What the demo connection needs of the Graph service serving it (the built-in simulator's handle is one). */
export type DemoGraphService = GraphServiceAddress;
