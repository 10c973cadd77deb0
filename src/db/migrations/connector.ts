import type { Migration } from '../migrate.js';

/**
 * The connector's tables (versions 200-299).
 *
 * connector_sync_requests: when each device was last asked to sync, so every replica honours the
 * same sync_device cooldown. One row per device; a new request replaces the row once the cooldown
 * has passed.
 */
export const connectorMigrations: readonly Migration[] = [
  {
    version: 200,
    name: 'connector_sync_requests',
    sql: `CREATE TABLE connector_sync_requests (
      tenant text NOT NULL,
      device_id text NOT NULL,
      requested_at timestamptz NOT NULL,
      PRIMARY KEY (tenant, device_id)
    )`,
  },
];
