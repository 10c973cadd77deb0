/**
 * The byte scan verify runs over copied rows (verify-copy.ts) only ever vouches for a body the
 * exact check also accepts, with the same index key; everything else goes to the exact path.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/chronicle/index.js';
import { bodyAt, indexKeyOf, prepareEvent, type Envelope } from '../../src/chronicle/envelope.js';
import { scanBodyBytes } from '../../src/chronicle/verify-copy.js';
import { EVENT_TYPES } from '../../src/chronicle/types.js';
import { EDIT_CHARS, SAMPLE_DATA, edited } from './helpers.js';

/** The exact answer: canonical, and the index key read from the parsed body. */
function reference(text: string): { canonical: boolean; indexKey: string | null } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { canonical: false, indexKey: null };
  }
  let canonical = false;
  try {
    canonical = canonicalJson(parsed) === text;
  } catch {
    canonical = false;
  }
  return { canonical, indexKey: parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? indexKeyOf(parsed as Envelope) : null };
}

const envelope = (data: unknown, extra: Record<string, unknown> = {}) => ({
  actor: { id: 'agent-1', kind: 'agent' },
  chain: 'acme',
  code: null,
  data,
  request_id: 'req-1',
  seq: 7,
  time: '2025-01-02T03:04:05.678Z',
  type: 'CONNECTOR_INVOKED',
  v: 1,
  ...extra,
});

const scan = (text: string, indexKey: string) => scanBodyBytes(Buffer.from(text, 'utf8'), indexKey);

describe('the byte scan verify runs over copied rows', () => {
  it.each(EVENT_TYPES)('reads a stored %s body and its index key exactly like the parser does', (type) => {
    const body = bodyAt(prepareEvent({ tenant: 'acme', type, actor: { kind: 'agent', id: 'key:1' }, requestId: 'r-1', data: SAMPLE_DATA[type] }), 9, '2025-01-02T03:04:05.678Z');
    const key = indexKeyOf(JSON.parse(body) as Envelope);
    expect(scan(body, key)).toEqual({ seq: 9, chain: 'acme', time: '2025-01-02T03:04:05.678Z', indexKeyMatches: true });
    // One byte off anywhere in the index key is a mismatch.
    for (let i = 0; i < key.length; i++) {
      const wrong = key.slice(0, i) + (key[i] === 'x' ? 'y' : 'x') + key.slice(i + 1);
      expect(scan(body, wrong)?.indexKeyMatches, `index key changed at ${i}`).not.toBe(true);
    }
    expect(scan(body, `${key}x`)?.indexKeyMatches).not.toBe(true);
    expect(scan(body, key.slice(0, -1))?.indexKeyMatches).not.toBe(true);
  });

  it('leaves strings with escapes or non-ASCII in the fields it reads to the exact path, and checks them elsewhere', () => {
    const escapedActor = canonicalJson(envelope({}, { actor: { id: 'Zoë "Q"', kind: 'human' } }));
    expect(scan(escapedActor, reference(escapedActor).indexKey as string)).toBeNull();
    const elsewhere = canonicalJson(envelope({ note: 'a\u0001b"c\\d€😀\u2028', decision: 'allowed' }));
    expect(scan(elsewhere, reference(elsewhere).indexKey as string)?.indexKeyMatches).toBe(true);
    const upper = canonicalJson(envelope({ target: { device_id: 'ABC-1', azure_ad_device_id: 'abc-1' } }));
    expect(scan(upper, reference(upper).indexKey as string)?.indexKeyMatches).toBe(true);
  });

  it('vouches for canonical envelopes with any data, and agrees with the parser on the index key', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.option(fc.string(), { nil: null }), fc.string(), (data, requestId, wrongKey) => {
        const text = canonicalJson(envelope({ ...data, decision: 'denied', target: { device_id: 'ABC-1' } }, { request_id: requestId }));
        const key = reference(text).indexKey as string;
        const scanned = scan(text, key);
        if (/^[\x20-\x7e]*$/.test(text) && !text.includes('\\')) expect(scanned).not.toBeNull();
        if (scanned !== null) {
          expect(scanned.indexKeyMatches === true || scanned.indexKeyMatches === null).toBe(true);
          if (wrongKey !== key) expect(scan(text, wrongKey)?.indexKeyMatches).not.toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never vouches for text that is not canonical (random edits)', () => {
    const base = canonicalJson(envelope({ ...SAMPLE_DATA.CONNECTOR_INVOKED, note: 'a\u0001b"c\\d€😀', n: [1.5, -0.25, 1e21, 0, 0.000001, 1e-7, 123.456, null, true, false, {}] }));
    fc.assert(
      fc.property(edited(base, [...EDIT_CHARS, '\ud800']), (edit) => {
        // As stored: UTF-8 (a lone surrogate has no UTF-8 form; the database holds U+FFFD instead).
        const text = Buffer.from(edit, 'utf8').toString('utf8');
        const exact = reference(text);
        const scanned = scan(text, exact.indexKey ?? '');
        if (scanned !== null) {
          expect(exact.canonical, text).toBe(true);
          expect(scanned.indexKeyMatches).not.toBe(false);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('turns down bytes that are not well-formed UTF-8 inside a string', () => {
    const good = Buffer.from(canonicalJson(envelope({ a: 'PLACEHOLDER' })), 'utf8');
    const at = good.indexOf('PLACEHOLDER');
    const key = reference(good.toString('utf8')).indexKey as string;
    expect(scanBodyBytes(good, key)?.indexKeyMatches).toBe(true);
    const withBytes = (bytes: number[]) => Buffer.concat([good.subarray(0, at), Buffer.from(bytes), good.subarray(at + 'PLACEHOLDER'.length)]);
    expect(scanBodyBytes(withBytes([0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80]), key)).not.toBeNull(); // é € 😀
    for (const bad of [[0xc0, 0x80], [0xc3], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x80, 0x80, 0x80], [0x80], [0xff]]) {
      expect(scanBodyBytes(withBytes(bad), key), bad.join(' ')).toBeNull();
    }
  });

  it('accepts a number exactly when ECMAScript writes it that way', () => {
    const check = (token: string) => {
      const text = canonicalJson(envelope({ a: 'PLACEHOLDER' })).replace('"PLACEHOLDER"', token);
      const scanned = scan(text, reference(text).indexKey ?? '');
      const n = Number(token);
      const canonical = Number.isFinite(n) && String(n) === token;
      if (scanned !== null) expect(canonical, token).toBe(true);
      if (canonical) expect(scanned, token).not.toBeNull();
    };
    fc.assert(fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => check(String(x))), { numRuns: 3000 });
    const digits = fc.stringMatching(/^-?[0-9]{1,18}(\.[0-9]{1,18})?([eE][-+]?[0-9]{1,3})?$/);
    fc.assert(fc.property(digits, check), { numRuns: 5000 });
    for (const token of ['0', '-0', '0.0', '1.0', '1.50', '01', '0.1', '0.000001', '0.0000001', '1e-7', '123456789012345.6', '12345678901234.56', '0.1234567890123456', '9007199254740993', '999999999999999', '1e21', '100000000000000000000'])
      check(token);
  });
});

describe('the byte scan against the body before it (a template)', () => {
  const base = canonicalJson(envelope({ ...SAMPLE_DATA.CONNECTOR_INVOKED, note: 'plain', n: [1.5, -0.25, 0, 123.456, null, true, false, {}] }));
  const scanAfter = (text: string, indexKey: string, before = base) => scanBodyBytes(Buffer.from(text, 'utf8'), indexKey, Buffer.from(before, 'utf8'));

  it('reads a body of the same shape with other values exactly like a full scan', () => {
    fc.assert(
      fc.property(
        fc.record({
          seq: fc.integer({ min: 1, max: 2 ** 40 }),
          requestId: fc.option(fc.stringMatching(/^[ -!#-[\]-~]{0,20}$/), { nil: null }),
          decision: fc.constantFrom('allowed', 'denied', ''),
          device: fc.stringMatching(/^[A-Za-z0-9-]{0,12}$/),
          duration: fc.double({ min: 0, max: 1e6, noNaN: true }),
          time: fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2999-12-31T23:59:59Z'), noInvalidDate: true }),
        }),
        ({ seq, requestId, decision, device, duration, time }) => {
          const text = canonicalJson(
            envelope(
              { ...SAMPLE_DATA.CONNECTOR_INVOKED, decision, duration_ms: duration, note: 'plain', n: [1.5, -0.25, 0, 123.456, null, true, false, {}], target: { device_id: device } },
              { seq, request_id: requestId, time: time.toISOString() },
            ),
          );
          const key = reference(text).indexKey as string;
          expect(scanAfter(text, key)).toEqual(scanBodyBytes(Buffer.from(text, 'utf8'), key));
          expect(scanAfter(text, `${key}x`)?.indexKeyMatches).not.toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('reads each of a series of bodies of one shape like a full scan, whichever values change from one to the next', () => {
    // Few values per field, so that a field often keeps the value it had in the body before and
    // sometimes does not: the scan compares the values that did not change last time in one go.
    type BodyValues = { seq: number; requestId: string | null; decision: string; device: string; duration: number; time: string; note: string };
    const body: fc.Arbitrary<BodyValues> = fc.record({
      seq: fc.constantFrom(7, 8, 1234),
      requestId: fc.constantFrom('req-1', 'req-2', 'req-1000', null),
      decision: fc.constantFrom('allowed', 'denied'),
      device: fc.constantFrom('a', 'b', 'AB-1'),
      duration: fc.constantFrom(0.42, 1, 12.5),
      time: fc.constantFrom('2025-01-02T03:04:05.678Z', '2025-01-02T03:04:05.679Z'),
      note: fc.constantFrom('plain', 'plain!', 'a\\"b'),
    });
    const textOf = ({ seq, requestId, decision, device, duration, time, note }: BodyValues) =>
      canonicalJson(envelope({ ...SAMPLE_DATA.CONNECTOR_INVOKED, decision, duration_ms: duration, note, target: { device_id: device } }, { seq, request_id: requestId, time }));
    fc.assert(
      fc.property(fc.array(body, { minLength: 2, maxLength: 8 }), (bodies) => {
        const texts = bodies.map(textOf);
        const buffers = texts.map((t) => Buffer.from(t, 'utf8'));
        for (let k = 1; k < texts.length; k++) {
          const key = reference(texts[k] as string).indexKey as string;
          expect(scanBodyBytes(buffers[k] as Buffer, key, buffers.slice(0, k)), `body ${k}`).toEqual(scanBodyBytes(buffers[k] as Buffer, key));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('never vouches for text that is not canonical when it is read after a canonical body (random edits)', () => {
    fc.assert(
      fc.property(edited(base, EDIT_CHARS), (text) => {
        const exact = reference(text);
        const scanned = scanAfter(text, exact.indexKey ?? '');
        if (scanned !== null) {
          expect(exact.canonical, text).toBe(true);
          expect(scanned.indexKeyMatches).not.toBe(false);
        }
        // And the other way round: the edited text as the template, the original after it.
        const back = scanAfter(base, reference(base).indexKey as string, text);
        expect(back).toEqual(scanBodyBytes(Buffer.from(base, 'utf8'), reference(base).indexKey as string));
      }),
      { numRuns: 3000 },
    );
  });

  it('turns down a value of another kind, or a string that breaks out of its quotes, in a hole of the template', () => {
    const at = (from: string, to: string) => {
      const text = base.replace(from, to);
      expect(text).not.toBe(base);
      return scanAfter(text, reference(text).indexKey ?? '');
    };
    // A number where the template had a string, and a string where it had a number: still canonical, judged in full.
    expect(at('"request_id":"req-1"', '"request_id":12')).not.toBeNull();
    expect(at('"seq":7', '"seq":"7"')).not.toBeNull();
    // Not canonical: the scan never vouches.
    expect(at('"request_id":"req-1"', '"request_id":"req"-1"')).toBeNull();
    expect(at('"seq":7', '"seq":07')).toBeNull();
    expect(at('"seq":7', '"seq":7.0')).toBeNull();
    expect(at('"note":"plain"', '"note":"pl\u0001ain"')).toBeNull();
    // Escapes and non-ASCII in a hole: read with every check, as a full scan reads them.
    const same = (from: string, to: string) => {
      const text = base.replace(from, to);
      const key = reference(text).indexKey as string;
      expect(scanAfter(text, key), to).toEqual(scanBodyBytes(Buffer.from(text, 'utf8'), key));
    };
    same('"request_id":"req-1"', '"request_id":"a\\"b"');
    same('"request_id":"req-1"', '"request_id":"Zoë"');
    same('"note":"plain"', '"note":"a\\"b\\\\c€"');
    expect(at('"request_id":"req-1"', '"request_id":"a\\"b"')).toBeNull();
    expect(at('"note":"plain"', '"note":"a\\"b"')).not.toBeNull();
  });
});
