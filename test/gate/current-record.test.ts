/**
 * One rule for "the current record" of an Entra device with several Intune records: the record
 * get_compliance reports and the record the gate decides on must be the same one, whatever the
 * records' times and whatever order Graph returns them in. Ties on the last sync are where two
 * rules could drift, so the generated times come from small pools that make ties common.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentRecord, currentRecordFirst } from '../../src/connector/current-record.js';
import type { InvocationContext } from '../../src/connector/contract.js';
import type { GetComplianceOutput } from '../../src/connector/operations.js';
import type { DevicePosture } from '../../src/connector/posture.js';
import { decide, decidingRecord } from '../../src/gate/index.js';
import { createPGliteDatabase } from '../helpers/db.js';
import { accordPolicy, answered, NOW, posture } from './fixtures.js';
import { DAY_MS, HOUR_MS, TENANT, deviceAllocator, isoAgo, openGateWorld, randomGuid, type GateWorld } from './helpers.js';

/** The documented rule, spelled out: most recent last sync, then later enrolment, then greater Intune id; null times lowest. */
function expectedCurrent(records: readonly DevicePosture[]): DevicePosture | undefined {
  const time = (iso: string | null) => (iso === null ? -Infinity : Date.parse(iso));
  let best: DevicePosture | undefined;
  for (const r of records) {
    if (best === undefined) {
      best = r;
      continue;
    }
    const key = [time(r.last_sync_at), time(r.enrolled_at)];
    const bestKey = [time(best.last_sync_at), time(best.enrolled_at)];
    if (key[0]! > bestKey[0]! || (key[0] === bestKey[0] && (key[1]! > bestKey[1]! || (key[1] === bestKey[1] && r.device_id > best.device_id)))) best = r;
  }
  return best;
}

const SYNC_TIMES = [null, '2025-06-10T10:00:00.000Z', '2025-06-10T11:00:00.000Z', '2025-06-09T11:00:00.000Z'] as const;
const ENROL_TIMES = [null, '2024-01-15T09:00:00.000Z', '2025-03-01T09:00:00.000Z'] as const;
const STATES = ['compliant', 'noncompliant', 'inGracePeriod', 'unknown', 'error'] as const;

const recordsArb = fc
  .uniqueArray(fc.uuid(), { minLength: 1, maxLength: 6 })
  .chain((ids) =>
    fc.tuple(
      ...ids.map((id) =>
        fc.record({ sync: fc.constantFrom(...SYNC_TIMES), enrol: fc.constantFrom(...ENROL_TIMES), state: fc.constantFrom(...STATES) }).map((r) =>
          posture({ device_id: id.toLowerCase(), last_sync_at: r.sync, enrolled_at: r.enrol, compliance_state: r.state }),
        ),
      ),
    ),
  );

describe('the current record (pure)', () => {
  const policy = accordPolicy({ strict: true });

  it('the connector order, the gate and the documented rule pick the same record, in any input order', () => {
    fc.assert(
      fc.property(recordsArb, fc.func(fc.integer()), (records, shuffleKey) => {
        const shuffled = [...records].sort((a, b) => shuffleKey(a.device_id) - shuffleKey(b.device_id));
        const reported = [...shuffled].sort(currentRecordFirst)[0];
        const decision = decide({ deviceId: { kind: 'guid', azureADDeviceId: '0fa4e5e1-0000-4000-8000-00000000c001' }, lookup: answered(shuffled), policy, now: NOW });
        const decidedOn = 'device' in decision ? decision.device : undefined;
        expect(reported).toBe(expectedCurrent(records));
        expect(decidedOn).toBe(reported);
        expect(decidingRecord(shuffled)).toBe(reported);
        expect(currentRecord(records)).toBe(reported);
      }),
      { numRuns: 500 },
    );
  });

  it('breaks a tie on the last sync by the later enrolment, then by the greater Intune id', () => {
    const synced = '2025-06-10T10:00:00.000Z';
    const old = posture({ device_id: 'ffffffff-0000-4000-8000-000000000001', last_sync_at: synced, enrolled_at: '2024-01-15T09:00:00.000Z' });
    const reenrolled = posture({ device_id: '00000000-0000-4000-8000-000000000002', last_sync_at: synced, enrolled_at: '2025-03-01T09:00:00.000Z' });
    expect([old, reenrolled].sort(currentRecordFirst)[0]).toBe(reenrolled);
    const twin = posture({ device_id: '00000000-0000-4000-8000-000000000003', last_sync_at: synced, enrolled_at: reenrolled.enrolled_at });
    expect([reenrolled, twin].sort(currentRecordFirst)[0]).toBe(twin);
    expect(currentRecord([twin, reenrolled])).toBe(twin);
  });
});

describe('get_compliance and the gate agree on the current record (simulator, real connector, PGlite Chronicle)', () => {
  let world: GateWorld;
  let group: { id: string; azureADDeviceId: string }[];

  beforeAll(async () => {
    world = await openGateWorld(createPGliteDatabase, {
      policy: { accords: { 'device-management': { device_compliance_required: true, strict: true } } },
      cacheTtlMs: 0,
    });
    const next = deviceAllocator(world.sim);
    group = [next(), next(), next(), next()];
  });
  afterAll(async () => world?.close());

  const context = (): InvocationContext => ({
    tenant: TENANT,
    actor: { kind: 'agent', id: 'current-record-test' },
    scope: { capabilities: ['READ'], ceremonyRequiredFor: [] },
    requestId: randomGuid(),
  });

  it('reports the record the gate decides on, with ties on the last sync', async () => {
    const NEVER = '0001-01-01T00:00:00Z';
    const syncs = [NEVER, isoAgo(world.clock, HOUR_MS), isoAgo(world.clock, 2 * HOUR_MS), isoAgo(world.clock, 3 * DAY_MS)];
    const enrolments = [NEVER, isoAgo(world.clock, 400 * DAY_MS), isoAgo(world.clock, 30 * DAY_MS)];
    const member = fc.record({ sync: fc.constantFrom(...syncs), enrol: fc.constantFrom(...enrolments), state: fc.constantFrom(...STATES) });
    await fc.assert(
      fc.asyncProperty(fc.array(member, { minLength: 2, maxLength: group.length }), async (members) => {
        const entra = randomGuid();
        group.forEach((device, i) => {
          const m = members[i];
          world.sim.updateDevice(
            device.id,
            m === undefined
              ? { azureADDeviceId: randomGuid() }
              : { azureADDeviceId: entra, lastSyncDateTime: m.sync, enrolledDateTime: m.enrol, complianceState: m.state },
          );
        });
        const reported = await world.connector.invoke('get_compliance', { azure_ad_device_id: entra }, context());
        const gated = await world.gate.check({ accord: 'device-management', claims: { deviceid: entra } });
        expect(reported.ok).toBe(true);
        if (!reported.ok) return;
        const value = reported.value as GetComplianceOutput;
        expect(value.record_count).toBe(members.length);
        expect(gated.device?.device_id).toBe(value.device_id);
        expect(expectedCurrent(value.devices)?.device_id).toBe(value.device_id);
      }),
      { numRuns: 30 },
    );
  });
});
