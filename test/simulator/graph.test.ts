/** Graph v1.0 managedDevices over real HTTPS: paging, $select, $count, get, policy states, actions, tokens. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLE_READ, ROLE_READ_WRITE, startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { request } from './helpers.js';

const LIST = '/v1.0/deviceManagement/managedDevices';
type Page = { '@odata.context': string; '@odata.count'?: number; '@odata.nextLink'?: string; value: Record<string, unknown>[] };
type GraphErrorBody = { error: { code: string; message: string; innerError: Record<string, string> } };

let sim: SimulatorHandle;
let token: string;
beforeAll(async () => {
  sim = await startSimulator({ devices: 2_500, seed: 'graph' });
  token = await sim.mintToken();
});
afterAll(() => sim.close());

describe('paging', () => {
  it('pages 1000 at a time by default and visits every device exactly once', async () => {
    const seen: string[] = [];
    const sizes: number[] = [];
    let next: string | undefined = LIST;
    while (next !== undefined) {
      const res = await request(sim, next, { token });
      expect(res.status).toBe(200);
      const page = res.json as Page;
      expect(page['@odata.context']).toBe(`${sim.graphUrl}/v1.0/$metadata#deviceManagement/managedDevices`);
      sizes.push(page.value.length);
      seen.push(...page.value.map((d) => String(d['id'])));
      next = page['@odata.nextLink'];
      if (next !== undefined) {
        expect(next.startsWith(`${sim.graphUrl}/v1.0/deviceManagement/managedDevices?`)).toBe(true);
        expect(new URL(next).searchParams.get('$skiptoken')).toBeTruthy();
      }
    }
    expect(sizes).toEqual([1000, 1000, 500]);
    expect(new Set(seen).size).toBe(2_500);
    expect(seen).toEqual(sim.devices.map((d) => d['id']));
  });

  it('keeps $top, $select, $filter and $count in the nextLink', async () => {
    const first = await request(sim, `${LIST}?$top=7&$select=id,complianceState&$count=true&$filter=${encodeURIComponent("operatingSystem eq 'macOS'")}`, { token });
    const page = first.json as Page;
    const macs = sim.devices.filter((d) => d['operatingSystem'] === 'macOS');
    expect(page['@odata.count']).toBe(macs.length);
    expect(page.value).toHaveLength(7);
    const second = await request(sim, String(page['@odata.nextLink']), { token });
    const page2 = second.json as Page;
    expect(page2['@odata.count']).toBe(macs.length);
    expect(page2.value.map((d) => d['id'])).toEqual(macs.slice(7, 14).map((d) => d['id']));
    expect(Object.keys(page2.value[0] ?? {})).toEqual(['@odata.type', 'id', 'complianceState']);
  });

  it.each([
    ['1001', 400, /The limit of '1000' for Top query has been exceeded/],
    ['0', 400, /whole number from 1 to 1000/],
    ['-5', 400, /whole number from 1 to 1000/],
    ['ten', 400, /whole number from 1 to 1000/],
    ['1000', 200, undefined],
    ['1', 200, undefined],
  ])('$top=%s answers %i', async (top, status, message) => {
    const res = await request(sim, `${LIST}?$top=${top}`, { token });
    expect(res.status).toBe(status);
    if (message !== undefined) {
      expect((res.json as GraphErrorBody).error.code).toBe('BadRequest');
      expect((res.json as GraphErrorBody).error.message).toMatch(message);
    } else {
      expect((res.json as Page).value).toHaveLength(Number(top));
    }
  });

  it('refuses a tampered skiptoken, or one moved to another filter', async () => {
    const page = (await request(sim, `${LIST}?$top=5`, { token })).json as Page;
    const link = new URL(String(page['@odata.nextLink']));
    const skiptoken = String(link.searchParams.get('$skiptoken'));
    const [payload] = skiptoken.split('.');
    const forged = `${Buffer.from(JSON.stringify({ v: 1, o: 2000, f: JSON.parse(Buffer.from(String(payload), 'base64url').toString()).f })).toString('base64url')}.${skiptoken.split('.')[1]}`;
    for (const bad of [forged, `${skiptoken}x`, 'garbage', '']) {
      const res = await request(sim, `${LIST}?$top=5&$skiptoken=${encodeURIComponent(bad)}`, { token });
      expect(res.status, bad).toBe(400);
      expect((res.json as GraphErrorBody).error.message).toMatch(/\$skiptoken is invalid/);
    }
    const moved = await request(sim, `${LIST}?$top=5&$filter=${encodeURIComponent("complianceState eq 'compliant'")}&$skiptoken=${encodeURIComponent(skiptoken)}`, { token });
    expect(moved.status).toBe(400);
    const honest = await request(sim, link.pathname + link.search, { token });
    expect(honest.status).toBe(200);
  });

  it('counts with $count=true, with or without ConsistencyLevel, and refuses $count with an azureADDeviceId filter', async () => {
    for (const headers of [{}, { ConsistencyLevel: 'eventual' }]) {
      const res = await request(sim, `${LIST}?$count=true&$top=1`, { token, headers });
      expect((res.json as Page)['@odata.count']).toBe(2_500);
    }
    const none = await request(sim, `${LIST}?$top=1`, { token });
    expect((none.json as Page)['@odata.count']).toBeUndefined();
    const bad = await request(sim, `${LIST}?$count=maybe`, { token });
    expect(bad.status).toBe(400);
    const aad = String(sim.devices.find((d) => typeof d['azureADDeviceId'] === 'string')?.['azureADDeviceId']);
    const combined = await request(sim, `${LIST}?$count=true&$filter=${encodeURIComponent(`azureADDeviceId eq '${aad}'`)}`, { token });
    expect(combined.status).toBe(400);
    const plain = await request(sim, `${LIST}/$count`, { token });
    expect(plain.text).toBe('2500');
  });

  it('refuses unknown $select properties, repeated and unsupported query options', async () => {
    const select = await request(sim, `${LIST}?$select=id,shoeSize`, { token });
    expect(select.status).toBe(400);
    expect((select.json as GraphErrorBody).error.message).toMatch(/Could not find a property named 'shoeSize'/);
    const twice = await request(sim, `${LIST}?$top=5&$top=6`, { token });
    expect((twice.json as GraphErrorBody).error.message).toMatch(/specified more than once/);
    const orderby = await request(sim, `${LIST}?$orderby=deviceName`, { token });
    expect(orderby.status).toBe(400);
    const ignored = await request(sim, `${LIST}?$top=2&api-version=whatever`, { token });
    expect(ignored.status).toBe(200);
  });
});

describe('single devices', () => {
  it('answers 404 ResourceNotFound for an unknown id and 400 for a non-GUID id', async () => {
    const missing = await request(sim, `${LIST}/00000000-0000-4000-8000-000000000000`, { token });
    expect(missing.status).toBe(404);
    expect((missing.json as GraphErrorBody).error.code).toBe('ResourceNotFound');
    const bad = await request(sim, `${LIST}/not-a-guid`, { token });
    expect(bad.status).toBe(400);
    expect((bad.json as GraphErrorBody).error.code).toBe('BadRequest');
  });

  it('applies $select to GET by id', async () => {
    const id = String(sim.devices[3]?.['id']);
    const res = await request(sim, `${LIST}/${id}?$select=id,udid,notes`, { token });
    expect(res.json).toEqual({
      '@odata.context': `${sim.graphUrl}/v1.0/$metadata#deviceManagement/managedDevices(id,udid,notes)/$entity`,
      '@odata.type': '#microsoft.graph.managedDevice',
      id,
      udid: sim.devices[3]?.['udid'],
      notes: sim.devices[3]?.['notes'],
    });
  });

  it('lists compliance policy states consistent with the device state', async () => {
    const noncompliant = sim.devices.find((d) => d['complianceState'] === 'noncompliant' && d['operatingSystem'] === 'macOS');
    const res = await request(sim, `${LIST}/${String(noncompliant?.['id'])}/deviceCompliancePolicyStates`, { token });
    expect(res.status).toBe(200);
    const body = res.json as { '@odata.context': string; value: Record<string, unknown>[] };
    expect(body['@odata.context']).toContain(`managedDevices('${String(noncompliant?.['id'])}')/deviceCompliancePolicyStates`);
    expect(body.value.length).toBeGreaterThan(0);
    for (const state of body.value) {
      expect(Object.keys(state).sort()).toEqual(['@odata.type', 'displayName', 'id', 'platformType', 'settingCount', 'settingStates', 'state', 'version']);
      expect(state['platformType']).toBe('macOS');
      expect(['compliant', 'nonCompliant']).toContain(state['state']);
      expect(Number.isInteger(state['settingCount'])).toBe(true);
    }
    expect(body.value.some((s) => s['state'] === 'nonCompliant')).toBe(true);
  });

  it('shows a flipped state on the next read (updateDevice)', async () => {
    const id = String(sim.devices[10]?.['id']);
    sim.updateDevice(id, { complianceState: 'error', lastSyncDateTime: '2024-01-01T00:00:00Z' });
    const res = await request(sim, `${LIST}/${id}`, { token });
    expect((res.json as Record<string, unknown>)['complianceState']).toBe('error');
    const filtered = await request(sim, `${LIST}?$filter=${encodeURIComponent(`id eq '${id}' and complianceState eq 'error'`)}`, { token });
    expect((filtered.json as Page).value).toHaveLength(1);
    expect(sim.devices[10]?.['complianceState']).toBe('error');
    expect(() => sim.updateDevice(id, { complianceState: 'green' })).toThrow(/complianceState must be one of/);
    expect(() => sim.updateDevice(id, { shoeSize: 42 })).toThrow(/not a managedDevice property/);
    expect(() => sim.updateDevice('00000000-0000-4000-8000-000000000000', {})).toThrow(/No served device/);
  });

  it("answers unknown paths and the beta endpoint with 404 and Graph's body", async () => {
    for (const path of ['/v1.0/deviceManagement/detectedApps', '/beta/deviceManagement/managedDevices', '/v1.0/me']) {
      const res = await request(sim, path, { token });
      expect(res.status, path).toBe(404);
      expect((res.json as GraphErrorBody).error.code).toBe('ResourceNotFound');
    }
    const wrongMethod = await request(sim, LIST, { token, method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
  });
});

describe('device actions', () => {
  it('answers 204 and records each action with its device', async () => {
    sim.clearRequests();
    const id = String(sim.devices[20]?.['id']);
    for (const action of ['syncDevice', 'remoteLock', 'retire', 'wipe']) {
      const res = await request(sim, `${LIST}/${id}/${action}`, { token, method: 'POST', body: action === 'wipe' ? '{"keepUserData":false}' : '' });
      expect(res.status, action).toBe(204);
      expect(res.text).toBe('');
    }
    expect(sim.requests().map((r) => [r.action, r.deviceId, r.status])).toEqual([
      ['syncDevice', id, 204],
      ['remoteLock', id, 204],
      ['retire', id, 204],
      ['wipe', id, 204],
    ]);
    const device = (await request(sim, `${LIST}/${id}`, { token })).json as Record<string, unknown>;
    expect(device['managementState']).toBe('wipePending');
    expect((device['deviceActionResults'] as { actionName: string }[]).map((r) => r.actionName)).toEqual(
      expect.arrayContaining(['syncDevice', 'remoteLock', 'retire', 'wipe']),
    );
  });

  it('refuses GET on an action, a bad body and an unknown device without recording an action', async () => {
    sim.clearRequests();
    const id = String(sim.devices[21]?.['id']);
    expect((await request(sim, `${LIST}/${id}/syncDevice`, { token })).status).toBe(405);
    expect((await request(sim, `${LIST}/${id}/wipe`, { token, method: 'POST', body: '{not json' })).status).toBe(400);
    expect((await request(sim, `${LIST}/00000000-0000-4000-8000-000000000000/syncDevice`, { token, method: 'POST' })).status).toBe(404);
    expect(sim.requests().filter((r) => r.action !== undefined)).toEqual([]);
  });

  it('needs PrivilegedOperations.All: ReadWrite.All alone gets 403 and nothing is performed', async () => {
    sim.clearRequests();
    const limited = await sim.mintToken({ roles: [ROLE_READ, ROLE_READ_WRITE] });
    const res = await request(sim, `${LIST}/${String(sim.devices[22]?.['id'])}/syncDevice`, { token: limited, method: 'POST' });
    expect(res.status).toBe(403);
    const body = res.json as GraphErrorBody;
    expect(body.error.code).toBe('Forbidden');
    expect(body.error.message).toMatch(/DeviceManagementManagedDevices.PrivilegedOperations.All/);
    expect(sim.requests().filter((r) => r.action !== undefined)).toEqual([]);
  });
});

describe('access tokens on Graph', () => {
  const expectUnauthorized = async (headers: Record<string, string>, message: RegExp): Promise<void> => {
    const res = await request(sim, `${LIST}?$top=1`, { headers });
    expect(res.status).toBe(401);
    const body = res.json as GraphErrorBody;
    expect(body.error.code).toBe('InvalidAuthenticationToken');
    expect(body.error.message).toMatch(message);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
  };

  it('refuses a missing or malformed token', async () => {
    await expectUnauthorized({}, /Access token is empty/);
    await expectUnauthorized({ authorization: 'Basic abc' }, /Access token is empty/);
    await expectUnauthorized({ authorization: 'Bearer not-a-jwt' }, /JWT is not well formed/);
    await expectUnauthorized({ authorization: 'Bearer a.b.c' }, /Access token validation failure/);
  });

  it('refuses an expired token with the lifetime message', async () => {
    await expectUnauthorized({ authorization: `Bearer ${await sim.mintToken({ expiresInSeconds: -60 })}` }, /^Lifetime validation failed, the token is expired\.$/);
  });

  it('refuses a token for another audience, another tenant, or signed by an unknown key', async () => {
    await expectUnauthorized({ authorization: `Bearer ${await sim.mintToken({ audience: 'https://graph.microsoft.com' })}` }, /Invalid audience/);
    await expectUnauthorized({ authorization: `Bearer ${await sim.mintToken({ tenantId: '11111111-1111-4111-8111-111111111111' })}` }, /Invalid issuer/);
    await expectUnauthorized({ authorization: `Bearer ${await sim.mintToken({ untrustedKey: true })}` }, /Signature validation failed/);
  });

  it('answers 403 Forbidden to a token without a Read role', async () => {
    const res = await request(sim, `${LIST}?$top=1`, { token: await sim.mintToken({ roles: [] }) });
    expect(res.status).toBe(403);
    expect((res.json as GraphErrorBody).error.code).toBe('Forbidden');
  });

  it('carries the claims Graph tokens carry', async () => {
    const [, payload] = token.split('.');
    const claims = JSON.parse(Buffer.from(String(payload), 'base64url').toString()) as Record<string, unknown>;
    expect(claims).toMatchObject({
      aud: sim.graphUrl,
      iss: `https://sts.windows.net/${sim.tenantId}/`,
      tid: sim.tenantId,
      appid: sim.clientId,
      roles: [
        'DeviceManagementManagedDevices.Read.All',
        'DeviceManagementManagedDevices.ReadWrite.All',
        'DeviceManagementManagedDevices.PrivilegedOperations.All',
      ],
    });
    expect(Number(claims['exp'])).toBeGreaterThan(Date.now() / 1000 + 3000);
  });

  it('echoes client-request-id and sends request-id on success', async () => {
    const res = await request(sim, `${LIST}?$top=1`, { token, headers: { 'client-request-id': 'abc-123' } });
    expect(res.headers.get('client-request-id')).toBe('abc-123');
    expect(res.headers.get('request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(sim.requests().at(-1)).toMatchObject({ kind: 'graph', status: 200, authorization: true, clientRequestId: 'abc-123' });
  });
});
