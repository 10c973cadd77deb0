/** Throttling and injected faults, as a Graph client meets them over HTTPS. */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SimulatorError, parseFaultSpec, startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { acquireToken, agentFor, request } from './helpers.js';
import { fetch } from 'undici';

const LIST = '/v1.0/deviceManagement/managedDevices';
type GraphErrorBody = { error: { code: string; message: string; innerError: Record<string, string> } };

describe('parseFaultSpec', () => {
  it('reads the full spec', () => {
    expect(parseFaultSpec('error=0.1,unavailable=0.05,retry-after=2,latency=50,reset=0.01,truncate=0.02,malformed=0.02,foreign-next-link')).toEqual({
      errorRate: 0.1,
      unavailableRate: 0.05,
      retryAfterSeconds: 2,
      latencyMs: 50,
      resetRate: 0.01,
      truncateRate: 0.02,
      malformedRate: 0.02,
      foreignNextLink: true,
    });
    expect(parseFaultSpec(' retry-after=1.5 , decimal-retry-after, token-error=1, foreign-next-link=https://127.0.0.1:9443 ')).toEqual({
      retryAfterSeconds: 1.5,
      decimalRetryAfter: true,
      tokenErrorRate: 1,
      foreignNextLink: true,
      foreignNextLinkBase: 'https://127.0.0.1:9443',
    });
    expect(parseFaultSpec('')).toEqual({});
  });

  it.each([
    ['error=2', /fault "error" is "2"; set it to a fraction from 0 to 1/],
    ['error', /fault "error" is ""/],
    ['latency=1.5', /whole milliseconds/],
    ['retry-after=-1', /seconds from 0 to 3600/],
    ['explode=1', /unknown fault "explode"; use one of error, unavailable/],
    ['error=0.1,error=0.2', /given twice/],
    ['foreign-next-link=ftp://x', /base URL/],
  ])('refuses %s with a typed error that says what to fix', (spec, message) => {
    expect(() => parseFaultSpec(spec)).toThrow(SimulatorError);
    expect(() => parseFaultSpec(spec)).toThrow(message);
  });
});

describe('throttling', () => {
  let sim: SimulatorHandle;
  let token: string;
  beforeAll(async () => {
    sim = await startSimulator({ devices: 30, seed: 'throttle', throttle: { requestsPer20s: 5, writesPer20s: 2 } });
    token = await sim.mintToken();
  });
  afterAll(() => sim.close());
  afterEach(() => {
    vi.useRealTimers();
  });

  it('answers 429 with Retry-After once the budget is spent, and admits again when the window moves on', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    for (let i = 0; i < 5; i++) expect((await request(sim, `${LIST}?$top=1`, { token })).status).toBe(200);
    vi.setSystemTime(Date.now() + 5_000);
    const throttled = await request(sim, `${LIST}?$top=1`, { token });
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toBe('15');
    expect((throttled.json as GraphErrorBody).error.code).toBe('TooManyRequests');
    expect(throttled.headers.get('request-id')).toBeTruthy();
    vi.setSystemTime(Date.now() + 15_000);
    expect((await request(sim, `${LIST}?$top=1`, { token })).status).toBe(200);
    // A refused request does not count: the next four still fit.
    for (let i = 0; i < 4; i++) expect((await request(sim, `${LIST}?$top=1`, { token })).status).toBe(200);
    expect((await request(sim, `${LIST}?$top=1`, { token })).status).toBe(429);
    vi.setSystemTime(Date.now() + 20_000);
  });

  it('keeps a smaller budget for writes, and sends decimal Retry-After when asked', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 60_000 });
    sim.setFaults({ decimalRetryAfter: true });
    const id = String(sim.devices[0]?.['id']);
    expect((await request(sim, `${LIST}/${id}/syncDevice`, { token, method: 'POST' })).status).toBe(204);
    vi.setSystemTime(Date.now() + 1_500);
    expect((await request(sim, `${LIST}/${id}/syncDevice`, { token, method: 'POST' })).status).toBe(204);
    vi.setSystemTime(Date.now() + 1_250);
    const third = await request(sim, `${LIST}/${id}/syncDevice`, { token, method: 'POST' });
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('17.3');
    expect((await request(sim, `${LIST}?$top=1`, { token })).status).toBe(200);
    sim.setFaults({});
  });

  it('counts per app and tenant: another app keeps its own budget', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 120_000 });
    for (let i = 0; i < 5; i++) await request(sim, `${LIST}?$top=1`, { token });
    expect((await request(sim, `${LIST}?$top=1`, { token })).status).toBe(429);
    // Tokens the token endpoint issues to the same app share its budget.
    const viaMsal = await acquireToken(sim);
    expect((await request(sim, `${LIST}?$top=1`, { token: viaMsal })).status).toBe(429);
    const otherApp = await sim.mintToken({ appId: '55555555-5555-4555-8555-555555555555' });
    expect((await request(sim, `${LIST}?$top=1`, { token: otherApp })).status).toBe(200);
  });
});

describe('faults', () => {
  let sim: SimulatorHandle;
  let token: string;
  beforeAll(async () => {
    sim = await startSimulator({ devices: 40, seed: 'faults' });
    token = await sim.mintToken();
  });
  afterAll(() => sim.close());
  afterEach(() => sim.setFaults({}));

  it('answers 500 or 502 at errorRate 1, but never faults the token endpoint', async () => {
    sim.setFaults({ errorRate: 1 });
    const statuses = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const res = await request(sim, `${LIST}?$top=1`, { token });
      statuses.add(res.status);
      expect(['InternalServerError', 'BadGateway']).toContain((res.json as GraphErrorBody).error.code);
    }
    expect([...statuses].sort()).toEqual([500, 502]);
    expect(await acquireToken(sim)).toMatch(/^ey/);
  });

  it('answers 503 with the Retry-After it was given, decimals included', async () => {
    sim.setFaults(parseFaultSpec('unavailable=1,retry-after=1.5'));
    const res = await request(sim, `${LIST}?$top=1`, { token });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1.5');
    expect((res.json as GraphErrorBody).error.code).toBe('ServiceUnavailable');
  });

  it('adds latency', async () => {
    sim.setFaults({ latencyMs: 250 });
    const started = performance.now();
    expect((await request(sim, `${LIST}?$top=1`, { token })).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(245);
  });

  it('resets the connection before answering a read', async () => {
    sim.clearRequests();
    sim.setFaults({ resetRate: 1 });
    await expect(request(sim, `${LIST}?$top=1`, { token })).rejects.toThrow();
    expect(sim.requests().at(-1)).toMatchObject({ kind: 'graph', status: 0 });
  });

  it('resets a device action after performing it, so the caller cannot tell', async () => {
    sim.clearRequests();
    sim.setFaults({ resetRate: 1 });
    const id = String(sim.devices[1]?.['id']);
    await expect(request(sim, `${LIST}/${id}/remoteLock`, { token, method: 'POST' })).rejects.toThrow();
    expect(sim.requests().at(-1)).toMatchObject({ action: 'remoteLock', deviceId: id, status: 0 });
  });

  it('truncates list pages mid-JSON in a complete HTTP answer', async () => {
    sim.setFaults({ truncateRate: 1 });
    const res = await request(sim, `${LIST}?$top=5`, { token });
    expect(res.status).toBe(200);
    expect(res.json).toBeUndefined();
    sim.setFaults({});
    const whole = await request(sim, `${LIST}?$top=5`, { token });
    expect(whole.text.startsWith(res.text.slice(0, 60))).toBe(true);
    expect(res.text.length).toBeLessThan(whole.text.length * 0.6);
  });

  it('breaks the JSON of list pages at malformedRate 1', async () => {
    sim.setFaults({ malformedRate: 1 });
    const res = await request(sim, `${LIST}?$top=5`, { token });
    expect(res.status).toBe(200);
    expect(res.json).toBeUndefined();
    expect(() => JSON.parse(res.text) as unknown).toThrow(SyntaxError);
    // Single reads stay intact: the fault is about pages.
    expect((await request(sim, `${LIST}/${String(sim.devices[0]?.['id'])}`, { token })).json).toBeDefined();
  });

  it('points nextLinks at a foreign host', async () => {
    sim.setFaults({ foreignNextLink: true });
    const res = await request(sim, `${LIST}?$top=5`, { token });
    expect(String((res.json as { '@odata.nextLink': string })['@odata.nextLink'])).toMatch(/^https:\/\/graph\.foreign\.invalid\/v1\.0\/deviceManagement\/managedDevices\?/);
    sim.setFaults(parseFaultSpec('foreign-next-link=https://127.0.0.1:1'));
    const chosen = await request(sim, `${LIST}?$top=5`, { token });
    expect(String((chosen.json as { '@odata.nextLink': string })['@odata.nextLink'])).toMatch(/^https:\/\/127\.0\.0\.1:1\/v1\.0\//);
  });

  it('fails token requests at tokenErrorRate 1 with Entra’s transient error, leaving Graph alone', async () => {
    sim.setFaults({ tokenErrorRate: 1 });
    const res = await fetch(`${sim.loginUrl}/${sim.tenantId}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: sim.clientId, client_secret: sim.clientSecret, scope: `${sim.graphUrl}/.default` }).toString(),
      dispatcher: agentFor(sim),
    });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: 'temporarily_unavailable', error_codes: [90033] });
    expect((await request(sim, `${LIST}?$top=1`, { token })).status).toBe(200);
  });

  it('refuses invalid faults at runtime with a typed error', () => {
    expect(() => sim.setFaults({ errorRate: 3 })).toThrow(/errorRate \(error\) is 3/);
  });
});
