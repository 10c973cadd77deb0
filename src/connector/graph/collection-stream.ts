/**
 * Reads a Graph collection page (`{"value": [...], "@odata.nextLink": "..."}`) item by item as its
 * bytes arrive, so a page of 1,000 devices never exists as one string or one object graph: each
 * item is cut out of the byte stream, parsed on its own and handed to `onItem`, and what `onItem`
 * keeps is all that survives. Garbage per item is a few hundred bytes that die young, instead of a
 * megabytes-long body string in V8's large-object space and a whole page of parsed objects that
 * outlive several scavenges and wait in old space for a full collection.
 *
 * The scan is over bytes: JSON's structural characters are ASCII, and UTF-8 never uses a byte below
 * 0x80 inside a multi-byte character, so counting brackets outside strings is exact. The members of
 * the top-level object other than `value` (nextLink, context, count) are kept, bounded, and
 * parsed at the end into a `skeleton` with `value: []`, which the caller checks like a whole page.
 * A body that is not an object is captured whole (bounded) for that check to describe.
 */

/** A member other than `value` longer than this is not kept (a nextLink is at most 8 KiB). */
const MAX_MEMBER_BYTES = 64 * 1024;
/** A body that is not an object is kept up to this for the structural error. */
const MAX_OTHER_BODY_BYTES = 64 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/** Pieces of one value that may span chunks. */
class Capture {
  #parts: Buffer[] = [];
  #size = 0;
  #overflow = false;

  constructor(private readonly limit: number) {}

  add(chunk: Buffer, from: number, to: number): void {
    if (to <= from || this.#overflow) return;
    this.#size += to - from;
    if (this.#size > this.limit) {
      this.#overflow = true;
      this.#parts = [];
      return;
    }
    this.#parts.push(chunk.subarray(from, to));
  }

  get overflow(): boolean {
    return this.#overflow;
  }

  text(): string {
    const parts = this.#parts;
    this.#parts = [];
    return parts.length === 1 ? (parts[0] as Buffer).toString('utf8') : Buffer.concat(parts).toString('utf8');
  }
}

export type CollectionStreamResult =
  | {
      readonly ok: true;
      /** The top-level value with `value` replaced by [] when it was an array: for the structural check. */
      readonly skeleton: unknown;
      /** Items handed to onItem (and, with an itemError, the one that failed). */
      readonly items: number;
      /** The first exception onItem threw; later items were skipped. */
      readonly itemError?: unknown;
    }
  | { readonly ok: false };

export class CollectionStream {
  readonly #onItem: (item: unknown, index: number) => void;
  /** Nesting outside strings: 1 inside the top-level object, 2 inside `value`'s array. */
  #depth = 0;
  #inString = false;
  #escape = false;
  #failed = false;
  /** Neither an object nor a usable body: captured whole for the error. */
  #other: Capture | undefined;
  #started = false;
  #closed = false;
  // Top-level member parsing (depth 1).
  #expect: 'key' | 'colon' | 'value' | 'comma' = 'key';
  #key: Capture | undefined;
  #keyName: string | undefined;
  #member: Capture | undefined;
  readonly #members: [string, string][] = [];
  #inItems = false;
  // Items (depth 2 inside `value`).
  #item: Capture | undefined;
  #items = 0;
  #itemError: unknown;
  #hasItemError = false;

  constructor(onItem: (item: unknown, index: number) => void, private readonly maxItemBytes = 4 * 1024 * 1024) {
    this.#onItem = onItem;
  }

  write(chunk: Buffer): void {
    if (this.#failed) return;
    const n = chunk.length;
    let i = 0;
    if (this.#other !== undefined) {
      this.#other.add(chunk, 0, n);
      return;
    }
    // Start offsets of captures that began in this chunk.
    let keyFrom = -1;
    let memberFrom = -1;
    let itemFrom = -1;
    for (; i < n; i++) {
      const b = chunk[i] as number;
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (b === BACKSLASH) this.#escape = true;
        else if (b === QUOTE) {
          this.#inString = false;
          if (this.#depth === 1 && this.#key !== undefined) {
            this.#key.add(chunk, keyFrom < 0 ? 0 : keyFrom, i + 1);
            keyFrom = -1;
            try {
              this.#keyName = JSON.parse(this.#key.text()) as string;
            } catch {
              return this.#fail();
            }
            this.#key = undefined;
            this.#expect = 'colon';
          }
        }
        continue;
      }
      if (this.#closed) {
        if (!isSpace(b)) return this.#fail();
        continue;
      }
      if (!this.#started) {
        if (isSpace(b)) continue;
        this.#started = true;
        if (b !== OPEN_OBJECT) {
          this.#other = new Capture(MAX_OTHER_BODY_BYTES);
          this.#other.add(chunk, i, n);
          return;
        }
        this.#depth = 1;
        continue;
      }
      // Items of `value`: depth 2 is between them; each starts at its first byte and ends at , or ].
      if (this.#inItems && this.#depth >= 2) {
        if (this.#depth === 2 && (b === COMMA || b === CLOSE_ARRAY)) {
          if (this.#item !== undefined) {
            this.#item.add(chunk, itemFrom < 0 ? 0 : itemFrom, i);
            itemFrom = -1;
            if (!this.#emitItem()) return this.#fail();
          } else if (b === COMMA || this.#items > 0) {
            // `[,` or `,,` or `,]`: not JSON.
            return this.#fail();
          }
          if (b === CLOSE_ARRAY) {
            this.#depth = 1;
            this.#inItems = false;
            this.#expect = 'comma';
          }
          continue;
        }
        if (this.#item === undefined) {
          if (isSpace(b)) continue;
          this.#item = new Capture(this.maxItemBytes);
          itemFrom = i;
        }
        if (b === QUOTE) this.#inString = true;
        else if (b === OPEN_OBJECT || b === OPEN_ARRAY) this.#depth++;
        else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) this.#depth--;
        continue;
      }
      // A member value other than `value`'s array, captured until , or } at depth 1.
      if (this.#member !== undefined) {
        if (this.#depth === 1 && (b === COMMA || b === CLOSE_OBJECT)) {
          this.#member.add(chunk, memberFrom < 0 ? 0 : memberFrom, i);
          memberFrom = -1;
          if (!this.#member.overflow) this.#members.push([this.#keyName as string, this.#member.text()]);
          this.#member = undefined;
          this.#keyName = undefined;
          if (!this.#afterMember(b)) return this.#fail();
          continue;
        }
        if (b === QUOTE) this.#inString = true;
        else if (b === OPEN_OBJECT || b === OPEN_ARRAY) this.#depth++;
        else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
          this.#depth--;
          if (this.#depth < 1) return this.#fail();
        }
        continue;
      }
      if (isSpace(b)) continue;
      // Depth 1, between members.
      switch (this.#expect) {
        case 'key':
          if (b === CLOSE_OBJECT && this.#members.length === 0) {
            this.#closeObject();
            continue;
          }
          if (b !== QUOTE) return this.#fail();
          this.#inString = true;
          this.#key = new Capture(MAX_MEMBER_BYTES);
          keyFrom = i;
          continue;
        case 'colon':
          if (b !== COLON) return this.#fail();
          this.#expect = 'value';
          continue;
        case 'value':
          if (this.#keyName === 'value' && b === OPEN_ARRAY) {
            this.#members.push(['value', '[]']);
            this.#inItems = true;
            this.#depth = 2;
            this.#keyName = undefined;
            continue;
          }
          this.#member = new Capture(MAX_MEMBER_BYTES);
          memberFrom = i;
          if (b === QUOTE) this.#inString = true;
          else if (b === OPEN_OBJECT || b === OPEN_ARRAY) this.#depth++;
          continue;
        case 'comma':
          if (!this.#afterMember(b)) return this.#fail();
          continue;
      }
    }
    // Captures still open go on in the next chunk.
    if (this.#key !== undefined && keyFrom >= 0) this.#key.add(chunk, keyFrom, n);
    else if (this.#key !== undefined) this.#key.add(chunk, 0, n);
    if (this.#member !== undefined) this.#member.add(chunk, memberFrom < 0 ? 0 : memberFrom, n);
    if (this.#item !== undefined) this.#item.add(chunk, itemFrom < 0 ? 0 : itemFrom, n);
  }

  /** The page as far as the stream could tell: ok with the skeleton, or not valid JSON. */
  end(): CollectionStreamResult {
    if (this.#failed) return { ok: false };
    if (this.#other !== undefined) {
      if (this.#other.overflow) return { ok: false };
      try {
        return { ok: true, skeleton: JSON.parse(this.#other.text()), items: 0 };
      } catch {
        return { ok: false };
      }
    }
    if (!this.#closed || this.#inString) return { ok: false };
    // Rebuilt as text and parsed, so keys behave as JSON.parse has them (a "__proto__" member is data).
    let skeleton: unknown;
    try {
      skeleton = JSON.parse(`{${this.#members.map(([key, raw]) => `${JSON.stringify(key)}:${raw}`).join(',')}}`);
    } catch {
      return { ok: false };
    }
    return { ok: true, skeleton, items: this.#items, ...(this.#hasItemError ? { itemError: this.#itemError } : {}) };
  }

  #afterMember(b: number): boolean {
    if (b === COMMA) {
      this.#expect = 'key';
      return true;
    }
    if (b === CLOSE_OBJECT) {
      this.#closeObject();
      return true;
    }
    return false;
  }

  #closeObject(): void {
    this.#depth = 0;
    this.#closed = true;
  }

  /** Parses the captured item and hands it on; false when it is not JSON. */
  #emitItem(): boolean {
    const capture = this.#item as Capture;
    this.#item = undefined;
    if (capture.overflow) return false;
    const index = this.#items++;
    if (this.#hasItemError) return true;
    let parsed: unknown;
    try {
      parsed = JSON.parse(capture.text());
    } catch {
      return false;
    }
    try {
      this.#onItem(parsed, index);
    } catch (err) {
      this.#hasItemError = true;
      this.#itemError = err;
    }
    return true;
  }

  #fail(): void {
    this.#failed = true;
  }
}
