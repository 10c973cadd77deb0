import type { Migration } from '../migrate.js';

/**
 * Endpoint agents, runtime-lite (versions 500-599), one statement per migration: PGlite runs each
 * migration as a single prepared statement.
 *
 * - agent_enrollment_tokens: one-time tokens, stored as SHA-256 only. A token is created unusable
 *   and becomes usable once its creation event has committed; it is consumed (consumed_at set) in
 *   the same transaction that records the agent it enrolled.
 * - agent_cas: each tenant's agent CA certificate (public). Its private key is a file, never a row.
 * - agents: identity summaries. Serial numbers and hardware UUIDs are held only as keyed
 *   fingerprints. The latest heartbeat posture is kept per agent with its own timestamps, so a
 *   later asset view can merge it with Intune's record.
 */
export const agentMigrations: readonly Migration[] = [
  {
    version: 501,
    name: 'agent_enrollment_tokens',
    sql: `CREATE TABLE agent_enrollment_tokens (
      token_id text PRIMARY KEY CHECK (token_id ~ '^[0-9a-f]{16}$'),
      tenant text NOT NULL CHECK (tenant ~ '^[A-Za-z0-9._-]{1,64}$'),
      name text CHECK (name IS NULL OR length(name) <= 100),
      secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
      usable boolean NOT NULL DEFAULT false,
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by text NOT NULL,
      expires_at timestamptz NOT NULL,
      consumed_at timestamptz,
      consumed_by uuid
    )`,
  },
  {
    version: 502,
    name: 'agent_cas',
    sql: `CREATE TABLE agent_cas (
      tenant text PRIMARY KEY CHECK (tenant ~ '^[A-Za-z0-9._-]{1,64}$'),
      certificate_pem text NOT NULL,
      fingerprint_sha256 text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    )`,
  },
  {
    version: 503,
    name: 'agents',
    sql: `CREATE TABLE agents (
      agent_id uuid PRIMARY KEY,
      tenant text NOT NULL CHECK (tenant ~ '^[A-Za-z0-9._-]{1,64}$'),
      enrollment_id uuid NOT NULL,
      token_id text NOT NULL,
      platform text NOT NULL,
      agent_class text NOT NULL,
      os_family text NOT NULL,
      os_version text,
      os_build text,
      model text,
      serial_fingerprint text,
      hardware_fingerprint text,
      certificate_serial text NOT NULL,
      certificate_expires_at timestamptz NOT NULL,
      enrolled_at timestamptz NOT NULL DEFAULT now(),
      last_seen_at timestamptz,
      revoked_at timestamptz,
      revoked_by text,
      posture jsonb,
      posture_observed_at timestamptz,
      posture_received_at timestamptz
    )`,
  },
  {
    version: 504,
    name: 'agents_by_tenant',
    sql: `CREATE INDEX agents_by_tenant ON agents (tenant, enrolled_at DESC, agent_id)`,
  },
];
