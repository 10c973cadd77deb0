/** Starting, configuring and closing a simulator, as tests and `serve` do. */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatorError, startSimulator } from '../../src/simulator/index.js';
import { request } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sim-lifecycle-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('startSimulator', () => {
  it('writes its CA where asked, serves HTTPS for 127.0.0.1 and localhost, and cleans up on close', async () => {
    const caFile = path.join(dir, 'ca.pem');
    const sim = await startSimulator({ devices: 5, caFile, tenantId: 'contoso.example', clientId: 'app-1', clientSecret: 's3cret' });
    expect(readFileSync(caFile, 'utf8')).toBe(sim.caPem);
    expect(sim.caPem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(sim.env).toEqual({
      ENTRA_TENANT_ID: 'contoso.example',
      ENTRA_CLIENT_ID: 'app-1',
      ENTRA_CLIENT_SECRET: 's3cret',
      INTUNE_CLOUD: 'custom',
      INTUNE_LOGIN_URL: sim.loginUrl,
      INTUNE_GRAPH_URL: sim.graphUrl,
      INTUNE_CA_FILE: caFile,
    });
    const token = await sim.mintToken();
    const viaLocalhost = sim.graphUrl.replace('127.0.0.1', 'localhost');
    expect((await request(sim, `${viaLocalhost}/v1.0/deviceManagement/managedDevices`, { token })).status).toBe(200);

    await sim.close();
    await sim.close();
    expect(existsSync(caFile)).toBe(false);
    await expect(request(sim, '/v1.0/deviceManagement/managedDevices', { token })).rejects.toThrow();
  });

  it('keeps the same tenant and client ids for the same seed, and a fresh secret each start', async () => {
    const a = await startSimulator({ devices: 1, seed: 'ids' });
    const b = await startSimulator({ devices: 1, seed: 'ids' });
    try {
      expect(a.tenantId).toBe(b.tenantId);
      expect(a.clientId).toBe(b.clientId);
      expect(a.clientSecret).not.toBe(b.clientSecret);
      expect(a.graphUrl).not.toBe(b.graphUrl);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('keeps only the newest requests beyond requestLogLimit', async () => {
    const sim = await startSimulator({ devices: 1, requestLogLimit: 5 });
    try {
      for (let i = 0; i < 12; i++) await request(sim, `/v1.0/deviceManagement/managedDevices?n=${i}`);
      const log = sim.requests();
      expect(log).toHaveLength(5);
      expect(log.map((r) => r.url)).toEqual([7, 8, 9, 10, 11].map((i) => `/v1.0/deviceManagement/managedDevices?n=${i}`));
      expect(log.every((r) => r.status === 401 && r.authorization === false)).toBe(true);
    } finally {
      await sim.close();
    }
  });

  it.each([
    [{ host: '0.0.0.0' }, /loopback only/],
    [{ port: 70_000 }, /port is 70000/],
    [{ devices: -3 }, /devices is -3/],
    [{ throttle: { requestsPer20s: 0 } }, /throttle.requestsPer20s/],
    [{ tenantId: 'bad tenant!' }, /tenantId is "bad tenant!"/],
    [{ faults: { resetRate: 2 } }, /resetRate \(reset\) is 2/],
    [{ clientCertificates: [{ pem: 'nope' }] }, /clientCertificates\[0\] is not a PEM certificate/],
  ])('refuses %o with a typed error', async (options, message) => {
    const err = await startSimulator(options as Parameters<typeof startSimulator>[0]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimulatorError);
    expect((err as Error).message).toMatch(message);
  });

  it('refuses a port already in use', async () => {
    const first = await startSimulator({ devices: 1 });
    try {
      const port = Number(new URL(first.graphUrl).port);
      await expect(startSimulator({ devices: 1, port })).rejects.toThrow(/port \d+ is already in use/);
    } finally {
      await first.close();
    }
  });
});
