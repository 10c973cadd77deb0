/**
 * Versioned migrations, applied in order, each in its own transaction, recorded in
 * schema_migrations. Running them twice is a no-op; concurrent starters serialise on an advisory
 * lock (PostgreSQL), so two replicas booting together do not race.
 */
import type { Db } from './types.js';
import { DbError } from './errors.js';

export interface Migration {
  /** Strictly increasing; never renumber a shipped migration. */
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

const MIGRATION_LOCK_KEY = 7_264_031_001;

export async function runMigrations(db: Db, migrations: readonly Migration[]): Promise<{ applied: Migration[] }> {
  const versions = migrations.map((m) => m.version);
  if (versions.some((v, i) => i > 0 && v <= (versions[i - 1] as number))) {
    throw new DbError(`migrations are out of order: ${versions.join(', ')}`, 'db_migration_failed');
  }
  const applied: Migration[] = [];
  await db.transaction(async (tx) => {
    if (db.kind === 'postgres') await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const done = new Set(
      (await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => Number(r.version)),
    );
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      try {
        await tx.query(migration.sql);
      } catch (err) {
        throw new DbError(`migration ${migration.version} (${migration.name}) failed: ${(err as Error).message}`, 'db_migration_failed', {
          cause: err,
        });
      }
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      applied.push(migration);
    }
  });
  return { applied };
}
