import { describe, expect, it } from 'vitest';
import type { ManagedDevice } from '../../src/connector/graph/types.js';
import { PageRows, PageSink } from '../../src/posture/page-rows.js';

const device = (id: string, model: string): ManagedDevice => ({ id, model }) as unknown as ManagedDevice;

describe('a page of rows as bytes', () => {
  it('holds the JSON array of what was added, non-ASCII text included, past its first buffer size', () => {
    const rows = new PageRows();
    const values = Array.from({ length: 2_000 }, (_, i) => ({ device_id: `d-${i}`, model: i % 3 === 0 ? 'MacBook Pro – 14″ 🍎' : 'Surface' }));
    for (const value of values) rows.add(JSON.stringify(value));
    expect(rows.devices).toBe(2_000);
    expect(rows.bytes().length).toBeGreaterThan(64 * 1024);
    expect(JSON.parse(rows.bytes().toString('utf8'))).toEqual(values);
  });

  it('is an empty array after a reset, and an empty page is []', () => {
    const rows = new PageRows();
    expect(rows.bytes().toString('utf8')).toBe('[]');
    rows.add('{"a":1}');
    rows.reset();
    expect(rows.bytes().toString('utf8')).toBe('[]');
    rows.add('{"b":2}');
    expect(JSON.parse(rows.bytes().toString('utf8'))).toEqual([{ b: 2 }]);
  });
});

describe('a page sink', () => {
  const sinkOf = () => new PageSink((d) => JSON.stringify({ device_id: d.id, model: d['model'] }));

  it('starts a retried page over, so the devices of the failed attempt are not repeated', () => {
    const sink = sinkOf();
    sink.onPageStart();
    sink.mapDevice(device('a', 'x'));
    sink.mapDevice(device('b', 'x'));
    sink.onPageStart();
    sink.mapDevice(device('a', 'y'));
    const rows = sink.take();
    expect(JSON.parse(rows.bytes().toString('utf8'))).toEqual([{ device_id: 'a', model: 'y' }]);
  });

  it('keeps a taken page intact while the next one arrives, and reuses it once released', () => {
    const sink = sinkOf();
    sink.onPageStart();
    sink.mapDevice(device('a', 'first'));
    const first = sink.take();
    sink.onPageStart();
    sink.mapDevice(device('b', 'second'));
    expect(JSON.parse(first.bytes().toString('utf8'))).toEqual([{ device_id: 'a', model: 'first' }]);
    const second = sink.take();
    expect(second).not.toBe(first);
    expect(JSON.parse(second.bytes().toString('utf8'))).toEqual([{ device_id: 'b', model: 'second' }]);
    sink.release(first);
    sink.onPageStart();
    expect(sink.take()).toBe(first);
  });
});
