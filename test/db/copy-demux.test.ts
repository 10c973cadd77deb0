import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyDemux, copyBinaryOn, readerClient, type CopyTarget } from '../../src/db/copy.js';
import type { ReaderConnection } from '../../src/db/types.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { protocolMessage } from '../helpers/protocol.js';

const message = protocolMessage;

/** Each CopyData payload as the demux hands it over, in pieces joined here. */
class Rows implements CopyTarget {
  readonly rows: Buffer[] = [];
  beginCopyData(): void {
    this.rows.push(Buffer.alloc(0));
  }
  appendCopyData(from: Buffer, start: number, end: number): void {
    const last = this.rows.length - 1;
    this.rows[last] = Buffer.concat([this.rows[last]!, from.subarray(start, end)]);
  }
}

/**
 * Feeds `stream` to a demux cut at `cuts`, through one read buffer scribbled over after every read
 * (as the socket reuses it), and returns what node-postgres was handed.
 */
function feed(demux: CopyDemux, stream: Buffer, cuts: readonly number[]): Buffer {
  const handed: Buffer[] = [];
  demux.socket.on('data', (data: Buffer) => handed.push(data));
  const read = Buffer.alloc(stream.length + 1);
  const at = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...at, stream.length]) {
    if (to <= from) continue;
    stream.copy(read, 0, from, to);
    demux.take(read, to - from);
    read.fill(0xaa);
    from = to;
  }
  demux.socket.destroy();
  return Buffer.concat(handed);
}

const TYPES = ['d', 'H', 'c', 'C', 'Z', 'E', 'D', 'T', 'S'].map((t) => fc.constant(t));
const messages = fc.array(fc.record({ type: fc.oneof(...TYPES), payload: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 40 });
const cuts = fc.array(fc.nat(), { maxLength: 30 });

describe('CopyDemux: the protocol stream split between a copy and node-postgres', () => {
  it('gives the copy every CopyData payload and node-postgres every other message, byte for byte, however the reads cut them', () => {
    fc.assert(
      fc.property(messages, cuts, (list, at) => {
        const demux = new CopyDemux();
        const rows = new Rows();
        demux.target = rows;
        const handed = feed(demux, Buffer.concat(list.map((m) => message(m.type, m.payload))), at);
        expect(rows.rows).toEqual(list.filter((m) => m.type === 'd').map((m) => Buffer.from(m.payload)));
        expect(handed).toEqual(Buffer.concat(list.filter((m) => m.type !== 'd').map((m) => message(m.type, m.payload))));
      }),
    );
  });

  it('hands node-postgres everything, CopyData included, while no copy is its target', () => {
    fc.assert(
      fc.property(messages, cuts, (list, at) => {
        const stream = Buffer.concat(list.map((m) => message(m.type, m.payload)));
        expect(feed(new CopyDemux(), stream, at)).toEqual(stream);
      }),
    );
  });

  it('hands node-postgres the rest of the stream as it came after a length no message can have', () => {
    const demux = new CopyDemux();
    const rows = new Rows();
    demux.target = rows;
    const broken = Buffer.from([0x64, 0, 0, 0, 2, 1, 2, 3]); // CopyData with a length of 2
    const stream = Buffer.concat([message('d', Buffer.from('row')), broken, message('Z', Buffer.from('I'))]);
    expect(feed(demux, stream, [7, 9])).toEqual(Buffer.concat([broken, message('Z', Buffer.from('I'))]));
    expect(rows.rows).toEqual([Buffer.from('row')]);
  });
});

describe.skipIf(!pgAvailable())('CopyDemux under node-postgres [postgres]', () => {
  let database: TestDatabase;
  let connection: ReaderConnection;
  beforeAll(async () => {
    database = await createPostgresDatabase();
    connection = { connectionString: database.url!, connectTimeoutMs: 5_000, statementTimeoutMs: 30_000, applicationName: 'copy-demux-test' };
  });
  afterAll(async () => database?.drop());

  const ROWS = "SELECT n::bigint, repeat(md5(n::text), 1 + n % 40) FROM generate_series(1, 20000) AS n ORDER BY n";

  it('copies what node-postgres alone copies, the rows never passing through it, and the connection answers queries and copies after an error', async () => {
    const { client, demux } = readerClient(connection);
    if (demux === undefined) throw new Error('a plain connection gets a demux');
    const plain = new pg.Client({ connectionString: database.url });
    await Promise.all([client.connect(), plain.connect()]);
    try {
      let handed = 0;
      demux.socket.on('data', (data: Buffer) => (handed += data.length));
      const framing = { lastRowAt: -1 };
      const viaDemux = Buffer.from(await copyBinaryOn(client, ROWS, undefined, framing, demux));
      const plainFraming = { lastRowAt: -1 };
      const viaPg = await copyBinaryOn(plain, ROWS, undefined, plainFraming);
      expect(viaDemux.length).toBeGreaterThan(10_000_000);
      expect(viaDemux.equals(viaPg)).toBe(true);
      expect(framing.lastRowAt).toBe(plainFraming.lastRowAt);
      // node-postgres saw the statement's other messages only: a few hundred bytes of 10 MB.
      expect(handed).toBeLessThan(1_000);

      await expect(copyBinaryOn(client, 'SELECT no_such_column', undefined, undefined, demux)).rejects.toMatchObject({ code: '42703' });
      expect((await client.query<{ n: number }>('SELECT count(*)::int AS n FROM generate_series(1, 5000)')).rows).toEqual([{ n: 5000 }]);
      const rows = await client.query<{ v: string }>("SELECT repeat('x', 100000) AS v FROM generate_series(1, 3)");
      expect(rows.rows.map((r) => r.v.length)).toEqual([100000, 100000, 100000]);
      expect((await copyBinaryOn(client, 'SELECT 1::bigint', undefined, undefined, demux)).length).toBe(19 + 2 + 4 + 8 + 2);
    } finally {
      await Promise.all([client.end(), plain.end()]);
    }
  });

  it('leaves a TLS connection on the socket node-postgres would make', () => {
    const url = new URL(database.url!);
    url.searchParams.set('sslmode', 'verify-full');
    expect(readerClient({ ...connection, connectionString: url.toString() }).demux).toBeUndefined();
  });
});
