import { describe, expect, it } from 'vitest';
import { GraphError, buildDeviceFilter, isGuid, odataString } from '../../src/connector/graph/index.js';
import { requireGuid, requirePageSize, requireSelect } from '../../src/connector/graph/filter.js';
import type { DeviceFilter } from '../../src/connector/graph/types.js';

const GUID = '0fa4e5e1-0000-4000-8000-00000000c001';

function badRequestOf(fn: () => unknown): GraphError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GraphError);
    expect((err as GraphError).kind).toBe('bad_request');
    return err as GraphError;
  }
  throw new Error('expected a bad_request GraphError');
}

describe('GUID validation', () => {
  it('accepts GUIDs in either case and normalises them to lower case', () => {
    expect(isGuid(GUID)).toBe(true);
    expect(requireGuid(GUID.toUpperCase(), 'id')).toBe(GUID);
  });

  it.each([
    ["x' or 1 eq 1", 'OData injection'],
    [`${GUID}' or id ne '`, 'GUID followed by an injection'],
    [`${GUID}/wipe`, 'path traversal to an action'],
    [`../${GUID}`, 'relative path'],
    [`${GUID} `, 'trailing space'],
    ['{0fa4e5e1-0000-4000-8000-00000000c001}', 'braced GUID'],
    ['0fa4e5e100004000800000000000c001', 'GUID without dashes'],
    ['', 'empty'],
  ])('rejects %j (%s) before any request', (value) => {
    const error = badRequestOf(() => requireGuid(value, 'azureADDeviceId'));
    expect(error.message).toContain('azureADDeviceId must be a GUID');
    // The rejected value is not echoed: it may be anything, including PII.
    expect(error.message).not.toContain(value === '' ? '\u0000' : value);
  });

  it('rejects non-strings', () => {
    for (const value of [undefined, null, 42, {}, [GUID]]) badRequestOf(() => requireGuid(value, 'id'));
  });
});

describe('the $filter builder', () => {
  it('builds each supported clause', () => {
    expect(buildDeviceFilter({ azureADDeviceId: GUID })).toBe(`azureADDeviceId eq '${GUID}'`);
    expect(buildDeviceFilter({ id: GUID.toUpperCase() })).toBe(`id eq '${GUID}'`);
    expect(buildDeviceFilter({ operatingSystem: 'macOS' })).toBe("operatingSystem eq 'macOS'");
    expect(buildDeviceFilter({ complianceState: 'inGracePeriod' })).toBe("complianceState eq 'inGracePeriod'");
    expect(buildDeviceFilter({ serialNumber: 'C02XK1ABJGH5' })).toBe("serialNumber eq 'C02XK1ABJGH5'");
    expect(buildDeviceFilter({ lastSyncAfter: '2025-06-01T00:00:00Z' })).toBe('lastSyncDateTime gt 2025-06-01T00:00:00.000Z');
    expect(buildDeviceFilter({ lastSyncBefore: '2025-06-01T02:00:00+02:00' })).toBe('lastSyncDateTime lt 2025-06-01T00:00:00.000Z');
    expect(buildDeviceFilter({ lastSyncOnOrAfter: '2025-06-01T00:00:00.250Z', lastSyncBefore: '2025-06-02T00:00:00Z' })).toBe(
      'lastSyncDateTime ge 2025-06-01T00:00:00.250Z and lastSyncDateTime lt 2025-06-02T00:00:00.000Z',
    );
  });

  it('joins several clauses with and, and gives no filter for none', () => {
    expect(buildDeviceFilter({ operatingSystem: 'Windows', complianceState: 'noncompliant', lastSyncBefore: '2025-05-01' })).toBe(
      "operatingSystem eq 'Windows' and complianceState eq 'noncompliant' and lastSyncDateTime lt 2025-05-01T00:00:00.000Z",
    );
    expect(buildDeviceFilter({})).toBeUndefined();
    expect(buildDeviceFilter(undefined)).toBeUndefined();
  });

  it("escapes single quotes in string literals by doubling them, so input stays one literal", () => {
    expect(odataString("O'Brien")).toBe("'O''Brien'");
    expect(buildDeviceFilter({ operatingSystem: "x' or 1 eq 1" })).toBe("operatingSystem eq 'x'' or 1 eq 1'");
    expect(buildDeviceFilter({ serialNumber: "' or serialNumber ne '" })).toBe("serialNumber eq ''' or serialNumber ne '''");
    // Whatever the input, the expression has exactly the quotes of its literals, balanced.
    for (const nasty of ["'", "''", "a'b'c", "')", "x' and complianceState eq 'compliant"]) {
      const expression = buildDeviceFilter({ operatingSystem: nasty }) as string;
      const literal = expression.slice('operatingSystem eq '.length);
      expect(literal.startsWith("'") && literal.endsWith("'")).toBe(true);
      expect(literal.slice(1, -1).replaceAll("''", '')).not.toContain("'");
    }
  });

  it('rejects injection through the GUID fields instead of escaping it', () => {
    badRequestOf(() => buildDeviceFilter({ azureADDeviceId: "x' or 1 eq 1" }));
    badRequestOf(() => buildDeviceFilter({ id: `${GUID}' or 1 eq 1 or id eq '${GUID}` }));
  });

  it('rejects values it cannot express safely, with a sentence naming the field', () => {
    expect(badRequestOf(() => buildDeviceFilter({ complianceState: 'compliant or 1 eq 1' as never })).message).toContain('filter.complianceState');
    expect(badRequestOf(() => buildDeviceFilter({ lastSyncAfter: '2025-06-01 or 1 eq 1' })).message).toContain('filter.lastSyncAfter');
    badRequestOf(() => buildDeviceFilter({ lastSyncAfter: 'yesterday' }));
    badRequestOf(() => buildDeviceFilter({ lastSyncAfter: '2025-13-45T00:00:00Z' }));
    badRequestOf(() => buildDeviceFilter({ lastSyncAfter: '2025-06-02T00:00:00Z', lastSyncBefore: '2025-06-01T00:00:00Z' }));
    expect(badRequestOf(() => buildDeviceFilter({ lastSyncOnOrAfter: '2025-06-01T00:00:00Z', lastSyncBefore: '2025-06-01T00:00:00Z' })).message).toContain(
      'filter.lastSyncOnOrAfter must be earlier',
    );
    expect(badRequestOf(() => buildDeviceFilter({ lastSyncOnOrAfter: '2025-06-01T00:00:00Z', lastSyncAfter: '2025-06-01T00:00:00Z' })).message).toContain(
      'mutually exclusive',
    );
    badRequestOf(() => buildDeviceFilter({ operatingSystem: '' }));
    badRequestOf(() => buildDeviceFilter({ operatingSystem: 'mac\nOS' }));
    badRequestOf(() => buildDeviceFilter({ serialNumber: 'x'.repeat(257) }));
    badRequestOf(() => buildDeviceFilter({ operatingSystem: 42 as never }));
    expect(badRequestOf(() => buildDeviceFilter({ userPrincipalName: 'a@b' } as DeviceFilter)).message).toContain('not supported');
    badRequestOf(() => buildDeviceFilter('complianceState eq compliant' as never));
  });
});

describe('page size and $select', () => {
  it('accepts 1..1000 and defaults to Graph maximum', () => {
    expect(requirePageSize(undefined)).toBe(1000);
    expect(requirePageSize(1)).toBe(1);
    expect(requirePageSize(1000)).toBe(1000);
    for (const bad of [0, 1001, 2.5, -1, '100', Number.NaN]) badRequestOf(() => requirePageSize(bad));
  });

  it('accepts only known property names and always adds the core ones', () => {
    expect(requireSelect(['model', 'model'], ['id'])).toEqual(['id', 'model']);
    expect(requireSelect(undefined, ['id'])).toBeUndefined();
    badRequestOf(() => requireSelect(['model,deviceName'], ['id']));
    badRequestOf(() => requireSelect(['id&$filter=1'], ['id']));
    badRequestOf(() => requireSelect([], ['id']));
    badRequestOf(() => requireSelect('model', ['id']));
  });
});
