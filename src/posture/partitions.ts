/**
 * The partitioned read of a sync run: the tenant is cut into lastSyncDateTime ranges taken from
 * the previous snapshot, read in parallel, and deduplicated by device id as they are written.
 *
 * The partition rule (docs/DESIGN-NOTES.md has the argument at length):
 * - Boundaries b1 < b2 < ... < bk are every `perRange`-th lastSyncDateTime of the previous
 *   snapshot, all earlier than the cut-off E (the run's start less a clock-skew margin). The
 *   ranges are half-open: (-inf, b1), [b1, b2), ..., [bk, E) — the closed ranges — and [E, +inf),
 *   the open range. Every lastSyncDateTime value falls in exactly one of them.
 * - A closed range is read as ONE page. A page is a consistent answer, so a device in the range
 *   when the page is computed is in it. If the page says there is more (a nextLink), the range is
 *   split in two and both halves are read instead; the page is dropped. Following a nextLink
 *   inside a closed range would not be safe: a device that checks in leaves the range, the
 *   remaining matches shift, and a device that never moved could fall between two pages.
 * - The open range is read last, after every closed range is done, by nextLink paging. Devices
 *   only ever enter it (a check-in moves lastSyncDateTime forward, to a time >= E), so paging it
 *   can repeat a device but never skip one.
 * - A device whose lastSyncDateTime stays put is in one closed range and is read there. One that
 *   checks in before its closed range is read is in the open range when that is read; one that
 *   checks in after was already read in its closed range. Either way it is read at least once,
 *   and rows are keyed by (snapshot, device id), keeping the most recently synced record.
 * - Any 400 for a filter (a Graph that does not support it), a range that cannot be split (more
 *   than a page of devices at one millisecond) or a split count past the limit abandons the
 *   partition: the run reads the tenant by sequential nextLink paging, and the upsert keeps
 *   the rows already written correct.
 */
import { setMaxListeners } from 'node:events';
import { GraphError } from '../connector/graph/errors.js';
import type { DeviceFilter, DevicePage, GraphClient } from '../connector/graph/types.js';
import type { Queryable } from '../db/index.js';
import { defined } from '../common/values.js';
import type { PageRows, PageSink } from './page-rows.js';

/** A half-open lastSyncDateTime range [fromMs, toMs); an absent end is unbounded. */
export interface SyncRange {
  readonly fromMs?: number;
  readonly toMs?: number;
  /** For a range unbounded below: how far below toMs its next split goes (doubles at each split). */
  readonly stepMs?: number;
}

export interface SyncPlan {
  /** Read one page each, in parallel. */
  readonly closed: readonly SyncRange[];
  /** [cutoffMs, +inf), read last by nextLink paging. */
  readonly open: SyncRange;
  /** Typical width of a closed range, for splitting the unbounded-below one. */
  readonly spanHintMs: number;
}

const DAY_MS = 86_400_000;

/**
 * The ranges for `boundaries` (milliseconds, any order, duplicates allowed) and the cut-off E.
 * Pure: boundaries at or after E are dropped, so the closed ranges end at E whatever the snapshot held.
 */
export function planRanges(boundaries: readonly number[], cutoffMs: number): SyncPlan {
  const sorted = [...new Set(boundaries.filter((b) => Number.isFinite(b) && b < cutoffMs).map((b) => Math.floor(b)))].sort((a, b) => a - b);
  const closed: SyncRange[] = [];
  let from: number | undefined;
  for (const b of sorted) {
    closed.push(from === undefined ? { toMs: b } : { fromMs: from, toMs: b });
    from = b;
  }
  closed.push(from === undefined ? { toMs: cutoffMs } : { fromMs: from, toMs: cutoffMs });
  const first = sorted[0];
  const spanHintMs = first === undefined ? DAY_MS : Math.max(1_000, Math.ceil((cutoffMs - first) / Math.max(1, sorted.length)));
  return { closed, open: { fromMs: cutoffMs }, spanHintMs };
}

/** Two ranges that together are `range`, or undefined when it cannot be split (under 2 ms wide, or open above). */
export function splitRange(range: SyncRange, spanHintMs: number): readonly [SyncRange, SyncRange] | undefined {
  const { fromMs, toMs } = range;
  if (toMs === undefined) return undefined;
  if (fromMs === undefined) {
    const step = range.stepMs ?? spanHintMs;
    const at = toMs - step;
    return [{ toMs: at, stepMs: step * 2 }, { fromMs: at, toMs }];
  }
  if (toMs - fromMs < 2) return undefined;
  const mid = fromMs + Math.floor((toMs - fromMs) / 2);
  return [
    { fromMs, toMs: mid },
    { fromMs: mid, toMs },
  ];
}

export function rangeFilter(range: SyncRange): DeviceFilter {
  const at = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
  return defined({ lastSyncOnOrAfter: at(range.fromMs), lastSyncBefore: at(range.toMs) });
}

/**
 * Every `perRange`-th last sync time of a snapshot, in order, and how many devices it holds.
 * Devices without a last sync time are left out: the first range, unbounded below, holds them.
 */
export async function snapshotBoundaries(q: Queryable, snapshotId: string, perRange: number): Promise<{ devices: number; boundaries: number[] }> {
  const { rows } = await q.query<{ ms: number | string | null; devices: number }>(
    `SELECT s.ms, s.devices FROM (
       SELECT floor(extract(epoch FROM last_sync_at) * 1000)::float8 AS ms,
              row_number() OVER (ORDER BY last_sync_at) AS n,
              count(*) OVER () ::int AS devices
         FROM intune_device_postures WHERE snapshot_id = $1 AND last_sync_at IS NOT NULL) s
      WHERE s.n % $2 = 1 OR s.n = 1
      ORDER BY s.n`,
    [snapshotId, perRange],
  );
  return { devices: rows[0]?.devices ?? 0, boundaries: rows.map((r) => Number(r.ms)).filter((ms) => Number.isFinite(ms)) };
}

export type PartitionOutcome =
  | { readonly complete: true; readonly ranges: number; readonly splits: number }
  | { readonly complete: false; readonly reason: 'filter_refused' | 'unsplittable_range' | 'too_many_ranges'; readonly ranges: number; readonly splits: number };

/** A listing that maps its devices into `sink` (the sequential pager's input). */
export type Listing = (sink: PageSink) => AsyncIterable<DevicePage<void>>;

export interface PartitionedReadArgs {
  readonly client: GraphClient;
  readonly plan: SyncPlan;
  readonly top: number;
  /** $select of every request: the properties the posture is built from. */
  readonly select: readonly string[];
  readonly concurrency: number;
  readonly signal: AbortSignal;
  /** Splits allowed before the partition is abandoned for sequential paging. */
  readonly maxSplits: number;
  /** Resolves when the run may send its next Graph request (the run's share of the budget). */
  readonly pace: (signal: AbortSignal) => Promise<void>;
  /** Where a worker's pages go as they arrive (the sync redacts each device there): one per worker. */
  readonly sink: () => PageSink;
  /** Upserts a complete page; awaited before the worker reads on. */
  readonly write: (rows: PageRows) => Promise<void>;
  /** Reads a paged listing to its end through `write` (the sequential pager). */
  readonly consume: (listing: Listing) => Promise<void>;
}

/** A filter the service refused: the partition cannot work against this Graph, sequential paging can. */
function isFilterRefusal(err: unknown): boolean {
  return err instanceof GraphError && err.kind === 'bad_request' && err.status === 400;
}

/**
 * Reads the closed ranges with `concurrency` workers, then the open range. Resolves complete, or
 * with the reason the caller must fall back to sequential paging. Other failures reject.
 */
export async function readPartitioned(args: PartitionedReadArgs): Promise<PartitionOutcome> {
  const queue: SyncRange[] = [...args.plan.closed];
  let splits = 0;
  let ranges = 0;
  let stop: PartitionOutcome | undefined;
  let failure: { err: unknown } | undefined;
  const halt = new AbortController();
  // Each in-flight request listens for the halt.
  setMaxListeners(Math.max(10, args.concurrency * 2 + 4), halt.signal);
  const onAbort = () => halt.abort(args.signal.reason);
  args.signal.addEventListener('abort', onAbort, { once: true });
  const signal = halt.signal;

  const worker = async (): Promise<void> => {
    const sink = args.sink();
    for (;;) {
      if (stop !== undefined || failure !== undefined || signal.aborted) return;
      const range = queue.pop();
      if (range === undefined) return;
      try {
        await args.pace(signal);
        const page = await args.client.listDevicesPage({
          filter: rangeFilter(range),
          top: args.top,
          select: args.select,
          signal,
          mapDevice: sink.mapDevice,
          onPageStart: sink.onPageStart,
        });
        if (page.nextLink !== undefined) {
          const halves = splitRange(range, args.plan.spanHintMs);
          if (halves === undefined || splits >= args.maxSplits) {
            stop ??= { complete: false, reason: halves === undefined ? 'unsplittable_range' : 'too_many_ranges', ranges, splits };
            halt.abort(new Error('partition abandoned'));
            return;
          }
          splits += 1;
          queue.push(...halves);
          continue;
        }
        ranges += 1;
        const rows = sink.take();
        try {
          await args.write(rows);
        } finally {
          sink.release(rows);
        }
      } catch (err) {
        // Already halting (or the run was aborted): this is the cancellation of an in-flight request.
        if (stop !== undefined || failure !== undefined || args.signal.aborted) return;
        if (isFilterRefusal(err)) stop = { complete: false, reason: 'filter_refused', ranges, splits };
        else failure = { err };
        // The other workers stop at their next range; their in-flight requests are cancelled.
        halt.abort(err);
        return;
      }
    }
  };

  try {
    await Promise.all(Array.from({ length: Math.max(1, args.concurrency) }, () => worker()));
    if (args.signal.aborted) throw args.signal.reason;
    if (failure !== undefined) throw failure.err;
    if (stop !== undefined) return { ...stop, ranges, splits };
    // Only now: every closed range is done, so whatever checked in since is in the open range.
    await args.pace(signal);
    await args.consume((sink) =>
      args.client.listDevices({ filter: rangeFilter(args.plan.open), top: args.top, select: args.select, signal, mapDevice: sink.mapDevice, onPageStart: sink.onPageStart }),
    );
    ranges += 1;
    return { complete: true, ranges, splits };
  } finally {
    args.signal.removeEventListener('abort', onAbort);
  }
}

/**
 * A sliding-window pacer: at most `maxRequests` starts per `windowMs`, so a run keeps to its share
 * of Intune's per-app budget (2000 requests / 20 s) and leaves the rest to live lookups.
 */
export function createPacer(maxRequests: number, windowMs: number, now: () => number = Date.now): (signal: AbortSignal) => Promise<void> {
  const starts: number[] = [];
  return async function pace(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const t = now();
      while (starts.length > 0 && (starts[0] as number) <= t - windowMs) starts.shift();
      if (starts.length < maxRequests) {
        starts.push(t);
        return;
      }
      const waitMs = (starts[0] as number) + windowMs - t;
      await new Promise<void>((resolve) => {
        const onAbort = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        }, Math.max(1, waitMs));
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
  };
}
