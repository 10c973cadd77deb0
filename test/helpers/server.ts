/** What a test's `serve` needs: its own data directory, its database, a free port, and no background work it did not ask for. */
import type { TestDatabase } from './db.js';

export function quietServerEnv(dataDir: string, database?: TestDatabase, extra: Record<string, string> = {}): Record<string, string> {
  return {
    INTUNE_DATA_DIR: dataDir,
    INTUNE_SYNC_INTERVAL: '0',
    CHRONICLE_CHECKPOINT_INTERVAL: '0',
    PORT: '0',
    ...(database?.url !== undefined ? { DATABASE_URL: database.url } : {}),
    ...extra,
  };
}
