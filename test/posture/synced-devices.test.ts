/**
 * What a succeeded sync tells the compliance cache: the devices whose answers it changed (with
 * every Entra id they had), not the whole tenant; the whole tenant only when it cannot say.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SyncInvalidation } from '../../src/connector/index.js';
import type { Connection, PostureService } from '../../src/posture/index.js';
import { snapshotDiff } from '../../src/posture/snapshots.js';
import { forEachDatabase } from '../helpers/db.js';
import { ADMIN, openWorld, type World } from './helpers.js';

forEachDatabase('a sync tells the cache what it changed', (create) => {
  let world: World;
  let service: PostureService;
  let connection: Connection;
  const told: SyncInvalidation[] = [];

  beforeAll(async () => {
    world = await openWorld(await create(), { devices: 300, seed: 'synced-devices' });
    service = world.makeService({
      onSynced: async (tenant, changed) => {
        expect(tenant).toBe('default');
        told.push(changed);
      },
    });
    const bootstrapped = await service.bootstrapFromConfig(world.config);
    if (bootstrapped === null) throw new Error('no connection bootstrapped');
    connection = bootstrapped;
  }, 120_000);
  afterAll(async () => world?.close());

  const sync = async () => {
    const run = await (await service.startSync('default', connection.id, ADMIN)).done;
    expect(run.status).toBe('succeeded');
    return run;
  };

  it('drops the whole tenant after a first sync, then only the devices whose posture changed', async () => {
    await sync();
    expect(told).toEqual([{ all: true }]);

    const [a, b, c, d] = world.sim.devices.slice(0, 4).map((x) => ({ ...x }));
    const idOf = (x: typeof a) => String(x?.['id']).toLowerCase();
    const entraOf = (x: typeof a) => String(x?.['azureADDeviceId']).toLowerCase();
    world.sim.updateDevice(String(a?.['id']), { complianceState: a?.['complianceState'] === 'compliant' ? 'noncompliant' : 'compliant' });
    // A check-in alone changes no answer.
    world.sim.updateDevice(String(b?.['id']), { lastSyncDateTime: new Date().toISOString() });
    // A new Entra id: answers cached under the old and the new one both go.
    const newEntra = crypto.randomUUID();
    world.sim.updateDevice(String(c?.['id']), { azureADDeviceId: newEntra });
    world.sim.updateDevice(String(d?.['id']), { isEncrypted: d?.['isEncrypted'] !== true });
    const second = await sync();
    const changed = told.at(-1);
    expect(changed?.all).toBe(false);
    const devices = changed !== undefined && !changed.all ? [...changed.devices].sort((x, y) => x.deviceId.localeCompare(y.deviceId)) : [];
    expect(devices).toEqual(
      [
        { deviceId: idOf(a), azureADDeviceIds: [entraOf(a)] },
        { deviceId: idOf(c), azureADDeviceIds: expect.arrayContaining([entraOf(c), newEntra]) as unknown as string[] },
        { deviceId: idOf(d), azureADDeviceIds: [entraOf(d)] },
      ].sort((x, y) => x.deviceId.localeCompare(y.deviceId)),
    );
    expect(devices.find((x) => x.deviceId === idOf(c))?.azureADDeviceIds).toHaveLength(2);

    // Devices in one snapshot only (enrolled, removed) are listed too; past the cap, the whole tenant.
    const empty = crypto.randomUUID();
    const gone = (await snapshotDiff(world.db, second.id, empty)).synced;
    expect(!gone.all && gone.devices.length).toBe(300);
    expect(!gone.all && gone.devices.every((x) => x.azureADDeviceIds.length <= 1)).toBe(true);
    expect((await snapshotDiff(world.db, second.id, empty, 299)).synced).toEqual({ all: true });
  });
});
