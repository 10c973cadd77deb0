/**
 * Binary COPY out of the embedded database. The statement's raw answer is streamed out of the WASM
 * heap (execProtocolRawStream: PGlite hands the bytes over without parsing every message itself,
 * half the time of execProtocolRaw, and under half that of COPY to '/dev/blob', a file grown in the
 * WASM heap row by row and read back through a Blob), then its CopyData payloads are joined. The
 * message is built, and an error read, by PGlite's own protocol code. Loaded with PGlite, never for
 * PostgreSQL.
 */
import { protocol, type PGlite } from '@electric-sql/pglite';
import { ByteSink, COPY_DATA, KEY_ORDER } from './copy.js';

const COPY_OUT_RESPONSE = 0x48;
const ERROR_RESPONSE = 0x45;

/** `COPY (query) TO STDOUT (FORMAT binary)` with sorting discouraged, as over PostgreSQL (see copyBinaryOn), in a turn of its own (the protocol calls take no lock themselves). */
export function copyBinaryEmbedded(db: PGlite, query: string): Promise<Buffer> {
  return db.runExclusive(async () => {
    const answer = new ByteSink();
    const message = protocol.serialize.query(`${KEY_ORDER}; COPY (${query}) TO STDOUT (FORMAT binary)`);
    await db.execProtocolRawStream(message, { syncToFs: false, onRawData: (chunk) => answer.append(chunk) });
    return copyOutOfAnswer(answer.bytes());
  });
}

/**
 * The copy data of a backend's raw answer to `COPY ... TO STDOUT`: the CopyData payloads joined,
 * in place (each moves to or before where it was, so the answer's own memory holds them), other
 * messages skipped. An ErrorResponse is thrown as the database's own error (message, and SQLSTATE
 * as `code`); an answer cut short, or one with no copy in it, is an error too.
 */
export function copyOutOfAnswer(raw: Uint8Array): Buffer {
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  let copied = false;
  let at = 0;
  let p = 0;
  while (p < b.length) {
    if (p + 5 > b.length) throw new Error('the COPY answer ends inside a message header');
    const code = b[p] as number;
    const length = b.readInt32BE(p + 1);
    const end = p + 1 + length;
    if (length < 4 || end > b.length) throw new Error('the COPY answer ends inside a message');
    if (code === COPY_DATA) at += b.copy(b, at, p + 5, end);
    else if (code === COPY_OUT_RESPONSE) copied = true;
    else if (code === ERROR_RESPONSE) throw databaseError(b.subarray(p, end));
    p = end;
  }
  if (!copied) throw new Error('the statement answered no COPY data');
  return b.subarray(0, at);
}

/** An ErrorResponse message as PGlite's parser reads it (a DatabaseError, as its queries throw). */
function databaseError(message: Uint8Array): Error {
  let read: unknown;
  new protocol.Parser().parse(message, (parsed) => {
    read = parsed;
  });
  return read instanceof Error ? read : new Error('the embedded database answered an error that could not be read');
}
