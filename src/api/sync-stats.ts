/**
 * Sync run figures for /metrics, read from the posture runtime's tables at scrape time: runs are
 * recorded there by whichever replica ran them, so every replica reports the same cluster-wide
 * numbers. Both queries use the runs' indexes and touch one row per connection at most.
 */
import type { Db } from '../db/index.js';
import type { SyncRunStats } from './metrics.js';

export function createSyncRunStats(db: Db): () => Promise<SyncRunStats> {
  return async () => {
    const byStatus = await db.query<{ status: string; runs: number }>(
      'SELECT status, count(*)::int AS runs FROM intune_sync_runs GROUP BY status',
    );
    const last = await db.query<{ connection_id: string; status: string; duration_ms: number }>(
      `SELECT DISTINCT ON (connection_id) connection_id::text AS connection_id, status, duration_ms
         FROM intune_sync_runs
        WHERE finished_at IS NOT NULL AND duration_ms IS NOT NULL
        ORDER BY connection_id, started_at DESC`,
    );
    return {
      byStatus: Object.fromEntries(byStatus.rows.map((r) => [r.status, Number(r.runs)])),
      lastDurations: last.rows.map((r) => ({ connectionId: r.connection_id, status: r.status, seconds: Number(r.duration_ms) / 1000 })),
    };
  };
}
