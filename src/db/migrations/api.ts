import type { Migration } from '../migrate.js';

/**
 * API keys (versions 400–499), one statement per migration: PGlite runs each migration as a single
 * prepared statement.
 *
 * Only the SHA-256 of each key is stored (keys are 256-bit random, so a fast hash is enough; a
 * slow KDF would only cost the gate's hot path). `api_bootstrap` remembers that `serve` already
 * printed a first admin key for a tenant, so later starts do not mint another.
 */
export const apiMigrations: readonly Migration[] = [
  {
    version: 401,
    name: 'api_keys',
    sql: `CREATE TABLE api_keys (
      key_id text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
      tenant text NOT NULL CHECK (tenant ~ '^[A-Za-z0-9._-]{1,64}$'),
      role text NOT NULL CHECK (role IN ('admin', 'reader', 'gate', 'auditor', 'agent')),
      capabilities text NOT NULL DEFAULT 'READ' CHECK (capabilities ~ '^(READ|PROPOSE|MUTATE)(,(READ|PROPOSE|MUTATE))*$'),
      name text CHECK (name IS NULL OR length(name) <= 100),
      secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by text NOT NULL,
      revoked_at timestamptz,
      revoked_by text
    )`,
  },
  {
    version: 402,
    name: 'api_keys_by_tenant',
    sql: `CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at)`,
  },
  {
    version: 403,
    name: 'api_bootstrap',
    sql: `CREATE TABLE api_bootstrap (
      tenant text PRIMARY KEY CHECK (tenant ~ '^[A-Za-z0-9._-]{1,64}$'),
      key_id text NOT NULL,
      issued_at timestamptz NOT NULL DEFAULT now()
    )`,
  },
  // A key is made unusable and becomes usable only once its admin.api_key_created event has
  // committed: a key whose audit failed, and whose removal failed too, still never authenticates.
  // Keys made before this column existed were audited when they were made.
  {
    version: 404,
    name: 'api_keys_confirmed',
    sql: `ALTER TABLE api_keys ADD COLUMN confirmed boolean NOT NULL DEFAULT true`,
  },
];
