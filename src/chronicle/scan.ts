/**
 * One pass over a stored body that answers what verify asks of almost every row: is this text
 * RFC 8785 canonical JSON of an object, and what are the envelope fields the indexed columns copy?
 *
 * It replaces JSON.parse + JSON.stringify + a key-order walk (most of verify's cost) with a single
 * scan that allocates only the few strings it captures. It is only ever trusted to say "yes": when
 * it says no, verify re-checks the row the slow, exact way (JSON.parse and the canonicalize
 * package) before reporting anything.
 */
import { EVENT_CATALOG } from './catalog.js';
import type { EventType } from './types.js';

export interface ScannedEnvelope {
  readonly seq: number;
  readonly chain: string;
  readonly time: string;
  /** The indexed columns as verify compares them (same rendering as indexKeyOf). */
  readonly indexKey: string;
}

const MAX_DEPTH = 32;
const FAIL = -1;

type Where = 0 | 1 | 2 | 3 | 4; // nowhere to capture, envelope, actor, data, data.target

/** Envelope fields the index key needs. */
interface Captured {
  seq: unknown;
  chain: unknown;
  time: unknown;
  type: unknown;
  code: unknown;
  requestId: unknown;
  kind: unknown;
  id: unknown;
  data: Record<string, unknown>;
  target: Record<string, unknown>;
}

/**
 * Scans a canonical string whose opening quote is at `i`; returns the index after the closing
 * quote, or FAIL. `escaped` reports whether it held an escape (then its text is not its value).
 */
function scanString(s: string, i: number, flags: { escaped: boolean }): number {
  flags.escaped = false;
  for (let j = i + 1; ; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x22) return j + 1;
    if (c >= 0x20 && c !== 0x5c && c < 0xd800) continue;
    if (c > 0xdfff) continue;
    if (c !== c || c < 0x20) return FAIL; // end of text, or a raw control character
    if (c === 0x5c) {
      flags.escaped = true;
      const e = s.charCodeAt(j + 1);
      // RFC 8785: only \" \\ \b \f \n \r \t, and \u00xx (lowercase hex) for the other controls.
      if (e === 0x22 || e === 0x5c || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        j++;
        continue;
      }
      if (e !== 0x75 || s.charCodeAt(j + 2) !== 0x30 || s.charCodeAt(j + 3) !== 0x30) return FAIL;
      const hi = s.charCodeAt(j + 4);
      const lo = s.charCodeAt(j + 5);
      if (hi !== 0x30 && hi !== 0x31) return FAIL;
      if (!((lo >= 0x30 && lo <= 0x39) || (lo >= 0x61 && lo <= 0x66))) return FAIL;
      const code = (hi - 0x30) * 16 + (lo <= 0x39 ? lo - 0x30 : lo - 0x57);
      if (code === 0x08 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d) return FAIL;
      j += 5;
      continue;
    }
    // A surrogate: canonical text holds only whole pairs (a lone one has no UTF-8 form).
    const next = s.charCodeAt(j + 1);
    if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return FAIL;
    j++;
  }
}

/** The value of a string scanned from `start` to `end` (quotes included). */
function stringValue(s: string, start: number, end: number, escaped: boolean): string {
  const raw = s.slice(start + 1, end - 1);
  return escaped ? (JSON.parse(`"${raw}"`) as string) : raw;
}

/** Whether key a (text a0..a1) sorts strictly before key b; exact for unescaped keys. */
function keyBefore(s: string, a0: number, a1: number, b0: number, b1: number): boolean {
  const n = Math.min(a1 - a0, b1 - b0);
  for (let k = 0; k < n; k++) {
    const x = s.charCodeAt(a0 + k);
    const y = s.charCodeAt(b0 + k);
    if (x !== y) return x < y;
  }
  return a1 - a0 < b1 - b0;
}

function keyIs(s: string, start: number, end: number, name: string): boolean {
  return end - start === name.length + 2 && s.startsWith(name, start + 1);
}

type Fields = ReadonlyArray<readonly [key: string, field: string]>;

/** The field the key at start..end stands for, or '' (compared in place: no string is made). */
function pick(s: string, start: number, end: number, fields: Fields): string {
  const length = end - start - 2;
  for (const [key, field] of fields) if (key.length === length && s.startsWith(key, start + 1)) return field;
  return '';
}

// Envelope keys -> captured fields; data and data.target keys the catalog reads decisions and
// device ids from (derived from it, so a new event type's fields are picked up).
const ENVELOPE_FIELDS: Fields = [
  ['seq', 'seq'],
  ['chain', 'chain'],
  ['time', 'time'],
  ['type', 'type'],
  ['code', 'code'],
  ['request_id', 'requestId'],
];
const ACTOR_FIELDS: Fields = [
  ['kind', 'kind'],
  ['id', 'id'],
];
const DATA_FIELDS: Fields = [
  ...new Set(
    Object.values(EVENT_CATALOG).flatMap((e) => [
      ...(e.decisionField !== undefined ? [e.decisionField] : []),
      ...(e.deviceIdFields ?? []).filter((p) => p.length === 1).map((p) => p[0] as string),
    ]),
  ),
].map((k) => [k, k] as const);
const TARGET_FIELDS: Fields = [
  ...new Set(Object.values(EVENT_CATALOG).flatMap((e) => (e.deviceIdFields ?? []).filter((p) => p.length === 2 && p[0] === 'target').map((p) => p[1] as string))),
].map((k) => [k, k] as const);

class Scanner {
  private readonly flags = { escaped: false };
  constructor(
    private readonly s: string,
    private readonly captured: Captured,
  ) {}

  /** Scans the value at i; returns the index after it, or FAIL. Stores it in `into[key]` when asked. */
  value(i: number, depth: number, where: Where, into: Record<string, unknown> | null, key: string): number {
    const s = this.s;
    const c = s.charCodeAt(i);
    if (c === 0x22) {
      const end = scanString(s, i, this.flags);
      if (end !== FAIL && into !== null) into[key] = stringValue(s, i, end, this.flags.escaped);
      return end;
    }
    if (c === 0x7b) {
      if (into !== null) into[key] = NOT_SCALAR;
      return this.object(i, depth + 1, where);
    }
    if (c === 0x5b) {
      if (into !== null) into[key] = NOT_SCALAR;
      if (depth >= MAX_DEPTH) return FAIL;
      let j = i + 1;
      if (s.charCodeAt(j) === 0x5d) return j + 1;
      for (;;) {
        j = this.value(j, depth + 1, 0, null, '');
        if (j === FAIL) return FAIL;
        const d = s.charCodeAt(j);
        if (d === 0x5d) return j + 1;
        if (d !== 0x2c) return FAIL;
        j++;
      }
    }
    if (c === 0x74) {
      if (!s.startsWith('true', i)) return FAIL;
      if (into !== null) into[key] = true;
      return i + 4;
    }
    if (c === 0x66) {
      if (!s.startsWith('false', i)) return FAIL;
      if (into !== null) into[key] = false;
      return i + 5;
    }
    if (c === 0x6e) {
      if (!s.startsWith('null', i)) return FAIL;
      if (into !== null) into[key] = null;
      return i + 4;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      for (;;) {
        const d = s.charCodeAt(j);
        if ((d >= 0x30 && d <= 0x39) || d === 0x2d || d === 0x2b || d === 0x2e || d === 0x65 || d === 0x45) j++;
        else break;
      }
      const token = s.slice(i, j);
      const n = Number(token);
      // ECMAScript's number-to-string is RFC 8785's: a canonical token is its own image.
      if (!Number.isFinite(n) || String(n) !== token) return FAIL;
      if (into !== null) into[key] = n;
      return j;
    }
    return FAIL;
  }

  /** An object whose keys strictly increase in UTF-16 order; the brace is at i. */
  object(i: number, depth: number, where: Where): number {
    if (depth > MAX_DEPTH) return FAIL;
    const s = this.s;
    const captured = this.captured;
    let j = i + 1;
    if (s.charCodeAt(j) === 0x7d) return j + 1;
    let prevStart = -1;
    let prevEnd = -1;
    let prevKey: string | null = null; // only kept when a key had escapes
    for (;;) {
      if (s.charCodeAt(j) !== 0x22) return FAIL;
      const keyEnd = scanString(s, j, this.flags);
      if (keyEnd === FAIL) return FAIL;
      if (this.flags.escaped || prevKey !== null) {
        const key = stringValue(s, j, keyEnd, this.flags.escaped);
        const before = prevKey ?? (prevStart >= 0 ? stringValue(s, prevStart, prevEnd, false) : null);
        if (before !== null && !(before < key)) return FAIL;
        prevKey = key;
      } else if (prevStart >= 0 && !keyBefore(s, prevStart + 1, prevEnd - 1, j + 1, keyEnd - 1)) {
        return FAIL;
      }
      prevStart = j;
      prevEnd = keyEnd;
      if (s.charCodeAt(keyEnd) !== 0x3a) return FAIL;

      let childWhere: Where = 0;
      let into: Record<string, unknown> | null = null;
      let name = '';
      if (where === 1) {
        if (keyIs(s, j, keyEnd, 'data')) childWhere = 3;
        else if (keyIs(s, j, keyEnd, 'actor')) childWhere = 2;
        else {
          name = pick(s, j, keyEnd, ENVELOPE_FIELDS);
          if (name !== '') into = captured as unknown as Record<string, unknown>;
        }
      } else if (where === 2) {
        name = pick(s, j, keyEnd, ACTOR_FIELDS);
        if (name !== '') into = captured as unknown as Record<string, unknown>;
      } else if (where === 3) {
        if (keyIs(s, j, keyEnd, 'target')) childWhere = 4;
        else {
          name = pick(s, j, keyEnd, DATA_FIELDS);
          if (name !== '') into = captured.data;
        }
      } else if (where === 4) {
        name = pick(s, j, keyEnd, TARGET_FIELDS);
        if (name !== '') into = captured.target;
      }
      j = this.value(keyEnd + 1, depth, childWhere, into, name);
      if (j === FAIL) return FAIL;
      const d = s.charCodeAt(j);
      if (d === 0x7d) return j + 1;
      if (d !== 0x2c) return FAIL;
      j++;
    }
  }
}

function str(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** What an object or array value is captured as: not a scalar the index key could hold. */
const NOT_SCALAR = Object.freeze({});

const stringOrAbsent = (value: unknown): boolean => value === undefined || value === null || typeof value === 'string';

/**
 * The envelope fields of `body` when it is canonical JSON of an object with a numeric seq and
 * string chain, time and type; null otherwise (which means "check it the exact way", not "bad").
 */
export function scanCanonicalEnvelope(body: string): ScannedEnvelope | null {
  if (body.charCodeAt(0) !== 0x7b) return null;
  // Plain objects are safe here: only the field names pick() knows are ever stored in them.
  const captured: Captured = {
    seq: undefined,
    chain: undefined,
    time: undefined,
    type: undefined,
    code: undefined,
    requestId: undefined,
    kind: undefined,
    id: undefined,
    data: {},
    target: {},
  };
  if (new Scanner(body, captured).object(0, 1, 1) !== body.length) return null;
  const { seq, chain, time, type } = captured;
  if (typeof seq !== 'number' || typeof chain !== 'string' || typeof time !== 'string' || typeof type !== 'string') return null;
  // indexKeyOf writes any other value of these as text ("5", "true", "[object Object]"): the exact path decides.
  if (!stringOrAbsent(captured.code) || !stringOrAbsent(captured.requestId) || !stringOrAbsent(captured.kind) || !stringOrAbsent(captured.id)) return null;
  const entry = Object.prototype.hasOwnProperty.call(EVENT_CATALOG, type) ? EVENT_CATALOG[type as EventType] : undefined;
  let decision: string | null = null;
  const deviceIds: string[] = [];
  if (entry !== undefined) {
    if (entry.decisionField !== undefined) decision = str(captured.data[entry.decisionField]);
    for (const fieldPath of entry.deviceIdFields ?? []) {
      const value = fieldPath.length === 1 ? captured.data[fieldPath[0] as string] : fieldPath[0] === 'target' ? captured.target[fieldPath[1] as string] : undefined;
      if (typeof value === 'string' && value !== '') {
        const id = value.toLowerCase();
        if (!deviceIds.includes(id)) deviceIds.push(id);
      }
    }
  }
  const indexKey = [
    time,
    type,
    str(captured.code) ?? '\x1e',
    str(captured.kind) ?? '',
    str(captured.id) ?? '',
    str(captured.requestId) ?? '\x1e',
    decision ?? '\x1e',
    deviceIds.join(','),
  ].join('\x1f');
  return { seq, chain, time, indexKey };
}
