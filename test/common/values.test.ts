import { describe, expect, expectTypeOf, it } from 'vitest';
import { defined } from '../../src/common/values.js';

describe('defined', () => {
  it('keeps every property that is not undefined, falsy ones included, and drops the undefined ones', () => {
    const out = defined({ a: 'x', b: undefined, c: 0, d: null, e: false, f: '' });
    expect(out).toEqual({ a: 'x', c: 0, d: null, e: false, f: '' });
    expect(Object.keys(out).sort()).toEqual(['a', 'c', 'd', 'e', 'f']);
    expect('b' in out).toBe(false);
  });

  it('types a possibly-undefined property as optional and never undefined, a defined one as required', () => {
    const requestId: string | undefined = process.env['NO_SUCH_VARIABLE_FOR_THIS_TEST'];
    const out = defined({ requestId, tenant: 'default' });
    expectTypeOf(out).toEqualTypeOf<{ tenant: string } & { requestId?: string }>();
    expect(out).toEqual({ tenant: 'default' });
  });
});
