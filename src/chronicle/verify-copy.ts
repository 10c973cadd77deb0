/**
 * Verify's fast path over the bytes PostgreSQL sends: a range of rows as `COPY ... TO STDOUT
 * (FORMAT binary)` (seq, prev_hash, hash, body and the indexed columns as stored), checked without
 * making a string or an object per row.
 *
 * The hash covers the stored body's UTF-8 bytes, so those bytes are hashed as they arrive; the
 * body is not re-canonicalized, only *checked* to be RFC 8785 canonical by one linear scan that
 * also finds the envelope fields the indexed columns copy (compared in place with the columns'
 * binary values: the time as microseconds, texts as bytes, device ids as an array of texts). The
 * index key the exact path compares is rendered here from the same bytes, as the database renders
 * INDEX_KEY_SQL, for the rows that need it; a value it cannot render the same way (a time outside
 * years 1 to 9999, an array of another type) fails the range, which verify then reads again with
 * the key rendered by the database. The scan is only trusted to say "yes": a row it does not vouch for
 * (a failure, an escape or a non-ASCII character where it would have to decode, an unknown event
 * type) is judged by checkChunk in verify-core.ts from its decoded strings, the exact way, and the
 * walk goes on from there. So both paths give the same answer for every row.
 */
import { isAscii } from 'node:buffer';
import crypto from 'node:crypto';
import { EVENT_CATALOG } from './catalog.js';
import { pairHasher, type PairHasher } from './pair-hash.js';
import { checkChunk, checkpointRecorder, type CheckpointRef, type ChunkResult, type ChunkTask, type Failure, type PackedChunkTask, type PreviousRow } from './verify-core.js';
import type { EventType } from './types.js';

/** A range of rows as the bytes of a binary COPY (columns: seq, prev_hash, hash, body, then INDEX_COLUMNS_SQL). */
export interface CopyChunkTask {
  readonly tenant: string;
  readonly previous: PreviousRow;
  readonly headSeq: number;
  readonly copy: Uint8Array;
  readonly checkpoints: readonly CheckpointRef[];
}

/** The columns verify copies: seq, prev_hash, hash, body, and the indexed ones (INDEX_COLUMNS_SQL). */
export const COPY_COLUMNS = 12;
/** The indexed columns, in INDEX_COLUMNS_SQL's order. */
const TIME_COLUMN = 0;
const TYPE_COLUMN = 1;
const CODE_COLUMN = 2;
const KIND_COLUMN = 3;
const ID_COLUMN = 4;
const REQUEST_ID_COLUMN = 5;
const DECISION_COLUMN = 6;
const DEVICES_COLUMN = 7;
const INDEX_COLUMNS = 8;
const TEXT_OID = 25;

const SIGNATURE = [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]; // PGCOPY\n\377\r\n\0
const HASH_HEX_LENGTH = 64;

/** A DataView over exactly b's bytes. */
function viewOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Offsets of one row's fields in the copy buffer (start, end; -1 for NULL). */
class CopyRow {
  seq = 0;
  prevHash = 0;
  prevHashEnd = 0;
  hash = 0;
  hashEnd = 0;
  body = 0;
  bodyEnd = 0;
  /** The indexed columns: start and end of column k at 2k and 2k + 1 (-1, -1: NULL). */
  readonly columns = new Int32Array(2 * INDEX_COLUMNS);
}

/**
 * Reads binary COPY rows one at a time. Throws on bytes that are not a COPY of verify's
 * columns (the range is then read again the ordinary way, see verify.ts).
 */
class CopyReader {
  private offset: number;
  private readonly view: DataView;

  constructor(private readonly b: Uint8Array) {
    this.view = viewOf(b);
    if (b.length < 19) throw new Error('not a binary COPY');
    for (let i = 0; i < SIGNATURE.length; i++) if (b[i] !== SIGNATURE[i]) throw new Error('not a binary COPY');
    const extension = this.view.getInt32(15);
    if (extension < 0) throw new Error('not a binary COPY');
    this.offset = 19 + extension;
  }

  private field(): number {
    if (this.offset + 4 > this.b.length) throw new Error('a COPY row ends early');
    const length = this.view.getInt32(this.offset);
    this.offset += 4;
    if (length < -1 || this.offset + Math.max(0, length) > this.b.length) throw new Error('a COPY field ends early');
    return length;
  }

  /** Where the next row starts. */
  get at(): number {
    return this.offset;
  }

  /** Reads the row at `offset` into `row`: true when it is a whole row and the trailer ends the copy right after it. */
  rowAt(offset: number, row: CopyRow): boolean {
    const saved = this.offset;
    this.offset = offset;
    try {
      return this.next(row) && this.offset + 2 === this.b.length && this.view.getInt16(this.offset) === -1;
    } catch {
      return false;
    } finally {
      this.offset = saved;
    }
  }

  /** Fills `row` with the next row; false after the last one. */
  next(row: CopyRow): boolean {
    if (this.offset + 2 > this.b.length) throw new Error('a COPY ends without its trailer');
    const fields = this.view.getInt16(this.offset);
    this.offset += 2;
    if (fields === -1) return false;
    if (fields !== COPY_COLUMNS) throw new Error(`a COPY row has ${fields} fields`);
    if (this.field() !== 8) throw new Error('a COPY seq is not an int8');
    const high = this.view.getInt32(this.offset);
    const low = this.view.getUint32(this.offset + 4);
    row.seq = high * 2 ** 32 + low;
    this.offset += 8;
    row.prevHash = this.text();
    row.prevHashEnd = this.offset;
    row.hash = this.text();
    row.hashEnd = this.offset;
    row.body = this.text();
    row.bodyEnd = this.offset;
    if (row.prevHash < 0 || row.hash < 0 || row.body < 0) throw new Error('a COPY row has a NULL column');
    const columns = row.columns;
    for (let k = 0; k < INDEX_COLUMNS; k++) {
      const start = this.text();
      columns[2 * k] = start;
      columns[2 * k + 1] = start < 0 ? -1 : this.offset;
    }
    return true;
  }

  /** A text field: where it starts (its end is the new offset), or -1 for NULL. */
  private text(): number {
    const length = this.field();
    if (length < 0) return -1;
    const start = this.offset;
    this.offset += length;
    return start;
  }
}

/** The last row of a copied range, as verify hands it to the next range (see PreviousRow). */
export function lastCopyRow(copy: Uint8Array, lastRowAt = -1): { seq: number; hash: string; body: string } | null {
  const reader = new CopyReader(copy);
  const row = new CopyRow();
  // Where the driver saw the last row's message start: one row read there, taken only when the
  // trailer follows it at the very end. Otherwise, and for an empty copy, every row is walked (the
  // row read last stays in `row`), again taken only when the trailer ends the copy.
  if (!(lastRowAt >= 19 && reader.rowAt(lastRowAt, row))) {
    let rows = 0;
    while (reader.next(row)) rows++;
    if (rows === 0 || reader.at !== copy.length) return null;
  }
  const text = Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
  return { seq: row.seq, hash: text.toString('utf8', row.hash, row.hashEnd), body: text.toString('utf8', row.body, row.bodyEnd) };
}

// Capture slots: the envelope fields the index key needs, then data and data.target fields the
// catalog reads decisions and device ids from (derived from it, as in scan.ts).
const CHAIN = 0;
const TIME = 1;
const TYPE = 2;
const CODE = 3;
const REQUEST_ID = 4;
const KIND = 5;
const ID = 6;
const SEQ = 7;
const DATA_KEYS = [
  ...new Set(
    Object.values(EVENT_CATALOG).flatMap((e) => [
      ...(e.decisionField !== undefined ? [e.decisionField] : []),
      ...(e.deviceIdFields ?? []).filter((p) => p.length === 1).map((p) => p[0] as string),
    ]),
  ),
];
const TARGET_KEYS = [...new Set(Object.values(EVENT_CATALOG).flatMap((e) => (e.deviceIdFields ?? []).filter((p) => p.length === 2 && p[0] === 'target').map((p) => p[1] as string)))];
const DATA_SLOT = 8;
const TARGET_SLOT = DATA_SLOT + DATA_KEYS.length;
const SLOTS = TARGET_SLOT + TARGET_KEYS.length;

/** Keys and the slots their values are captured in. */
interface KeyTable {
  readonly keys: readonly Buffer[];
  readonly slots: readonly number[];
  /** Per key, its length and first byte (length << 8 | byte): most keys a body holds are in no table. */
  readonly probes: Int32Array;
}
const bytes = (s: string) => Buffer.from(s, 'utf8');
const keyTable = (entries: ReadonlyArray<readonly [string, number]>): KeyTable => {
  const keys = entries.map(([k]) => bytes(k));
  return { keys, slots: entries.map(([, slot]) => slot), probes: Int32Array.from(keys, (k) => (k.length << 8) | (k[0] ?? 0)) };
};
const ENVELOPE_KEYS = keyTable([
  ['chain', CHAIN],
  ['time', TIME],
  ['type', TYPE],
  ['code', CODE],
  ['request_id', REQUEST_ID],
  ['seq', SEQ],
]);
const ACTOR_KEYS = keyTable([
  ['kind', KIND],
  ['id', ID],
]);
const DATA_KEY_TABLE = keyTable(DATA_KEYS.map((k, i) => [k, DATA_SLOT + i] as const));
const TARGET_KEY_TABLE = keyTable(TARGET_KEYS.map((k, i) => [k, TARGET_SLOT + i] as const));
const KEY_DATA = bytes('data');
const KEY_ACTOR = bytes('actor');
const KEY_TARGET = bytes('target');

/** Per event type: where its decision and device ids are (slots), or null when the scan cannot say. */
interface TypeEntry {
  readonly name: Buffer;
  readonly decisionSlot: number;
  readonly deviceSlots: readonly number[] | null;
}
const TYPES: readonly TypeEntry[] = (Object.keys(EVENT_CATALOG) as EventType[]).map((type) => {
  const entry = EVENT_CATALOG[type];
  const decisionSlot = entry.decisionField === undefined ? -1 : DATA_SLOT + DATA_KEYS.indexOf(entry.decisionField);
  let deviceSlots: number[] | null = [];
  for (const p of entry.deviceIdFields ?? []) {
    if (p.length === 1) deviceSlots.push(DATA_SLOT + DATA_KEYS.indexOf(p[0] as string));
    else if (p.length === 2 && p[0] === 'target') deviceSlots.push(TARGET_SLOT + TARGET_KEYS.indexOf(p[1] as string));
    else deviceSlots = null;
    if (deviceSlots === null) break;
  }
  return { name: bytes(type), decisionSlot, deviceSlots };
});

const MAX_DEPTH = 32;
const FAIL = -1;
const ENVELOPE = 1;
const ACTOR = 2;
const DATA = 3;
const TARGET = 4;

/**
 * Most bodies of one event type share a shape: the scanner keeps the last two it read in full per
 * type (told apart by the type's length, first and last byte, read back from the body's end), for
 * at most MAX_SHAPES types at once.
 */
const TEMPLATES_PER_SHAPE = 2;
const MAX_SHAPES = 64;
const MAX_HOLES = 256;

/**
 * Which templates to try for b[from, to): the length, first and last byte of the string that ends
 * a canonical envelope (`…"type":"<type>","v":1}`); -1 when the body does not end that way. Only a
 * hint: a template is used only when the whole body matches it.
 */
function shapeOf(b: Uint8Array, from: number, to: number): number {
  const last = to - 9;
  if (last <= from || b[to - 8] !== 0x22 || b[to - 1] !== 0x7d) return -1;
  const stop = Math.max(from, last - 64);
  let quote = last;
  while (quote > stop && b[quote] !== 0x22) quote--;
  if (b[quote] !== 0x22 || quote === last) return -1;
  return ((last - quote) << 16) | ((b[quote + 1] as number) << 8) | (b[last] as number);
}

/** A body the full scan accepted (b[at, end)), and where its strings and numbers are. */
class Template {
  at = 0;
  end = 0;
  count = 0;
  readonly holeStart = new Int32Array(MAX_HOLES);
  readonly holeEnd = new Int32Array(MAX_HOLES);
  readonly holeSlot = new Int32Array(MAX_HOLES);
  readonly holeString = new Uint8Array(MAX_HOLES);
  /** 1 where the last body matched against this template had the template's own value in the hole (every hole at first). */
  readonly asIs = new Uint8Array(MAX_HOLES);
  /** The scanner's isNull for this body: a null is part of the bytes between holes. */
  readonly isNull = new Uint8Array(SLOTS);
}

/**
 * One pass over a body's bytes: RFC 8785 canonical JSON of an object (no whitespace, keys in
 * strictly increasing order, strings escaped exactly as RFC 8785 writes them and otherwise valid
 * UTF-8, numbers as ECMAScript prints them), capturing where the index key's fields are. Keys with
 * an escape or a non-ASCII byte, and captured strings with an escape, are left to the exact path.
 */
class ByteScanner {
  b: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.b.buffer);
  readonly start = new Int32Array(SLOTS);
  readonly end = new Int32Array(SLOTS);
  readonly ascii = new Uint8Array(SLOTS);
  /** 1 where the slot's value is JSON null (start is then -1, as for any value that is not a string). */
  readonly isNull = new Uint8Array(SLOTS);
  seq = -1;
  private escaped = false;
  private nonAscii = false;
  private plain = false;
  /** Bodies scanned in full lately, by shape, most recent first, as templates for the next ones. */
  private readonly templates = new Map<number, Template[]>();
  private readonly spares: Template[] = [];
  /** The template the full scan is recording, if any. */
  private holes: Template | null = null;

  /**
   * The envelope of b[from, to) (`body`: the same bytes) when the scan vouches for it; false means
   * "judge it the exact way". A body read in full is first checked to be ASCII without a backslash
   * (one native check each); such a body's strings are then scanned by one comparison per byte.
   */
  scan(b: Uint8Array, from: number, to: number, body: Uint8Array): boolean {
    if (this.b !== b) {
      this.forgetTemplates(); // a template is a body in the buffer it came from
      this.view = viewOf(b);
    }
    this.b = b;
    this.start.fill(-1);
    this.isNull.fill(0);
    this.seq = -1;
    // Against a template, strings are read with every check (only the values in its holes are read).
    this.plain = false;
    const shape = shapeOf(b, from, to);
    const templates = shape < 0 ? undefined : this.templates.get(shape);
    if (templates !== undefined) {
      for (let t = 0; t < templates.length; t++) {
        const template = templates[t] as Template;
        if (this.matches(template, from, to)) {
          this.isNull.set(template.isNull);
          if (t > 0) templates.copyWithin(1, 0, t), (templates[0] = template);
          return true;
        }
      }
      this.start.fill(-1);
      this.isNull.fill(0);
      this.seq = -1;
    }
    const plain = isAscii(body) && body.indexOf(0x5c) < 0;
    this.plain = plain;
    if (b[from] !== 0x7b) return false;
    this.holes = plain && shape >= 0 ? this.spareTemplate() : null;
    const ok = this.object(from, 1, ENVELOPE) === to;
    const recorded = this.holes;
    this.holes = null;
    if (ok && recorded !== null && recorded.count <= MAX_HOLES) {
      recorded.at = from;
      recorded.end = to;
      recorded.isNull.set(this.isNull);
      if (templates !== undefined) {
        templates.unshift(recorded);
        if (templates.length > TEMPLATES_PER_SHAPE) this.spares.push(templates.pop() as Template);
      } else {
        if (this.templates.size >= MAX_SHAPES) this.forgetTemplates();
        this.templates.set(shape, [recorded]);
      }
    } else if (recorded !== null) {
      this.spares.push(recorded);
    }
    return ok;
  }

  private forgetTemplates(): void {
    for (const list of this.templates.values()) for (const template of list) if (this.spares.length < TEMPLATES_PER_SHAPE) this.spares.push(template);
    this.templates.clear();
  }

  /**
   * Whether b[from, to) is `template`'s body with other scalars in its holes: the same bytes
   * between them (every brace, bracket, comma, colon and key), and in each hole a string or a
   * number that the full scan would accept where the template's had one. Such a body is canonical
   * because the template's is, and its fields are captured where the template's were.
   */
  private matches(template: Template, from: number, to: number): boolean {
    const b = this.b;
    const { holeStart, holeEnd, holeSlot, holeString, asIs, count } = template;
    let p = from;
    let t = template.at;
    // Whether runs of holes are still tried for this body (not after one that did not match).
    let runs = true;
    for (let h = 0; h < count; h++) {
      const hs = holeStart[h] as number;
      const he = holeEnd[h] as number;
      const slot = holeSlot[h] as number;
      // Most values are the template's: the literal and the hole compared at once. A string that
      // is the same bytes up to its closing quote is the same token; a number is judged by the
      // scan when it is captured (seq), and otherwise the byte after it (a literal) ends it.
      const isString = holeString[h] === 1;
      if (isString || slot < 0) {
        // Holes that held the template's values in the last body are tried together first: the
        // whole stretch up to the end of the last of them compared at once.
        let r = h + 1;
        if (runs && asIs[h] === 1) while (r < count && asIs[r] === 1 && (holeString[r] === 1 || (holeSlot[r] as number) < 0)) r++;
        if (r > h + 1 && !this.asTemplate(template, h, r, p, t, to)) {
          runs = false;
          r = h + 1;
        }
        if (r > h + 1 || this.asTemplate(template, h, r, p, t, to)) {
          asIs[h] = 1;
          const end = holeEnd[r - 1] as number;
          p += end - t;
          t = end;
          h = r - 1;
          continue;
        }
      }
      asIs[h] = 0;
      const literal = hs - t;
      if (p + literal > to || !this.same(p, t, literal)) return false;
      p += literal;
      if (isString) {
        if (b[p] !== 0x22) return false;
        const end = this.string(p);
        if (end === FAIL || end > to) return false;
        if (slot >= 0) {
          if (this.escaped) return false; // its bytes are not its value: judged in full, then the exact way
          this.start[slot] = p + 1;
          this.end[slot] = end - 1;
          this.ascii[slot] = this.nonAscii ? 0 : 1;
        }
        p = end;
      } else {
        const c = b[p] as number;
        if (c !== 0x2d && (c < 0x30 || c > 0x39)) return false;
        const end = this.number(p, slot);
        if (end === FAIL || end > to) return false;
        p = end;
      }
      t = he;
    }
    const literal = template.end - t;
    return p + literal === to && this.same(p, t, literal);
  }

  /**
   * Whether the body at p holds the template's bytes from t to the end of hole r - 1, holes h to
   * r - 1 with the template's own values; if so, the captured ones among them are placed there.
   */
  private asTemplate(template: Template, h: number, r: number, p: number, t: number, to: number): boolean {
    const end = template.holeEnd[r - 1] as number;
    if (p + end - t > to || !this.same(p, t, end - t)) return false;
    const shift = p - t;
    for (let k = h; k < r; k++) {
      const slot = template.holeSlot[k] as number;
      if (slot < 0) continue;
      this.start[slot] = (template.holeStart[k] as number) + shift + 1;
      this.end[slot] = (template.holeEnd[k] as number) + shift - 1;
      this.ascii[slot] = 1;
    }
    return true;
  }

  /** Whether b[p, p+n) and b[t, t+n) are the same bytes, four at a time. */
  private same(p: number, t: number, n: number): boolean {
    return sameIn(this.view, this.b, p, t, n);
  }

  private spareTemplate(): Template {
    const template = this.spares.pop() ?? new Template();
    template.count = 0;
    template.asIs.fill(1);
    return template;
  }

  /** Notes a scalar value the full scan accepted, as a hole of the template it is recording. */
  private hole(start: number, end: number, slot: number, isString: boolean): void {
    const holes = this.holes as Template;
    const h = holes.count++;
    if (h >= MAX_HOLES) return;
    holes.holeStart[h] = start;
    holes.holeEnd[h] = end;
    holes.holeSlot[h] = slot;
    holes.holeString[h] = isString ? 1 : 0;
  }

  /** A string whose quote is at i: the index after its closing quote, or FAIL. */
  private string(i: number): number {
    const b = this.b;
    if (this.plain) {
      // No backslash and no byte >= 0x80: only the closing quote and raw controls (< 0x20) stop it.
      let j = i + 1;
      for (;;) {
        while ((b[j] as number) > 0x22) j++;
        const c = b[j];
        if (c === 0x22) {
          this.escaped = false;
          this.nonAscii = false;
          return j + 1;
        }
        if (c !== 0x20 && c !== 0x21) return FAIL;
        j++;
      }
    }
    let escaped = false;
    let nonAscii = false;
    for (let j = i + 1; ; j++) {
      const c = b[j];
      if (c === undefined) return FAIL;
      if (c === 0x22) {
        this.escaped = escaped;
        this.nonAscii = nonAscii;
        return j + 1;
      }
      if (c >= 0x20 && c < 0x80 && c !== 0x5c) continue;
      if (c < 0x20) return FAIL; // a raw control character
      if (c === 0x5c) {
        escaped = true;
        const e = b[j + 1];
        // RFC 8785: only \" \\ \b \f \n \r \t, and \u00xx (lowercase hex) for the other controls.
        if (e === 0x22 || e === 0x5c || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          j++;
          continue;
        }
        if (e !== 0x75 || b[j + 2] !== 0x30 || b[j + 3] !== 0x30) return FAIL;
        const hi = b[j + 4] as number;
        const lo = b[j + 5] as number;
        if (hi !== 0x30 && hi !== 0x31) return FAIL;
        if (!((lo >= 0x30 && lo <= 0x39) || (lo >= 0x61 && lo <= 0x66))) return FAIL;
        const code = (hi - 0x30) * 16 + (lo <= 0x39 ? lo - 0x30 : lo - 0x57);
        if (code === 0x08 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d) return FAIL;
        j += 5;
        continue;
      }
      // A UTF-8 sequence: well formed, shortest form, no surrogates, at most U+10FFFF.
      nonAscii = true;
      const c1 = b[j + 1] as number;
      if (c >= 0xc2 && c <= 0xdf) {
        if ((c1 & 0xc0) !== 0x80) return FAIL;
        j += 1;
      } else if (c >= 0xe0 && c <= 0xef) {
        const lo1 = c === 0xe0 ? 0xa0 : 0x80;
        const hi1 = c === 0xed ? 0x9f : 0xbf;
        if (c1 < lo1 || c1 > hi1 || ((b[j + 2] as number) & 0xc0) !== 0x80) return FAIL;
        j += 2;
      } else if (c >= 0xf0 && c <= 0xf4) {
        const lo1 = c === 0xf0 ? 0x90 : 0x80;
        const hi1 = c === 0xf4 ? 0x8f : 0xbf;
        if (c1 < lo1 || c1 > hi1 || ((b[j + 2] as number) & 0xc0) !== 0x80 || ((b[j + 3] as number) & 0xc0) !== 0x80) return FAIL;
        j += 3;
      } else {
        return FAIL;
      }
    }
  }

  private value(i: number, depth: number, where: number, slot: number): number {
    const b = this.b;
    const c = b[i];
    if (c === 0x22) {
      const end = this.string(i);
      if (end !== FAIL && slot >= 0) {
        if (this.escaped) return FAIL; // its bytes are not its value: the exact path decides
        this.start[slot] = i + 1;
        this.end[slot] = end - 1;
        this.ascii[slot] = this.nonAscii ? 0 : 1;
      }
      if (end !== FAIL && this.holes !== null) this.hole(i, end, slot, true);
      return end;
    }
    if (c === 0x7b) return this.object(i, depth + 1, where);
    if (c === 0x5b) {
      if (depth >= MAX_DEPTH) return FAIL;
      let j = i + 1;
      if (b[j] === 0x5d) return j + 1;
      for (;;) {
        j = this.value(j, depth + 1, 0, -1);
        if (j === FAIL) return FAIL;
        const d = b[j];
        if (d === 0x5d) return j + 1;
        if (d !== 0x2c) return FAIL;
        j++;
      }
    }
    if (c === 0x74) return b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65 ? i + 4 : FAIL;
    if (c === 0x66) return b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65 ? i + 5 : FAIL;
    if (c === 0x6e) {
      if (b[i + 1] !== 0x75 || b[i + 2] !== 0x6c || b[i + 3] !== 0x6c) return FAIL;
      if (slot >= 0) this.isNull[slot] = 1;
      return i + 4;
    }
    if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) {
      const end = this.number(i, slot);
      if (end !== FAIL && this.holes !== null) this.hole(i, end, slot, false);
      return end;
    }
    return FAIL;
  }

  private number(i: number, slot: number): number {
    const b = this.b;
    let j = i + (b[i] === 0x2d ? 1 : 0);
    const digits = j;
    let value = 0;
    while (j < b.length && (b[j] as number) >= 0x30 && (b[j] as number) <= 0x39) value = value * 10 + ((b[j++] as number) - 0x30);
    const next = b[j];
    const plain = next !== 0x2e && next !== 0x65 && next !== 0x45 && next !== 0x2b && next !== 0x2d;
    const intDigits = j - digits;
    const leadingZero = b[digits] === 0x30 && intDigits > 1;
    // A plain integer of up to 15 digits without a leading zero is its own ECMAScript rendering.
    if (plain && intDigits > 0 && intDigits <= 15 && !leadingZero && !(b[i] === 0x2d && value === 0)) {
      if (slot === SEQ && b[i] !== 0x2d) this.seq = value;
      return j;
    }
    // So is a decimal fraction of up to 15 significant digits (DBL_DIG: no other decimal that
    // short reads as the same double, so it is the shortest) without a trailing zero, in the
    // range ECMAScript writes without an exponent (below 1e21, and at most five zeros after "0.").
    if (next === 0x2e && intDigits > 0 && !leadingZero && slot !== SEQ) {
      let f = j + 1;
      while (f < b.length && (b[f] as number) >= 0x30 && (b[f] as number) <= 0x39) f++;
      const fraction = f - j - 1;
      const after = b[f];
      if (fraction > 0 && b[f - 1] !== 0x30 && after !== 0x65 && after !== 0x45 && after !== 0x2e && after !== 0x2b && after !== 0x2d) {
        let zeros = 0;
        if (b[digits] === 0x30) while (b[j + 1 + zeros] === 0x30) zeros++;
        const significant = b[digits] === 0x30 ? fraction - zeros : intDigits + fraction;
        if (significant <= 15 && zeros <= 5) return f;
      }
    }
    while (j < b.length) {
      const d = b[j] as number;
      if ((d >= 0x30 && d <= 0x39) || d === 0x2d || d === 0x2b || d === 0x2e || d === 0x65 || d === 0x45) j++;
      else break;
    }
    const token = Buffer.from(b.buffer, b.byteOffset + i, j - i).toString('latin1');
    const n = Number(token);
    // ECMAScript's number-to-string is RFC 8785's: a canonical token is its own image.
    if (!Number.isFinite(n) || String(n) !== token) return FAIL;
    return slot === SEQ ? FAIL : j; // a seq that is not a plain integer: the exact path decides
  }

  private static find(b: Uint8Array, start: number, end: number, table: KeyTable): number {
    const length = end - start;
    const probe = (length << 8) | (b[start] as number);
    const probes = table.probes;
    for (let t = 0; t < probes.length; t++) {
      if (probes[t] !== probe) continue;
      const key = table.keys[t] as Buffer;
      let k = 1;
      while (k < length && key[k] === b[start + k]) k++;
      if (k >= length) return table.slots[t] as number;
    }
    return -1;
  }

  private static is(b: Uint8Array, start: number, end: number, key: Buffer): boolean {
    if (end - start !== key.length) return false;
    for (let k = 0; k < key.length; k++) if (key[k] !== b[start + k]) return false;
    return true;
  }

  /** An object whose keys strictly increase (byte order is UTF-16 order for ASCII keys); the brace is at i. */
  private object(i: number, depth: number, where: number): number {
    if (depth > MAX_DEPTH) return FAIL;
    const b = this.b;
    let j = i + 1;
    if (b[j] === 0x7d) return j + 1;
    let prevStart = -1;
    let prevEnd = -1;
    for (;;) {
      if (b[j] !== 0x22) return FAIL;
      const keyEnd = this.string(j);
      if (keyEnd === FAIL || this.escaped || this.nonAscii) return FAIL;
      const start = j + 1;
      const end = keyEnd - 1;
      if (prevStart >= 0) {
        // Strictly after the previous key.
        const n = Math.min(prevEnd - prevStart, end - start);
        let k = 0;
        while (k < n && b[prevStart + k] === b[start + k]) k++;
        if (k < n ? (b[prevStart + k] as number) > (b[start + k] as number) : prevEnd - prevStart >= end - start) return FAIL;
      }
      prevStart = start;
      prevEnd = end;
      if (b[keyEnd] !== 0x3a) return FAIL;

      let childWhere = 0;
      let slot = -1;
      if (where === ENVELOPE) {
        if (ByteScanner.is(b, start, end, KEY_DATA)) childWhere = DATA;
        else if (ByteScanner.is(b, start, end, KEY_ACTOR)) childWhere = ACTOR;
        else slot = ByteScanner.find(b, start, end, ENVELOPE_KEYS);
      } else if (where === ACTOR) {
        slot = ByteScanner.find(b, start, end, ACTOR_KEYS);
      } else if (where === DATA) {
        if (ByteScanner.is(b, start, end, KEY_TARGET)) childWhere = TARGET;
        else slot = ByteScanner.find(b, start, end, DATA_KEY_TABLE);
      } else if (where === TARGET) {
        slot = ByteScanner.find(b, start, end, TARGET_KEY_TABLE);
      }
      j = this.value(keyEnd + 1, depth, childWhere, slot);
      if (j === FAIL) return FAIL;
      const d = b[j];
      if (d === 0x7d) return j + 1;
      if (d !== 0x2c) return FAIL;
      j++;
    }
  }
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

/** The entry of the scanned body's event type; undefined when it is not in the catalog. */
function typeOf(s: ByteScanner, b: Uint8Array): TypeEntry | undefined {
  const typeAt = s.start[TYPE] as number;
  const typeLength = (s.end[TYPE] as number) - typeAt;
  for (let t = 0; t < TYPES.length; t++) {
    const name = (TYPES[t] as TypeEntry).name;
    if (name.length !== typeLength) continue;
    let k = 0;
    while (k < typeLength && name[k] === b[typeAt + k]) k++;
    if (k === typeLength) return TYPES[t];
  }
  return undefined;
}

/**
 * Whether the scan vouches that the indexed columns as copied (row.columns) are the ones
 * indexKeyOf reads from the scanned envelope: only when each column is exactly its field (a text
 * its string, NULL a JSON null, the time the instant the body's text names, the device ids the
 * distinct lowercased ids in order). Any other row is judged the exact way, from the index key
 * rendered as the database renders it.
 */
class ColumnMatcher {
  private readonly view: { b: Uint8Array; dv: DataView } = { b: new Uint8Array(0), dv: new DataView(new ArrayBuffer(0)) };

  /** A DataView over b (kept while b is the buffer checked). */
  viewOf(b: Uint8Array): DataView {
    if (this.view.b !== b) {
      this.view.b = b;
      this.view.dv = viewOf(b);
    }
    return this.view.dv;
  }

  matches(s: ByteScanner, b: Uint8Array, row: CopyRow): boolean {
    const { start, end } = s;
    const type = typeOf(s, b);
    if (type === undefined || type.deviceSlots === null) return false;
    this.viewOf(b);
    const columns = row.columns;
    // The time: a timestamptz, microseconds since 2000-01-01 UTC, equal to the body's time text.
    const timeAt = columns[2 * TIME_COLUMN] as number;
    if (timeAt < 0 || (columns[2 * TIME_COLUMN + 1] as number) - timeAt !== 8) return false;
    const ms = isoMillis(b, start[TIME] as number, end[TIME] as number);
    if (ms === null) return false;
    const dv = this.view.dv;
    const high = dv.getInt32(timeAt);
    if (high * 2 ** 32 + dv.getUint32(timeAt + 4) !== (ms - EPOCH_2000_MS) * 1000) return false;
    if (!this.text(b, columns, TYPE_COLUMN, start, end, TYPE)) return false;
    if (!this.text(b, columns, KIND_COLUMN, start, end, KIND) || !this.text(b, columns, ID_COLUMN, start, end, ID)) return false;
    if (!this.nullable(b, columns, CODE_COLUMN, s, CODE) || !this.nullable(b, columns, REQUEST_ID_COLUMN, s, REQUEST_ID)) return false;
    // The decision: the data field's string, else NULL (decisionOf maps anything else to null).
    if (type.decisionSlot < 0 || (start[type.decisionSlot] as number) < 0) {
      if ((columns[2 * DECISION_COLUMN] as number) >= 0) return false;
    } else if (!this.text(b, columns, DECISION_COLUMN, start, end, type.decisionSlot)) {
      return false;
    }
    return this.devices(s, b, columns, type.deviceSlots);
  }

  /** Column k is not NULL and holds the bytes of the slot's string. */
  private text(b: Uint8Array, columns: Int32Array, k: number, start: Int32Array, end: Int32Array, slot: number): boolean {
    const at = columns[2 * k] as number;
    const from = start[slot] as number;
    if (at < 0 || from < 0) return false;
    const length = (end[slot] as number) - from;
    return (columns[2 * k + 1] as number) - at === length && sameIn(this.view.dv, b, at, from, length);
  }

  /** Column k is NULL where the body holds JSON null, else the slot's string. */
  private nullable(b: Uint8Array, columns: Int32Array, k: number, s: ByteScanner, slot: number): boolean {
    if (s.isNull[slot] === 1) return (columns[2 * k] as number) < 0;
    return this.text(b, columns, k, s.start, s.end, slot);
  }

  /** A one-dimensional text[] without NULLs holding the body's device ids: non-empty, lowercased, first occurrence only. */
  private devices(s: ByteScanner, b: Uint8Array, columns: Int32Array, slots: readonly number[]): boolean {
    const { start, end } = s;
    const dv = this.view.dv;
    const at = columns[2 * DEVICES_COLUMN] as number;
    const to = columns[2 * DEVICES_COLUMN + 1] as number;
    if (at < 0 || to - at < 12) return false;
    const dims = dv.getInt32(at);
    if (dv.getInt32(at + 8) !== TEXT_OID || dims < 0 || dims > 1) return false;
    let p = at + 12;
    let elements = 0;
    if (dims === 1) {
      if (p + 8 > to) return false;
      elements = dv.getInt32(p);
      if (dv.getInt32(p + 4) !== 1) return false; // a lower bound of 1, as string_to_array makes it
      p += 8;
    }
    let written = 0;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as number;
      const from = start[slot] as number;
      const length = (end[slot] as number) - from;
      if (from < 0 || length === 0) continue;
      if (s.ascii[slot] !== 1) return false;
      let seen = false;
      for (let h = 0; h < i && !seen; h++) {
        const other = slots[h] as number;
        const o = start[other] as number;
        if (o < 0 || (end[other] as number) - o !== length) continue;
        let k = 0;
        while (k < length && lower(b[from + k] as number) === lower(b[o + k] as number)) k++;
        seen = k === length;
      }
      if (seen) continue;
      if (written++ >= elements || p + 4 > to || dv.getInt32(p) !== length) return false;
      p += 4;
      if (p + length > to || !lowercaseOfIn(dv, b, p, from, length)) return false;
      p += length;
    }
    return written === elements && p === to;
  }
}

/** 2000-01-01T00:00:00Z, PostgreSQL's epoch for timestamps, in Unix milliseconds. */
const EPOCH_2000_MS = 946_684_800_000;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function digits(b: Uint8Array, at: number, n: number): number {
  let value = 0;
  for (let k = 0; k < n; k++) {
    const d = (b[at + k] as number) - 0x30;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/**
 * Unix milliseconds of a time text exactly as to_char(..., 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
 * writes one in years 1 to 9999 (every field in range, the day in its month); null for any other text.
 */
function isoMillis(b: Uint8Array, from: number, to: number): number | null {
  if (to - from !== 24) return null;
  if (b[from + 4] !== 0x2d || b[from + 7] !== 0x2d || b[from + 10] !== 0x54 || b[from + 13] !== 0x3a || b[from + 16] !== 0x3a || b[from + 19] !== 0x2e || b[from + 23] !== 0x5a) return null;
  const year = digits(b, from, 4);
  const month = digits(b, from + 5, 2);
  const day = digits(b, from + 8, 2);
  const hour = digits(b, from + 11, 2);
  const minute = digits(b, from + 14, 2);
  const second = digits(b, from + 17, 2);
  const milli = digits(b, from + 20, 3);
  if (year < 1 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || milli < 0) return null;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > (DAYS_IN_MONTH[month - 1] as number) + (month === 2 && leap ? 1 : 0)) return null;
  // Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil).
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  const days = era * 146_097 + doe - 719_468;
  return ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + milli;
}

/** Earliest and latest instants to_char writes as a four-digit year 1 to 9999 (Unix ms). */
const FIRST_MS = -62_135_596_800_000;
const LAST_MS = 253_402_300_799_999;

/**
 * The index key as INDEX_KEY_SQL renders it from these columns (concat_ws skips NULLs,
 * array_to_string skips NULL elements); null when it cannot be rendered here with certainty.
 */
function renderIndexKey(text: Buffer, columns: Int32Array): string | null {
  const column = (k: number): string | null => {
    const at = columns[2 * k] as number;
    return at < 0 ? null : text.toString('utf8', at, columns[2 * k + 1]);
  };
  const timeAt = columns[2 * TIME_COLUMN] as number;
  if (timeAt < 0 || (columns[2 * TIME_COLUMN + 1] as number) - timeAt !== 8) return null;
  const micros = text.readBigInt64BE(timeAt);
  // Milliseconds, truncated as to_char's MS truncates (towards the past: the fraction of a second is never negative).
  const ms = Number(micros / 1000n - (micros < 0n && micros % 1000n !== 0n ? 1n : 0n)) + EPOCH_2000_MS;
  if (!(ms >= FIRST_MS && ms <= LAST_MS)) return null;
  const devicesAt = columns[2 * DEVICES_COLUMN] as number;
  let devices: string | null = null;
  if (devicesAt >= 0) {
    const to = columns[2 * DEVICES_COLUMN + 1] as number;
    if (to - devicesAt < 12) return null;
    const dims = text.readInt32BE(devicesAt);
    if (text.readInt32BE(devicesAt + 8) !== TEXT_OID || dims < 0) return null;
    let p = devicesAt + 12;
    let count = dims === 0 ? 0 : 1;
    for (let d = 0; d < dims; d++, p += 8) {
      if (p + 8 > to) return null;
      count *= text.readInt32BE(p);
    }
    const elements: string[] = [];
    for (let e = 0; e < count; e++) {
      if (p + 4 > to) return null;
      const length = text.readInt32BE(p);
      p += 4;
      if (length < 0) continue;
      if (p + length > to) return null;
      elements.push(text.toString('utf8', p, p + length));
      p += length;
    }
    if (p !== to) return null;
    devices = elements.join(',');
  }
  const fields = [
    new Date(ms).toISOString(),
    column(TYPE_COLUMN),
    column(CODE_COLUMN) ?? '\x1e',
    column(KIND_COLUMN),
    column(ID_COLUMN),
    column(REQUEST_ID_COLUMN) ?? '\x1e',
    column(DECISION_COLUMN) ?? '\x1e',
    devices,
  ];
  return fields.filter((f) => f !== null).join('\x1f');
}

/** Whether b[a, a+n) and c[x, x+n) are the same bytes. */
function same(b: Uint8Array, a: number, c: Uint8Array, x: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (b[a + k] !== c[x + k]) return false;
  return true;
}

/** Whether b[a, a+n) and b[x, x+n) are the same bytes, sixteen then four at a time (view: b's DataView). */
function sameIn(view: DataView, b: Uint8Array, a: number, x: number, n: number): boolean {
  let k = 0;
  // Four words a turn: a quarter of the loop's own work, on the stretches bodies share with their template.
  for (; k + 16 <= n; k += 16) {
    const d =
      (view.getInt32(a + k) ^ view.getInt32(x + k)) |
      (view.getInt32(a + k + 4) ^ view.getInt32(x + k + 4)) |
      (view.getInt32(a + k + 8) ^ view.getInt32(x + k + 8)) |
      (view.getInt32(a + k + 12) ^ view.getInt32(x + k + 12));
    if (d !== 0) return false;
  }
  for (; k + 4 <= n; k += 4) if (view.getInt32(a + k) !== view.getInt32(x + k)) return false;
  for (; k < n; k++) if (b[a + k] !== b[x + k]) return false;
  return true;
}

/** Four ASCII bytes with A-Z lowered: a lane's top bit marks >= 'A' and not >= '[' (no lane carries: every byte is below 0x80). */
function lower4(w: number): number {
  const upper = (w + 0x3f3f3f3f) & ~(w + 0x25252525) & 0x80808080;
  return w | (upper >>> 2);
}

/** Whether b[a, a+n) is b[x, x+n) lowercased (ASCII), four bytes at a time. */
function lowercaseOfIn(view: DataView, b: Uint8Array, a: number, x: number, n: number): boolean {
  let k = 0;
  for (; k + 4 <= n; k += 4) if (view.getInt32(a + k) !== lower4(view.getInt32(x + k))) return false;
  for (; k < n; k++) if (b[a + k] !== lower(b[x + k] as number)) return false;
  return true;
}

/** b[a0, a1) >= c[x0, x1) in byte order. */
function notBefore(b: Uint8Array, a0: number, a1: number, c: Uint8Array, x0: number, x1: number): boolean {
  const n = Math.min(a1 - a0, x1 - x0);
  for (let k = 0; k < n; k++) {
    const d = (b[a0 + k] as number) - (c[x0 + k] as number);
    if (d !== 0) return d > 0;
  }
  return a1 - a0 >= x1 - x0;
}

/**
 * prev_hash || SHA-256(body) for the row being checked; its first half holds the stored hash of
 * row `digestOf` as bytes (-1: none), so a row after one that matched skips decoding prev_hash.
 */
class ChainBytes {
  readonly scratch = Buffer.alloc(64);
  readonly scratchView = viewOf(this.scratch);
  digestOf = -1;

  /**
   * `batch` set: outer hashes are left to the batch, taken for the whole range at its end. The
   * range's memory and where its bytes start in it, read once (a Buffer's `buffer` is a call into
   * the engine's runtime each time), for each row's view of its body.
   */
  constructor(
    readonly batch: PairBatch | null,
    readonly memory: ArrayBufferLike,
    readonly base: number,
  ) {}
}

/**
 * A range's outer-hash inputs and the stored hashes they must give, for one native call at the
 * range's end (pair-hash.ts). Input i is row i's prev_hash as bytes then SHA-256 of its body; the
 * stored hash of row i, decoded, is expected digest i and the first half of input i + 1 (its
 * prev_hash, checked equal as text). Reused range after range (one per thread: checks are synchronous).
 */
class PairBatch {
  private pairs = Buffer.alloc(64 * 5_001);
  private digests = Buffer.alloc(32 * 5_000);
  private expected = Buffer.alloc(32 * 5_000);
  private pairsView = viewOf(this.pairs);
  private expectedView = viewOf(this.expected);
  private rows = 0;

  constructor(private readonly hasher: PairHasher) {}

  reset(): void {
    this.rows = 0;
  }

  /** Adds a row (of b, whose DataView is `view`) whose prev_hash and hash are 64 characters; false when either is not lowercase hex. */
  add(view: DataView, row: CopyRow, body: Uint8Array): boolean {
    const i = this.rows;
    if (64 * (i + 2) > this.pairs.length) this.grow();
    const pairs = this.pairsView;
    if (i === 0 && !decodeHex(view, row.prevHash, pairs, 0, null, 0)) return false;
    writeDigest(pairs, 64 * i + 32, crypto.hash('sha256', body, 'binary'));
    if (!decodeHex(view, row.hash, this.expectedView, 32 * i, pairs, 64 * (i + 1))) return false;
    this.rows = i + 1;
    return true;
  }

  /** Whether every row added since reset hashes to its stored hash (false too when the hasher throws: the range is then checked row by row). */
  matches(): boolean {
    const n = this.rows;
    if (n === 0) return true;
    const digests = this.digests.subarray(0, 32 * n);
    try {
      this.hasher(this.pairs.subarray(0, 64 * n), digests);
    } catch {
      return false;
    }
    return digests.equals(this.expected.subarray(0, 32 * n));
  }

  private grow(): void {
    const rows = 2 * (this.pairs.length / 64);
    const pairs = Buffer.alloc(64 * rows);
    this.pairs.copy(pairs);
    this.pairs = pairs;
    this.pairsView = viewOf(pairs);
    const expected = Buffer.alloc(32 * rows);
    this.expected.copy(expected);
    this.expected = expected;
    this.expectedView = viewOf(expected);
    this.digests = Buffer.alloc(32 * rows);
  }
}

/** Writes a digest given as latin1 ('binary') text into out[at, at + 32): its code units as bytes, four to a store (cheaper than Buffer#write for 32 of them). */
function writeDigest(out: DataView, at: number, digest: string): void {
  for (let k = 0; k < 32; k += 4) {
    out.setInt32(at + k, (digest.charCodeAt(k) << 24) | (digest.charCodeAt(k + 1) << 16) | (digest.charCodeAt(k + 2) << 8) | digest.charCodeAt(k + 3));
  }
}

/**
 * Decodes 64 lowercase hex digits at `at` of the bytes `view` reads into out[to] (and into
 * also[alsoAt] unless null), four digits to a load; false for any other byte.
 */
function decodeHex(view: DataView, at: number, out: DataView, to: number, also: DataView | null, alsoAt: number): boolean {
  for (let k = 0; k < 32; k += 2) {
    const digits = view.getUint32(at + 2 * k);
    const hi = HEX_PAIR[digits >>> 16] as number;
    const lo = HEX_PAIR[digits & 0xffff] as number;
    if ((hi | lo) < 0) return false;
    const value = (hi << 8) | lo;
    out.setUint16(to + k, value);
    if (also !== null) also.setUint16(alsoAt + k, value);
  }
  return true;
}

/** The byte two lowercase hex digits stand for, by the digits' bytes (first << 8 | second); -1 for any other pair. */
const HEX_PAIR = (() => {
  const digits = '0123456789abcdef';
  const table = new Int16Array(1 << 16).fill(-1);
  for (let hi = 0; hi < 16; hi++) for (let lo = 0; lo < 16; lo++) table[(digits.charCodeAt(hi) << 8) | digits.charCodeAt(lo)] = (hi << 4) | lo;
  return table;
})();

/** Each hasher's batch, made once per thread (checks are synchronous, so one is enough). */
const batches = new WeakMap<PairHasher, PairBatch>();

function batchFor(hasher: PairHasher): PairBatch {
  let batch = batches.get(hasher);
  if (batch === undefined) {
    batch = new PairBatch(hasher);
    batches.set(hasher, batch);
  }
  return batch;
}

/**
 * Checks a range of copied rows. With a hasher (by default the native one, where the platform
 * has it: pair-hash.ts), the outer hashes are taken together at the end, and the answer is kept only
 * when every row passed and every hash matched; any other range, and every range without a hasher,
 * is checked row by row with node:crypto, which is what names a failure. So both give the same
 * answer, and a failing range costs two passes.
 */
export function checkCopyChunk(task: CopyChunkTask, hasher: PairHasher | null = pairHasher): ChunkResult {
  if (hasher !== null) {
    const batch = batchFor(hasher);
    batch.reset();
    const result = walkCopyChunk(task, batch);
    if (result.failure === null && batch.matches()) return result;
  }
  return walkCopyChunk(task, null);
}

/** One pass over a range (see checkCopyChunk): with a batch, a result without a failure still waits for batch.matches(). */
function walkCopyChunk(task: CopyChunkTask, batch: PairBatch | null): ChunkResult {
  const b = task.copy;
  const text = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  let reader: CopyReader;
  try {
    reader = new CopyReader(b);
  } catch (err) {
    return unreadable(task, err);
  }
  const tenant = Buffer.from(task.tenant, 'utf8');
  const { checkpointsAt, checkpointChecks, recordCheckpoint } = checkpointRecorder(task.checkpoints);
  const scanner = new ByteScanner();
  const matcher = new ColumnMatcher();
  const chain = new ChainBytes(batch, b.buffer, b.byteOffset);
  const row = new CopyRow();

  // The row before: its stored hash and time as bytes (in the task's own buffers for the first row).
  let prevSeq = task.previous.seq;
  let prevHashBuf: Uint8Array = Buffer.from(task.previous.hash, 'latin1');
  let prevHashAt = 0;
  let prevHashLength = task.previous.hash.length;
  let prevTimeBuf: Uint8Array = Buffer.from(task.previous.time, 'utf8');
  let prevTimeAt = 0;
  let prevTimeEnd = prevTimeBuf.length;
  let prevTimeAscii = isAscii(prevTimeBuf);
  // The previous body: in b (prevBodyAt >= 0) or, before the first row, the task's own.
  let prevBodyAt = -1;
  let prevBodyEnd = -1;
  let hashAtHead: string | null = null;
  let passed = 0;

  for (;;) {
    try {
      if (!reader.next(row)) break;
    } catch (err) {
      const result = unreadable({ ...task, previous: { seq: prevSeq, hash: '', body: '', time: '' } }, err);
      return { ...result, passed, checkpointChecks, hashAtHead };
    }
    const seq = row.seq;
    const fast = seq === prevSeq + 1 && fastRow(text, row, scanner, matcher, chain, tenant, prevHashBuf, prevHashAt, prevHashLength, prevTimeAscii ? prevTimeBuf : null, prevTimeAt, prevTimeEnd);
    if (fast) {
      if (checkpointsAt.has(seq) || seq === task.headSeq) {
        const rowHash = text.toString('latin1', row.hash, row.hashEnd);
        recordCheckpoint(seq, rowHash);
        if (seq === task.headSeq) hashAtHead = rowHash;
      }
      prevTimeBuf = b;
      prevTimeAt = scanner.start[TIME] as number;
      prevTimeEnd = scanner.end[TIME] as number;
      prevTimeAscii = true;
    } else {
      // The exact way, for this one row, from its decoded strings and the row before it.
      const previous: PreviousRow = {
        seq: prevSeq,
        hash: Buffer.from(prevHashBuf.buffer, prevHashBuf.byteOffset + prevHashAt, prevHashLength).toString('utf8'),
        body: prevBodyAt < 0 ? task.previous.body : text.toString('utf8', prevBodyAt, prevBodyEnd),
        time: Buffer.from(prevTimeBuf.buffer, prevTimeBuf.byteOffset + prevTimeAt, prevTimeEnd - prevTimeAt).toString('utf8'),
      };
      const body = text.toString('utf8', row.body, row.bodyEnd);
      const exact = checkChunk({
        tenant: task.tenant,
        previous,
        headSeq: task.headSeq,
        seq: [seq],
        body: [body],
        prevHash: [text.toString('utf8', row.prevHash, row.prevHashEnd)],
        hash: [text.toString('utf8', row.hash, row.hashEnd)],
        // null where it cannot be rendered here: the row then fails, and verify reads the range again with the database's rendering.
        idx: [renderIndexKey(text, row.columns)],
        checkpoints: checkpointsAt.get(seq) ?? [],
      });
      checkpointChecks.push(...exact.checkpointChecks);
      hashAtHead ??= exact.hashAtHead;
      if (exact.failure !== null) return { passed, lastPassedSeq: prevSeq, failure: exact.failure, checkpointChecks, hashAtHead };
      if (batch !== null && !batch.add(matcher.viewOf(text), row, new Uint8Array(chain.memory, chain.base + row.body, row.bodyEnd - row.body))) {
        return { passed, lastPassedSeq: prevSeq, failure: { seq, reason: 'hash_mismatch', detail: 'a hash is not lowercase hex (checked again row by row)' }, checkpointChecks, hashAtHead };
      }
      const time = (JSON.parse(body) as { time: string }).time;
      prevTimeBuf = Buffer.from(time, 'utf8');
      prevTimeAt = 0;
      prevTimeEnd = prevTimeBuf.length;
      prevTimeAscii = isAscii(prevTimeBuf);
    }
    prevSeq = seq;
    prevHashBuf = b;
    prevHashAt = row.hash;
    prevHashLength = row.hashEnd - row.hash;
    prevBodyAt = row.body;
    prevBodyEnd = row.bodyEnd;
    passed++;
  }
  return { passed, lastPassedSeq: prevSeq, failure: null, checkpointChecks, hashAtHead };
}

/** Every check of one row on its bytes; false when it does not vouch for the row. */
function fastRow(
  b: Buffer,
  row: CopyRow,
  scanner: ByteScanner,
  matcher: ColumnMatcher,
  chain: ChainBytes,
  tenant: Uint8Array,
  prevHashBuf: Uint8Array,
  prevHashAt: number,
  prevHashLength: number,
  prevTime: Uint8Array | null,
  prevTimeAt: number,
  prevTimeEnd: number,
): boolean {
  if (prevTime === null) return false;
  // prev_hash is the previous row's stored hash, and both are 64 lowercase hex digits.
  if (row.prevHashEnd - row.prevHash !== HASH_HEX_LENGTH || row.hashEnd - row.hash !== HASH_HEX_LENGTH || prevHashLength !== HASH_HEX_LENGTH) return false;
  const view = matcher.viewOf(b);
  if (prevHashBuf === b ? !sameIn(view, b, row.prevHash, prevHashAt, HASH_HEX_LENGTH) : !same(b, row.prevHash, prevHashBuf, prevHashAt, HASH_HEX_LENGTH)) return false;
  // hash = SHA-256(prev_hash || SHA-256(body)), over the body's bytes as stored. Digests come back
  // as latin1 ('binary') strings: node's one-shot hash answers those several times faster than a Buffer.
  // A plain view (a Buffer's subarray costs several times more to make, once per row).
  const body = new Uint8Array(chain.memory, chain.base + row.body, row.bodyEnd - row.body);
  // Added to the batch only once vouched for: a row left to the exact path is added there, once.
  if (chain.batch !== null) return bodyVouched(b, row, body, scanner, matcher, tenant, prevTime, prevTimeAt, prevTimeEnd) && chain.batch.add(view, row, body);
  const { scratch, scratchView } = chain;
  if (chain.digestOf !== row.seq - 1 && !decodeHex(view, row.prevHash, scratchView, 0, null, 0)) return false;
  writeDigest(scratchView, 32, crypto.hash('sha256', body, 'binary'));
  const outer = crypto.hash('sha256', scratch, 'binary');
  // The stored hash, decoded (lowercase hex only) into the first half of the next row's input (the
  // previous digest is no longer needed), then compared with the digest byte by byte.
  const decoded = decodeHex(view, row.hash, scratchView, 0, null, 0);
  let k = 0;
  while (decoded && k < 32 && scratch[k] === outer.charCodeAt(k)) k++;
  if (k < 32) {
    chain.digestOf = -1;
    return false;
  }
  chain.digestOf = row.seq;
  return bodyVouched(b, row, body, scanner, matcher, tenant, prevTime, prevTimeAt, prevTimeEnd);
}

/** The body canonical, at its place in this chain, its time not going back, the indexed columns agreeing. */
function bodyVouched(
  b: Buffer,
  row: CopyRow,
  body: Uint8Array,
  scanner: ByteScanner,
  matcher: ColumnMatcher,
  tenant: Uint8Array,
  prevTime: Uint8Array,
  prevTimeAt: number,
  prevTimeEnd: number,
): boolean {
  if (!scanner.scan(b, row.body, row.bodyEnd, body)) return false;
  const { start, end } = scanner;
  if (scanner.seq !== row.seq) return false;
  const chainAt = start[CHAIN] as number;
  if (chainAt < 0 || (end[CHAIN] as number) - chainAt !== tenant.length || !same(b, chainAt, tenant, 0, tenant.length)) return false;
  const time = start[TIME] as number;
  if (time < 0 || (start[TYPE] as number) < 0 || scanner.ascii[TIME] !== 1) return false;
  if (!notBefore(b, time, end[TIME] as number, prevTime, prevTimeAt, prevTimeEnd)) return false;
  return matcher.matches(scanner, b, row) === true;
}

function unreadable(task: { previous: PreviousRow }, err: unknown): ChunkResult {
  const failure: Failure = { seq: task.previous.seq + 1, reason: 'not_canonical', detail: `the range could not be read: ${(err as Error).message}` };
  return { passed: 0, lastPassedSeq: task.previous.seq, failure, checkpointChecks: [], hashAtHead: null };
}

export type AnyChunkTask = ChunkTask | PackedChunkTask | CopyChunkTask;

/** Checks a range in whichever form it was read. */
export function checkAnyChunk(task: AnyChunkTask): ChunkResult {
  return 'copy' in task ? checkCopyChunk(task) : checkChunk(task);
}

/**
 * The byte scan on one body, for tests: what it vouches for (null: it leaves the body to the exact
 * path), and whether it vouches that the columns INDEX_KEY_SQL would render as `indexKey` are the
 * ones it reads from the body (true), or leaves that to the exact path (null). With
 * `after`, the scan reads that body (or those bodies, in order) first, in the same buffer, so
 * `body` is judged against them as templates.
 */
export function scanBodyBytes(body: Buffer, indexKey: string, after?: Buffer | readonly Buffer[]): { seq: number; chain: string; time: string; indexKeyMatches: boolean | null } | null {
  const columns = columnsOf(indexKey);
  const before = after === undefined ? [] : Buffer.isBuffer(after) ? [after] : after;
  const b = Buffer.concat([...before, body, columns ?? Buffer.alloc(0)]);
  const scanner = new ByteScanner();
  let from = 0;
  for (const earlier of before) {
    scanner.scan(b, from, from + earlier.length, b.subarray(from, from + earlier.length));
    from += earlier.length;
  }
  const to = from + body.length;
  if (!scanner.scan(b, from, to, b.subarray(from, to))) return null;
  const text = (slot: number) => ((scanner.start[slot] as number) < 0 ? '' : b.toString('utf8', scanner.start[slot], scanner.end[slot]));
  let indexKeyMatches: boolean | null = null;
  if (columns !== null) {
    const row = new CopyRow();
    let p = to;
    for (let k = 0; k < INDEX_COLUMNS; k++) {
      const length = b.readInt32BE(p);
      p += 4;
      row.columns[2 * k] = length < 0 ? -1 : p;
      row.columns[2 * k + 1] = length < 0 ? -1 : p + length;
      p += Math.max(0, length);
    }
    indexKeyMatches = new ColumnMatcher().matches(scanner, b, row) ? true : null;
    // The exact path's rendering of the same columns gives back the key.
    if (renderIndexKey(b, row.columns) !== indexKey) throw new Error(`the index key ${JSON.stringify(indexKey)} does not render back from its columns`);
  }
  return { seq: scanner.seq, chain: text(CHAIN), time: text(TIME), indexKeyMatches };
}

/** The binary COPY fields of INDEX_COLUMNS_SQL that INDEX_KEY_SQL renders as `key`; null when no columns render as it. */
function columnsOf(key: string): Buffer | null {
  const parts = key.split('\x1f');
  if (parts.length !== INDEX_COLUMNS) return null;
  const [time, type, code, kind, id, requestId, decision, devices] = parts as [string, string, string, string, string, string, string, string];
  const ms = Date.parse(time);
  if (Number.isNaN(ms) || ms < FIRST_MS || ms > LAST_MS || new Date(ms).toISOString() !== time) return null;
  const field = (value: Buffer | null) => {
    const length = Buffer.alloc(4);
    length.writeInt32BE(value === null ? -1 : value.length);
    return value === null ? length : Buffer.concat([length, value]);
  };
  const textOf = (value: string, nullMark = false) => field(nullMark && value === '\x1e' ? null : Buffer.from(value, 'utf8'));
  const micros = Buffer.alloc(8);
  micros.writeBigInt64BE(BigInt(ms - EPOCH_2000_MS) * 1000n);
  const ids = devices === '' ? [] : devices.split(',');
  const header = Buffer.alloc(ids.length === 0 ? 12 : 20);
  header.writeInt32BE(ids.length === 0 ? 0 : 1, 0);
  header.writeInt32BE(TEXT_OID, 8);
  if (ids.length > 0) {
    header.writeInt32BE(ids.length, 12);
    header.writeInt32BE(1, 16);
  }
  const array = Buffer.concat([header, ...ids.map((d) => field(Buffer.from(d, 'utf8')))]);
  return Buffer.concat([field(micros), textOf(type), textOf(code, true), textOf(kind), textOf(id), textOf(requestId, true), textOf(decision, true), field(array)]);
}

/** The index key of each row of a copy of verify's columns, as the exact path renders it here (null: left to the database), for tests. */
export function renderCopiedIndexKeys(copy: Uint8Array): Array<string | null> {
  const text = Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
  const reader = new CopyReader(copy);
  const row = new CopyRow();
  const keys: Array<string | null> = [];
  while (reader.next(row)) keys.push(renderIndexKey(text, row.columns));
  return keys;
}
