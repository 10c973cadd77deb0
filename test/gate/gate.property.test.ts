/**
 * Property test of the evaluator with arbitrary accords and claims, against the real connector,
 * the simulator and a real Chronicle on PGlite: it throws only GateInputError (and then records
 * nothing), every answer has exactly one DEVICE_COMPLIANCE_CHECKED whose event it names and whose
 * decision and reason it repeats, and no PII value reaches the answer.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GateInputError } from '../../src/gate/index.js';
import { createPGliteDatabase } from '../helpers/db.js';
import { TENANT, leakedPii, openGateWorld, recordedChecks, type GateWorld } from './helpers.js';

const POLICY = {
  accords: {
    strict: { device_compliance_required: true, strict: true, max_checkin_age_days: 7 },
    permissive: { device_compliance_required: true, strict: false },
    open: { device_compliance_required: false },
    flipped: { device_compliance_required: true, decisions: { device_not_managed: 'allow', compliance_unknown: 'allow' } },
  },
};

describe('the gate with arbitrary accords and claims (property)', () => {
  let world: GateWorld;
  beforeAll(async () => {
    world = await openGateWorld(createPGliteDatabase, { policy: POLICY, requiredByDefault: true, strict: true });
  });
  afterAll(async () => world?.close());

  it('answers or refuses the input; each answer has exactly one record, matching it', async () => {
    const entra = world.sim.devices.map((d) => d['azureADDeviceId']).filter((v): v is string => typeof v === 'string');
    const deviceid = fc.oneof(
      fc.constantFrom(...entra),
      fc.constantFrom(...entra).map((v) => v.toUpperCase()),
      fc.uuid(),
      fc.string({ unit: 'binary', maxLength: 60 }),
      fc.anything(),
    );
    const accord = fc.oneof(fc.constantFrom('strict', 'permissive', 'open', 'flipped', 'unlisted', 'toString', '__proto__', 'constructor'), fc.string({ maxLength: 140 }), fc.anything());
    const claims = fc.oneof(fc.record({ deviceid }, { requiredKeys: [] }), fc.dictionary(fc.string({ maxLength: 10 }), fc.anything(), { maxKeys: 3 }), fc.anything());

    await fc.assert(
      fc.asyncProperty(accord, claims, async (a, c) => {
        const before = (await recordedChecks(world.db, TENANT)).length;
        let result;
        try {
          result = await world.gate.check({ accord: a as string, claims: c as Record<string, unknown> });
        } catch (err) {
          expect(err).toBeInstanceOf(GateInputError);
          expect((await recordedChecks(world.db, TENANT)).length).toBe(before);
          return;
        }
        const after = await recordedChecks(world.db, TENANT);
        expect(after.length - before).toBe(1);
        const event = after[after.length - 1];
        expect(result.event).toEqual({ seq: event?.seq, hash: event?.hash });
        expect(event?.data).toMatchObject({ decision: result.decision, reason: result.reason, evaluated: result.evaluated });
        expect(leakedPii(world.sim, JSON.stringify(result))).toEqual([]);
      }),
      { numRuns: 150 },
    );
  }, 120_000);
});
