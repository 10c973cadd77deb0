/**
 * Liveness, readiness and metrics: unauthenticated, as orchestrators and scrapers expect. They
 * carry no tenant data. Readiness means this replica can do its job: the database answers, every
 * migration this build knows is applied, and Chronicle can write (no audit, no service).
 */
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/index.js';
import type { Migration } from '../../db/migrate.js';
import type { AppMetrics } from '../metrics.js';
import type { SharingStatus } from '../../connector/replicas/index.js';

export interface ReadinessCheck {
  readonly name: string;
  readonly ok: boolean;
  /** Why not ready (or, for redis, why degraded); a sentence without internals. */
  readonly detail?: string;
  /** redis only: serving, but from this replica's own cache and Graph budget. */
  readonly degraded?: boolean;
}

export interface HealthDeps {
  readonly db: Db;
  readonly migrations: readonly Migration[];
  readonly metrics: AppMetrics;
  /** Whether Chronicle accepts appends (its tables writable): true, or a sentence saying why not. */
  readonly chronicleWritable: () => Promise<true | string>;
  /** Bound on each readiness probe, so a hung database answers 503 rather than hanging the probe. */
  readonly readinessTimeoutMs?: number;
  /** What replicas share (REDIS_URL): shown as the redis check. */
  readonly sharing?: () => SharingStatus;
}

/**
 * Redis down does not make a replica unready: it decides on its own cache and budget (never allow
 * by default), so the check stays ok and says it is degraded, and since when.
 */
function sharingCheck(status: SharingStatus): ReadinessCheck | undefined {
  if (status.redis === undefined) return undefined;
  if (status.redis.up) return { name: 'redis', ok: true };
  return {
    name: 'redis',
    ok: true,
    degraded: true,
    detail: `Redis does not answer since ${status.redis.since}: this replica uses its own compliance cache and Graph budget`,
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function readiness(deps: HealthDeps): Promise<ReadinessCheck[]> {
  const timeoutMs = deps.readinessTimeoutMs ?? 2_000;
  const checks: ReadinessCheck[] = [];
  try {
    await withTimeout(deps.db.query('SELECT 1'), timeoutMs);
    checks.push({ name: 'database', ok: true });
  } catch {
    checks.push({ name: 'database', ok: false, detail: 'the database does not answer' });
    checks.push({ name: 'migrations', ok: false, detail: 'unknown: the database does not answer' });
    checks.push({ name: 'chronicle', ok: false, detail: 'unknown: the database does not answer' });
    return checks;
  }
  try {
    const { rows } = await withTimeout(deps.db.query<{ version: number }>('SELECT version FROM schema_migrations'), timeoutMs);
    const applied = new Set(rows.map((r) => Number(r.version)));
    const missing = deps.migrations.filter((m) => !applied.has(m.version));
    checks.push(
      missing.length === 0
        ? { name: 'migrations', ok: true }
        : { name: 'migrations', ok: false, detail: `${missing.length} migration(s) not applied; run \`intune-connector migrate\`` },
    );
  } catch {
    checks.push({ name: 'migrations', ok: false, detail: 'schema_migrations cannot be read; run `intune-connector migrate`' });
  }
  try {
    const writable = await withTimeout(deps.chronicleWritable(), timeoutMs);
    checks.push(writable === true ? { name: 'chronicle', ok: true } : { name: 'chronicle', ok: false, detail: writable });
  } catch {
    checks.push({ name: 'chronicle', ok: false, detail: 'Chronicle cannot append' });
  }
  const sharing = deps.sharing !== undefined ? sharingCheck(deps.sharing()) : undefined;
  if (sharing !== undefined) checks.push(sharing);
  return checks;
}

export function healthRoutes(app: FastifyInstance, deps: HealthDeps): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const checks = await readiness(deps);
    const ready = checks.every((c) => c.ok);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
  });

  app.get('/metrics', async (_request, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(body);
  });
}
