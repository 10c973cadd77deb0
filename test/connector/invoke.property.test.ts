/**
 * Property tests of IntuneConnector.invoke with arbitrary operations, inputs and (valid) contexts,
 * against the simulator, real MSAL and a real Chronicle on PGlite: a call never throws (the
 * context is valid and Chronicle is up), each call appends exactly one CONNECTOR_INVOKED, and no
 * PII value of the simulated tenant is ever in an answer.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPGliteDatabase, type TestDatabase } from '../helpers/db.js';
import type { Db } from '../../src/db/index.js';
import type { Chronicle } from '../../src/chronicle/index.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { OPERATION_NAMES } from '../../src/connector/contract.js';
import type { InvocationContext } from '../../src/connector/contract.js';
import { auditEvents, findLeaks, graphFor, makeConnector, openChronicle, piiValues, type ClosableGraph } from './helpers.js';

let sim: SimulatorHandle;
let tdb: TestDatabase;
let db: Db;
let chronicle: Chronicle;
let graph: ClosableGraph;

beforeAll(async () => {
  sim = await startSimulator({ devices: 20, seed: 'invoke-property' });
  tdb = await createPGliteDatabase();
  db = await tdb.open();
  ({ chronicle } = await openChronicle(db));
  graph = graphFor(sim);
});
afterAll(async () => {
  await chronicle?.close().catch(() => undefined);
  await graph?.close();
  await tdb?.drop();
  await sim?.close();
});

let tenantCounter = 0;

describe('IntuneConnector.invoke, arbitrary calls (property)', () => {
  it('never throws on a valid context, records exactly one CONNECTOR_INVOKED per call, and never answers PII', async () => {
    const ids = sim.devices.map((d) => String(d['id']));
    const entraIds = sim.devices.map((d) => String(d['azureADDeviceId']));
    const pii = piiValues(sim.devices);
    const id = fc.oneof(fc.constantFrom(...ids), fc.constantFrom(...entraIds), fc.uuid(), fc.string({ unit: 'binary', maxLength: 60 }), fc.anything());
    const input = fc.oneof(
      fc.anything(),
      fc.record({ device_id: id }, { requiredKeys: [] }),
      fc.record({ azure_ad_device_id: id, include_policies: fc.anything() }, { requiredKeys: [] }),
      fc.record(
        { page_size: fc.oneof(fc.integer({ min: -5, max: 2000 }), fc.anything()), os_family: fc.anything(), ownership: fc.anything(), cursor: fc.anything() },
        { requiredKeys: [] },
      ),
    );
    const call = fc.record({
      operation: fc.oneof(fc.constantFrom(...OPERATION_NAMES), fc.string({ unit: 'binary', maxLength: 40 }), fc.anything()),
      input,
      // Lone surrogates, and a pair that a 200-unit cut would split, have no canonical JSON form.
      actorId: fc.oneof(
        fc.string({ unit: 'binary', maxLength: 260 }),
        fc.anything(),
        fc.constantFrom('\uD800', 'agent-\uDC00', `${'a'.repeat(199)}\u{1F600}`, `${'\u{1F600}'.repeat(120)}`),
      ),
      requestId: fc.oneof(fc.string({ unit: 'binary', maxLength: 140 }), fc.anything()),
      kind: fc.constantFrom('agent', 'service', 'human'),
      scope: fc.oneof(
        fc.anything(),
        fc.record(
          {
            capabilities: fc.subarray(['READ', 'PROPOSE', 'MUTATE', 'BOGUS']),
            operations: fc.option(fc.subarray([...OPERATION_NAMES, 'x'])),
            ceremonyRequiredFor: fc.subarray([...OPERATION_NAMES]),
          },
          { requiredKeys: ['capabilities'] },
        ),
      ),
      channel: fc.anything(),
      aborted: fc.boolean(),
    });

    await fc.assert(
      fc.asyncProperty(call, async (c) => {
        tenantCounter += 1;
        const tenant = `prop-${process.pid}-${tenantCounter}`;
        const connector = makeConnector({ chronicle, graph, db });
        const context = {
          tenant,
          actor: { kind: c.kind, id: c.actorId },
          scope: c.scope,
          requestId: c.requestId,
          channel: c.channel,
          ...(c.aborted ? { signal: AbortSignal.abort() } : {}),
        } as unknown as InvocationContext;
        const outcome = await connector.invoke(c.operation as string, c.input, context);
        const events = await auditEvents(db, tenant);
        expect(events).toHaveLength(1);
        expect(events[0]?.seq).toBe(outcome.audit.seq);
        expect(findLeaks(JSON.stringify(outcome), pii)).toEqual([]);
      }),
      { numRuns: 150 },
    );
  }, 120_000);
});
