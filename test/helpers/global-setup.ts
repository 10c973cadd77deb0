/**
 * Once per run: find the PostgreSQL server and the Redis server the tests use. In CI both must be
 * there; on a laptop without one, the tests needing it are skipped with a loud message.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAvailable: boolean;
    testDatabaseUrl: string;
    redisAvailable: boolean;
    testRedisUrl: string;
  }
}

async function findRedis(project: TestProject): Promise<void> {
  const url = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 3_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    project.provide('redisAvailable', true);
  } catch (err) {
    if (process.env['CI']) throw new Error(`CI needs Redis at ${url} and could not reach it: ${(err as Error).message}`);
    project.provide('redisAvailable', false);
    process.stderr.write(`\n!!! Redis is not reachable at ${url} (${(err as Error).message}).\n!!! Tests of replicas sharing through Redis are SKIPPED; start it or set TEST_REDIS_URL.\n\n`);
  } finally {
    project.provide('testRedisUrl', url);
    client.disconnect();
  }
}

export default async function setup(project: TestProject): Promise<void> {
  await findRedis(project);
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
