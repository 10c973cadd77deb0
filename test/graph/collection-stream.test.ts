/**
 * The item-by-item page reader against JSON.parse of the whole body: same items, same skeleton,
 * same refusals, however the bytes are cut into chunks.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CollectionStream, type CollectionStreamResult } from '../../src/connector/graph/collection-stream.js';

function read(body: string, cuts: readonly number[] = []): { result: CollectionStreamResult; items: unknown[] } {
  const bytes = Buffer.from(body, 'utf8');
  const items: unknown[] = [];
  const stream = new CollectionStream((item, index) => {
    expect(index).toBe(items.length);
    items.push(item);
  });
  let from = 0;
  for (const cut of [...new Set(cuts.map((c) => Math.min(bytes.length, c)))].sort((a, b) => a - b)) {
    stream.write(bytes.subarray(from, cut));
    from = cut;
  }
  stream.write(bytes.subarray(from));
  return { result: stream.end(), items };
}

const device = (i: number) => ({
  id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  deviceName: `Mac "${i}" \\ of Zoë — 東京 ${'x'.repeat(i % 7)}`,
  nested: { a: [1, { b: '}]' }], c: null },
  ok: i % 2 === 0,
});

describe('CollectionStream', () => {
  it('hands over every item of a page, in order, and keeps the other members', () => {
    const page = { '@odata.context': 'https://graph/$metadata#x', value: Array.from({ length: 50 }, (_, i) => device(i)), '@odata.nextLink': 'https://graph/v1.0/x?$skiptoken=a"b' };
    const { result, items } = read(JSON.stringify(page, null, 1));
    expect(items).toEqual(page.value);
    expect(result).toEqual({ ok: true, items: 50, skeleton: { '@odata.context': page['@odata.context'], value: [], '@odata.nextLink': page['@odata.nextLink'] } });
  });

  it('reads the same whatever the chunk boundaries (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue(), { maxLength: 8 }),
        fc.dictionary(fc.string().filter((k) => k !== 'value'), fc.jsonValue(), { maxKeys: 3 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.boolean(),
        (value, members, cuts, pretty) => {
          const page = { ...members, value };
          const body = pretty ? JSON.stringify(page, null, 2) : JSON.stringify(page);
          const { result, items } = read(body, cuts.map((c) => c % (Buffer.byteLength(body) + 1)));
          expect(items).toEqual(JSON.parse(JSON.stringify(value)));
          expect(result.ok).toBe(true);
          if (result.ok) expect(result.skeleton).toEqual({ ...JSON.parse(JSON.stringify(members)), value: [] });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('gives a body that is not an object whole, for the structural check to name', () => {
    expect(read('[{"id":"a"}]').result).toEqual({ ok: true, skeleton: [{ id: 'a' }], items: 0 });
    expect(read(' null ').result).toEqual({ ok: true, skeleton: null, items: 0 });
    expect(read('{"value": {"0": 1}}').result).toEqual({ ok: true, skeleton: { value: { 0: 1 } }, items: 0 });
    expect(read('{}').result).toEqual({ ok: true, skeleton: {}, items: 0 });
    // A "__proto__" member is data, as JSON.parse has it, never the skeleton's prototype.
    const proto = read('{"__proto__": {"polluted": true}, "value": []}').result;
    expect(proto.ok && (proto.skeleton as { polluted?: unknown }).polluted).toBe(undefined);
    expect(proto.ok && Object.keys(proto.skeleton as object)).toEqual(['__proto__', 'value']);
  });

  it('refuses what JSON.parse refuses', () => {
    for (const body of ['{"value": [1,]}', '{"value": [,1]}', '{"value": [1 2]}', '{"value": [{"id": }]}', '{"value": []', '{"value": []} x', '{"value": [] "a": 1}', '{"a": 1,}', '{"value": ["abc]}', '{value: []}']) {
      expect(() => JSON.parse(body), body).toThrow();
      expect(read(body).result.ok, body).toBe(false);
    }
  });

  it('records the first item the consumer refuses and skips the rest, still reading to the end', () => {
    const seen: unknown[] = [];
    const stream = new CollectionStream((item) => {
      seen.push(item);
      if (item === 2) throw new Error('refused');
    });
    stream.write(Buffer.from('{"value": [1, 2, 3], "@odata.nextLink": "n"}'));
    const result = stream.end();
    expect(seen).toEqual([1, 2]);
    expect(result).toMatchObject({ ok: true, items: 3, skeleton: { value: [], '@odata.nextLink': 'n' } });
    expect((result as { itemError?: Error }).itemError?.message).toBe('refused');
  });
});
