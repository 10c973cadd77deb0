/**
 * Why a database answers nothing useful: it cannot be reached, it refuses writes (a read-only
 * standby or default_transaction_read_only, SQLSTATE 25006), it is out of disk (53100) or of other
 * resources (53xxx: memory, connections), or it is shutting down or restarting (57P01–57P04).
 */
export type DbUnavailableReason = 'unreachable' | 'read_only' | 'disk_full' | 'out_of_resources' | 'shutting_down';

/** What a caller is told of such a database (the API's 503 also names the reason). */
export const DATABASE_WORDS: Readonly<Record<DbUnavailableReason, string>> = {
  unreachable: 'the database cannot be reached; retry shortly',
  read_only: 'the database refuses writes (it is read-only: a standby, or default_transaction_read_only is on); retry once it accepts writes',
  disk_full: 'the database is out of disk space and refuses writes; retry once space has been freed',
  out_of_resources: 'the database is out of resources (memory or connections); retry shortly',
  shutting_down: 'the database is shutting down or restarting; retry shortly',
};

export class DbError extends Error {
  override readonly name = 'DbError';
  /** For 'db_unavailable': why, when the database said (unreachable otherwise). */
  readonly reason: DbUnavailableReason | undefined;
  constructor(
    message: string,
    readonly code: 'db_unavailable' | 'db_locked' | 'db_migration_failed',
    options?: { cause?: unknown; reason?: DbUnavailableReason | undefined },
  ) {
    super(message, options);
    this.reason = code === 'db_unavailable' ? (options?.reason ?? 'unreachable') : undefined;
  }
}

/** What a SQLSTATE says of the database, when it says it cannot serve (undefined for any other code). */
export function reasonOfCode(code: unknown): DbUnavailableReason | undefined {
  if (typeof code !== 'string') return undefined;
  if (code === '25006') return 'read_only';
  if (code === '53100') return 'disk_full';
  if (/^53[0-9A-Z]{3}$/.test(code)) return 'out_of_resources';
  if (/^57P0[1-4]$/.test(code)) return 'shutting_down';
  return undefined;
}

/**
 * Why the database could not serve, from err or the errors it wraps (a Chronicle or key error
 * around a DbError, or around the driver's own error with its SQLSTATE); undefined when nothing in
 * the chain says.
 */
export function dbUnavailableReason(err: unknown): DbUnavailableReason | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof DbError) {
      if (e.code === 'db_unavailable') return e.reason;
      continue;
    }
    const reason = reasonOfCode((e as { code?: unknown }).code);
    if (reason !== undefined) return reason;
  }
  return undefined;
}
