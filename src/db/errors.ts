export class DbError extends Error {
  override readonly name = 'DbError';
  constructor(
    message: string,
    readonly code: 'db_unavailable' | 'db_locked' | 'db_migration_failed',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
