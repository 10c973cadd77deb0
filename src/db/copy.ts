/**
 * Binary COPY out over a node-postgres connection, and the plain description of a connection that
 * another thread of this process can open to the same database (a worker reading on its own).
 */
import pg from 'pg';
import type { ReaderConnection } from './types.js';

/**
 * Bytes appended as they arrive, into one buffer that doubles when full (at least 1 MiB). The
 * chunks are copied at once: node-postgres's parser and the embedded database both reuse the
 * memory they hand over.
 */
export class ByteSink {
  private data: Buffer;
  private size = 0;

  constructor(into?: Buffer) {
    this.data = into ?? Buffer.allocUnsafeSlow(1 << 20);
  }

  get length(): number {
    return this.size;
  }

  append(chunk: Uint8Array): void {
    if (this.size + chunk.length > this.data.length) {
      let size = Math.max(1 << 20, this.data.length * 2);
      while (size < this.size + chunk.length) size *= 2;
      const grown = Buffer.allocUnsafeSlow(size);
      this.data.copy(grown, 0, 0, this.size);
      this.data = grown;
    }
    this.data.set(chunk, this.size);
    this.size += chunk.length;
  }

  /** What was appended (a view, valid until the next append). */
  bytes(): Buffer {
    return this.data.subarray(0, this.size);
  }
}

/**
 * `COPY ... TO STDOUT` as a node-postgres submittable: each CopyData message's bytes are appended
 * to one growing buffer as they arrive, and no row object or string is ever made.
 */
class CopyOutQuery {
  private readonly sink: ByteSink;
  /** Where the last two CopyData messages started. */
  private lastAt = -1;
  private beforeLastAt = -1;
  private settled = false;
  readonly done: Promise<Buffer>;
  private resolve!: (data: Buffer) => void;
  private reject!: (err: unknown) => void;

  constructor(
    readonly text: string,
    into?: Buffer,
  ) {
    this.sink = new ByteSink(into);
    this.done = new Promise<Buffer>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  submit(connection: { query(text: string): void }): void {
    connection.query(this.text);
  }

  handleCopyData(message: { chunk: Buffer }): void {
    this.beforeLastAt = this.lastAt;
    this.lastAt = this.sink.length;
    this.sink.append(message.chunk);
  }

  handleError(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  handleReadyForQuery(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(this.sink.bytes());
  }

  /** The offset of the message before the last one (-1: fewer than two). */
  get beforeLastMessageAt(): number {
    return this.beforeLastAt;
  }

  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {
    this.handleError(new Error('COPY TO STDOUT answered rows instead of copy data'));
  }
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(connection: { sendCopyFail(message: string): void }): void {
    connection.sendCopyFail('this query only copies out');
  }
}

/**
 * What a bulk read in key order runs under (SET LOCAL: its own statement or transaction only):
 * sorting discouraged, so a query ordered by an index's key reads through that index. See
 * copyBinaryOn for why, and queryInKeyOrder (index.ts) for reads that are not copies.
 */
export const KEY_ORDER = 'SET LOCAL enable_sort = off';

/**
 * `COPY (query) TO STDOUT (FORMAT binary)` on one client: see Db.copyBinary. The statement runs
 * with sorting discouraged (KEY_ORDER, this statement only): a query ordered by an index's key
 * is read through that index. Otherwise a table whose rows of one key prefix lie scattered among
 * others' (a chain's events among other tenants' events, appended as they come) looks to the
 * planner like random reads, and it gathers a range with a bitmap scan and sorts it, spilling to
 * disk past work_mem: more than twice the server's work per row, measured on verify's ranges.
 */
export async function copyBinaryOn(client: pg.ClientBase, query: string, into?: Buffer, framing?: { lastRowAt: number }): Promise<Buffer> {
  const copy = new CopyOutQuery(`${KEY_ORDER}; COPY (${query}) TO STDOUT (FORMAT binary)`, into);
  void client.query(copy as unknown as pg.QueryConfig);
  const bytes = await copy.done;
  if (framing !== undefined) framing.lastRowAt = copy.beforeLastMessageAt;
  return bytes;
}

/** node-postgres's settings for a connection as a ReaderConnection describes it (the pool's and a reader's alike). */
export function clientConfig(connection: ReaderConnection): pg.ClientConfig {
  return {
    connectionString: connection.connectionString,
    connectionTimeoutMillis: connection.connectTimeoutMs,
    statement_timeout: connection.statementTimeoutMs,
    application_name: connection.applicationName,
  };
}

/** A client of its own on the database a ReaderConnection describes (not connected yet). */
export function readerClient(connection: ReaderConnection): pg.Client {
  return new pg.Client(clientConfig(connection));
}
