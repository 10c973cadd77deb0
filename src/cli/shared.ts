/** Helpers every command shares: config loading and turning failures into one clear line and an exit code. */
import { ConfigError, loadConfig, type Config } from '../config/index.js';
import { DbError } from '../db/errors.js';

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
