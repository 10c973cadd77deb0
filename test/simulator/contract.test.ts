/**
 * What the simulator serves agrees with Microsoft's published managedDevice metadata
 * (specs/graph/managedDevice.v1.json), for generated tenants of several seeds and for a replayed tenant file.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LIST_DEFAULTS,
  MANAGED_DEVICE_PROPERTIES,
  SimulatorError,
  startSimulator,
  type SimulatorHandle,
} from '../../src/simulator/index.js';
import { request } from './helpers.js';
import { SAMPLE_MACOS, SHARED_PROPERTIES, schemaProblems } from './schema.js';

async function listAll(sim: SimulatorHandle, token: string, query = '$top=1000'): Promise<Record<string, unknown>[]> {
  const devices: Record<string, unknown>[] = [];
  let next: string | undefined = `/v1.0/deviceManagement/managedDevices?${query}`;
  while (next !== undefined) {
    const res = await request(sim, next, { token });
    expect(res.status).toBe(200);
    const page = res.json as { value: Record<string, unknown>[]; '@odata.nextLink'?: string };
    devices.push(...page.value);
    next = page['@odata.nextLink'];
  }
  return devices;
}

describe('the property table', () => {
  it('matches specs/graph/managedDevice.v1.json name by name, in Graph order', () => {
    expect(MANAGED_DEVICE_PROPERTIES.map((p) => p.name).sort()).toEqual(SHARED_PROPERTIES.map((p) => p.name).sort());
    for (const shared of SHARED_PROPERTIES) {
      const mine = MANAGED_DEVICE_PROPERTIES.find((p) => p.name === shared.name);
      expect(mine?.edmType).toBe(shared.type);
      expect(mine?.nullable).toBe(shared.nullable);
      expect(mine?.pii).toBe(shared.pii);
      expect(mine?.enumValues).toEqual(shared.enumValues);
    }
    expect(MANAGED_DEVICE_PROPERTIES.map((p) => p.name)).toEqual(Object.keys(SAMPLE_MACOS).filter((k) => !k.startsWith('@')));
  });
});

describe.each(['alpha', 'omega'])('a generated tenant (seed %s) over HTTPS', (seed) => {
  let sim: SimulatorHandle;
  let token: string;
  beforeAll(async () => {
    sim = await startSimulator({ devices: 120, seed });
    token = await sim.mintToken();
  });
  afterAll(() => sim.close());

  it('lists every device with exactly the 56 properties, each of its type', async () => {
    const listed = await listAll(sim, token, '$top=50');
    expect(listed).toHaveLength(120);
    for (const device of listed) expect(schemaProblems(device), String(device['id'])).toEqual([]);
    expect(listed.map((d) => d['id'])).toEqual(sim.devices.map((d) => d['id']));
  });

  it('leaves the GET-only properties at their defaults in a list, and shows them on GET by id', async () => {
    const listed = await listAll(sim, token);
    for (const device of listed) {
      for (const [name, value] of Object.entries(LIST_DEFAULTS)) expect(device[name], name).toEqual(value);
    }
    const rich = sim.devices.find((d) => typeof d['activationLockBypassCode'] === 'string' && typeof d['udid'] === 'string' && d['udid'] !== '');
    expect(rich).toBeDefined();
    const res = await request(sim, `/v1.0/deviceManagement/managedDevices/${String(rich?.['id'])}`, { token });
    expect(res.status).toBe(200);
    const got = res.json as Record<string, unknown>;
    expect(got['@odata.context']).toBe(`${sim.graphUrl}/v1.0/$metadata#deviceManagement/managedDevices/$entity`);
    const { '@odata.context': _context, ...device } = got;
    expect(schemaProblems(device)).toEqual([]);
    expect(device['activationLockBypassCode']).toBe(rich?.['activationLockBypassCode']);
    expect(device['udid']).toBe(rich?.['udid']);
    expect(device['physicalMemoryInBytes']).toBeGreaterThan(0);
    expect(device).toEqual(rich);
  });
});

describe('a tenant file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sim-tenant-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('replays an exported page, filling what it lacks with Graph defaults', async () => {
    const { '@odata.context': _c, ...sample } = SAMPLE_MACOS;
    const partial = { id: '0fa4e5e1-0000-4000-8000-00000000a002', complianceState: 'noncompliant', operatingSystem: 'Windows' };
    const file = path.join(dir, 'page.json');
    await writeFile(file, JSON.stringify({ value: [sample, partial] }));
    const sim = await startSimulator({ tenantFile: file });
    try {
      const token = await sim.mintToken();
      const listed = await listAll(sim, token);
      expect(listed.map((d) => d['id'])).toEqual([sample['id'], partial.id]);
      for (const device of listed) expect(schemaProblems(device)).toEqual([]);
      const filled = listed[1] as Record<string, unknown>;
      expect(filled['complianceState']).toBe('noncompliant');
      expect(filled['complianceGracePeriodExpirationDateTime']).toBe('9999-12-31T23:59:59Z');
      expect(filled['lastSyncDateTime']).toBe('0001-01-01T00:00:00Z');
      expect(filled['managementAgent']).toBe('unknown');
      expect(filled['deviceActionResults']).toEqual([]);
      const got = await request(sim, `/v1.0/deviceManagement/managedDevices/${String(sample['id'])}`, { token });
      const { '@odata.context': _ctx, ...device } = got.json as Record<string, unknown>;
      expect(device).toEqual(sample);
    } finally {
      await sim.close();
    }
  });

  it('accepts a bare array', async () => {
    const file = path.join(dir, 'array.json');
    await writeFile(file, JSON.stringify([{ id: '0fa4e5e1-0000-4000-8000-00000000a003' }]));
    // devices is ignored when a tenant file decides (callers spread their defaults over it).
    const sim = await startSimulator({ devices: 50, tenantFile: file });
    expect(sim.devices).toHaveLength(1);
    await sim.close();
  });

  it('refuses invalid devices with every problem named', async () => {
    const file = path.join(dir, 'bad.json');
    await writeFile(
      file,
      JSON.stringify([
        { id: 'not-a-guid' },
        { id: '0fa4e5e1-0000-4000-8000-00000000a004', complianceState: 'green', isEncrypted: 'yes', favouriteColour: 'blue', lastSyncDateTime: 'yesterday' },
      ]),
    );
    const err = await startSimulator({ tenantFile: file }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimulatorError);
    expect((err as SimulatorError).code).toBe('tenant_file_invalid');
    const message = (err as Error).message;
    expect(message).toContain('5 problem(s)');
    expect(message).toMatch(/device 0: id must be the Intune managed device GUID/);
    expect(message).toMatch(/complianceState must be one of unknown, compliant/);
    expect(message).toMatch(/isEncrypted must be true or false/);
    expect(message).toMatch(/'favouriteColour' is not a v1.0 managedDevice property/);
    expect(message).toMatch(/lastSyncDateTime must be an ISO 8601 date-time/);
  });

  it('refuses a file that is not JSON, not a list, or missing', async () => {
    const notJson = path.join(dir, 'text.json');
    await writeFile(notJson, 'hello');
    await expect(startSimulator({ tenantFile: notJson })).rejects.toThrow(/not valid JSON/);
    const notList = path.join(dir, 'object.json');
    await writeFile(notList, '{"devices": []}');
    await expect(startSimulator({ tenantFile: notList })).rejects.toThrow(/JSON array of managedDevice objects/);
    await expect(startSimulator({ tenantFile: path.join(dir, 'missing.json') })).rejects.toMatchObject({ code: 'tenant_file_unreadable' });
  });
});
