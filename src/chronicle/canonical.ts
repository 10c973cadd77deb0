/**
 * The integrity primitives: RFC 8785 canonical JSON and the chain hash.
 *
 *   body = RFC 8785 canonical JSON of the envelope (stored as text, hashed as stored, UTF-8)
 *   hash = SHA-256( prev_hash (32 bytes) || SHA-256(body) (32 bytes) ), written as lowercase hex
 *   prev_hash of seq 1 = GENESIS_HASH (32 zero bytes)
 *
 * These three lines are the whole recipe an outside verifier needs (see the README).
 */
import crypto from 'node:crypto';
import canonicalize from 'canonicalize';

/** prev_hash of the first event of every chain: 32 zero bytes, as 64 hex digits. */
export const GENESIS_HASH = '0'.repeat(64);

/** A value the fast writer leaves to the canonicalize package (it decides, and words any refusal). */
const NOT_PLAIN: unique symbol = Symbol('not plain JSON');
const MAX_FAST_DEPTH = 256;

/**
 * RFC 8785 for plain JSON data (null, booleans, finite numbers, well-formed strings, arrays, plain
 * objects), the shape every event's data has after its schema: keys sorted by UTF-16 code units,
 * numbers and strings as ECMAScript's JSON.stringify writes them, which RFC 8785 adopts. Throws
 * NOT_PLAIN for anything else, so the exact package decides those.
 */
function writePlain(value: unknown, depth: number): string {
  switch (typeof value) {
    case 'string':
      return writeString(value);
    case 'number':
      if (!Number.isFinite(value)) throw NOT_PLAIN;
      // What JSON.stringify writes for a finite number (-0 as 0), without its per-call set-up.
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth > MAX_FAST_DEPTH) throw NOT_PLAIN; // deep or cyclic: the package detects cycles
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) throw NOT_PLAIN;
          out += (i === 0 ? '' : ',') + writePlain(item, depth + 1);
        }
        return `${out}]`;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if ((proto !== Object.prototype && proto !== null) || typeof (value as { toJSON?: unknown }).toJSON === 'function') throw NOT_PLAIN;
      const keys = sortedKeys(value);
      let out = '{';
      let first = true;
      for (const key of keys) {
        const item = (value as Record<string, unknown>)[key];
        if (item === undefined) continue;
        out += `${first ? '' : ','}${writeString(key)}:${writePlain(item, depth + 1)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      throw NOT_PLAIN;
  }
}

/** Characters JSON.stringify escapes in a string (quote, backslash, controls), and lone-surrogate halves. */
const NEEDS_ESCAPING = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * A string as JSON.stringify (so RFC 8785) writes it. Most strings need no escape, and are only
 * quoted: that skips JSON.stringify's per-call set-up, which was the largest part of writing an
 * event. Throws NOT_PLAIN for lone surrogates.
 */
function writeString(value: string): string {
  if (!NEEDS_ESCAPING.test(value)) return `"${value}"`;
  if (!value.isWellFormed()) throw NOT_PLAIN;
  return JSON.stringify(value);
}

/** An object's keys in UTF-16 code-unit order; objects built with their keys in order skip the sort. */
function sortedKeys(value: object): string[] {
  const keys = Object.keys(value);
  for (let i = 1; i < keys.length; i++) if (!((keys[i - 1] as string) < (keys[i] as string))) return keys.sort();
  return keys;
}

/**
 * RFC 8785 (JCS) canonical form. Throws a TypeError for what JSON cannot carry exactly: NaN,
 * Infinity, lone surrogates, cycles, and values (functions, symbols, undefined) at the top level.
 * Plain JSON data takes a direct writer (the append path's cost); anything else, the canonicalize
 * package, whose output the writer matches (test/chronicle/canonical.test.ts compares them).
 */
export function canonicalJson(value: unknown): string {
  try {
    return writePlain(value, 0);
  } catch (err) {
    if (err !== NOT_PLAIN) throw err;
  }
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (err) {
    throw new TypeError(`cannot be written as canonical JSON: ${(err as Error).message}`);
  }
  if (text === undefined) throw new TypeError('cannot be written as canonical JSON: not a JSON value');
  return text;
}

// crypto.hash (Node >= 20.12) skips the Hash object: it is most of the cost for short inputs.
const oneShot = (crypto as { hash?: (algorithm: string, data: string | Buffer, encoding: 'buffer' | 'hex') => Buffer | string }).hash;

export function sha256(data: string | Buffer): Buffer {
  return oneShot !== undefined ? (oneShot('sha256', data, 'buffer') as Buffer) : crypto.createHash('sha256').update(data).digest();
}

function sha256Hex(data: Buffer): string {
  return oneShot !== undefined ? (oneShot('sha256', data, 'hex') as string) : crypto.createHash('sha256').update(data).digest('hex');
}

/**
 * Chain hashing with one reusable 64-byte scratch buffer; verify calls this for every event, so
 * it avoids allocating. Not shared across async boundaries: each caller makes its own.
 */
export function createChainHasher(): (prevHashHex: string, body: string) => string {
  const scratch = Buffer.alloc(64);
  return (prevHashHex, body) => {
    if (scratch.write(prevHashHex, 0, 32, 'hex') !== 32 || prevHashHex.length !== 64) {
      // A prev_hash that is not 64 hex digits can never match; hash it as written so the
      // result differs from any stored hash instead of silently reading a short prefix.
      return sha256Hex(Buffer.concat([Buffer.from(prevHashHex, 'utf8'), sha256(body)]));
    }
    sha256(body).copy(scratch, 32);
    return sha256Hex(scratch);
  };
}

/** hash = SHA-256(prev_hash || SHA-256(body)). */
export function chainHash(prevHashHex: string, body: string): string {
  return createChainHasher()(prevHashHex, body);
}

function keysSorted(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (Array.isArray(value)) {
    for (const item of value) if (!keysSorted(item)) return false;
    return true;
  }
  let previous: string | undefined;
  for (const key in value) {
    if (previous !== undefined && !(previous < key)) return false;
    previous = key;
    if (!keysSorted((value as Record<string, unknown>)[key])) return false;
  }
  return true;
}

/**
 * Whether `text` is exactly the canonical form of `parsed` (= JSON.parse(text)). The fast path
 * (JSON.stringify round trip plus sorted keys) is exact for every object without integer-like
 * keys, which no event schema allows; anything it rejects gets the full RFC 8785 check.
 */
export function isCanonicalText(text: string, parsed: unknown): boolean {
  if (JSON.stringify(parsed) === text && keysSorted(parsed)) return true;
  try {
    return canonicalJson(parsed) === text;
  } catch {
    return false;
  }
}
