import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilterError, compileFilter, startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { request } from './helpers.js';

const device = (patch: Record<string, unknown>): Record<string, unknown> => ({
  id: '0fa4e5e1-0000-4000-8000-00000000a001',
  azureADDeviceId: '0fa4e5e1-0000-4000-8000-00000000c001',
  operatingSystem: 'macOS',
  complianceState: 'compliant',
  serialNumber: "FK'QUOTE01",
  lastSyncDateTime: '2025-06-02T08:15:42Z',
  deviceName: "Alex's Mac",
  ...patch,
});

const matches = (filter: string, d: Record<string, unknown>): boolean => compileFilter(filter).predicate(d);

describe('the $filter parser', () => {
  it('accepts eq on each supported property, ignoring case in values', () => {
    const d = device({});
    expect(matches("id eq '0fa4e5e1-0000-4000-8000-00000000a001'", d)).toBe(true);
    expect(matches("id eq '0FA4E5E1-0000-4000-8000-00000000A001'", d)).toBe(true);
    expect(matches("azureADDeviceId eq '0fa4e5e1-0000-4000-8000-00000000c001'", d)).toBe(true);
    expect(matches("azureADDeviceId eq '0fa4e5e1-0000-4000-8000-00000000c002'", d)).toBe(false);
    expect(matches("operatingSystem eq 'macos'", d)).toBe(true);
    expect(matches("operatingSystem eq 'Windows'", d)).toBe(false);
    expect(matches("complianceState eq 'compliant'", d)).toBe(true);
    expect(matches("complianceState eq microsoft.graph.complianceState'compliant'", d)).toBe(true);
    expect(matches("complianceState eq 'noncompliant'", d)).toBe(false);
  });

  it("reads '' inside a string literal as one quote", () => {
    expect(matches("serialNumber eq 'FK''QUOTE01'", device({}))).toBe(true);
    expect(matches("serialNumber eq 'FK''QUOTE0'", device({}))).toBe(false);
  });

  it('compares lastSyncDateTime with unquoted dates, any operator of gt/ge/lt/le', () => {
    const d = device({});
    expect(matches('lastSyncDateTime gt 2025-06-01T00:00:00Z', d)).toBe(true);
    expect(matches('lastSyncDateTime ge 2025-06-02T08:15:42Z', d)).toBe(true);
    expect(matches('lastSyncDateTime gt 2025-06-02T08:15:42Z', d)).toBe(false);
    expect(matches('lastSyncDateTime lt 2025-06-02T10:15:42+02:00', d)).toBe(false);
    expect(matches('lastSyncDateTime le 2025-06-02T10:15:42.000+02:00', d)).toBe(true);
  });

  it('combines with and, parentheses, and or between values of one property', () => {
    const d = device({});
    expect(matches("operatingSystem eq 'macOS' and complianceState eq 'compliant'", d)).toBe(true);
    expect(matches("operatingSystem eq 'macOS' and complianceState eq 'error'", d)).toBe(false);
    expect(matches("(complianceState eq 'error' or complianceState eq 'compliant') and lastSyncDateTime ge 2025-01-01T00:00:00Z", d)).toBe(true);
    expect(matches("complianceState eq 'error' or complianceState eq 'conflict' or complianceState eq 'unknown'", d)).toBe(false);
  });

  it('hands id and azureADDeviceId lookups to the index', () => {
    expect(compileFilter("azureADDeviceId eq 'ABC' and complianceState eq 'compliant'").lookup).toEqual({ property: 'azureADDeviceId', value: 'ABC' });
    expect(compileFilter("complianceState eq 'compliant'").lookup).toBeUndefined();
  });

  it.each([
    ["deviceName eq 'Alex'", /filtering on 'deviceName' is not supported/],
    ["favouriteColour eq 'blue'", /Could not find a property named 'favouriteColour'/],
    ["contains(deviceName, 'Alex')", /function 'contains' is not supported/],
    ["startswith(serialNumber,'FK')", /function 'startswith' is not supported/],
    ["complianceState ne 'compliant'", /operator 'ne' is not supported on 'complianceState'/],
    ["not (complianceState eq 'compliant')", /'not' operator is not supported/],
    ["operatingSystem eq 'macOS' or complianceState eq 'compliant'", /'or' is supported only between eq comparisons of the same property/],
    ["azureADDeviceId eq 'a' or azureADDeviceId eq 'b'", /'or' is supported only/],
    ["complianceState eq 'green'", /not a valid enumeration type constant/],
    ["lastSyncDateTime ge '2025-06-01T00:00:00Z'", /incompatible types.*'Edm.DateTimeOffset' and 'Edm.String'/],
    ['lastSyncDateTime eq 2025-06-01T00:00:00Z', /operator 'eq' is not supported on 'lastSyncDateTime'/],
    ['complianceState eq compliant', /comparing two properties is not supported/],
    ["serialNumber eq 'unterminated", /unterminated string literal/],
    ["(complianceState eq 'compliant'", /'\)' expected/],
    ["complianceState eq 'compliant' and", /ends too early/],
    ["complianceState eq 'compliant' extra", /syntax error/],
    ['', /empty/],
    ["complianceState has 'compliant'", /operator 'has' is not supported/],
    ["serialNumber eq 'x';drop", /unexpected character ';'/],
    ['lastSyncDateTime ge 2025-06-01T00:00:00 02:00', /Dates need a zone.*%2B/],
    [`${'('.repeat(40)}complianceState eq 'compliant'${')'.repeat(40)}`, /nested deeper/],
  ])('refuses %s', (filter, message) => {
    expect(() => compileFilter(filter)).toThrow(FilterError);
    expect(() => compileFilter(filter)).toThrow(message);
  });
});

describe('$filter over HTTPS', () => {
  let sim: SimulatorHandle;
  let token: string;
  beforeAll(async () => {
    sim = await startSimulator({ devices: 400, seed: 'filters' });
    token = await sim.mintToken();
  });
  afterAll(() => sim.close());

  const list = async (filter: string): Promise<{ status: number; json: unknown }> =>
    request(sim, `/v1.0/deviceManagement/managedDevices?$filter=${encodeURIComponent(filter)}`, { token });

  it('finds every record of a re-enrolled Entra device', async () => {
    const counts = new Map<string, number>();
    for (const d of sim.devices) if (typeof d['azureADDeviceId'] === 'string') counts.set(d['azureADDeviceId'], (counts.get(d['azureADDeviceId']) ?? 0) + 1);
    const [aad] = [...counts].find(([, n]) => n > 1) ?? [];
    expect(aad).toBeDefined();
    const res = await list(`azureADDeviceId eq '${String(aad)}'`);
    expect(res.status).toBe(200);
    const value = (res.json as { value: Record<string, unknown>[] }).value;
    expect(value.length).toBe(counts.get(String(aad)));
    expect(value.every((d) => d['azureADDeviceId'] === aad)).toBe(true);
  });

  it('returns an empty page for an unknown Entra device id', async () => {
    const res = await list("azureADDeviceId eq '00000000-0000-4000-8000-000000000000'");
    expect(res.status).toBe(200);
    expect((res.json as { value: unknown[] }).value).toEqual([]);
  });

  it('matches the same devices a direct evaluation would', async () => {
    const since = new Date(Date.now() - 7 * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const filter = `operatingSystem eq 'Windows' and (complianceState eq 'noncompliant' or complianceState eq 'inGracePeriod') and lastSyncDateTime ge ${since}`;
    const res = await list(filter);
    expect(res.status).toBe(200);
    const expected = sim.devices.filter(
      (d) =>
        d['operatingSystem'] === 'Windows' &&
        (d['complianceState'] === 'noncompliant' || d['complianceState'] === 'inGracePeriod') &&
        Date.parse(String(d['lastSyncDateTime'])) >= Date.parse(since),
    );
    expect(expected.length).toBeGreaterThan(0);
    expect((res.json as { value: Record<string, unknown>[] }).value.map((d) => d['id'])).toEqual(expected.map((d) => d['id']));
  });

  it("answers an unsupported filter with 400 and Graph's error body", async () => {
    const res = await request(sim, `/v1.0/deviceManagement/managedDevices?$filter=${encodeURIComponent("contains(deviceName,'a')")}`, {
      token,
      headers: { 'client-request-id': 'caller-42' },
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('client-request-id')).toBe('caller-42');
    const body = res.json as { error: { code: string; message: string; innerError: Record<string, string> } };
    expect(body.error.code).toBe('BadRequest');
    expect(body.error.message).toMatch(/function 'contains' is not supported/);
    expect(body.error.innerError['request-id']).toBe(res.headers.get('request-id'));
    expect(body.error.innerError['client-request-id']).toBe('caller-42');
    expect(body.error.innerError['date']).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/);
  });

  it('refuses an injection attempt in a value instead of widening the match', async () => {
    const res = await list("azureADDeviceId eq 'x' or 1 eq 1");
    expect(res.status).toBe(400);
    const escaped = await list("serialNumber eq 'x'' or 1 eq 1 or serialNumber eq ''y'");
    expect(escaped.status).toBe(200);
    expect((escaped.json as { value: unknown[] }).value).toEqual([]);
  });
});
