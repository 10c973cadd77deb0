/**
 * On PostgreSQL verify's workers read their ranges over connections of their own. Those
 * connections can be refused or cut at any moment (a server restart, an administrator's
 * pg_terminate_backend, a connection limit): the answer must not change, only who reads.
 */
import { describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/index.js';
import { createChronicle } from '../../src/chronicle/index.js';
import { createPostgresDatabase, pgAvailable, suiteDatabase } from '../helpers/db.js';
import { changeBodyByte, editBodyRehashed, invoked, suiteWriter, uniqueTenant } from './helpers.js';

describe.skipIf(!pgAvailable())('verify with worker readers whose connections are cut [postgres]', () => {
  const suite = suiteDatabase(createPostgresDatabase);
  const writer = suiteWriter(suite);

  const chain = async (events: number): Promise<string> => {
    const tenant = uniqueTenant('cut');
    await Promise.all(Array.from({ length: events }, (_, i) => writer.append(invoked(tenant, i))));
    return tenant;
  };

  /** Terminates every reader connection of this database, over and over, until stopped. */
  const cutting = (applicationName: string) => {
    let stop = false;
    let cuts = 0;
    const loop = (async () => {
      while (!stop) {
        const { rows } = await suite.db.query<{ cut: boolean }>('SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [
          applicationName,
        ]);
        cuts += rows.filter((r) => r.cut).length;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    return {
      stop: async () => {
        stop = true;
        await loop;
        return cuts;
      },
    };
  };

  it('gives the same answer when every reader connection is terminated while it reads', async () => {
    const intact = await chain(3_000);
    const rehashed = await chain(3_000);
    await editBodyRehashed(suite.db, rehashed, 1_234);
    const changed = await chain(3_000);
    await changeBodyByte(suite.db, changed, 2_001, 60);

    // The readers' connections are told apart by their application name, so only they are cut.
    const own = suite.db.readerConnection?.bind(suite.db);
    expect(own).toBeDefined();
    const applicationName = `verify-cut-${Math.random().toString(36).slice(2, 8)}`;
    const readersCut: Db = { ...suite.db, readerConnection: () => ({ ...(own as NonNullable<Db['readerConnection']>)(), applicationName }) };
    const reference = await createChronicle({ db: suite.db, verify: { workers: 0, chunkSize: 100 } });
    const verifier = await createChronicle({ db: readersCut, verify: { workers: 2, minEventsForWorkers: 0, chunkSize: 100 } });
    try {
      const expected = [];
      for (const tenant of [intact, rehashed, changed]) expected.push((await reference.verify({ tenant })).chains);
      expect(expected.map((c) => c[0]?.firstBadSeq ?? null)).toEqual([null, 1_234, 2_001]);
      const cut = cutting(applicationName);
      const answers = [];
      try {
        for (let round = 0; round < 3; round++) {
          for (const tenant of [intact, rehashed, changed]) answers.push((await verifier.verify({ tenant })).chains);
        }
      } finally {
        const cuts = await cut.stop();
        // The cutting really met reader connections: otherwise this test would prove nothing.
        expect(cuts).toBeGreaterThan(0);
      }
      expect(answers).toEqual([...expected, ...expected, ...expected]);
      // Once nothing cuts them, the readers connect again and give the same answers.
      for (const [i, tenant] of [intact, rehashed, changed].entries()) expect((await verifier.verify({ tenant })).chains).toEqual(expected[i]);
    } finally {
      await reference.close();
      await verifier.close();
    }
  });
});
