import type { Migration } from '../migrate.js';

/**
 * Posture runtime: connections, sync runs, snapshots (versions 300-399).
 *
 * A snapshot is the set of posture rows written by one run (snapshot_id = run id). Readers join
 * through intune_connections.current_snapshot_id, which a run flips in one transaction at its end,
 * so they see the old snapshot or the new one, never a half-written one. A run's lease lives on
 * its connection row (holder, run, expiry by the database clock) and is taken under the row lock,
 * so one replica syncs a connection at a time; the partial unique index on running runs is the
 * backstop: two running rows for one connection cannot exist.
 *
 * One statement per migration: PGlite runs each migration as a single prepared statement.
 */
export const postureMigrations: readonly Migration[] = [
  {
    version: 300,
    name: 'intune_connections',
    sql: `CREATE TABLE intune_connections (
      id uuid PRIMARY KEY,
      tenant text NOT NULL,
      display_name text NOT NULL,
      entra_tenant_id text NOT NULL,
      client_id text NOT NULL,
      cloud text NOT NULL CHECK (cloud IN ('public', 'usgov', 'usgov-dod', 'china', 'custom')),
      secret_ref text NOT NULL,
      status text NOT NULL CHECK (status IN ('active', 'disabled', 'error')),
      status_reason text,
      -- api: created by an administrator; config: the ENTRA_* bootstrap; demo: the simulated tenant
      origin text NOT NULL DEFAULT 'api' CHECK (origin IN ('api', 'config', 'demo')),
      current_snapshot_id uuid,
      snapshot_at timestamptz,
      next_sync_at timestamptz,
      lease_holder text,
      lease_run_id uuid,
      lease_expires_at timestamptz,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    )`,
  },
  {
    version: 301,
    name: 'intune_connections_by_tenant',
    sql: `CREATE INDEX intune_connections_by_tenant ON intune_connections (tenant, created_at, id)`,
  },
  {
    version: 302,
    name: 'intune_connections_one_bootstrap',
    sql: `CREATE UNIQUE INDEX intune_connections_one_bootstrap ON intune_connections (tenant, origin) WHERE origin <> 'api'`,
  },
  {
    version: 303,
    name: 'intune_sync_runs',
    sql: `CREATE TABLE intune_sync_runs (
      id uuid PRIMARY KEY,
      connection_id uuid NOT NULL REFERENCES intune_connections (id) ON DELETE CASCADE,
      tenant text NOT NULL,
      status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
      trigger text NOT NULL CHECK (trigger IN ('manual', 'scheduled', 'startup')),
      holder text NOT NULL,
      started_at timestamptz NOT NULL,
      finished_at timestamptz,
      duration_ms integer,
      devices integer NOT NULL DEFAULT 0,
      pages integer NOT NULL DEFAULT 0,
      graph_requests integer NOT NULL DEFAULT 0,
      throttled_waits integer NOT NULL DEFAULT 0,
      counts_by_compliance_state jsonb NOT NULL DEFAULT '{}'::jsonb,
      counts_by_os_family jsonb NOT NULL DEFAULT '{}'::jsonb,
      error_code text,
      error_message text,
      -- true once none of this run's posture rows remain (it is not, or no longer, current)
      pruned boolean NOT NULL DEFAULT false
    )`,
  },
  {
    version: 304,
    name: 'intune_sync_runs_by_connection',
    sql: `CREATE INDEX intune_sync_runs_by_connection ON intune_sync_runs (connection_id, started_at DESC, id)`,
  },
  {
    version: 305,
    name: 'intune_sync_runs_by_tenant',
    sql: `CREATE INDEX intune_sync_runs_by_tenant ON intune_sync_runs (tenant, started_at DESC, id)`,
  },
  {
    version: 306,
    name: 'intune_sync_runs_one_running',
    sql: `CREATE UNIQUE INDEX intune_sync_runs_one_running ON intune_sync_runs (connection_id) WHERE status = 'running'`,
  },
  {
    version: 307,
    name: 'intune_device_postures',
    // posture holds the redacted DevicePosture (an allow-list copy) and nothing else of Graph's
    // record; the other columns repeat posture fields for filtering.
    sql: `CREATE TABLE intune_device_postures (
      snapshot_id uuid NOT NULL,
      device_id text COLLATE "C" NOT NULL,
      connection_id uuid NOT NULL,
      tenant text NOT NULL,
      os_family text NOT NULL,
      compliance_state text NOT NULL,
      ownership text NOT NULL,
      last_sync_at timestamptz,
      posture jsonb NOT NULL,
      PRIMARY KEY (snapshot_id, device_id)
    )`,
  },
];
