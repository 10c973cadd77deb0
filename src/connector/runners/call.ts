/** What every runner receives besides its own deps: the tenant's Graph client, the checked input, the caller's signal. */
import type { Logger } from '../../log/index.js';
import { classifyGraphError, type GraphFailure } from '../errors.js';
import type { GraphClient } from '../graph/types.js';

export interface RunCall<I> {
  readonly graph: GraphClient;
  readonly tenant: string;
  /** Parsed by the operation's input schema: a runner never re-validates. */
  readonly input: I;
  readonly signal: AbortSignal | undefined;
}

/** `{ signal }` when there is one: with exactOptionalPropertyTypes an absent option must be left out, not undefined. */
export const signalOption = (signal: AbortSignal | undefined): { signal?: AbortSignal } => (signal !== undefined ? { signal } : {});

/** Unexpected Graph failures go to the log (their safe message only); the caller gets the failure's sentence. */
export function noteFailure(logger: Logger | undefined, failure: GraphFailure, operation: string, err?: unknown): GraphFailure {
  if (failure.reason === 'graph_error') {
    logger?.warn({ err: err instanceof Error ? { name: err.name, message: err.message } : undefined, operation, graphRequestId: failure.graphRequestId }, 'Graph call failed');
  }
  return failure;
}

export function graphFailure(logger: Logger | undefined, err: unknown, operation: string): GraphFailure {
  return noteFailure(logger, classifyGraphError(err), operation, err);
}
