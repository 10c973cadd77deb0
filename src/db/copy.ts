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

/** The simple-query ('Q') protocol message running `sql`. */
export function simpleQueryMessage(sql: string): Uint8Array {
  const text = Buffer.from(`${sql}\0`, 'utf8');
  const message = Buffer.alloc(5 + text.length);
  message[0] = 0x51;
  message.writeInt32BE(4 + text.length, 1);
  text.copy(message, 5);
  return message;
}

/**
 * The copy data of a backend's answer to `COPY ... TO STDOUT` given as raw protocol messages (what
 * the embedded database's execProtocolRaw returns): the CopyData payloads joined, other messages
 * skipped. An ErrorResponse is thrown as an Error carrying its SQLSTATE as `code`, and an answer
 * cut short, or one with no copy in it, is an error too.
 */
export function copyOutOfMessages(raw: Uint8Array): Buffer {
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  let size = 0;
  let copied = false;
  // Sized first (a length under 4 stops the sizing; the pass below refuses it).
  for (let p = 0, length = 0; p + 5 <= b.length && (length = b.readInt32BE(p + 1)) >= 4; p += 1 + length) if (b[p] === 0x64) size += length - 4;
  const out = Buffer.allocUnsafeSlow(size);
  let at = 0;
  let p = 0;
  while (p < b.length) {
    if (p + 5 > b.length) throw new Error('the COPY answer ends inside a message header');
    const code = b[p] as number;
    const length = b.readInt32BE(p + 1);
    const end = p + 1 + length;
    if (length < 4 || end > b.length) throw new Error('the COPY answer ends inside a message');
    if (code === 0x64) {
      b.copy(out, at, p + 5, end); // CopyData
      at += end - p - 5;
    } else if (code === 0x48) {
      copied = true; // CopyOutResponse
    } else if (code === 0x45) {
      throw errorResponse(b.subarray(p + 5, end));
    }
    p = end;
  }
  if (!copied) throw new Error('the statement answered no COPY data');
  return out;
}

/** An ErrorResponse's fields as an Error: its message (M), with its SQLSTATE (C) as `code`. */
function errorResponse(fields: Buffer): Error & { code?: string } {
  const values = new Map<string, string>();
  let p = 0;
  while (p < fields.length && fields[p] !== 0) {
    const end = fields.indexOf(0, p + 1);
    if (end < 0) break;
    values.set(String.fromCharCode(fields[p] as number), fields.toString('utf8', p + 1, end));
    p = end + 1;
  }
  const err: Error & { code?: string } = new Error(values.get('M') ?? 'the database answered an error');
  const code = values.get('C');
  if (code !== undefined) err.code = code;
  return err;
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
