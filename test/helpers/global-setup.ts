/**
 * Once per run: find the PostgreSQL server the tests use. In CI it must be there; on a laptop
 * without one, the PostgreSQL variants are skipped with a loud message (PGlite ones still run).
 */
import pg from 'pg';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAvailable: boolean;
    testDatabaseUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const url = process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    project.provide('pgAvailable', true);
    project.provide('testDatabaseUrl', url);
  } catch (err) {
    if (process.env['CI']) {
      throw new Error(`CI needs PostgreSQL at ${url} and could not reach it: ${(err as Error).message}`);
    }
    project.provide('pgAvailable', false);
    project.provide('testDatabaseUrl', url);
    process.stderr.write(
      `\n!!! PostgreSQL is not reachable at ${url} (${(err as Error).message}).\n!!! PostgreSQL test variants are SKIPPED; start it or set TEST_DATABASE_URL.\n\n`,
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}
