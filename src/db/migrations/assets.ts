import type { Migration } from '../migrate.js';

/**
 * Asset identity (versions 600-619), one statement per migration: PGlite runs each migration as a
 * single prepared statement.
 *
 * - asset_sources: every live source (an Intune record of a connection's current snapshot, an
 *   unrevoked agent) with the identity keys it was matched by, the observation it contributes
 *   (redacted posture only) and the asset it belongs to. origin is the connection id of an Intune
 *   record and '' for an agent, so one device id read by two connections is two sources.
 * - assets: one row per asset, the filterable summary of its sources (rebuilt for the assets a
 *   re-match touches); attributes with their confidence are computed when read, since staleness
 *   depends on the time of reading.
 * - asset_conflicts: ambiguous keys the matcher refused to merge, until the ambiguity goes away.
 * - asset_matched_snapshots: the snapshot each connection's stored sources were last brought in
 *   step with, so a re-match after a sync reads only the records the sync says it changed.
 */
export const assetMigrations: readonly Migration[] = [
  {
    version: 600,
    name: 'asset_sources',
    sql: `CREATE TABLE asset_sources (
      tenant text NOT NULL CHECK (tenant ~ '^[A-Za-z0-9._-]{1,64}$'),
      kind text NOT NULL CHECK (kind IN ('intune', 'agent')),
      origin text COLLATE "C" NOT NULL,
      source_id text COLLATE "C" NOT NULL,
      asset_id uuid NOT NULL,
      serial_fingerprint text,
      hardware_fingerprint text,
      entra_device_id text,
      observation jsonb NOT NULL,
      last_seen_at timestamptz,
      PRIMARY KEY (tenant, kind, origin, source_id)
    )`,
  },
  {
    version: 601,
    name: 'asset_sources_by_asset',
    sql: `CREATE INDEX asset_sources_by_asset ON asset_sources (tenant, asset_id)`,
  },
  {
    version: 602,
    name: 'asset_sources_by_serial',
    sql: `CREATE INDEX asset_sources_by_serial ON asset_sources (tenant, serial_fingerprint) WHERE serial_fingerprint IS NOT NULL`,
  },
  {
    version: 603,
    name: 'asset_sources_by_entra',
    sql: `CREATE INDEX asset_sources_by_entra ON asset_sources (tenant, entra_device_id) WHERE entra_device_id IS NOT NULL`,
  },
  {
    version: 604,
    name: 'assets',
    sql: `CREATE TABLE assets (
      tenant text NOT NULL CHECK (tenant ~ '^[A-Za-z0-9._-]{1,64}$'),
      asset_id uuid NOT NULL,
      anchor text NOT NULL,
      serial_fingerprint text,
      os_family text NOT NULL,
      compliance_state text,
      has_intune boolean NOT NULL,
      has_agent boolean NOT NULL,
      disagreement boolean NOT NULL,
      conflict boolean NOT NULL,
      updated_at timestamptz NOT NULL,
      PRIMARY KEY (tenant, asset_id)
    )`,
  },
  {
    version: 605,
    name: 'assets_by_serial',
    sql: `CREATE INDEX assets_by_serial ON assets (tenant, serial_fingerprint) WHERE serial_fingerprint IS NOT NULL`,
  },
  {
    version: 606,
    name: 'asset_conflicts',
    sql: `CREATE TABLE asset_conflicts (
      tenant text NOT NULL CHECK (tenant ~ '^[A-Za-z0-9._-]{1,64}$'),
      conflict_key text COLLATE "C" NOT NULL,
      conflict_id uuid NOT NULL,
      kind text NOT NULL,
      serial_fingerprint text,
      entra_device_id text,
      asset_ids jsonb NOT NULL,
      sources jsonb NOT NULL,
      detected_at timestamptz NOT NULL,
      PRIMARY KEY (tenant, conflict_key)
    )`,
  },
  {
    version: 607,
    name: 'intune_device_postures_by_serial',
    // The devices route's fingerprint= filter: one index lookup instead of a scan of the snapshot.
    sql: `CREATE INDEX intune_device_postures_by_serial ON intune_device_postures (tenant, (posture->>'serial_fingerprint'))`,
  },
  {
    version: 608,
    name: 'drop_asset_sources_by_serial',
    // A re-match finds a serial's sources through assets_by_serial (every source reporting a serial
    // belongs to the asset of that serial), so each source written no longer pays for a fourth index.
    sql: `DROP INDEX IF EXISTS asset_sources_by_serial`,
  },
  {
    version: 609,
    name: 'asset_matched_snapshots',
    sql: `CREATE TABLE asset_matched_snapshots (
      tenant text NOT NULL CHECK (tenant ~ '^[A-Za-z0-9._-]{1,64}$'),
      connection_id text COLLATE "C" NOT NULL,
      snapshot_id uuid NOT NULL,
      PRIMARY KEY (tenant, connection_id)
    )`,
  },
];
