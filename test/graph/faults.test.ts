/**
 * The retry policy, timeouts, aborts and the nextLink guard, through real HTTPS against the
 * simulator's fault injection. Waits are recorded through an injected sleep (and one real
 * Retry-After wait), so the suite stays fast while asserting what the client waited for.
 */
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, fetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GraphError } from '../../src/connector/graph/index.js';
import { createTlsMaterial } from '../../src/simulator/tls.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { defaultSleep } from '../../src/connector/graph/pipeline.js';
import { capturingLogger, clientFor, failureOf, graphRequests, recordingSleep, simulator, warmClientFor, type TestClient } from './helpers.js';

let sim: SimulatorHandle;
let deviceId: string;
const clients: TestClient[] = [];
const track = (client: TestClient): TestClient => {
  clients.push(client);
  return client;
};

beforeAll(async () => {
  sim = await simulator({ devices: 120 });
  deviceId = sim.devices[0]?.['id'] as string;
});
afterEach(() => {
  sim.setFaults({});
  sim.clearRequests();
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await sim.close();
});

describe('5xx and 503 with Retry-After', () => {
  it('retries a read after a 500/502 and succeeds once Graph recovers', async () => {
    sim.setFaults({ errorRate: 1 });
    const { sleep, waits } = recordingSleep({ before: () => sim.setFaults({}) });
    const client = track(clientFor(sim, { sleep, random: () => 0.5 }));
    const page = await client.listDevicesPage({ top: 10 });
    expect(page.devices).toHaveLength(10);
    const statuses = graphRequests(sim).map((r) => r.status);
    expect([500, 502]).toContain(statuses[0]);
    expect(statuses.slice(1)).toEqual([200]);
    // No Retry-After on a 500: backoff with jitter, 0.5 of the first 500 ms ceiling.
    expect(waits).toEqual([250]);
    expect(client.stats()).toMatchObject({ requests: 2, retries: 1, throttledWaits: 0 });
  });

  it('waits exactly what a 503 Retry-After says, and counts it as a throttled wait', async () => {
    sim.setFaults({ unavailableRate: 1, retryAfterSeconds: 3 });
    const { sleep, waits } = recordingSleep({ before: (_ms, call) => call === 2 && sim.setFaults({}) });
    const client = track(clientFor(sim, { sleep }));
    const result = await client.getDevice(deviceId);
    expect(result.value.id).toBe(deviceId);
    expect(waits).toEqual([3_000, 3_000]);
    expect(graphRequests(sim).map((r) => r.status)).toEqual([503, 503, 200]);
    expect(client.stats()).toMatchObject({ retries: 2, throttledWaits: 2, throttledWaitMs: 6_000 });
  });

  it('really sleeps through a Retry-After of 1 second with the default sleep', async () => {
    const client = track(
      await warmClientFor(sim, {
        sleep: (ms, signal) => {
          sim.setFaults({});
          return defaultSleep(ms, signal);
        },
      }),
    );
    sim.setFaults({ unavailableRate: 1, retryAfterSeconds: 1 });
    const started = performance.now();
    await client.listDevicesPage({ top: 1 });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(990);
    expect(elapsed).toBeLessThan(3_000);
    expect(graphRequests(sim).map((r) => r.status)).toEqual([503, 200]);
  });

  it('gives up after maxRetries with an unavailable error carrying status, code, request-id and Retry-After', async () => {
    sim.setFaults({ unavailableRate: 1, retryAfterSeconds: 2 });
    const { sleep, waits } = recordingSleep();
    const client = track(clientFor(sim, { sleep, graph: { maxRetries: 2 } }));
    const error = await failureOf(() => client.listDevicesPage({ top: 5 }));
    expect(error).toBeInstanceOf(GraphError);
    expect(error).toMatchObject({ kind: 'unavailable', status: 503, graphCode: 'ServiceUnavailable', retryAfterMs: 2_000, attempts: 3 });
    expect(error['requestId']).toMatch(/^[0-9a-f-]{36}$/);
    expect(error.message).toContain('503 ServiceUnavailable');
    // Graph's own message text stays out of what callers see.
    expect(error.message).not.toContain('temporarily unavailable');
    expect(waits).toEqual([2_000, 2_000]);
    expect(graphRequests(sim)).toHaveLength(3);
  });

  it('does not sleep through a Retry-After longer than the policy allows: the caller gets it', async () => {
    sim.setFaults({ unavailableRate: 1, retryAfterSeconds: 600 });
    const { sleep, waits } = recordingSleep();
    const client = track(clientFor(sim, { sleep }));
    const error = await failureOf(() => client.getDevice(deviceId));
    expect(error).toMatchObject({ kind: 'unavailable', retryAfterMs: 600_000, attempts: 1 });
    expect(waits).toEqual([]);
  });

  it('never retries a device action after a 5xx, and says it may have happened', async () => {
    sim.setFaults({ errorRate: 1 });
    const { sleep, waits } = recordingSleep();
    const client = track(clientFor(sim, { sleep }));
    const error = await failureOf(() => client.performDeviceAction(deviceId, 'syncDevice'));
    expect(error).toMatchObject({ kind: 'unavailable', ambiguous: true, attempts: 1 });
    expect(error.message).toContain('may or may not have been carried out');
    expect(waits).toEqual([]);
    expect(graphRequests(sim).filter((r) => r.method === 'POST')).toHaveLength(1);
  });
});

describe('connection resets', () => {
  it('retries a read whose connection was reset', async () => {
    sim.setFaults({ resetRate: 1 });
    const { sleep } = recordingSleep({ before: () => sim.setFaults({}) });
    const client = track(clientFor(sim, { sleep }));
    const page = await client.listDevicesPage({ top: 3 });
    expect(page.devices).toHaveLength(3);
    expect(graphRequests(sim).map((r) => r.status)).toEqual([0, 200]);
  });

  it('does not retry a device action whose connection was reset: exactly one action reached Graph', async () => {
    sim.setFaults({ resetRate: 1 });
    const { sleep, waits } = recordingSleep();
    const client = track(clientFor(sim, { sleep }));
    const error = await failureOf(() => client.performDeviceAction(deviceId, 'remoteLock'));
    expect(error).toMatchObject({ name: 'GraphError', kind: 'network', ambiguous: true, attempts: 1 });
    expect(error.message).toContain('may or may not have been carried out');
    expect(waits).toEqual([]);
    const actions = graphRequests(sim).filter((r) => r.action !== undefined);
    expect(actions).toHaveLength(1);
    expect(actions[0]).toMatchObject({ action: 'remoteLock', deviceId });
  });
});

describe('throttled device actions', () => {
  it('retries a device action answered 429: Graph did not perform it', async () => {
    const tight = await simulator({ throttle: { writesPer20s: 1, windowMs: 400 } });
    try {
      const id = tight.devices[0]?.['id'] as string;
      const client = track(clientFor(tight));
      await client.performDeviceAction(id, 'syncDevice');
      const second = await client.performDeviceAction(id, 'syncDevice');
      expect(second.value).toBeNull();
      const posts = tight.requests().filter((r) => r.method === 'POST' && r.kind === 'graph');
      expect(posts.map((r) => r.status)).toEqual([204, 429, 204]);
      expect(posts.filter((r) => r.action === 'syncDevice')).toHaveLength(2);
      expect(client.stats().throttledWaits).toBe(1);
    } finally {
      await tight.close();
    }
  });
});

describe('truncated and malformed bodies', () => {
  it.each([
    ['truncated mid-JSON', { truncateRate: 1 }],
    ['syntactically broken JSON', { malformedRate: 1 }],
  ])('a page %s is retried twice, then a typed malformed_response error', async (_label, faults) => {
    sim.setFaults(faults);
    const { sleep, waits } = recordingSleep();
    const { logger, lines } = capturingLogger();
    const client = track(clientFor(sim, { sleep, logger, graph: { maxRetries: 4 } }));
    const error = await failureOf(() => client.listDevicesPage({ top: 50 }));
    expect(error).toBeInstanceOf(GraphError);
    expect(error).toMatchObject({ kind: 'malformed_response', status: 200, attempts: 3 });
    expect(graphRequests(sim)).toHaveLength(3);
    expect(waits).toHaveLength(2);
    // Neither the error nor the log carries the body: it is full of PII.
    const served = sim.devices.slice(0, 50);
    for (const text of [error.message, lines()]) {
      for (const device of served) {
        expect(text).not.toContain(String(device['serialNumber']));
        expect(text).not.toContain(String(device['userPrincipalName']));
      }
    }
  });

  it('a truncated page followed by a good one is simply retried', async () => {
    sim.setFaults({ truncateRate: 1 });
    const { sleep } = recordingSleep({ before: () => sim.setFaults({}) });
    const client = track(clientFor(sim, { sleep }));
    const page = await client.listDevicesPage({ top: 50 });
    expect(page.devices).toHaveLength(50);
    expect(client.stats().retries).toBe(1);
  });
});

describe('timeouts and aborts', () => {
  it('times out a slow read per attempt, retries it, then fails with kind timeout', async () => {
    const { sleep, waits } = recordingSleep();
    const client = track(await warmClientFor(sim, { sleep, graph: { timeoutMs: 150, maxRetries: 1 } }));
    waits.length = 0;
    sim.setFaults({ latencyMs: 600 });
    const error = await failureOf(() => client.getDevice(deviceId));
    expect(error).toMatchObject({ kind: 'timeout', attempts: 2 });
    expect(error.message).toContain('INTUNE_GRAPH_TIMEOUT_MS');
    expect(waits).toHaveLength(1);
  });

  it('does not retry a device action that timed out', async () => {
    const { sleep, waits } = recordingSleep();
    const client = track(await warmClientFor(sim, { sleep, graph: { timeoutMs: 150 } }));
    waits.length = 0;
    sim.setFaults({ latencyMs: 600 });
    const error = await failureOf(() => client.performDeviceAction(deviceId, 'syncDevice'));
    expect(error).toMatchObject({ kind: 'timeout', ambiguous: true, attempts: 1 });
    expect(waits).toEqual([]);
    // Give the simulator time to finish its delayed answer: it saw at most the one POST (none if
    // the client gave up before the request arrived on a loaded machine), never a second.
    await delay(700);
    expect(graphRequests(sim).filter((r) => r.method === 'POST').length).toBeLessThanOrEqual(1);
  });

  it('stops a slow request as soon as the caller aborts', async () => {
    const client = track(await warmClientFor(sim));
    sim.setFaults({ latencyMs: 3_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = performance.now();
    const error = await failureOf(() => client.listDevicesPage({ top: 5, signal: controller.signal }));
    expect(error).toMatchObject({ name: 'GraphError', kind: 'aborted' });
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('stops waiting out a Retry-After as soon as the caller aborts', async () => {
    const client = track(await warmClientFor(sim));
    sim.setFaults({ unavailableRate: 1, retryAfterSeconds: 30 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const started = performance.now();
    const error = await failureOf(() => client.getDevice(deviceId, { signal: controller.signal }));
    expect(error).toMatchObject({ kind: 'aborted' });
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(graphRequests(sim)).toHaveLength(1);
  });

  it('sends nothing for a call whose signal is already aborted', async () => {
    const client = track(clientFor(sim));
    const error = await failureOf(() => client.getDevice(deviceId, { signal: AbortSignal.abort() }));
    expect(error).toMatchObject({ kind: 'aborted' });
    expect(sim.requests()).toEqual([]);
  });
});

describe('Graph errors that are final', () => {
  it('answers an unknown device with not_found (404), once, without echoing Graph text', async () => {
    const { sleep, waits } = recordingSleep();
    const client = track(clientFor(sim, { sleep }));
    const missing = '0fa4e5e1-0000-4000-8000-0000000dead1';
    const error = await failureOf(() => client.getDevice(missing));
    expect(error).toMatchObject({ kind: 'not_found', status: 404, graphCode: 'ResourceNotFound', attempts: 1 });
    expect(error.message).not.toContain('It may have been deleted');
    expect(waits).toEqual([]);
  });

  it('rejects a non-GUID id before any request is sent', async () => {
    const client = track(clientFor(sim));
    for (const bad of ["x' or 1 eq 1", `${deviceId}/wipe`, '../managedDevices', '']) {
      await expect(client.getDevice(bad)).rejects.toMatchObject({ kind: 'bad_request' });
      await expect(client.performDeviceAction(bad, 'wipe')).rejects.toMatchObject({ kind: 'bad_request' });
      await expect(client.findDevicesByAzureADDeviceId(bad)).rejects.toMatchObject({ kind: 'bad_request' });
      await expect(client.getCompliancePolicyStates(bad)).rejects.toMatchObject({ kind: 'bad_request' });
    }
    await expect(client.performDeviceAction(deviceId, 'erase' as never)).rejects.toMatchObject({ kind: 'bad_request' });
    expect(sim.requests()).toEqual([]);
  });
});

describe('nextLinks outside the configured Graph host', () => {
  let foreign: https.Server;
  let foreignUrl: string;
  let foreignCa: string;
  let bundleDir: string;
  let bundleFile: string;
  const seen: { url: string | undefined; authorization: string | undefined }[] = [];
  let connections = 0;

  beforeAll(async () => {
    // A real HTTPS host the client would trust (its CA is in the bundle): only the guard stops it.
    const tls = await createTlsMaterial(['127.0.0.1']);
    foreignCa = tls.caPem;
    foreign = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      seen.push({ url: req.url, authorization: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ value: [] }));
    });
    foreign.on('secureConnection', () => {
      connections++;
    });
    await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
    const address = foreign.address() as { port: number };
    foreignUrl = `https://127.0.0.1:${address.port}`;
    bundleDir = fs.mkdtempSync(path.join(os.tmpdir(), 'graph-ca-bundle-'));
    bundleFile = path.join(bundleDir, 'bundle.pem');
    fs.writeFileSync(bundleFile, `${sim.caPem}\n${foreignCa}`);
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => foreign.close(() => resolve()));
    fs.rmSync(bundleDir, { recursive: true, force: true });
  });
  afterEach(() => {
    seen.length = 0;
    connections = 0;
  });

  it('the foreign host is reachable and trusted with the same CA bundle (control)', async () => {
    const agent = new Agent({ connect: { ca: [sim.caPem, foreignCa] } });
    try {
      const response = await fetch(`${foreignUrl}/v1.0/deviceManagement/managedDevices`, { dispatcher: agent });
      expect(response.status).toBe(200);
      await response.text();
    } finally {
      await agent.close();
    }
    expect(seen).toHaveLength(1);
  });

  it("refuses a page whose nextLink points at another host, and sends that host nothing, not even a connection", async () => {
    // Same IP, other port: the Graph library's own host check (names only) would have sent the token.
    sim.setFaults({ foreignNextLink: true, foreignNextLinkBase: foreignUrl });
    const { logger, lines } = capturingLogger();
    const client = track(clientFor(sim, { logger, graph: { caFile: bundleFile } }));
    const pages: number[] = [];
    const error = await failureOf(async () => {
      for await (const page of client.listDevices({ top: 50 })) pages.push(page.devices.length);
    });
    expect(error).toBeInstanceOf(GraphError);
    expect(error).toMatchObject({ kind: 'foreign_next_link' });
    expect(error.message).toContain('no token was sent');
    expect(seen).toEqual([]);
    expect(connections).toBe(0);
    expect(graphRequests(sim)).toHaveLength(1);
    expect(lines()).not.toContain(foreignUrl);
  });

  it.each([
    ['another port on the same IP', () => `${foreignUrl}/v1.0/deviceManagement/managedDevices?$skiptoken=x`],
    ['the same port under another host name', () => `${sim.graphUrl.replace('127.0.0.1', 'localhost')}/v1.0/deviceManagement/managedDevices?$skiptoken=x`],
    ['plain http', () => `${sim.graphUrl.replace('https:', 'http:')}/v1.0/deviceManagement/managedDevices?$skiptoken=x`],
    ['credentials in the URL', () => `https://user:pw@${new URL(sim.graphUrl).host}/v1.0/deviceManagement/managedDevices`],
    ['another API root', () => `${sim.graphUrl}/beta/deviceManagement/managedDevices?$skiptoken=x`],
    ['another resource on the Graph host', () => `${sim.graphUrl}/v1.0/deviceManagement/managedDevices/${deviceId}/wipe`],
    ['not a URL', () => 'deviceManagement/managedDevices?$skiptoken=x'],
  ])('refuses a caller-supplied nextLink to %s without any request', async (_label, link) => {
    const client = track(clientFor(sim, { graph: { caFile: bundleFile } }));
    const error = await failureOf(() => client.listDevicesPage({ nextLink: link() }));
    expect(error).toMatchObject({ kind: 'foreign_next_link' });
    expect(sim.requests()).toEqual([]);
    expect(seen).toEqual([]);
    expect(connections).toBe(0);
  });
});

describe('a Graph host that pages in a circle', () => {
  let looping: https.Server;
  let loopingUrl: string;
  let bundleDir: string;
  let bundleFile: string;
  let requests = 0;

  beforeAll(async () => {
    // A real HTTPS Graph host whose every page links back to itself (cut off after 50 pages so
    // that a client which follows it for ever still ends this test).
    const tls = await createTlsMaterial(['127.0.0.1']);
    looping = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      if (req.method === 'POST') {
        // It is its own login host too (the client brings the authority metadata): one token.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3600, ext_expires_in: 3600, access_token: 'a.b.c' }));
        return;
      }
      requests++;
      const self = `${loopingUrl}${req.url ?? ''}`;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ value: [{ id: `p${requests}`, state: 'compliant' }], ...(requests < 50 ? { '@odata.nextLink': self } : {}) }));
    });
    await new Promise<void>((resolve) => looping.listen(0, '127.0.0.1', resolve));
    loopingUrl = `https://127.0.0.1:${(looping.address() as { port: number }).port}`;
    bundleDir = fs.mkdtempSync(path.join(os.tmpdir(), 'graph-ca-loop-'));
    bundleFile = path.join(bundleDir, 'bundle.pem');
    fs.writeFileSync(bundleFile, `${sim.caPem}\n${tls.caPem}`);
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => looping.close(() => resolve()));
    fs.rmSync(bundleDir, { recursive: true, force: true });
  });

  it('stops at a nextLink it has already followed instead of collecting for ever', async () => {
    const client = track(clientFor(sim, { graph: { graphUrl: loopingUrl, loginUrl: loopingUrl, caFile: bundleFile } }));
    const error = await failureOf(() => client.getCompliancePolicyStates(deviceId));
    expect(error).toMatchObject({ kind: 'malformed_response' });
    expect(requests).toBe(2);

    requests = 0;
    const pages: number[] = [];
    const listing = await failureOf(async () => {
      for await (const page of client.listDevices({ top: 1 })) pages.push(page.devices.length);
    });
    expect(listing).toMatchObject({ kind: 'malformed_response' });
    expect(requests).toBe(2);
  });
});
