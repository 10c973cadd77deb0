/** Small helpers the benchmarks share. */
import fs from 'node:fs';
import pg from 'pg';

/** The median of a non-empty list (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Runs one administrative statement (CREATE/DROP DATABASE) on the benchmark's PostgreSQL server. */
export async function adminQuery(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Anything that runs a query and answers its rows (a pg pool or client, the project's Db). */
export type Querier = { query<R>(sql: string, params?: unknown[]): Promise<{ rows: R[] }> };

/**
 * CPU milliseconds the PostgreSQL client backends serving this database have used so far, by pid,
 * from /proc/PID/schedstat (nanoseconds, unlike the 10 ms ticks of /proc/PID/stat); null when the
 * server is not on this machine or /proc cannot tell. Autovacuum and other background workers are
 * not counted.
 */
export async function backendCpuMs(db: Querier): Promise<Map<number, number> | null> {
  const { rows } = await db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'");
  const used = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      used.set(pid, Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6);
    } catch {
      return null;
    }
  }
  return used;
}

/**
 * The backends' CPU milliseconds between two readings of backendCpuMs; null when either is null. A
 * backend that started in between counts from zero; one that ended is lost (the pools keep theirs open).
 */
export function backendCpuSpent(before: Map<number, number> | null, after: Map<number, number> | null): number | null {
  if (before === null || after === null) return null;
  let spent = 0;
  for (const [pid, ms] of after) spent += ms - (before.get(pid) ?? 0);
  return spent;
}
