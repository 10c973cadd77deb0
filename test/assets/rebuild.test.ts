/**
 * A from-scratch match against a real database (PostgreSQL and PGlite): the database numbers the
 * keys and the sources are written back in batches, and the result is what the matcher's rules say
 * for the same sources (the same assets, ids, anchors and conflicts), whatever the batch size;
 * re-running it changes nothing, and a serial two machines now claim splits its asset on record.
 */
import crypto from 'node:crypto';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { Db } from '../../src/db/index.js';
import type { AppendInput } from '../../src/chronicle/types.js';
import { assetIdOf, matchSources, sourceKey, type SourceIdentity } from '../../src/assets/match.js';
import { rebuildTenant } from '../../src/assets/rebuild.js';
import { forEachDatabase, type TestDatabase } from '../helpers/db.js';
import { samplePosture } from '../helpers/posture.js';

const TENANT = 'rebuild-t';
const CONNECTION = '0c0c0c0c-0000-4000-8000-000000000001';
const FP = (n: number) => `hmac-sha256:${n.toString(16).padStart(64, '0')}`;
const GUID = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

interface Fixture {
  readonly intune: readonly { id: string; serial: string | null; entra: string | null }[];
  readonly agents: readonly { id: string; serial: string | null; hardware: string | null }[];
}

/** Every case the rules name: serial joins, re-enrolment, Entra joins and conflicts of both kinds, lone sources. */
const FIXTURE: Fixture = {
  intune: [
    { id: 'i-serial1', serial: FP(1), entra: GUID(1) },
    { id: 'i-serial1-old', serial: FP(1), entra: GUID(101) },
    { id: 'i-noserial-e1', serial: null, entra: GUID(1) },
    { id: 'i-serial2', serial: FP(2), entra: GUID(2) },
    { id: 'i-serial3', serial: FP(3), entra: GUID(2) },
    { id: 'i-noserial-e2', serial: null, entra: GUID(2) },
    { id: 'i-entra-only-a', serial: null, entra: GUID(9) },
    { id: 'i-entra-only-b', serial: null, entra: GUID(9) },
    { id: 'i-alone', serial: null, entra: null },
    { id: 'i-serial4', serial: FP(4), entra: null },
  ],
  agents: [
    { id: GUID(201), serial: FP(1), hardware: FP(1001) },
    { id: GUID(202), serial: FP(4), hardware: FP(1002) },
    { id: GUID(203), serial: FP(4), hardware: FP(1003) },
    { id: GUID(204), serial: FP(4), hardware: null },
    { id: GUID(205), serial: FP(5), hardware: FP(1005) },
    { id: GUID(206), serial: null, hardware: null },
  ],
};

const identities = (f: Fixture): SourceIdentity[] => [
  ...f.intune.map((r): SourceIdentity => ({ kind: 'intune', origin: CONNECTION, source_id: r.id, serial_fingerprint: r.serial, hardware_fingerprint: null, entra_device_id: r.entra })),
  ...f.agents.map((a): SourceIdentity => ({ kind: 'agent', origin: '', source_id: a.id, serial_fingerprint: a.serial, hardware_fingerprint: a.hardware, entra_device_id: null })),
];

async function seed(db: Db, f: Fixture): Promise<void> {
  const run = crypto.randomUUID();
  await db.query(
    `INSERT INTO intune_connections (id, tenant, display_name, entra_tenant_id, client_id, cloud, secret_ref, status, origin, created_at, updated_at)
     VALUES ($1, $2, 'rebuild', 'contoso.onmicrosoft.com', $3, 'public', 'env:X', 'active', 'api', now(), now())`,
    [CONNECTION, TENANT, crypto.randomUUID()],
  );
  await db.query(`INSERT INTO intune_sync_runs (id, connection_id, tenant, status, trigger, holder, started_at, finished_at) VALUES ($1, $2, $3, 'succeeded', 'manual', 'test', now(), now())`, [
    run,
    CONNECTION,
    TENANT,
  ]);
  for (const r of f.intune) {
    const posture = samplePosture({ device_id: r.id, serial_fingerprint: r.serial, azure_ad_device_id: r.entra, last_sync_at: new Date().toISOString() });
    await db.query(
      `INSERT INTO intune_device_postures (snapshot_id, device_id, connection_id, tenant, os_family, compliance_state, ownership, last_sync_at, posture)
       VALUES ($1, $2, $3, $4, 'macos', 'compliant', 'company', now(), $5::jsonb)`,
      [run, r.id, CONNECTION, TENANT, JSON.stringify(posture)],
    );
  }
  await db.query('UPDATE intune_connections SET current_snapshot_id = $1 WHERE id = $2', [run, CONNECTION]);
  for (const [n, a] of f.agents.entries()) await addAgent(db, a, n);
}

async function addAgent(db: Db, a: Fixture['agents'][number], n: number): Promise<void> {
  await db.query(
    `INSERT INTO agents (agent_id, tenant, enrollment_id, token_id, platform, agent_class, os_family, os_version, model, serial_fingerprint, hardware_fingerprint,
       certificate_serial, certificate_expires_at, enrolled_at, last_seen_at, posture, posture_observed_at, posture_received_at)
     VALUES ($1, $2, $3, $4, 'darwin', 'endpoint', 'macos', '14.5', 'MacBookPro18,3', $5, $6, $4, now() + interval '30 days', now(), now(),
             '{"filevault": true, "firewall": true, "sip": true, "gatekeeper": true}'::jsonb, now(), now())`,
    [a.id, TENANT, crypto.randomUUID(), `t${n}-${a.id.slice(-4)}`, a.serial, a.hardware],
  );
}

/** What is stored: each source's asset, each asset's anchor and conflict flag, and the conflicts. */
async function stored(db: Db) {
  const sources = await db.query<{ kind: string; origin: string; source_id: string; asset_id: string }>(
    `SELECT kind, origin, source_id, asset_id::text AS asset_id FROM asset_sources WHERE tenant = $1`,
    [TENANT],
  );
  const assets = await db.query<{ asset_id: string; anchor: string; conflict: boolean; has_intune: boolean; has_agent: boolean }>(
    `SELECT asset_id::text AS asset_id, anchor, conflict, has_intune, has_agent FROM assets WHERE tenant = $1 ORDER BY asset_id`,
    [TENANT],
  );
  const conflicts = await db.query<{ conflict_key: string; asset_ids: string[] | string; sources: unknown }>(
    `SELECT conflict_key, asset_ids, sources FROM asset_conflicts WHERE tenant = $1 ORDER BY conflict_key`,
    [TENANT],
  );
  const parse = <T>(v: T | string): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);
  return {
    assetOf: new Map(sources.rows.map((r) => [`${r.kind}:${r.origin}:${r.source_id}`, r.asset_id])),
    assets: assets.rows,
    conflicts: conflicts.rows.map((c) => ({ key: c.conflict_key, asset_ids: parse(c.asset_ids), sources: parse(c.sources) })),
  };
}

forEachDatabase('from-scratch match', (create) => {
  let database: TestDatabase;
  let db: Db;
  beforeEach(async () => {
    database = await create();
    db = await database.open();
    await seed(db, FIXTURE);
  }, 60_000);
  afterEach(async () => {
    await database?.drop();
  });

  const rebuild = async (assetsPerBatch: number) => {
    const events: AppendInput[] = [];
    const report = await db.transaction((tx) => rebuildTenant(tx, { tenant: TENANT, at: new Date().toISOString(), record: async (e) => void events.push(...e), assetsPerBatch }));
    return { report, events };
  };

  it('stores what the matcher says for the same sources, in batches of any size', async () => {
    const expected = matchSources(identities(FIXTURE));
    const { report, events } = await rebuild(2);
    const now = await stored(db);
    expect(now.assetOf.size).toBe(FIXTURE.intune.length + FIXTURE.agents.length);
    expected.anchors.forEach((anchor, i) => expect(now.assetOf.get(expected.keys[i] as string), expected.keys[i]).toBe(assetIdOf(TENANT, anchor)));
    const anchors = [...new Set(expected.anchors)];
    expect(now.assets.map((a) => a.anchor).sort()).toEqual(anchors.sort());
    expect(now.conflicts).toEqual(
      expected.conflicts.map((c) => ({ key: c.key, asset_ids: c.anchors.map((a) => assetIdOf(TENANT, a)).sort(), sources: c.sources })),
    );
    const conflicted = new Set(now.conflicts.flatMap((c) => c.asset_ids));
    for (const a of now.assets) expect(a.conflict, a.anchor).toBe(conflicted.has(a.asset_id));
    expect(now.conflicts.map((c) => c.key.split(':')[0])).toEqual(['entra_device_id_on_several_assets', 'serial_on_several_machines']);

    // Every asset of several sources is one merge on record, whichever batch it was written in.
    const merges = events.filter((e) => e.type === 'asset.sources_merged').flatMap((e) => (e.data as { merges: { asset_id: string }[] }).merges);
    const several = [...new Set(expected.anchors.filter((a, i) => expected.anchors.indexOf(a) !== i))].map((a) => assetIdOf(TENANT, a));
    expect(merges.map((m) => m.asset_id).sort()).toEqual(several.sort());
    expect(report).toMatchObject({ sources: 16, assets: anchors.length, merged: several.length, split: 0, conflicts_detected: 2, conflicts_resolved: 0 });

    const again = await rebuild(4000);
    expect(again.report).toMatchObject({ merged: 0, split: 0, conflicts_detected: 0, conflicts_resolved: 0 });
    expect(await stored(db)).toEqual(now);
  });

  it('records a split when a serial that joined sources is claimed by a second machine', async () => {
    await rebuild(3);
    const assetOf = (id: string, kind: 'intune' | 'agent' = 'intune') => sourceKey({ kind, origin: kind === 'intune' ? CONNECTION : '', source_id: id });
    const before = await stored(db);
    const joined = before.assetOf.get(assetOf('i-serial1'));
    expect(before.assetOf.get(assetOf(GUID(201), 'agent'))).toBe(joined);

    await addAgent(db, { id: GUID(207), serial: FP(1), hardware: FP(1007) }, 99);
    const { report, events } = await rebuild(3);
    const after = await stored(db);
    // The Intune records keep together (the serial-less one by its Entra id); each machine's agent stands apart.
    const intune = after.assetOf.get(assetOf('i-serial1'));
    expect(after.assetOf.get(assetOf('i-serial1-old'))).toBe(intune);
    expect(after.assetOf.get(assetOf('i-noserial-e1'))).toBe(intune);
    const agents = [after.assetOf.get(assetOf(GUID(201), 'agent')), after.assetOf.get(assetOf(GUID(207), 'agent'))];
    expect(new Set([intune, ...agents]).size).toBe(3);
    expect(report).toMatchObject({ split: 1, conflicts_detected: 1, conflicts_resolved: 0 });
    const splits = events.filter((e) => e.type === 'asset.split').flatMap((e) => (e.data as { splits: unknown[] }).splits);
    expect(splits).toEqual([{ asset_id: joined, serial_fingerprint: null, into_asset_ids: [intune, agents[0]].sort() }]);
    const conflict = after.conflicts.find((c) => c.key === `serial_on_several_machines:${FP(1)}`);
    expect(conflict?.asset_ids).toEqual([intune, ...agents].sort());
  });
});
