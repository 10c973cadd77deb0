/**
 * A page's snapshot rows as bytes: each device's redacted posture is appended, as JSON, to a
 * buffer outside V8's heap while its page is still arriving, and the buffer goes to the database
 * as it is (insertPage). Nothing of a device stays on the heap after it is appended, so a page of
 * 1,000 devices is not 1,000 strings that live as long as the page's download (long enough to be
 * promoted, then freed only by a full collection), nor one megabytes-long array string in V8's
 * large-object space. Buffers are reused from page to page: one per partition worker, two for
 * sequential paging (the next page arrives while the previous one is written).
 */
import type { ManagedDevice } from '../connector/graph/types.js';

const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
/** A page of 1,000 redacted postures is about 600 KB; start well below and grow by doubling. */
const INITIAL_BYTES = 64 * 1024;

/** One page's rows: the bytes of a JSON array of redacted postures. */
export class PageRows {
  #buffer = Buffer.allocUnsafe(INITIAL_BYTES);
  #length = 1;
  #devices = 0;

  constructor() {
    this.reset();
  }

  /** Empties the array (a retried or dropped page starts over). */
  reset(): void {
    this.#buffer[0] = OPEN_ARRAY;
    this.#length = 1;
    this.#devices = 0;
  }

  /** Appends one JSON value. */
  add(json: string): void {
    // A UTF-16 code unit is at most 3 bytes of UTF-8; room for the comma and the closing bracket too.
    const room = json.length * 3 + 2;
    if (this.#buffer.length - this.#length < room) {
      const grown = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.#length + room));
      this.#buffer.copy(grown, 0, 0, this.#length);
      this.#buffer = grown;
    }
    if (this.#devices > 0) this.#buffer[this.#length++] = COMMA;
    this.#length += this.#buffer.write(json, this.#length, 'utf8');
    this.#devices += 1;
  }

  /** Devices appended since the last reset (a device id may repeat; the insert keeps one). */
  get devices(): number {
    return this.#devices;
  }

  /** The array's bytes: a view of this buffer, valid until the next add or reset. */
  bytes(): Buffer {
    this.#buffer[this.#length] = CLOSE_ARRAY;
    return this.#buffer.subarray(0, this.#length + 1);
  }
}

/**
 * What a listing maps each device into (ListDevicesRequest's mapDevice and onPageStart): the page
 * being read fills one PageRows; `take()` hands the complete page over for writing and `release()`
 * gives it back for a later page.
 */
export class PageSink {
  #filling: PageRows | undefined;
  readonly #spare: PageRows[] = [];

  constructor(private readonly toJson: (device: ManagedDevice) => string) {}

  #current(): PageRows {
    if (this.#filling === undefined) {
      this.#filling = this.#spare.pop() ?? new PageRows();
      this.#filling.reset();
    }
    return this.#filling;
  }

  /** Each attempt of a page starts here, so a retried page does not repeat the devices of the attempt before. */
  readonly onPageStart = (): void => {
    this.#current().reset();
  };

  readonly mapDevice = (device: ManagedDevice): void => {
    this.#current().add(this.toJson(device));
  };

  /** The page read so far (complete when its listing resolved), now the caller's. */
  take(): PageRows {
    const rows = this.#current();
    this.#filling = undefined;
    return rows;
  }

  release(rows: PageRows): void {
    this.#spare.push(rows);
  }
}
