/**
 * Who read device posture: every REST read of the device list or of one device becomes one
 * `integration.intune.posture_read` event (the key as actor; the route, the device id or the
 * filter, and how many devices were answered).
 *
 * The answer does not wait for the audit write: reads are the panel's and scripts' everyday path
 * and share the process with the gate, so an event is queued and written by a flush that runs
 * within `flushIntervalMs` (Chronicle's group commit puts the batch in one transaction). Nothing is
 * dropped: an append that fails stays queued and is retried on the next flush; a full queue makes
 * the next read wait for a flush and, if Chronicle still cannot record, refuses it with 503
 * audit_unavailable (as an unaudited action would be); close() writes everything before Chronicle
 * closes. Only a crash can lose the reads of the last flush interval, which is said in README.
 */
import { ChronicleError, type Actor, type AppendInput, type ChronicleWriter } from '../chronicle/types.js';
import type { Logger } from '../log/index.js';
import { parseTimeBound } from '../common/time.js';
import { defined } from '../common/values.js';

export const POSTURE_READ_EVENT = 'integration.intune.posture_read';

export const POSTURE_READ_ROUTES = {
  list: 'GET /api/v1/integrations/intune/devices',
  detail: 'GET /api/v1/integrations/intune/devices/{device_id}',
} as const;

/** The list filters an event may carry: validated values only (enums, GUIDs, times, a hex prefix), never free text. */
const FILTER_FIELDS = ['os_family', 'compliance_state', 'ownership', 'connection_id', 'last_sync_before', 'last_sync_after', 'q', 'limit'] as const;

export interface PostureRead {
  readonly tenant: string;
  readonly actor: Actor;
  readonly requestId: string;
  readonly route: keyof typeof POSTURE_READ_ROUTES;
  readonly status: number;
  readonly count: number;
  readonly deviceId?: string;
  /** The list's query string as validated; a cursor is recorded only as `paged: true`. */
  readonly query?: Readonly<Record<string, unknown>>;
  readonly total?: number;
}

export interface PostureReadAudit {
  /** Queues one read; resolves at once unless the queue is full (then after a flush). */
  record(read: PostureRead): Promise<void>;
  /** Writes everything queued now. */
  flush(): Promise<void>;
  /** Stops taking reads and writes everything queued. */
  close(): Promise<void>;
  stats(): { readonly recorded: number; readonly written: number; readonly pending: number; readonly retries: number };
}

export interface PostureReadAuditOptions {
  readonly chronicle: Pick<ChronicleWriter, 'append'>;
  readonly logger?: Logger;
  /** Longest a read waits in the queue (default 500 ms). */
  readonly flushIntervalMs?: number;
  /** Reads queued before the next one waits for a flush (default 10,000). */
  readonly maxPending?: number;
}

function filterOf(query: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const filter: Record<string, unknown> = {};
  for (const field of FILTER_FIELDS) if (query[field] !== undefined) filter[field] = query[field];
  // Times as the instant they name, whichever documented form was typed (a date alone is midnight UTC).
  for (const field of ['last_sync_before', 'last_sync_after'] as const) {
    if (filter[field] !== undefined) filter[field] = parseTimeBound(filter[field])?.toISOString();
  }
  if (query['cursor'] !== undefined) filter['paged'] = true;
  return filter;
}

export function postureReadEvent(read: PostureRead): AppendInput {
  return {
    tenant: read.tenant,
    type: POSTURE_READ_EVENT,
    actor: read.actor,
    requestId: read.requestId,
    data: {
      route: POSTURE_READ_ROUTES[read.route],
      status: read.status,
      ...defined({ device_id: read.deviceId?.toLowerCase(), filter: read.query === undefined ? undefined : filterOf(read.query) }),
      count: read.count,
      ...defined({ total: read.total }),
    },
  };
}

export function createPostureReadAudit({ chronicle, logger, flushIntervalMs = 500, maxPending = 10_000 }: PostureReadAuditOptions): PostureReadAudit {
  let queue: AppendInput[] = [];
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;
  let closed = false;
  const counters = { recorded: 0, written: 0, retries: 0 };

  async function writeBatch(): Promise<void> {
    const batch = queue;
    queue = [];
    const results = await Promise.allSettled(batch.map((event) => chronicle.append(event)));
    const rejected = (i: number) => (results[i]?.status === 'rejected' ? (results[i] as PromiseRejectedResult).reason : undefined);
    // An event Chronicle refuses as malformed would be refused forever: logged (never its content), not retried.
    const malformed = batch.filter((_event, i) => rejected(i) instanceof ChronicleError && (rejected(i) as ChronicleError).code === 'invalid_event');
    if (malformed.length > 0) logger?.error({ refused: malformed.length }, 'posture read audit: Chronicle refused read events as malformed');
    const failed = batch.filter((event, i) => results[i]?.status === 'rejected' && !malformed.includes(event));
    counters.written += batch.length - failed.length - malformed.length;
    if (failed.length > 0) {
      // Kept, oldest first, for the next flush: a read is never dropped because Chronicle blinked.
      queue = [...failed, ...queue];
      counters.retries += failed.length;
      const reason = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason as unknown;
      logger?.warn({ err: reason, pending: queue.length }, 'posture read audit: Chronicle did not record; retrying');
      schedule();
    }
  }

  function flush(): Promise<void> {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    // One flush at a time; a flush asked for during one runs after it, so it covers what was queued meanwhile.
    const run = (flushing ?? Promise.resolve()).then(() => (queue.length > 0 ? writeBatch() : undefined));
    const tracked = run.finally(() => {
      if (flushing === tracked) flushing = undefined;
    });
    flushing = tracked;
    return tracked;
  }

  function schedule(): void {
    if (timer !== undefined || closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      void flush();
    }, flushIntervalMs);
    timer.unref();
  }

  return {
    async record(read) {
      if (closed) throw new ChronicleError('the posture read audit is closed', 'closed');
      if (queue.length >= maxPending) {
        await flush();
        if (queue.length >= maxPending) {
          throw new ChronicleError(`${queue.length} posture reads are waiting to be recorded; refusing more until Chronicle records`, 'unavailable');
        }
      }
      queue.push(postureReadEvent(read));
      counters.recorded += 1;
      schedule();
    },
    flush,
    async close() {
      closed = true;
      await flush();
      if (queue.length > 0) {
        // One more try for what the last flush could not write; what remains is logged by count, never content.
        await flush();
        if (queue.length > 0) logger?.error({ lost: queue.length }, 'posture read audit: Chronicle could not record these reads before shutdown');
      }
    },
    stats: () => ({ ...counters, pending: queue.length }),
  };
}
