/**
 * The gate end to end: claims → real connector (compliance cache, Graph client, MSAL) → the
 * simulator over HTTPS → decision → DEVICE_COMPLIANCE_CHECKED in a real Chronicle, on PostgreSQL
 * and on PGlite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { validateEventData } from '../../src/chronicle/index.js';
import { DevicePostureSchema } from '../../src/connector/posture.js';
import { GateInputError, createGate, type GateResult } from '../../src/gate/index.js';
import { forEachDatabase } from '../helpers/db.js';
import {
  DAY_MS,
  HOUR_MS,
  NO_GRACE,
  TENANT,
  composeGate,
  deviceAllocator,
  isoAgo,
  isoAhead,
  leakedPii,
  lookupsOf,
  openChronicleOn,
  openGateWorld,
  randomGuid,
  recordedChecks,
  type ComposedGate,
  type GateWorld,
} from './helpers.js';

const POLICY = {
  defaults: { stale_max_seconds: 120 },
  accords: {
    'device-management': { device_compliance_required: true, strict: true, max_checkin_age_days: null },
    'weekly-checkin': { device_compliance_required: true, max_checkin_age_days: 7 },
    'no-stale-serve': { device_compliance_required: true, stale_max_seconds: 0 },
    'byod-reporting': { device_compliance_required: true, strict: false, decisions: { device_not_managed: 'allow' } },
  },
};

forEachDatabase('the compliance gate end to end', (create) => {
  let world: GateWorld;
  let nextDevice: () => { id: string; azureADDeviceId: string };

  beforeAll(async () => {
    world = await openGateWorld(create, { policy: POLICY, cacheTtlMs: 60_000, staleMaxMs: 300_000 });
    nextDevice = deviceAllocator(world.sim);
  });
  afterAll(async () => world?.close());

  /** A device of the simulated tenant in the given state, freshly synced unless the patch says otherwise. */
  function deviceIn(patch: Record<string, unknown>): { id: string; azureADDeviceId: string } {
    const device = nextDevice();
    world.sim.updateDevice(device.id, { complianceGracePeriodExpirationDateTime: NO_GRACE, lastSyncDateTime: isoAgo(world.clock, HOUR_MS), ...patch });
    return device;
  }

  async function expectRecorded(result: GateResult, data: Record<string, unknown>): Promise<Record<string, unknown>> {
    expect(result.event).not.toBeNull();
    const events = await recordedChecks(world.db);
    const event = events.find((e) => e.seq === result.event?.seq);
    expect(event, 'the decision has its DEVICE_COMPLIANCE_CHECKED record').toBeDefined();
    expect(event?.hash).toBe(result.event?.hash);
    expect(event?.data).toMatchObject({ decision: result.decision, reason: result.reason, evaluated: result.evaluated, ...data });
    expect(validateEventData('DEVICE_COMPLIANCE_CHECKED', event?.data as Record<string, unknown>).ok).toBe(true);
    return event?.data as Record<string, unknown>;
  }

  it('compliant: allow, with the redacted record and its event', async () => {
    const device = deviceIn({ complianceState: 'compliant' });
    const result = await world.gate.check({ accord: 'device-management', claims: { deviceid: device.azureADDeviceId, upn: 'someone@contoso.example' } });
    expect(result).toMatchObject({ decision: 'allow', reason: 'compliant', evaluated: true });
    expect(DevicePostureSchema.parse(result.device)).toMatchObject({ device_id: device.id, azure_ad_device_id: device.azureADDeviceId, compliance_state: 'compliant' });
    const data = await expectRecorded(result, {
      accord: 'device-management',
      mode: 'strict',
      required: true,
      cache_hit: false,
      served_stale: false,
      intune_device_id: device.id,
      azure_ad_device_id: device.azureADDeviceId,
      record_count: 1,
      compliance_state: 'compliant',
      channel: 'library',
    });
    expect(data['last_sync_at']).toBe(result.device?.last_sync_at);
    expect(leakedPii(world.sim, JSON.stringify(result))).toEqual([]);
  });

  it('a second check of the same device is a cache hit: one Graph lookup for both', async () => {
    const device = deviceIn({ complianceState: 'compliant' });
    await world.gate.check({ accord: 'device-management', claims: { deviceid: device.azureADDeviceId } });
    const again = await world.gate.check({ accord: 'device-management', claims: { deviceid: device.azureADDeviceId.toUpperCase() } });
    expect(again).toMatchObject({ decision: 'allow', reason: 'compliant' });
    await expectRecorded(again, { cache_hit: true, azure_ad_device_id: device.azureADDeviceId });
    expect(lookupsOf(world.sim, device.azureADDeviceId)).toBe(1);
  });

  it('noncompliant: deny', async () => {
    const device = deviceIn({ complianceState: 'noncompliant' });
    const result = await world.gate.check({ accord: 'device-management', claims: { deviceid: device.azureADDeviceId } });
    expect(result).toMatchObject({ decision: 'deny', reason: 'noncompliant', evaluated: true, device: { device_id: device.id } });
    expect(result.message).toMatch(/not compliant/);
    await expectRecorded(result, { compliance_state: 'noncompliant', intune_device_id: device.id });
  });

  it('in grace: allow before the grace period ends, deny once it has (same cached answer, later clock)', async () => {
    const device = deviceIn({ complianceState: 'inGracePeriod', complianceGracePeriodExpirationDateTime: isoAhead(world.clock, 30_000) });
    const before = await world.gate.check({ accord: 'device-management', claims: { deviceid: device.azureADDeviceId } });
    expect(before).toMatchObject({ decision: 'allow', reason: 'in_grace_period', device: { grace_period_expires_at: expect.any(String) } });
    await expectRecorded(before, { compliance_state: 'inGracePeriod' });

    world.clock.advance(31_000);
    const after = await world.gate.check({ accord: 'device-management', claims: { deviceid: device.azureADDeviceId } });
    expect(after).toMatchObject({ decision: 'deny', reason: 'grace_period_expired' });
    await expectRecorded(after, { cache_hit: true, compliance_state: 'inGracePeriod' });
  });

  it('an expired grace period reported by Intune: deny', async () => {
    const device = deviceIn({ complianceState: 'inGracePeriod', complianceGracePeriodExpirationDateTime: isoAgo(world.clock, DAY_MS) });
    expect(await world.gate.check({ accord: 'device-management', claims: { deviceid: device.azureADDeviceId } })).toMatchObject({
      decision: 'deny',
      reason: 'grace_period_expired',
    });
  });

  it('stale check-in: compliant but last synced 30 days ago, under an accord accepting 7 → deny stale_checkin', async () => {
    const device = deviceIn({ complianceState: 'compliant', lastSyncDateTime: isoAgo(world.clock, 30 * DAY_MS) });
    const result = await world.gate.check({ accord: 'weekly-checkin', claims: { deviceid: device.azureADDeviceId } });
    expect(result).toMatchObject({ decision: 'deny', reason: 'stale_checkin', evaluated: true });
    expect(result.message).toMatch(/longer ago than this accord accepts \(7 days\)/);
    await expectRecorded(result, { accord: 'weekly-checkin', mode: 'permissive', compliance_state: 'compliant' });
    // The same device is fine for an accord without a check-in limit.
    expect(await world.gate.check({ accord: 'device-management', claims: { deviceid: device.azureADDeviceId } })).toMatchObject({ decision: 'allow' });
  });

  it('unknown device: deny device_not_managed (or allow, for an accord that overrides that row)', async () => {
    const unknown = randomGuid();
    const result = await world.gate.check({ accord: 'device-management', claims: { deviceid: unknown } });
    expect(result).toMatchObject({ decision: 'deny', reason: 'device_not_managed', evaluated: true, device: null });
    await expectRecorded(result, { record_count: 0, intune_device_id: null, azure_ad_device_id: unknown, compliance_state: null, last_sync_at: null });
    expect(await world.gate.check({ accord: 'byod-reporting', claims: { deviceid: unknown } })).toMatchObject({ decision: 'allow', reason: 'device_not_managed' });
  });

  it('several records for one Entra id (re-enrolment): the most recently synced decides; the count is recorded', async () => {
    const older = deviceIn({ complianceState: 'compliant', lastSyncDateTime: isoAgo(world.clock, 20 * DAY_MS) });
    const newer = deviceIn({ complianceState: 'noncompliant', lastSyncDateTime: isoAgo(world.clock, 2 * HOUR_MS) });
    const third = deviceIn({ complianceState: 'compliant', lastSyncDateTime: isoAgo(world.clock, 5 * DAY_MS) });
    world.sim.updateDevice(newer.id, { azureADDeviceId: older.azureADDeviceId });
    world.sim.updateDevice(third.id, { azureADDeviceId: older.azureADDeviceId });
    const result = await world.gate.check({ accord: 'device-management', claims: { deviceid: older.azureADDeviceId } });
    expect(result).toMatchObject({ decision: 'deny', reason: 'noncompliant', device: { device_id: newer.id } });
    await expectRecorded(result, { record_count: 3, intune_device_id: newer.id, compliance_state: 'noncompliant' });
  });

  it('strict without a device id: deny device_id_missing; permissive: allow unevaluated; neither asks Graph', async () => {
    const before = world.sim.requests().length;
    const strict = await world.gate.check({ accord: 'device-management', claims: { iss: 'https://keycloak.example/realms/ops', sub: 'u1' } });
    expect(strict).toMatchObject({ decision: 'deny', reason: 'device_id_missing', evaluated: false, device: null });
    await expectRecorded(strict, { mode: 'strict', azure_ad_device_id: null, record_count: 0, cache_hit: false });
    const permissive = await world.gate.check({ accord: 'byod-reporting' });
    expect(permissive).toMatchObject({ decision: 'allow', reason: 'device_id_missing_permissive', evaluated: false });
    await expectRecorded(permissive, { mode: 'permissive' });
    expect(world.sim.requests().length).toBe(before);
  });

  it.each([
    ['an OData injection', "' or 1 eq 1"],
    ['a number', 12345],
    ['an object', { $ne: null }],
    ['a GUID with a filter appended', "0fa4e5e1-0000-4000-8000-00000000c001' or azureADDeviceId ne '"],
  ])('a deviceid claim that is %s: deny device_id_invalid, recorded without its value, never sent to Graph', async (_label, value) => {
    const before = world.sim.requests().length;
    const result = await world.gate.check({ accord: 'device-management', claims: { deviceid: value } });
    expect(result).toMatchObject({ decision: 'deny', reason: 'device_id_invalid', evaluated: false });
    await expectRecorded(result, { azure_ad_device_id: null });
    expect(world.sim.requests().length).toBe(before);
  });

  it('an accord that does not require compliance: allow without asking Graph', async () => {
    const before = world.sim.requests().length;
    const result = await world.gate.check({ accord: 'read-only-reporting', claims: { deviceid: randomGuid() } });
    expect(result).toMatchObject({ decision: 'allow', reason: 'compliance_not_required', evaluated: false, device: null });
    await expectRecorded(result, { required: false });
    expect(world.sim.requests().length).toBe(before);
  });

  it('a bad accord name is refused before anything is looked up or recorded', async () => {
    const seqBefore = (await recordedChecks(world.db)).length;
    await expect(world.gate.check({ accord: 'bad accord!', claims: {} })).rejects.toMatchObject({ name: 'GateInputError', code: 'invalid_accord' });
    await expect(world.gate.check({ accord: 'ok', claims: [] as unknown as Record<string, unknown> })).rejects.toBeInstanceOf(GateInputError);
    await expect(world.gate.check({ accord: 'ok', tenant: '../other' })).rejects.toMatchObject({ code: 'invalid_tenant' });
    expect((await recordedChecks(world.db)).length).toBe(seqBefore);
  });

  describe('Graph outage', () => {
    afterAll(() => world.sim.setFaults({}));

    it('fails closed: an uncached device while Graph answers 503 → deny compliance_unavailable', async () => {
      const device = deviceIn({ complianceState: 'compliant' });
      world.sim.setFaults({ unavailableRate: 1, retryAfterSeconds: 3 });
      try {
        const result = await world.gate.check({ accord: 'device-management', claims: { deviceid: device.azureADDeviceId } });
        expect(result).toMatchObject({ decision: 'deny', reason: 'compliance_unavailable', evaluated: false, device: null });
        expect(result.message).toMatch(/could not be asked/);
        await expectRecorded(result, { cache_hit: false, served_stale: false, record_count: 0, azure_ad_device_id: device.azureADDeviceId });
      } finally {
        world.sim.setFaults({});
      }
    });

    it("serves a stale answer within the accord's window, and denies beyond it", async () => {
      const device = deviceIn({ complianceState: 'compliant' });
      const claims = { deviceid: device.azureADDeviceId };
      expect(await world.gate.check({ accord: 'device-management', claims })).toMatchObject({ decision: 'allow', reason: 'compliant' });

      world.clock.advance(61_000); // past the 60 s cache TTL
      world.sim.setFaults({ unavailableRate: 1 });
      try {
        const stale = await world.gate.check({ accord: 'device-management', claims });
        expect(stale).toMatchObject({ decision: 'allow', reason: 'compliant', evaluated: true });
        await expectRecorded(stale, { served_stale: true, cache_hit: true });

        // This accord accepts no stale answer at all.
        expect(await world.gate.check({ accord: 'no-stale-serve', claims })).toMatchObject({ decision: 'deny', reason: 'compliance_unavailable' });

        world.clock.advance(120_000); // 121 s past the TTL: beyond the accords' 120 s, within the global 300 s
        const tooOld = await world.gate.check({ accord: 'device-management', claims });
        expect(tooOld).toMatchObject({ decision: 'deny', reason: 'compliance_unavailable' });
        await expectRecorded(tooOld, { served_stale: false });
      } finally {
        world.sim.setFaults({});
      }
      // Graph is back: a fresh answer.
      const back = await world.gate.check({ accord: 'device-management', claims });
      expect(back).toMatchObject({ decision: 'allow', reason: 'compliant' });
      await expectRecorded(back, { served_stale: false, cache_hit: false });
    });
  });

  describe('Graph throttling', () => {
    let sim: SimulatorHandle;
    let throttled: ComposedGate;
    beforeAll(async () => {
      // Its own simulator with a budget of two Graph requests per window, on its own chain.
      sim = await startSimulator({ devices: 10, seed: 'gate-throttle', throttle: { requestsPer20s: 2 } });
      throttled = composeGate({ sim, chronicle: world.chronicle, clock: world.clock, tenant: 'throttled' }, { policy: POLICY });
    });
    afterAll(async () => {
      await throttled?.close();
      await sim?.close();
    });

    it('429 from Graph (no cached answer): deny compliance_unavailable, saying when to retry', async () => {
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await throttled.gate.check({ accord: 'device-management', claims: { deviceid: randomGuid() } }));
      expect(results.slice(0, 2).map((r) => r.reason)).toEqual(['device_not_managed', 'device_not_managed']);
      for (const refused of results.slice(2)) {
        expect(refused).toMatchObject({ decision: 'deny', reason: 'compliance_unavailable', evaluated: false });
        expect(refused.message).toMatch(/\(throttled\).*try again in \d+ s/);
      }
      expect(sim.requests().filter((r) => r.kind === 'graph' && r.status === 429).length).toBeGreaterThanOrEqual(2);
      const events = await recordedChecks(world.db, 'throttled');
      expect(events.map((e) => e.data['reason'])).toEqual(['device_not_managed', 'device_not_managed', 'compliance_unavailable', 'compliance_unavailable']);
    });
  });

  it("nothing of the devices' PII reaches the recorded events", async () => {
    const { rows } = await world.db.query<{ body: string }>(`SELECT body FROM chronicle_event`);
    expect(rows.length).toBeGreaterThan(10);
    expect(leakedPii(world.sim, rows.map((r) => r.body).join('\n'))).toEqual([]);
  });

  describe('Chronicle down (runs last: it drops the database)', () => {
    it('a closed Chronicle: deny audit_unavailable, no event', async () => {
      const chronicle = await openChronicleOn(world.db);
      await chronicle.close();
      const gate = createGate({ connector: world.connector, chronicle, policy: world.policy, tenant: TENANT });
      expect(await gate.check({ accord: 'read-only-reporting', claims: {} })).toMatchObject({ decision: 'deny', reason: 'audit_unavailable', event: null });
    });

    it("the Chronicle's database dropped: a compliant device is refused, audit_unavailable, with no event and no device", async () => {
      const device = deviceIn({ complianceState: 'compliant' });
      const claims = { deviceid: device.azureADDeviceId };
      // Recorded while the database is there (and the answer is now cached)...
      expect(await world.gate.check({ accord: 'device-management', claims })).toMatchObject({ decision: 'allow', event: { seq: expect.any(Number) } });
      await world.database.drop();
      // ...refused once it is gone.
      const started = Date.now();
      const result = await world.gate.check({ accord: 'device-management', claims });
      expect(result).toEqual({
        decision: 'deny',
        reason: 'audit_unavailable',
        evaluated: true,
        message: expect.stringMatching(/could not be recorded/),
        device: null,
        failed_rules: [],
        failing_settings: [],
        event: null,
      });
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  });
});
