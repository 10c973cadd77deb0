/**
 * Exit codes and the one-line failure report every command shares. Kept apart from shared.ts so
 * that loading it costs nothing: the entry point needs it before it knows which command runs.
 * The codes are the README's table (section "Exit codes").
 */
import { DbError } from '../db/errors.js';

export const EXIT = Object.freeze({ ok: 0, failure: 1, usage: 2, config: 3, unavailable: 4 });

/** A mistake in how the command was called (a value not in its documented form): exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Failures that are the caller's input, whichever module found them (by class name, so this file
 * imports none of them): exit 2. Configuration the operator fixes in the environment: exit 3.
 */
const USAGE_ERRORS: ReadonlySet<string> = new Set(['UsageError', 'KeyInputError', 'PostureInputError', 'GateInputError', 'CursorError', 'ConnectorUsageError']);
const CONFIG_ERRORS: ReadonlySet<string> = new Set(['ConfigError', 'SecretRefError', 'FingerprintKeyError']);

function errorClass(err: Error): string {
  return err.name !== 'Error' ? err.name : err.constructor.name;
}

/** Prints a failure to stderr without a stack (unless DEBUG is set) and returns the exit code. */
export function reportFatal(err: unknown): number {
  const debug = process.env['DEBUG'] !== undefined && process.env['DEBUG'] !== '';
  // By name, not instanceof: importing the config module (and zod) here would slow every command.
  if (err instanceof Error && CONFIG_ERRORS.has(errorClass(err))) {
    process.stderr.write(errorClass(err) === 'ConfigError' ? `${err.message}\n` : `error: ${err.message}\n`);
    return EXIT.config;
  }
  if (err instanceof Error && USAGE_ERRORS.has(errorClass(err))) {
    process.stderr.write(`error: ${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof DbError) {
    process.stderr.write(`error: ${err.message}\n`);
    // Unreachable, or held by a process that does not share it: either way the database cannot be used.
    return err.code === 'db_unavailable' || err.code === 'db_locked' ? EXIT.unavailable : EXIT.failure;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${message}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return EXIT.failure;
}
