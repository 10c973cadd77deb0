/** Helpers every command shares: config loading and turning failures into one clear line and an exit code. */
import { createChronicle, type Chronicle } from '../chronicle/index.js';
import { loadConfig, type Config } from '../config/index.js';
import { openDatabase, type Db } from '../db/index.js';
import { createLogger } from '../log/index.js';

export { EXIT, reportFatal } from './exit.js';

export function configFromEnv(): Config {
  return loadConfig(process.env);
}

/**
 * Opens the database and Chronicle for a short administrative command, runs fn, and closes both.
 * No checkpoint timer runs; `createKey: false` refuses to invent a signing key (reviewer commands
 * must never sign with a key they just made).
 */
export async function withChronicle<T>(
  config: Config,
  { createKey }: { createKey: boolean },
  fn: (chronicle: Chronicle, db: Db) => Promise<T>,
): Promise<T> {
  const logger = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel });
  const db = await openDatabase(config.database);
  try {
    const chronicle = await createChronicle({
      db,
      logger,
      ...config.chronicle,
      checkpointIntervalMs: 0,
      createSigningKey: createKey,
      compileSchemasAtOpen: false,
    });
    try {
      return await fn(chronicle, db);
    } finally {
      await chronicle.close();
    }
  } finally {
    await db.close();
  }
}
