/**
 * Typed errors of the posture runtime. Messages are safe to show a caller: they name fields and
 * references, never secret values, tokens or Graph response bodies.
 */

/** Bad input a caller can fix (the API answers 400 with `code` and `field`). */
export class PostureInputError extends Error {
  override readonly name = 'PostureInputError';
  constructor(
    /** e.g. invalid_field, unknown_field, secret_ref_not_registered, cloud_not_configured, invalid_cursor, connection_disabled. */
    readonly code: string,
    /** The offending field (dotted path), or null when the input as a whole is wrong. */
    readonly field: string | null,
    message: string,
  ) {
    super(message);
  }
}

/** A connection or run that does not exist in the caller's tenant (the API answers 404). */
export class PostureNotFoundError extends Error {
  override readonly name = 'PostureNotFoundError';
  constructor(
    readonly code: 'connection_not_found' | 'run_not_found',
    message: string,
  ) {
    super(message);
  }
}

/** A run of this connection is under way (in this process or another replica): the API answers 409 with runId. */
export class SyncInProgressError extends Error {
  override readonly name = 'SyncInProgressError';
  readonly code = 'sync_in_progress';
  constructor(
    readonly runId: string,
    readonly connectionId: string,
  ) {
    super(`a sync of connection ${connectionId} is already running (run ${runId}); wait for it to finish`);
  }
}

export type SecretRefErrorCode =
  | 'secret_ref_invalid'
  | 'secret_ref_scheme'
  | 'secret_ref_not_registered'
  | 'secret_ref_wrong_purpose'
  | 'secret_unavailable';

/** Why a secret reference was refused or could not be read. Never carries the value. */
export class SecretRefError extends Error {
  override readonly name = 'SecretRefError';
  constructor(
    readonly code: SecretRefErrorCode,
    message: string,
  ) {
    super(message);
  }
}
