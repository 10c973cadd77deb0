/** The query interface both drivers implement; apart from ./index.ts so migrations can name it without importing the drivers. */
export interface QueryResult<R> {
  readonly rows: R[];
  /** Rows returned by a SELECT, or changed by INSERT/UPDATE/DELETE. */
  readonly rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn inside one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /**
   * Runs `COPY (query) TO STDOUT (FORMAT binary)` and answers its bytes in one buffer over an
   * ArrayBuffer of its own (so it can be transferred to a worker thread) or over `into`'s memory: no row objects, no
   * strings. `query` takes no parameters (COPY has none): callers inline only literals they quoted.
   * Absent where the driver cannot stream COPY; verify then reads rows the ordinary way.
   * The statement runs with sorting discouraged (`enable_sort` off for it alone): a query ordered
   * by an index's key reads through that index (see copyBinaryOn in copy.ts).
   * `into`: a buffer to write the bytes into (its contents are overwritten); the answer is then a
   * view of it when they fit, else a buffer of its own. Reusing buffers spares a long read the
   * allocation, page faults and garbage collection of a fresh multi-megabyte buffer per range.
   * `framing`: where the driver sees the protocol's CopyData messages (the server sends the header,
   * each row and the trailer as messages of their own), `lastRowAt` is set to the offset of the
   * message before the last one, the last row's; it stays -1 where the driver cannot tell.
   */
  copyBinary?(query: string, into?: Buffer, framing?: { lastRowAt: number }): Promise<Buffer>;
  /**
   * Connections of the pool a caller could take now without waiting: idle ones plus those the
   * pool may still open, less callers already waiting. Absent where queries do not use a pool of
   * connections (the embedded database runs one statement at a time in this process).
   */
  spareConnections?(): number;
  /**
   * How a worker thread of this process opens a connection of its own to this database (plain
   * data, passed to the thread): verify's workers read their ranges over it. Absent where another
   * connection cannot be opened (the embedded database, or one shared over its one-client socket).
   */
  readerConnection?(): ReaderConnection;
}

/** A PostgreSQL server and the settings of this process's pool, as another thread opens a client on them. */
export interface ReaderConnection {
  readonly connectionString: string;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly applicationName: string;
}
