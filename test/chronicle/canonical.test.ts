import crypto from 'node:crypto';
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GENESIS_HASH, canonicalJson, chainHash } from '../../src/chronicle/index.js';
import { isCanonicalText } from '../../src/chronicle/canonical.js';
import { bodyAt, indexKeyOf, prepareEvent, type Envelope } from '../../src/chronicle/envelope.js';
import { scanCanonicalEnvelope } from '../../src/chronicle/scan.js';
import { EDIT_CHARS, SAMPLE_DATA, edited } from './helpers.js';
import { EVENT_TYPES } from '../../src/chronicle/types.js';

describe('RFC 8785 canonical JSON', () => {
  // RFC 8785 Appendix B: IEEE 754 bit patterns and their required serialisation.
  const numberVectors: ReadonlyArray<readonly [string, string]> = [
    ['0000000000000000', '0'],
    ['8000000000000000', '0'], // minus zero
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];

  it.each(numberVectors)('serialises the double %s as %s (Appendix B)', (bits, expected) => {
    expect(canonicalJson(Buffer.from(bits, 'hex').readDoubleBE(0))).toBe(expected);
  });

  it('refuses NaN and Infinity (Appendix B: 7fffffffffffffff, 7ff0000000000000)', () => {
    expect(() => canonicalJson(Buffer.from('7fffffffffffffff', 'hex').readDoubleBE(0))).toThrow(TypeError);
    expect(() => canonicalJson(Buffer.from('7ff0000000000000', 'hex').readDoubleBE(0))).toThrow(TypeError);
    expect(() => canonicalJson({ data: { n: Number.POSITIVE_INFINITY } })).toThrow(/canonical JSON/);
  });

  it('produces the sample of section 3.2.2 byte for byte', () => {
    // The input object of RFC 8785 section 3.2.2, written as the JSON text the RFC shows.
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
        ' "literals": [null, true, false]}',
    ) as unknown;
    const expected = '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}';
    expect(canonicalJson(input)).toBe(expected);
    // Section 3.2.4: the UTF-8 bytes of that result, as the RFC lists them.
    const rfcBytes = `
      7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
      75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
      5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
      65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
      5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
      30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d`.replace(/\s+/g, '');
    expect(Buffer.from(canonicalJson(input), 'utf8').toString('hex')).toBe(rfcBytes);
  });

  it('sorts properties by UTF-16 code units (section 3.2.3)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('refuses lone surrogates, which have no UTF-8 form', () => {
    expect(() => canonicalJson({ id: 'a\ud800b' })).toThrow(TypeError);
  });

  it('writes exactly what the canonicalize package writes, and refuses exactly what it refuses', () => {
    const reference = (value: unknown): string | undefined | 'refused' => {
      try {
        return canonicalize(value);
      } catch {
        return 'refused';
      }
    };
    const ours = (value: unknown): string | undefined | 'refused' => {
      try {
        return canonicalJson(value);
      } catch (err) {
        expect(err).toBeInstanceOf(TypeError);
        return reference(value) === undefined ? undefined : 'refused';
      }
    };
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.anything({ withNullPrototype: true, withObjectString: true, withBoxedValues: true, withSparseArray: true })), (value) => {
        expect(ours(value)).toEqual(reference(value));
      }),
      { numRuns: 1000 },
    );
    // Any UTF-16 in keys and strings (controls, quotes, backslashes, surrogate pairs, lone halves).
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: 'binary' }), fc.string({ unit: 'binary' }), (value, text) => {
        expect(ours(value)).toEqual(reference(value));
        expect(ours({ [text]: text, z: [text] })).toEqual(reference({ [text]: text, z: [text] }));
      }),
      { numRuns: 1000 },
    );
    // Keys in UTF-16 order (not code point order, not JS property order), strings as JSON escapes them.
    expect(canonicalJson({ '\u{1f600}': 1, '\uffff': 2, '10': 3, '9': 4, b: [1e21, -0, 0.1, 'a\u2028"\\'] })).toBe(
      canonicalize({ '\u{1f600}': 1, '\uffff': 2, '10': 3, '9': 4, b: [1e21, -0, 0.1, 'a\u2028"\\'] }),
    );
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic['self'] = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/canonical JSON/);
  });

  it('recognises its own output as canonical and anything else as not', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        expect(isCanonicalText(text, JSON.parse(text))).toBe(true);
      }),
      { numRuns: 300 },
    );
    for (const text of ['{"b":1,"a":2}', '{"a":1.0}', '{"a": 1}', '{"a":"\\u0041"}', '{"a":1,"a":1}']) {
      expect(isCanonicalText(text, JSON.parse(text))).toBe(false);
    }
    // Integer-like keys take the slow path and are judged by RFC 8785, not by JS property order.
    const sorted = '{"10":1,"9":2}';
    expect(isCanonicalText(sorted, JSON.parse(sorted))).toBe(true);
  });
});

describe('chain hash', () => {
  it('is SHA-256(prev_hash bytes || SHA-256(body)) with 32 zero bytes before seq 1', () => {
    expect(GENESIS_HASH).toBe('0'.repeat(64));
    const body = '{"a":1}';
    const expected = crypto
      .createHash('sha256')
      .update(Buffer.alloc(32))
      .update(crypto.createHash('sha256').update(body, 'utf8').digest())
      .digest('hex');
    expect(chainHash(GENESIS_HASH, body)).toBe(expected);
    const next = chainHash(expected, '{"b":"€"}');
    expect(next).toBe(
      crypto
        .createHash('sha256')
        .update(Buffer.from(expected, 'hex'))
        .update(crypto.createHash('sha256').update(Buffer.from('{"b":"€"}', 'utf8')).digest())
        .digest('hex'),
    );
  });

  it('never matches when prev_hash is not 64 hex digits', () => {
    const body = '{"a":1}';
    expect(chainHash('zz'.repeat(32), body)).not.toBe(chainHash(GENESIS_HASH, body));
    expect(chainHash('00', body)).not.toBe(chainHash(GENESIS_HASH, body));
  });
});

describe('stored body', () => {
  it.each(EVENT_TYPES)('of %s is exactly the canonical JSON of its envelope', (type) => {
    const prepared = prepareEvent({
      tenant: 'acme',
      type,
      actor: { kind: 'human', id: 'Zoë Ünïcode ✓' },
      requestId: 'req-1',
      data: SAMPLE_DATA[type],
    });
    const body = bodyAt(prepared, 42, '2025-01-02T03:04:05.678Z');
    const parsed = JSON.parse(body) as Record<string, unknown>;
    expect(canonicalJson(parsed)).toBe(body);
    expect(parsed).toEqual({
      v: 1,
      seq: 42,
      chain: 'acme',
      time: '2025-01-02T03:04:05.678Z',
      type,
      code: type === 'DEVICE_COMPLIANCE_CHECKED' ? '0x2801' : null,
      actor: { kind: 'human', id: 'Zoë Ünïcode ✓' },
      request_id: 'req-1',
      data: SAMPLE_DATA[type],
    });
  });
});

describe('the one-pass scan verify uses for intact rows', () => {
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
    return { canonical, indexKey: parsed !== null && typeof parsed === 'object' ? indexKeyOf(parsed as Envelope) : null };
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

  it.each(EVENT_TYPES)('reads a stored %s body exactly like the parser does', (type) => {
    const body = bodyAt(prepareEvent({ tenant: 'acme', type, actor: { kind: 'human', id: 'Zoë "Q" \\ ✓ 😀' }, requestId: 'r-1', data: SAMPLE_DATA[type] }), 9, '2025-01-02T03:04:05.678Z');
    const scanned = scanCanonicalEnvelope(body);
    expect(scanned).toEqual({ seq: 9, chain: 'acme', time: '2025-01-02T03:04:05.678Z', indexKey: indexKeyOf(JSON.parse(body) as Envelope) });
  });

  it('vouches for canonical envelopes with any data, and matches the parser\'s index key', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.option(fc.string(), { nil: null }), (data, requestId) => {
        const text = canonicalJson(envelope({ ...data, decision: 'denied', target: { device_id: 'ABC-1' } }, { request_id: requestId }));
        const scanned = scanCanonicalEnvelope(text);
        expect(scanned).not.toBeNull();
        expect(scanned?.indexKey).toBe(reference(text).indexKey);
      }),
      { numRuns: 300 },
    );
  });

  it('never vouches for text that is not canonical (random edits)', () => {
    const base = canonicalJson(envelope({ ...SAMPLE_DATA.CONNECTOR_INVOKED, note: 'a\u0001b"c\\d€😀', n: [1.5, -0.25, 1e21, 0, null, true, false, {}] }));
    fc.assert(
      fc.property(edited(base, [...EDIT_CHARS, '\ud800']), (text) => {
        const scanned = scanCanonicalEnvelope(text);
        if (scanned !== null) {
          const exact = reference(text);
          expect(exact.canonical, text).toBe(true);
          expect(scanned.indexKey).toBe(exact.indexKey);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it.each([
    ['whitespace', '{"a": 1}'],
    ['unsorted keys', '{"b":1,"a":2}'],
    ['duplicate keys', '{"a":1,"a":1}'],
    ['a non-canonical number', '{"a":1.0}'],
    ['an exponent where none belongs', '{"a":1e3}'],
    ['minus zero', '{"a":-0}'],
    ['an escaped solidus', '{"a":"\\/"}'],
    ['an escaped letter', '{"a":"\\u0041"}'],
    ['an uppercase escape', '{"a":"\\u001F"}'],
    ['a long escape for a short one', '{"a":"\\u000a"}'],
    ['a raw control character', '{"a":"\u0001"}'],
    ['an escaped lone surrogate', '{"a":"\\ud800"}'],
    ['a raw lone surrogate', '{"a":"\ud800"}'],
    ['an unterminated string', '{"a":"x}'],
  ])('turns down data with %s', (_what, data) => {
    const good = canonicalJson(envelope({ a: 'PLACEHOLDER' }));
    expect(scanCanonicalEnvelope(good)).not.toBeNull();
    const text = good.replace('{"a":"PLACEHOLDER"}', data);
    expect(reference(text).canonical).toBe(false);
    expect(scanCanonicalEnvelope(text)).toBeNull();
  });

  it('turns down trailing text, a non-object, and an envelope missing its position', () => {
    const good = canonicalJson(envelope({}));
    expect(scanCanonicalEnvelope(`${good}x`)).toBeNull();
    expect(scanCanonicalEnvelope(`[${good}]`)).toBeNull();
    expect(scanCanonicalEnvelope(good.replace('"seq":7', '"seq":"7"'))).toBeNull();
  });

  it('leaves what it cannot vouch for to the exact check, which agrees where it must', () => {
    // Integer-like keys sort differently in JS property order; the scan compares code units, as RFC 8785 does.
    const text = canonicalJson(envelope({ '10': 1, '9': 2 }));
    expect(reference(text).canonical).toBe(true);
    expect(scanCanonicalEnvelope(text)).not.toBeNull();
    // A key named __proto__ is just a key.
    const proto = canonicalJson(envelope(JSON.parse('{"__proto__":{"decision":"x"},"decision":"allowed"}')));
    expect(scanCanonicalEnvelope(proto)?.indexKey).toBe(reference(proto).indexKey);
  });
});
