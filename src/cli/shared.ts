/** Helpers every command shares: config loading and turning failures into one clear line and an exit code. */
import { createChronicle, type Chronicle } from '../chronicle/index.js';
import { ConfigError, loadConfig, type Config } from '../config/index.js';
import { openDatabase, type Db } from '../db/index.js';
import { DbError } from '../db/errors.js';
import { createLogger } from '../log/index.js';

export const EXIT = Object.freeze({ ok: 0, failure: 1, usage: 2, config: 3, unavailable: 4 });

export function configFromEnv(): Config {
  return loadConfig(process.env);
}

/** Prints a failure to stderr without a stack (unless DEBUG is set) and returns the exit code. */
export function reportFatal(err: unknown): number {
  const debug = process.env['DEBUG'] !== undefined && process.env['DEBUG'] !== '';
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    return EXIT.config;
  }
  if (err instanceof DbError) {
    process.stderr.write(`error: ${err.message}\n`);
    return err.code === 'db_unavailable' ? EXIT.unavailable : EXIT.failure;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${message}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return EXIT.failure;
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
