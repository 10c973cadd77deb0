/**
 * Binary COPY out over a node-postgres connection (on a reader's own connection, through a socket
 * that takes the copy's rows off the wire itself), and the plain description of a connection that
 * another thread of this process can open to the same database (a worker reading on its own).
 */
import net from 'node:net';
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
    this.reserve(chunk.length);
    this.data.set(chunk, this.size);
    this.size += chunk.length;
  }

  /** Appends `from[start, end)`. */
  appendRange(from: Buffer, start: number, end: number): void {
    this.reserve(end - start);
    this.size += from.copy(this.data, this.size, start, end);
  }

  private reserve(more: number): void {
    if (this.size + more <= this.data.length) return;
    let size = Math.max(1 << 20, this.data.length * 2);
    while (size < this.size + more) size *= 2;
    const grown = Buffer.allocUnsafeSlow(size);
    this.data.copy(grown, 0, 0, this.size);
    this.data = grown;
  }

  /** What was appended (a view, valid until the next append). */
  bytes(): Buffer {
    return this.data.subarray(0, this.size);
  }
}

/**
 * `COPY ... TO STDOUT` as a node-postgres submittable: each CopyData message's bytes are appended
 * to one growing buffer as they arrive, and no row object or string is ever made. Over a
 * CopyDemux's socket the messages never reach node-postgres: the demux hands them over itself.
 */
class CopyOutQuery implements CopyTarget {
  private readonly sink: ByteSink;
  private readonly demux: CopyDemux | undefined;
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
    demux?: CopyDemux,
  ) {
    this.sink = new ByteSink(into);
    this.demux = demux;
    this.done = new Promise<Buffer>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  submit(connection: { query(text: string): void }): void {
    // Every byte the server sends from here on answers this statement: its CopyData can go
    // straight to the sink.
    if (this.demux !== undefined) this.demux.target = this;
    connection.query(this.text);
  }

  handleCopyData(message: { chunk: Buffer }): void {
    this.beginCopyData();
    this.sink.append(message.chunk);
  }

  /** A CopyData message starts (its payload follows through appendCopyData). */
  beginCopyData(): void {
    this.beforeLastAt = this.lastAt;
    this.lastAt = this.sink.length;
  }

  appendCopyData(from: Buffer, start: number, end: number): void {
    this.sink.appendRange(from, start, end);
  }

  private release(): void {
    if (this.demux?.target === this) this.demux.target = undefined;
  }

  handleError(err: unknown): void {
    this.release();
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  handleReadyForQuery(): void {
    this.release();
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
export async function copyBinaryOn(
  client: pg.ClientBase,
  query: string,
  into?: Buffer,
  framing?: { lastRowAt: number },
  demux?: CopyDemux,
): Promise<Buffer> {
  const copy = new CopyOutQuery(`${KEY_ORDER}; COPY (${query}) TO STDOUT (FORMAT binary)`, into, demux);
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

/**
 * A client of its own on the database a ReaderConnection describes (not connected yet), and, when
 * the connection is not TLS, the CopyDemux its copies should go through (copyBinaryOn's demux).
 */
export function readerClient(connection: ReaderConnection): { readonly client: pg.Client; readonly demux: CopyDemux | undefined } {
  let demux: CopyDemux | undefined;
  // node-postgres calls this as the client is made, with the TLS settings it parsed from the
  // connection string (its type declarations omit the argument). TLS is layered on the socket's
  // own reads, which a CopyDemux takes over: a TLS connection gets the plain socket pg would make.
  const stream = (config: { ssl?: unknown }): net.Socket => {
    if (config.ssl !== undefined && config.ssl !== false) return new net.Socket();
    demux = new CopyDemux();
    return demux.socket;
  };
  const client = new pg.Client({ ...clientConfig(connection), stream: stream as unknown as () => net.Socket });
  return { client, demux };
}

/** Bytes a CopyDemux reads into at once (Node reads a TCP socket 64 KiB at a time). */
const READ_BUFFER_BYTES = 64 * 1024;
/** The protocol's CopyData message type ('d'). */
export const COPY_DATA = 0x64;

/** Where a CopyDemux puts a copy's rows: each CopyData message's start, then its payload in one or more pieces. */
export interface CopyTarget {
  beginCopyData(): void;
  appendCopyData(from: Buffer, start: number, end: number): void;
}

/**
 * A plain TCP socket for node-postgres that takes a copy's rows off the wire itself. It reads into
 * one buffer of its own, reused read after read (Node's `onread`), and walks the protocol's
 * messages (a type byte, then a length that counts itself): while a copy is its target, each
 * CopyData message's payload goes straight to that copy; every other message, and every message
 * while no copy is its target, is handed to node-postgres as the stream's data, copied, at the end
 * of the read. node-postgres parses what it would have parsed, minus the rows. No Buffer is made
 * per socket read (memory outside the JavaScript heap that, at a few hundred megabytes a second,
 * made the garbage collector run a full collection several times a second), and no message object
 * per row.
 */
export class CopyDemux {
  readonly socket: net.Socket;
  /** The copy whose CopyData messages this socket takes (set as the copy's statement is sent). */
  target: CopyTarget | undefined;
  private readonly header = Buffer.alloc(5);
  private headerHave = 0;
  /** Bytes still to come of the message being read, and whether they are a copy's row. */
  private left = 0;
  private toTarget = false;
  /** A length below 4 is not the protocol: from there on node-postgres gets every byte, and says so. */
  private passThrough = false;
  /** This read's bytes for node-postgres: copies made, then a run [runStart, runEnd) still in the read buffer. */
  private readonly pieces: Buffer[] = [];
  private runStart = -1;
  private runEnd = -1;

  constructor() {
    const onread = { buffer: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES), callback: (n: number, b: Buffer) => this.take(b, n) };
    // `onread` is an option of the constructor too (Node 20), not only of connect().
    this.socket = new net.Socket({ onread } as net.SocketConstructorOpts);
  }

  /** What one read put in b[0, n); b is reused by the next read. */
  take(b: Buffer, n: number): void {
    let at = 0;
    while (at < n) {
      if (this.passThrough) {
        this.forward(b, at, n);
        break;
      }
      if (this.left > 0) {
        const end = Math.min(n, at + this.left);
        // (A row whose copy ended meanwhile is dropped: its header never reached node-postgres.)
        if (this.toTarget) this.target?.appendCopyData(b, at, end);
        else this.forward(b, at, end);
        this.left -= end - at;
        at = end;
        continue;
      }
      // The header: at b[from], or cut by the end of a read and gathered in this.header.
      let header = b;
      let from = at;
      if (this.headerHave === 0 && n - at >= 5) {
        at += 5;
      } else {
        const end = Math.min(n, at + 5 - this.headerHave);
        b.copy(this.header, this.headerHave, at, end);
        this.headerHave += end - at;
        at = end;
        if (this.headerHave < 5) break;
        this.headerHave = 0;
        header = this.header;
        from = 0;
      }
      const length = header.readInt32BE(from + 1);
      this.toTarget = header[from] === COPY_DATA && this.target !== undefined && length >= 4;
      if (this.toTarget) this.target!.beginCopyData();
      else if (header === b) this.forward(b, from, from + 5);
      else {
        // node-postgres gets a copy of a gathered header (this.header is reused).
        this.closeRun(b);
        this.pieces.push(Buffer.from(this.header));
      }
      if (length < 4) this.passThrough = true;
      else this.left = length - 4;
    }
    this.flush(b);
  }

  /** Hands b[start, end) to node-postgres (joined to the run before it when they touch). */
  private forward(b: Buffer, start: number, end: number): void {
    if (this.runEnd === start) {
      this.runEnd = end;
      return;
    }
    this.closeRun(b);
    this.runStart = start;
    this.runEnd = end;
  }

  private closeRun(b: Buffer): void {
    if (this.runStart < 0) return;
    this.pieces.push(Buffer.from(b.subarray(this.runStart, this.runEnd)));
    this.runStart = this.runEnd = -1;
  }

  /** node-postgres parses this read's other messages. */
  private flush(b: Buffer): void {
    this.closeRun(b);
    if (this.pieces.length === 0) return;
    const data = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces);
    this.pieces.length = 0;
    this.socket.emit('data', data);
  }
}
