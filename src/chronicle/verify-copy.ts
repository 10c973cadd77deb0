/**
 * Verify's fast path over the bytes PostgreSQL sends: a range of rows as `COPY ... TO STDOUT
 * (FORMAT binary)` (seq, prev_hash, hash, body, index key), checked without making a string or an
 * object per row.
 *
 * The hash covers the stored body's UTF-8 bytes, so those bytes are hashed as they arrive; the
 * body is not re-canonicalized, only *checked* to be RFC 8785 canonical by one linear scan that
 * also finds the envelope fields the indexed columns copy (compared in place with the index key
 * the database rendered). The scan is only trusted to say "yes": a row it does not vouch for
 * (a failure, an escape or a non-ASCII character where it would have to decode, an unknown event
 * type) is judged by checkChunk in verify-core.ts from its decoded strings, the exact way, and the
 * walk goes on from there. So both paths give the same answer for every row.
 */
import { isAscii } from 'node:buffer';
import crypto from 'node:crypto';
import { EVENT_CATALOG } from './catalog.js';
import { checkChunk, checkpointRecorder, type CheckpointRef, type ChunkResult, type ChunkTask, type Failure, type PackedChunkTask, type PreviousRow } from './verify-core.js';
import type { EventType } from './types.js';

/** A range of rows as the bytes of a binary COPY (columns: seq, prev_hash, hash, body, index key). */
export interface CopyChunkTask {
  readonly tenant: string;
  readonly previous: PreviousRow;
  readonly headSeq: number;
  readonly copy: Uint8Array;
  readonly checkpoints: readonly CheckpointRef[];
}

/** The columns verify copies, in this order (the index key is rendered by the caller's SQL). */
export const COPY_COLUMNS = 5;

const SIGNATURE = [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]; // PGCOPY\n\377\r\n\0
const HEX = Buffer.from('0123456789abcdef', 'latin1');
const HASH_HEX_LENGTH = 64;

/** Offsets of one row's fields in the copy buffer (start, end; -1 for NULL). */
class CopyRow {
  seq = 0;
  prevHash = 0;
  prevHashEnd = 0;
  hash = 0;
  hashEnd = 0;
  body = 0;
  bodyEnd = 0;
  idx = -1;
  idxEnd = -1;
}

/**
 * Reads binary COPY rows one at a time. Throws on bytes that are not a COPY of verify's five
 * columns (the range is then read again the ordinary way, see verify.ts).
 */
class CopyReader {
  private offset: number;
  private readonly view: DataView;

  constructor(private readonly b: Uint8Array) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
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
    row.idx = this.text();
    row.idxEnd = row.idx < 0 ? -1 : this.offset;
    if (row.prevHash < 0 || row.hash < 0 || row.body < 0) throw new Error('a COPY row has a NULL column');
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
export function lastCopyRow(copy: Uint8Array): { seq: number; hash: string; body: string } | null {
  const reader = new CopyReader(copy);
  const row = new CopyRow();
  let last: { seq: number; hash: number; hashEnd: number; body: number; bodyEnd: number } | null = null;
  while (reader.next(row)) last = { seq: row.seq, hash: row.hash, hashEnd: row.hashEnd, body: row.body, bodyEnd: row.bodyEnd };
  if (last === null) return null;
  const text = Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
  return { seq: last.seq, hash: text.toString('utf8', last.hash, last.hashEnd), body: text.toString('utf8', last.body, last.bodyEnd) };
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

/** Most bodies are one of a few shapes: the scanner keeps the last few it read in full. */
const MAX_TEMPLATES = 4;
const MAX_HOLES = 256;

/** A body the full scan accepted (b[at, end)), and where its strings and numbers are. */
class Template {
  at = 0;
  end = 0;
  count = 0;
  readonly holeStart = new Int32Array(MAX_HOLES);
  readonly holeEnd = new Int32Array(MAX_HOLES);
  readonly holeSlot = new Int32Array(MAX_HOLES);
  readonly holeString = new Uint8Array(MAX_HOLES);
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
  seq = -1;
  private escaped = false;
  private nonAscii = false;
  private plain = false;
  /** Bodies scanned in full lately, most recent first, as templates for the next ones. */
  private readonly templates: Template[] = [];
  private spare: Template | null = null;
  /** The template the full scan is recording, if any. */
  private holes: Template | null = null;

  /**
   * The envelope of b[from, to) when the scan vouches for it; false means "judge it the exact way".
   * `plain`: the body is known to be ASCII without a backslash (one native check each), so a
   * string is scanned by one comparison per byte.
   */
  scan(b: Uint8Array, from: number, to: number, plain: boolean): boolean {
    if (this.b !== b) {
      this.templates.length = 0; // a template is a body in the buffer it came from
      this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    }
    this.b = b;
    this.plain = plain;
    this.start.fill(-1);
    this.seq = -1;
    if (plain) {
      const templates = this.templates;
      for (let t = 0; t < templates.length; t++) {
        const template = templates[t] as Template;
        if (this.matches(template, from, to)) {
          if (t > 0) templates.copyWithin(1, 0, t), (templates[0] = template);
          return true;
        }
      }
      this.start.fill(-1);
      this.seq = -1;
    }
    if (b[from] !== 0x7b) return false;
    this.holes = plain ? this.spareTemplate() : null;
    const ok = this.object(from, 1, ENVELOPE) === to;
    const recorded = this.holes;
    this.holes = null;
    if (ok && recorded !== null && recorded.count <= MAX_HOLES) {
      recorded.at = from;
      recorded.end = to;
      this.templates.unshift(recorded);
      if (this.templates.length > MAX_TEMPLATES) this.spare = this.templates.pop() as Template;
    } else if (recorded !== null) {
      this.spare = recorded;
    }
    return ok;
  }

  /**
   * Whether b[from, to) is `template`'s body with other scalars in its holes: the same bytes
   * between them (every brace, bracket, comma, colon and key), and in each hole a string or a
   * number that the full scan would accept where the template's had one. Such a body is canonical
   * because the template's is, and its fields are captured where the template's were.
   */
  private matches(template: Template, from: number, to: number): boolean {
    const b = this.b;
    const { holeStart, holeEnd, holeSlot, holeString } = template;
    let p = from;
    let t = template.at;
    for (let h = 0; h < template.count; h++) {
      const hs = holeStart[h] as number;
      const he = holeEnd[h] as number;
      const slot = holeSlot[h] as number;
      // Most values are the template's: the literal and the hole compared at once. A string that
      // is the same bytes up to its closing quote is the same token; a number is judged by the
      // scan when it is captured (seq), and otherwise the byte after it (a literal) ends it.
      const isString = holeString[h] === 1;
      if ((isString || slot < 0) && p + he - t <= to && this.same(p, t, he - t)) {
        if (slot >= 0) {
          this.start[slot] = p + hs - t + 1;
          this.end[slot] = p + he - t - 1;
          this.ascii[slot] = 1;
        }
        p += he - t;
        t = he;
        continue;
      }
      const literal = hs - t;
      if (p + literal > to || !this.same(p, t, literal)) return false;
      p += literal;
      if (isString) {
        if (b[p] !== 0x22) return false;
        const end = this.string(p);
        if (end === FAIL || end > to) return false;
        if (slot >= 0) {
          this.start[slot] = p + 1;
          this.end[slot] = end - 1;
          this.ascii[slot] = 1;
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

  /** Whether b[p, p+n) and b[t, t+n) are the same bytes, four at a time. */
  private same(p: number, t: number, n: number): boolean {
    const view = this.view;
    let k = 0;
    for (; k + 4 <= n; k += 4) if (view.getInt32(p + k, true) !== view.getInt32(t + k, true)) return false;
    const b = this.b;
    for (; k < n; k++) if (b[p + k] !== b[t + k]) return false;
    return true;
  }

  private spareTemplate(): Template {
    const template = this.spare ?? new Template();
    this.spare = null;
    template.count = 0;
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
    if (c === 0x6e) return b[i + 1] === 0x75 && b[i + 2] === 0x6c && b[i + 3] === 0x6c ? i + 4 : FAIL;
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

/**
 * Whether the index key the database rendered (b[at, to)) is the one indexKeyOf renders from the
 * scanned envelope; null when the scan cannot tell (the exact path decides).
 */
class IndexKeyMatcher {
  private b: Uint8Array = new Uint8Array(0);
  private s: ByteScanner | null = null;
  private p = 0;
  private to = 0;

  matches(s: ByteScanner, b: Uint8Array, at: number, to: number): boolean | null {
    const { start, end } = s;
    let type: TypeEntry | undefined;
    const typeAt = start[TYPE] as number;
    const typeLength = (end[TYPE] as number) - typeAt;
    for (let t = 0; t < TYPES.length && type === undefined; t++) {
      const name = (TYPES[t] as TypeEntry).name;
      if (name.length !== typeLength) continue;
      let k = 0;
      while (k < typeLength && name[k] === b[typeAt + k]) k++;
      if (k === typeLength) type = TYPES[t];
    }
    if (type === undefined || type.deviceSlots === null) return null;
    this.b = b;
    this.s = s;
    this.p = at;
    this.to = to;
    if (!(this.range(TIME, -1) && this.separator() && this.range(TYPE, -1) && this.separator() && this.range(CODE, 0x1e) && this.separator())) return false;
    if (!(this.range(KIND, -1) && this.separator() && this.range(ID, -1) && this.separator() && this.range(REQUEST_ID, 0x1e) && this.separator())) return false;
    if (!((type.decisionSlot < 0 ? b[this.p++] === 0x1e : this.range(type.decisionSlot, 0x1e)) && this.separator())) return false;
    // Device ids: non-empty strings, lowercased, first occurrence only, joined with commas.
    let written = 0;
    const slots = type.deviceSlots;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as number;
      const from = start[slot] as number;
      const length = (end[slot] as number) - from;
      if (from < 0 || length === 0) continue;
      if (s.ascii[slot] !== 1) return null;
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
      if (written++ > 0 && b[this.p++] !== 0x2c) return false;
      const p = this.p;
      if (p + length > to) return false;
      for (let k = 0; k < length; k++) if (b[p + k] !== lower(b[from + k] as number)) return false;
      this.p = p + length;
    }
    return this.p === to;
  }

  /** The captured string of a slot next, or the byte `missing` (-1: nothing) when it is not a string. */
  private range(slot: number, missing: number): boolean {
    const b = this.b;
    const from = (this.s as ByteScanner).start[slot] as number;
    if (from < 0) return missing < 0 || b[this.p++] === missing;
    const length = ((this.s as ByteScanner).end[slot] as number) - from;
    const p = this.p;
    if (p + length > this.to) return false;
    for (let k = 0; k < length; k++) if (b[p + k] !== b[from + k]) return false;
    this.p = p + length;
    return true;
  }

  private separator(): boolean {
    return this.b[this.p++] === 0x1f;
  }
}

/** Whether b[a, a+n) and c[x, x+n) are the same bytes. */
function same(b: Uint8Array, a: number, c: Uint8Array, x: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (b[a + k] !== c[x + k]) return false;
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
  digestOf = -1;
}

const hexValue = (c: number) => (c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1);


export function checkCopyChunk(task: CopyChunkTask): ChunkResult {
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
  const matcher = new IndexKeyMatcher();
  const chain = new ChainBytes();
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
  let prevBody: { at: number; end: number } | string = task.previous.body;
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
        body: typeof prevBody === 'string' ? prevBody : text.toString('utf8', prevBody.at, prevBody.end),
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
        idx: [row.idx < 0 ? null : text.toString('utf8', row.idx, row.idxEnd)],
        checkpoints: checkpointsAt.get(seq) ?? [],
      });
      checkpointChecks.push(...exact.checkpointChecks);
      hashAtHead ??= exact.hashAtHead;
      if (exact.failure !== null) return { passed, lastPassedSeq: prevSeq, failure: exact.failure, checkpointChecks, hashAtHead };
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
    prevBody = { at: row.body, end: row.bodyEnd };
    passed++;
  }
  return { passed, lastPassedSeq: prevSeq, failure: null, checkpointChecks, hashAtHead };
}

/** Every check of one row on its bytes; false when it does not vouch for the row. */
function fastRow(
  b: Buffer,
  row: CopyRow,
  scanner: ByteScanner,
  matcher: IndexKeyMatcher,
  chain: ChainBytes,
  tenant: Uint8Array,
  prevHashBuf: Uint8Array,
  prevHashAt: number,
  prevHashLength: number,
  prevTime: Uint8Array | null,
  prevTimeAt: number,
  prevTimeEnd: number,
): boolean {
  if (prevTime === null || row.idx < 0) return false;
  // prev_hash is the previous row's stored hash, and both are 64 lowercase hex digits.
  if (row.prevHashEnd - row.prevHash !== HASH_HEX_LENGTH || row.hashEnd - row.hash !== HASH_HEX_LENGTH || prevHashLength !== HASH_HEX_LENGTH) return false;
  if (!same(b, row.prevHash, prevHashBuf, prevHashAt, HASH_HEX_LENGTH)) return false;
  // hash = SHA-256(prev_hash || SHA-256(body)), over the body's bytes as stored. Digests come back
  // as latin1 ('binary') strings: node's one-shot hash answers those several times faster than a Buffer.
  const scratch = chain.scratch;
  if (chain.digestOf !== row.seq - 1) {
    for (let k = 0; k < 32; k++) {
      const hi = hexValue(b[row.prevHash + 2 * k] as number);
      const lo = hexValue(b[row.prevHash + 2 * k + 1] as number);
      if (hi < 0 || lo < 0) return false;
      scratch[k] = hi * 16 + lo;
    }
  }
  const body = b.subarray(row.body, row.bodyEnd);
  scratch.write(crypto.hash('sha256', body, 'binary'), 32, 'latin1');
  const outer = crypto.hash('sha256', scratch, 'binary');
  for (let k = 0; k < 32; k++) {
    const d = outer.charCodeAt(k);
    if (b[row.hash + 2 * k] !== HEX[d >> 4] || b[row.hash + 2 * k + 1] !== HEX[d & 15]) {
      chain.digestOf = -1;
      return false;
    }
  }
  // This row's stored hash, as bytes, for the next row: it is the digest just matched.
  scratch.write(outer, 0, 'latin1');
  chain.digestOf = row.seq;
  // Canonical, at its place in this chain, time not going back, the indexed columns agreeing.
  if (!scanner.scan(b, row.body, row.bodyEnd, isAscii(body) && body.indexOf(0x5c) < 0)) return false;
  const { start, end } = scanner;
  if (scanner.seq !== row.seq) return false;
  const chainAt = start[CHAIN] as number;
  if (chainAt < 0 || (end[CHAIN] as number) - chainAt !== tenant.length || !same(b, chainAt, tenant, 0, tenant.length)) return false;
  const time = start[TIME] as number;
  if (time < 0 || (start[TYPE] as number) < 0 || scanner.ascii[TIME] !== 1) return false;
  if (!notBefore(b, time, end[TIME] as number, prevTime, prevTimeAt, prevTimeEnd)) return false;
  return matcher.matches(scanner, b, row.idx, row.idxEnd) === true;
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
 * path), and whether `indexKey` is the index key it reads from the body. With `after`, the scan
 * reads that body first, in the same buffer, so `body` is judged against it as a template.
 */
export function scanBodyBytes(body: Buffer, indexKey: string, after?: Buffer): { seq: number; chain: string; time: string; indexKeyMatches: boolean | null } | null {
  const idx = Buffer.from(indexKey, 'utf8');
  const before = after ?? Buffer.alloc(0);
  const b = Buffer.concat([before, body, idx]);
  const from = before.length;
  const to = from + body.length;
  const scanner = new ByteScanner();
  if (after !== undefined) scanner.scan(b, 0, from, isAscii(after) && after.indexOf(0x5c) < 0);
  if (!scanner.scan(b, from, to, isAscii(body) && body.indexOf(0x5c) < 0)) return null;
  const text = (slot: number) => ((scanner.start[slot] as number) < 0 ? '' : b.toString('utf8', scanner.start[slot], scanner.end[slot]));
  return { seq: scanner.seq, chain: text(CHAIN), time: text(TIME), indexKeyMatches: new IndexKeyMatcher().matches(scanner, b, to, b.length) };
}
