/**
 * A verify worker reading its own ranges: over a PostgreSQL connection of its own, a worker copies
 * the range it was handed, reads the row before it, and checks the range in place. The bytes then
 * go from the server's socket to the check on one thread, with no hop through the thread that
 * plans the walk and no copy into shared memory; the planning thread only joins the answers in seq
 * order (verify.ts), and reads a range itself whenever a worker could not.
 *
 * The row before a range is the last row with 0 < seq <= after: exactly the row a walk in seq
 * order would have read last before the range (ranges cover seq 1 to the end without a gap).
 */
import type pg from 'pg';
import { copyBinaryOn, readerClient, type CopyDemux } from '../db/copy.js';
import type { ReaderConnection } from '../db/types.js';
import { BEFORE_CHAIN, type CheckpointRef, type ChunkResult, type PreviousRow } from './verify-core.js';
import { checkCopyChunk, lastCopyRow } from './verify-copy.js';

/** A range for a worker to read and check: seq in (after, end] of one chain. */
export interface ReadTask {
  readonly connection: ReaderConnection;
  readonly tenant: string;
  readonly after: number;
  readonly end: number;
  readonly headSeq: number;
  /** Trusted checkpoints whose seq falls in the range. */
  readonly checkpoints: readonly CheckpointRef[];
}

/** A row as the next range needs it (seq arrives as text from a client without the int8 parser). */
export type LastRow = { readonly seq: number | string; readonly hash: string; readonly body: string };

/**
 * What a worker found: the row before the range it read, the range's last row (null: no row, or
 * bytes that do not end as a copy should) and the range's check (null when there was no last row);
 * or why it read nothing (the planning thread then reads the range itself).
 */
export type ReadResult =
  | { readonly read: true; readonly previous: PreviousRow; readonly last: LastRow | null; readonly result: ChunkResult | null }
  | { readonly read: false; readonly reason: string };

/**
 * The columns verify copies, in the order checkCopyChunk reads them (seq, prev_hash, hash, body,
 * then envelope.ts's INDEX_COLUMNS_SQL), and the types it reads their binary values as: a table altered to
 * other types is read the ordinary way (verify.ts asks the catalog).
 */
export const COPIED_TYPES: Readonly<Record<string, string>> = {
  seq: 'bigint',
  prev_hash: 'text',
  hash: 'text',
  body: 'text',
  time: 'timestamp with time zone',
  type: 'text',
  code: 'text',
  actor_kind: 'text',
  actor_id: 'text',
  request_id: 'text',
  decision: 'text',
  device_ids: 'text[]',
};
const COPIED_COLUMNS = Object.keys(COPIED_TYPES).join(', ');

/** The statement copying seq in (after, end] of a chain: COPIED_TYPES's columns. COPY takes no parameters: the tenant is a quoted literal. */
export function copyRangeSql(tenant: string, after: number, end: number): string {
  return `SELECT ${COPIED_COLUMNS} FROM chronicle_event
       WHERE tenant = ${sqlLiteral(tenant)} AND seq > ${after} AND seq <= ${end} ORDER BY seq`;
}

const PREVIOUS_ROW_SQL = 'SELECT seq, hash, body FROM chronicle_event WHERE tenant = $1 AND seq > 0 AND seq <= $2 ORDER BY seq DESC LIMIT 1';

/** A string as an SQL literal (standard_conforming_strings or not). */
function sqlLiteral(value: string): string {
  const quoted = `'${value.replace(/'/g, "''")}'`;
  return value.includes('\\') ? `E${quoted.replace(/\\/g, '\\\\')}` : quoted;
}

/** The time of a stored body, for the next range's "time never goes back" check; '' when unreadable. */
function timeOf(body: string): string {
  const at = body.lastIndexOf('"time":"');
  return at < 0 ? '' : body.slice(at + 8, at + 32);
}

/** A range's last row as the row before the next range. */
export function rowBefore(last: LastRow): PreviousRow {
  return { seq: Number(last.seq), hash: last.hash, body: last.body, time: timeOf(last.body) };
}

/** Whether two rows before a range are the same stored row. */
export function samePrevious(a: PreviousRow, b: PreviousRow): boolean {
  return a.seq === b.seq && a.hash === b.hash && a.body === b.body;
}

/**
 * One worker's reader: a client opened on first use and closed after a few idle seconds (a verify
 * that ended keeps no connection), copy buffers reused range after range, and ranges read one
 * after the other. The next range's statements go out the moment the copy before it is in, before
 * that range is checked: the server copies one range while this thread checks the other.
 */
export class RangeReader {
  private readonly queue: Array<{ task: ReadTask; resolve: (result: ReadResult) => void }> = [];
  private readonly buffers: Buffer[] = [];
  private client: { key: string; client: pg.Client; demux: CopyDemux | undefined } | undefined;
  private connecting: Promise<void> | undefined;
  /** Statements of a range are on the connection. */
  private sending = false;
  private pending = 0;
  private idle: NodeJS.Timeout | undefined;

  constructor(private readonly idleMs = 5_000) {}

  read(task: ReadTask): Promise<ReadResult> {
    return new Promise<ReadResult>((resolve) => {
      this.pending++;
      if (this.idle !== undefined) clearTimeout(this.idle);
      this.queue.push({
        task,
        resolve: (result) => {
          resolve(result);
          if (--this.pending === 0) {
            this.idle = setTimeout(() => void this.close(), this.idleMs);
            this.idle.unref();
          }
        },
      });
      this.pump();
    });
  }

  /** Ends the connection (a later read opens another). */
  async close(): Promise<void> {
    if (this.idle !== undefined) clearTimeout(this.idle);
    const open = this.client;
    this.client = undefined;
    await open?.client.end().catch(() => undefined);
  }

  /** Sends the next range's statements when the connection is free (one at a time: pg queues no more than that). */
  private pump(): void {
    const next = this.queue[0];
    if (this.sending || next === undefined) return;
    const open = this.connected(next.task.connection);
    if (open === undefined) return;
    const { client, demux } = open;
    this.queue.shift();
    this.sending = true;
    const { task, resolve } = next;
    const into = this.buffers.pop();
    const framing = { lastRowAt: -1 };
    const before = task.after === 0 ? Promise.resolve(null) : client.query<{ seq: string | number; hash: string; body: string }>(PREVIOUS_ROW_SQL, [task.tenant, task.after]);
    const copying = copyBinaryOn(client, copyRangeSql(task.tenant, task.after, task.end), into, framing, demux);
    Promise.all([before, copying]).then(
      ([found, bytes]) => {
        this.sending = false;
        this.pump();
        const row = found?.rows[0];
        const previous = row === undefined ? BEFORE_CHAIN : rowBefore(row);
        const last = lastCopyRow(bytes, framing.lastRowAt);
        const result = last === null ? null : checkCopyChunk({ tenant: task.tenant, previous, headSeq: task.headSeq, copy: bytes, checkpoints: task.checkpoints });
        this.buffers.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.buffer.byteLength - bytes.byteOffset));
        resolve({ read: true, previous, last, result });
      },
      (err: unknown) => {
        // A statement cancelled, a server gone: this range (its buffer dropped with the client that
        // may still write to it) goes back to the planning thread, the next one gets a fresh client.
        this.sending = false;
        copying.catch(() => undefined);
        before.catch(() => undefined);
        void this.close();
        resolve({ read: false, reason: err instanceof Error ? err.message : String(err) });
        this.pump();
      },
    );
  }

  /** The connected client for `connection`; undefined while one connects (pump runs again once it has). */
  private connected(connection: ReaderConnection): { client: pg.Client; demux: CopyDemux | undefined } | undefined {
    const key = JSON.stringify(connection);
    if (this.client !== undefined && this.client.key === key) return this.client;
    if (this.connecting !== undefined) return undefined;
    void this.close();
    const { client, demux } = readerClient(connection);
    // A server that goes away between ranges: the client is dropped, the next range opens another.
    client.on('error', () => {
      if (this.client?.client === client) this.client = undefined;
    });
    this.connecting = client.connect().then(
      () => {
        this.connecting = undefined;
        this.client = { key, client, demux };
        this.pump();
      },
      (err: unknown) => {
        // Nothing queued can be read over this connection: every range goes back to the planning thread.
        this.connecting = undefined;
        const reason = err instanceof Error ? err.message : String(err);
        for (const { resolve } of this.queue.splice(0)) resolve({ read: false, reason });
      },
    );
    return undefined;
  }
}
