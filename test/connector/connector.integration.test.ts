/**
 * IntuneConnector end to end: the simulator over real HTTPS with real MSAL, the real Graph client,
 * a real Chronicle on PostgreSQL and on PGlite.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { forEachDatabase, type TestDatabase } from '../helpers/db.js';
import type { Db } from '../../src/db/index.js';
import type { Chronicle } from '../../src/chronicle/index.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { AuditUnavailableError, createIntuneConnector, type IntuneConnector, OPERATION_SCHEMAS } from '../../src/connector/index.js';
import { ChronicleError } from '../../src/chronicle/types.js';
import { DevicePostureSchema } from '../../src/connector/posture.js';
import {
  DEFAULT_OPTIONS,
  UNCONNECTED,
  auditEvents,
  freshTenant,
  tenant,
  context,
  dumpAllTables,
  findLeaks,
  graphFor,
  graphRequests,
  makeConnector,
  openChronicle,
  piiValues,
  type ClosableGraph,
} from './helpers.js';

const DEVICE_COUNT = 100;
let sim: SimulatorHandle;

beforeAll(async () => {
  sim = await startSimulator({ devices: DEVICE_COUNT, seed: 'connector-tests' });
});
afterAll(async () => {
  await sim?.close();
});

const raw = () => sim.devices;
const deviceIds = () => raw().map((d) => String(d['id']));
const device = (pred: (d: Readonly<Record<string, unknown>>) => boolean) => {
  const found = raw().find(pred);
  if (found === undefined) throw new Error('the simulated tenant lacks a device the test needs');
  return found;
};

forEachDatabase('IntuneConnector', (createDatabase) => {
  let tdb: TestDatabase;
  let db: Db;
  let chronicle: Chronicle;
  let graph: ClosableGraph;
  let connector: IntuneConnector;

  // One database, Chronicle and Graph client per suite; each test works in its own tenant (its own
  // audit chain, cache keys and cooldown rows) with a fresh connector.
  beforeAll(async () => {
    tdb = await createDatabase();
    db = await tdb.open();
    ({ chronicle } = await openChronicle(db));
    graph = graphFor(sim);
  });
  afterAll(async () => {
    await chronicle?.close().catch(() => undefined);
    await graph?.close();
    await tdb?.drop();
  });
  beforeEach(() => {
    freshTenant();
    connector = makeConnector({ chronicle, graph, db });
    sim.setFaults({});
    sim.clearRequests();
  });

  describe('scope', () => {
    it('allows each READ operation to a READ scope and denies it without READ', async () => {
      const id = deviceIds()[0] as string;
      const reads = [
        ['list_devices', { page_size: 5 }],
        ['get_device', { device_id: id }],
        ['get_compliance', { device_id: id }],
      ] as const;
      for (const [op, input] of reads) {
        const allowed = await connector.invoke(op, input, context({ capabilities: ['READ'] }));
        expect(allowed.ok, op).toBe(true);
        if (allowed.ok) expect(OPERATION_SCHEMAS[op].output.safeParse(allowed.value).success, op).toBe(true);
        const denied = await connector.invoke(op, input, context({ capabilities: ['PROPOSE'] }));
        expect(denied).toMatchObject({ ok: false, kind: 'denied', reason: 'capability_not_granted' });
      }
      const events = await auditEvents(db);
      expect(events.map((e) => [e.data['operation'], e.data['decision'], e.data['reason']])).toEqual([
        ['list_devices', 'allowed', 'allowed'],
        ['list_devices', 'denied', 'capability_not_granted'],
        ['get_device', 'allowed', 'allowed'],
        ['get_device', 'denied', 'capability_not_granted'],
        ['get_compliance', 'allowed', 'allowed'],
        ['get_compliance', 'denied', 'capability_not_granted'],
      ]);
    });

    it('allows sync_device with PROPOSE only, and narrows by the operation list', async () => {
      const id = deviceIds()[1] as string;
      expect(await connector.invoke('sync_device', { device_id: id }, context({ capabilities: ['READ'] }))).toMatchObject({
        ok: false,
        reason: 'capability_not_granted',
      });
      expect(graphRequests(sim).filter((r) => r.method === 'POST')).toHaveLength(0);
      const ok = await connector.invoke('sync_device', { device_id: id }, context({ capabilities: ['READ', 'PROPOSE'] }));
      expect(ok).toMatchObject({ ok: true, value: { status: 'requested' } });
      expect(graphRequests(sim).filter((r) => r.action === 'syncDevice').map((r) => r.deviceId)).toEqual([id]);
      const narrowed = await connector.invoke('get_device', { device_id: id }, context({ operations: ['get_compliance'] }));
      expect(narrowed).toMatchObject({ ok: false, kind: 'denied', reason: 'operation_not_granted' });
    });

    it('a sync_device cancelled before it started sends nothing and does not hold the device in its cooldown', async () => {
      const id = deviceIds()[4] as string;
      const propose = context({ capabilities: ['READ', 'PROPOSE'] });
      const cancelled = await connector.invoke('sync_device', { device_id: id }, { ...propose, signal: AbortSignal.abort() });
      expect(cancelled).toMatchObject({ ok: false, kind: 'failed', reason: 'cancelled' });
      expect(graphRequests(sim).filter((r) => r.action === 'syncDevice')).toHaveLength(0);
      // Intune was never asked, so asking again asks Intune (not "recently requested").
      expect(await connector.invoke('sync_device', { device_id: id }, propose)).toMatchObject({ ok: true, value: { status: 'requested' } });
      expect(graphRequests(sim).filter((r) => r.action === 'syncDevice').map((r) => r.deviceId)).toEqual([id]);
      expect((await auditEvents(db)).map((e) => e.data['reason'])).toEqual(['cancelled', 'allowed']);
    });

    it('denies every MUTATE operation even to a scope that grants it, with zero Graph calls, and audits it', async () => {
      const id = deviceIds()[2] as string;
      const everything = context({ capabilities: ['READ', 'PROPOSE', 'MUTATE'], operations: ['remote_lock', 'retire_device', 'wipe_device'] });
      for (const op of ['remote_lock', 'retire_device', 'wipe_device'] as const) {
        const outcome = await connector.invoke(op, { device_id: id, reason: 'Stolen laptop of Alex Quillfeather' }, everything);
        expect(outcome).toMatchObject({ ok: false, kind: 'denied', reason: 'operation_disabled' });
        expect(!outcome.ok && outcome.message).toContain(`${op} is disabled in Phase 1: MUTATE operations are not enabled in this deployment`);
      }
      expect(sim.requests()).toHaveLength(0);
      const events = await auditEvents(db);
      expect(events.map((e) => e.data)).toEqual(
        ['remote_lock', 'retire_device', 'wipe_device'].map((op) => ({
          operation: op,
          capability: 'MUTATE',
          decision: 'denied',
          reason: 'operation_disabled',
          outcome: 'denied',
          target: { device_id: id },
          duration_ms: expect.any(Number),
          graph_request_id: null,
          channel: 'library',
        })),
      );
      expect(JSON.stringify(events)).not.toContain('Quillfeather');
      const all = { capabilities: ['READ', 'PROPOSE', 'MUTATE'] as const, ceremonyRequiredFor: [] };
      expect(connector.permittedOperations({ ...all, capabilities: [...all.capabilities] }).map((d) => d.name)).toEqual([
        'list_devices',
        'get_device',
        'get_compliance',
        'find_asset',
        'sync_device',
      ]);
    });

    it('denies intune_disabled for a tenant without a connection, and when Intune is off (audited)', async () => {
      const id = deviceIds()[0] as string;
      const unconnected = `${UNCONNECTED}-${tenant()}`;
      const other = await connector.invoke('get_device', { device_id: id }, context({}, { tenant: unconnected }));
      expect(other).toMatchObject({ ok: false, kind: 'denied', reason: 'intune_disabled' });
      const off = makeConnector({ chronicle, graph, options: { intuneEnabled: false } });
      expect(await off.invoke('get_device', { device_id: id }, context())).toMatchObject({ ok: false, reason: 'intune_disabled' });
      expect(off.permittedOperations(context().scope)).toEqual([]);
      expect(sim.requests()).toHaveLength(0);
      expect((await auditEvents(db, unconnected)).map((e) => e.data['reason'])).toEqual(['intune_disabled']);
      expect((await auditEvents(db)).map((e) => e.data['reason'])).toEqual(['intune_disabled']);
    });
  });

  describe('ceremony hook', () => {
    const approved = { verify: async (ctx: { ceremony?: { approvalId: string } }) => ctx.ceremony?.approvalId === 'approval-42' };

    it('runs remote_lock against Intune once a policy enables it and the ceremony verifies; the default build still denies', async () => {
      const id = deviceIds()[3] as string;
      const enabled = makeConnector({ chronicle, graph, db, options: { enabledMutations: ['remote_lock'] }, ceremony: approved });
      const scope = { capabilities: ['MUTATE'] as const, ceremonyRequiredFor: ['remote_lock'] as const };
      const ctx = context({ capabilities: [...scope.capabilities], ceremonyRequiredFor: [...scope.ceremonyRequiredFor] });

      expect(await enabled.invoke('remote_lock', { device_id: id }, ctx)).toMatchObject({ ok: false, reason: 'ceremony_required' });
      expect(await enabled.invoke('remote_lock', { device_id: id }, { ...ctx, ceremony: { approvalId: 'forged' } })).toMatchObject({
        ok: false,
        reason: 'ceremony_required',
      });
      // enabled by policy, still governed by the scope: no MUTATE capability, or not among the named operations
      expect(await enabled.invoke('remote_lock', { device_id: id }, context({ capabilities: ['READ', 'PROPOSE'] }, { ceremony: { approvalId: 'approval-42' } }))).toMatchObject({
        reason: 'capability_not_granted',
      });
      expect(
        await enabled.invoke('remote_lock', { device_id: id }, context({ capabilities: ['MUTATE'], operations: ['wipe_device'] }, { ceremony: { approvalId: 'approval-42' } })),
      ).toMatchObject({ reason: 'operation_not_granted' });
      expect(graphRequests(sim)).toHaveLength(0);

      const done = await enabled.invoke('remote_lock', { device_id: id }, { ...ctx, ceremony: { approvalId: 'approval-42' } });
      expect(done).toMatchObject({ ok: true, value: { status: 'requested' } });
      expect(graphRequests(sim).filter((r) => r.method === 'POST').map((r) => [r.action, r.deviceId, r.status])).toEqual([['remoteLock', id, 204]]);
      // wipe stays disabled: only the operations the policy names are enabled.
      expect(await enabled.invoke('wipe_device', { device_id: id }, { ...ctx, ceremony: { approvalId: 'approval-42' } })).toMatchObject({
        reason: 'operation_disabled',
      });

      sim.clearRequests();
      expect(await connector.invoke('remote_lock', { device_id: id }, { ...ctx, ceremony: { approvalId: 'approval-42' } })).toMatchObject({
        reason: 'operation_disabled',
      });
      expect(sim.requests()).toHaveLength(0);
      const reasons = (await auditEvents(db)).map((e) => `${e.data['operation']}:${e.data['reason']}`);
      expect(reasons).toEqual([
        'remote_lock:ceremony_required',
        'remote_lock:ceremony_required',
        'remote_lock:capability_not_granted',
        'remote_lock:operation_not_granted',
        'remote_lock:allowed', 'wipe_device:operation_disabled', 'remote_lock:operation_disabled']);
    });
  });

  describe('bad input', () => {
    it('answers typed invalid_input denials with the field, never reaching Graph or recording the text', async () => {
      const injected = "x' or 1 eq 1 or id eq '";
      const cases: [string, unknown, string][] = [
        ['get_device', { device_id: 42 }, 'device_id'],
        ['get_device', { device_id: injected }, 'device_id'],
        ['get_compliance', { azure_ad_device_id: `00000000-0000-0000-0000-000000000000' or '1' eq '1` }, 'azure_ad_device_id'],
        ['get_compliance', {}, 'device_id'],
        ['list_devices', { page_size: 1000 }, 'page_size'],
        ['list_devices', { page_size: '10' }, 'page_size'],
        ['list_devices', { compliance_state: `compliant' or complianceState eq 'noncompliant` }, 'compliance_state'],
        ['list_devices', { last_sync_after: "2025-01-01T00:00:00Z' or 1 eq 1" }, 'last_sync_after'],
        ['list_devices', { cursor: 'forged-cursor' }, 'cursor'],
        ['list_devices', { $filter: injected }, '$filter'],
        ['list_devices', 'page_size=5', 'input'],
        ['list_devices', null, 'input'],
        ['sync_device', { device_id: [injected] }, 'device_id'],
      ];
      for (const [op, input, field] of cases) {
        const outcome = await connector.invoke(op, input, context({ capabilities: ['READ', 'PROPOSE'] }));
        expect(outcome, `${op} ${JSON.stringify(input)}`).toMatchObject({ ok: false, kind: 'denied', reason: 'invalid_input', field });
        expect(!outcome.ok && outcome.message.length).toBeGreaterThan(10);
      }
      const unknown = await connector.invoke('drop_all_devices; --', { device_id: injected }, context());
      expect(unknown).toMatchObject({ ok: false, kind: 'denied', reason: 'unknown_operation' });
      expect(graphRequests(sim)).toHaveLength(0);

      const events = await auditEvents(db);
      expect(events).toHaveLength(cases.length + 1);
      expect(events.at(-1)?.data).toMatchObject({ operation: 'unknown', capability: null, reason: 'unknown_operation', target: {} });
      const recorded = JSON.stringify(events);
      expect(recorded).not.toContain(' or ');
      expect(recorded).not.toContain('drop_all_devices');
    });

    it('refuses a cursor replayed with other filters or for another tenant', async () => {
      const first = await connector.invoke('list_devices', { page_size: 2, compliance_state: 'compliant' }, context());
      expect(first.ok).toBe(true);
      const cursor = first.ok ? (first.value as { next_cursor: string }).next_cursor : '';
      expect(cursor).toBeTruthy();
      expect(cursor).not.toContain('skiptoken');
      expect(await connector.invoke('list_devices', { cursor, compliance_state: 'noncompliant' }, context())).toMatchObject({
        reason: 'invalid_input',
        field: 'cursor',
      });
      const otherTenant = makeConnector({ chronicle, graph: undefined });
      expect(await otherTenant.invoke('list_devices', { cursor, compliance_state: 'compliant' }, context({}, { tenant: `${tenant()}-other` }))).toMatchObject({
        reason: 'invalid_input',
        field: 'cursor',
      });
      expect(await connector.invoke('list_devices', { cursor, compliance_state: 'compliant' }, context())).toMatchObject({ ok: true });
    });
  });

  describe('audit', () => {
    it('records one event per invocation, in order, with actor, request id, target, outcome and Graph request id', async () => {
      const [a, b] = deviceIds() as [string, string];
      const calls: [string, unknown, ReturnType<typeof context>][] = [
        ['get_device', { device_id: a }, context()],
        ['get_device', { device_id: '0fa4e5e1-0000-4000-8000-0000000fffff' }, context()],
        ['sync_device', { device_id: b }, context()],
        ['get_compliance', { device_id: a }, context({}, { actor: { kind: 'human', id: 'alice\u0000\nadmin' }, requestId: 'has spaces' })],
        ['get_compliance', { device_id: a }, context({}, { channel: 'mcp' })],
      ];
      const seqs: number[] = [];
      for (const [op, input, ctx] of calls) seqs.push((await connector.invoke(op, input, ctx)).audit.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));

      const events = await auditEvents(db);
      expect(events.map((e) => e.seq)).toEqual(seqs);
      expect(events.map((e) => [e.data['operation'], e.data['decision'], e.data['outcome'], e.data['reason']])).toEqual([
        ['get_device', 'allowed', 'succeeded', 'allowed'],
        ['get_device', 'allowed', 'failed', 'not_found'],
        ['sync_device', 'denied', 'denied', 'capability_not_granted'],
        ['get_compliance', 'allowed', 'succeeded', 'allowed'],
        ['get_compliance', 'allowed', 'succeeded', 'allowed'],
      ]);
      expect(events[0]).toMatchObject({ actor: { kind: 'agent', id: 'agent:test' }, request_id: 'req-test' });
      expect(events[0]?.data).toMatchObject({ target: { device_id: a }, result_count: 1, capability: 'READ', channel: 'library' });
      expect(events[0]?.data['graph_request_id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(events[1]?.data['graph_request_id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(events[3]).toMatchObject({ actor: { kind: 'human', id: 'alice??admin' }, request_id: null, data: { cache: { hit: false, stale: false } } });
      expect(events[4]?.data).toMatchObject({ cache: { hit: true, stale: false }, graph_request_id: null, channel: 'mcp' });
    });

    it('fails the call with AuditUnavailableError when Chronicle cannot record, and hands out no data', async () => {
      const id = deviceIds()[0] as string;
      const own = await createDatabase();
      const ownChronicle = (await openChronicle(await own.open())).chronicle;
      const down = makeConnector({ chronicle: ownChronicle, graph });
      expect(await down.invoke('get_compliance', { device_id: id }, context())).toMatchObject({ ok: true });
      await own.drop(); // the database under Chronicle is gone
      const call = down.invoke('get_compliance', { device_id: id }, context());
      await expect(call).rejects.toBeInstanceOf(AuditUnavailableError);
      await expect(call).rejects.toMatchObject({ code: 'unavailable' });
      await expect(down.invoke('remote_lock', { device_id: id }, context())).rejects.toBeInstanceOf(ChronicleError);
      await ownChronicle.close().catch(() => undefined);
    });

    it('records a call that fails unexpectedly exactly once (internal_error), then rethrows', async () => {
      const broken = createIntuneConnector({
        chronicle,
        graphFor: () => graph,
        fingerprintKeyFor: () => {
          throw new Error('key store down');
        },
        options: DEFAULT_OPTIONS,
      });
      await expect(broken.invoke('list_devices', { cursor: 'bm90LWEtY3Vyc29y' }, context())).rejects.toThrow('key store down');
      expect((await auditEvents(db)).map((e) => [e.data['operation'], e.data['outcome'], e.data['reason']])).toEqual([['list_devices', 'failed', 'internal_error']]);
    });
  });

  describe('compliance cache', () => {
    it('makes exactly one Graph request for 1,000 concurrent lookups of one uncached device', async () => {
      const azure = String(device((d) => typeof d['azureADDeviceId'] === 'string')['azureADDeviceId']);
      const results = await Promise.all(Array.from({ length: 1000 }, () => connector.lookupCompliance(tenant(), { azureADDeviceId: azure })));
      expect(results.every((r) => r.ok && r.records.length >= 1)).toBe(true);
      expect(graphRequests(sim)).toHaveLength(1);
      expect(graphRequests(sim)[0]?.url).toContain('azureADDeviceId');
      expect(connector.cacheStats()).toMatchObject({ misses: 1, coalesced: 999 });
      // no audit record: the gate records DEVICE_COMPLIANCE_CHECKED itself
      expect(await auditEvents(db)).toHaveLength(0);
    });

    it('expires entries after the TTL (injected clock) and with TTL 0 asks Graph every time', async () => {
      let now = Date.parse('2025-06-01T00:00:00Z');
      const timed = makeConnector({ chronicle, graph, now: () => now, options: { cacheTtlMs: 60_000 } });
      const id = deviceIds()[4] as string;
      await timed.lookupCompliance(tenant(), { deviceId: id });
      now += 59_999;
      expect(await timed.lookupCompliance(tenant(), { deviceId: id })).toMatchObject({ ok: true, cacheHit: true });
      now += 1;
      expect(await timed.lookupCompliance(tenant(), { deviceId: id })).toMatchObject({ ok: true, cacheHit: false });
      expect(graphRequests(sim)).toHaveLength(2);

      sim.clearRequests();
      const uncached = makeConnector({ chronicle, graph, options: { cacheTtlMs: 0, staleMaxMs: 600_000 } });
      for (let i = 0; i < 3; i += 1) expect(await uncached.lookupCompliance(tenant(), { deviceId: id })).toMatchObject({ ok: true, cacheHit: false });
      expect(graphRequests(sim)).toHaveLength(3);
    });

    it('serves a stale answer while Graph is down, within the window only, marked stale', async () => {
      let now = Date.parse('2025-06-01T00:00:00Z');
      const id = deviceIds()[5] as string;
      const stale = makeConnector({ chronicle, graph, now: () => now, options: { cacheTtlMs: 60_000, staleMaxMs: 120_000 } });
      const warm = await stale.invoke('get_compliance', { device_id: id }, context());
      expect(warm).toMatchObject({ ok: true, value: { cache: { hit: false, stale: false } } });

      sim.setFaults({ unavailableRate: 1 });
      now += 60_000 + 90_000; // 90 s past the TTL
      const served = await stale.invoke('get_compliance', { device_id: id }, context());
      expect(served).toMatchObject({ ok: true, value: { device_id: id, cache: { hit: true, stale: true } } });
      expect(await stale.lookupCompliance(tenant(), { deviceId: id }, { maxStaleMs: 30_000 })).toMatchObject({ ok: false, reason: 'graph_unavailable' });
      now += 31_000; // 121 s past: beyond the window
      const failed = await stale.invoke('get_compliance', { device_id: id }, context());
      expect(failed).toMatchObject({ ok: false, kind: 'failed', reason: 'graph_unavailable' });
      expect(stale.cacheStats().staleServed).toBe(1);
      const events = await auditEvents(db);
      expect(events.map((e) => [e.data['outcome'], e.data['reason'], e.data['cache']])).toEqual([
        ['succeeded', 'allowed', { hit: false, stale: false }],
        ['succeeded', 'allowed', { hit: true, stale: true }],
        ['failed', 'graph_unavailable', undefined],
      ]);
    });

    it('answers all records of a re-enrolled Entra device, most recently synced first', async () => {
      const counts = new Map<string, number>();
      for (const d of raw()) if (typeof d['azureADDeviceId'] === 'string') counts.set(d['azureADDeviceId'], (counts.get(d['azureADDeviceId']) ?? 0) + 1);
      const [azure, count] = [...counts].find(([, n]) => n > 1) ?? [];
      expect(azure).toBeDefined();
      const outcome = await connector.invoke('get_compliance', { azure_ad_device_id: azure, include_policies: true }, context());
      expect(outcome.ok).toBe(true);
      if (!outcome.ok) return;
      const value = outcome.value as { record_count: number; devices: { last_sync_at: string | null; device_id: string }[]; device_id: string; policies?: unknown[] };
      expect(value.record_count).toBe(count);
      const times = value.devices.map((d) => Date.parse(d.last_sync_at ?? '0'));
      expect(times).toEqual([...times].sort((x, y) => y - x));
      expect(value.device_id).toBe(value.devices[0]?.device_id);
      expect(Array.isArray(value.policies)).toBe(true);
      expect(OPERATION_SCHEMAS.get_compliance.output.safeParse(outcome.value).success).toBe(true);
    });

    it('answers not_found for an Entra id no device has, and caches that briefly', async () => {
      const missing = '0fa4e5e1-1111-4000-8000-00000000dead';
      expect(await connector.invoke('get_compliance', { azure_ad_device_id: missing }, context())).toMatchObject({ ok: false, kind: 'failed', reason: 'not_found' });
      expect(await connector.lookupCompliance(tenant(), { azureADDeviceId: missing })).toMatchObject({ ok: true, records: [], cacheHit: true });
      expect(graphRequests(sim)).toHaveLength(1);
      expect(await connector.lookupCompliance(tenant(), { azureADDeviceId: 'nope' })).toMatchObject({ ok: false, reason: 'invalid_id' });
    });
  });

  describe('list_devices', () => {
    it('walks the whole tenant with the cursor, each device exactly once', async () => {
      const seen: string[] = [];
      let cursor: string | null | undefined;
      let pages = 0;
      do {
        const outcome = await connector.invoke('list_devices', { page_size: 50, ...(cursor ? { cursor } : {}) }, context());
        expect(outcome.ok).toBe(true);
        if (!outcome.ok) return;
        const value = outcome.value as { devices: { device_id: string }[]; next_cursor: string | null };
        seen.push(...value.devices.map((d) => d.device_id));
        cursor = value.next_cursor;
        pages += 1;
      } while (cursor);
      expect(seen.length).toBe(raw().length);
      expect(new Set(seen)).toEqual(new Set(deviceIds()));
      expect(pages).toBe(Math.ceil(raw().length / 50));
    });

    it('filters client-side by ownership and os family with sane pages', async () => {
      const expected = raw()
        .filter((d) => d['managedDeviceOwnerType'] === 'personal' && (d['operatingSystem'] === 'iOS' || d['operatingSystem'] === 'iPadOS'))
        .map((d) => String(d['id']));
      expect(expected.length).toBeGreaterThan(0);
      const seen: string[] = [];
      let cursor: string | null | undefined;
      do {
        const outcome = await connector.invoke('list_devices', { ownership: 'personal', os_family: 'ios', page_size: 3, ...(cursor ? { cursor } : {}) }, context());
        if (!outcome.ok) throw new Error(outcome.message);
        const value = outcome.value as { devices: { device_id: string; ownership: string; os_family: string }[]; next_cursor: string | null };
        expect(value.devices.length).toBeLessThanOrEqual(3);
        for (const d of value.devices) expect([d.ownership, d.os_family]).toEqual(['personal', 'ios']);
        seen.push(...value.devices.map((d) => d.device_id));
        cursor = value.next_cursor;
      } while (cursor);
      expect(seen.sort()).toEqual(expected.sort());
    });

    it('pushes compliance state down to Graph', async () => {
      const outcome = await connector.invoke('list_devices', { compliance_state: 'noncompliant', os_family: 'windows', page_size: 100 }, context());
      if (!outcome.ok) throw new Error(outcome.message);
      const expected = raw().filter((d) => d['complianceState'] === 'noncompliant' && d['operatingSystem'] === 'Windows').length;
      expect((outcome.value as { devices: unknown[] }).devices).toHaveLength(expected);
      expect(decodeURIComponent(graphRequests(sim)[0]?.url ?? '')).toContain("complianceState eq 'noncompliant'");
    });
  });

  describe('sync_device', () => {
    it('does not ask again within the cooldown, and replicas sharing the database agree', async () => {
      let now = Date.parse('2025-06-01T12:00:00Z');
      const id = deviceIds()[6] as string;
      const ctx = context({ capabilities: ['PROPOSE'] });
      const replicaA = makeConnector({ chronicle, graph, db, now: () => now });
      const replicaB = makeConnector({ chronicle, graph, db, now: () => now });
      expect(await replicaA.invoke('sync_device', { device_id: id }, ctx)).toMatchObject({
        ok: true,
        value: { status: 'requested', requested_at: '2025-06-01T12:00:00.000Z', next_allowed_at: '2025-06-01T12:05:00.000Z' },
      });
      now += 60_000;
      expect(await replicaB.invoke('sync_device', { device_id: id }, ctx)).toMatchObject({
        ok: true,
        value: { status: 'recently_requested', requested_at: '2025-06-01T12:00:00.000Z', next_allowed_at: '2025-06-01T12:05:00.000Z' },
      });
      expect(graphRequests(sim).filter((r) => r.action === 'syncDevice')).toHaveLength(1);
      now += 4 * 60_000;
      expect(await replicaB.invoke('sync_device', { device_id: id }, ctx)).toMatchObject({ ok: true, value: { status: 'requested' } });
      expect(graphRequests(sim).filter((r) => r.action === 'syncDevice')).toHaveLength(2);
    });

    it('refuses writes beyond the write budget before they reach Graph', async () => {
      const limited = makeConnector({ chronicle, graph, db, options: { writeBudget: { capacity: 2, windowMs: 20_000 } } });
      const ctx = context({ capabilities: ['PROPOSE'] });
      const [a, b, c] = deviceIds().slice(7, 10) as [string, string, string];
      expect(await limited.invoke('sync_device', { device_id: a }, ctx)).toMatchObject({ ok: true });
      expect(await limited.invoke('sync_device', { device_id: b }, ctx)).toMatchObject({ ok: true });
      const refused = await limited.invoke('sync_device', { device_id: c }, ctx);
      expect(refused).toMatchObject({ ok: false, kind: 'failed', reason: 'throttled' });
      expect(!refused.ok && refused.kind === 'failed' && refused.retryAfterMs).toBeGreaterThan(0);
      expect(graphRequests(sim).filter((r) => r.method === 'POST')).toHaveLength(2);
      expect((await auditEvents(db)).at(-1)?.data).toMatchObject({ reason: 'write_budget_exhausted', outcome: 'failed', graph_request_id: null });
      // the refused device was not put in cooldown: it can be asked once the budget allows
      const retry = makeConnector({ chronicle, graph, db });
      expect(await retry.invoke('sync_device', { device_id: c }, ctx)).toMatchObject({ ok: true, value: { status: 'requested' } });
    });
  });

  describe('redaction', () => {
    it('keeps every PII value of the simulated devices out of every result and every database row', async () => {
      const pii = piiValues(raw());
      expect(pii.size).toBeGreaterThan(DEVICE_COUNT * 5);
      const outputs: unknown[] = [];
      let cursor: string | null | undefined;
      do {
        const page = await connector.invoke('list_devices', { page_size: 100, ...(cursor ? { cursor } : {}) }, context());
        if (!page.ok) throw new Error(page.message);
        outputs.push(page);
        cursor = (page.value as { next_cursor: string | null }).next_cursor;
      } while (cursor);
      // GET by id returns the properties LIST leaves at defaults (udid, iccid, notes, bypass code…)
      const ids = deviceIds();
      for (let i = 0; i < ids.length; i += 20) {
        outputs.push(...(await Promise.all(ids.slice(i, i + 20).map((id) => connector.invoke('get_device', { device_id: id }, context())))));
      }
      // get_compliance answers with the same postures; a sample (re-enrolled ids included) with policies
      const azureIds = [...new Set(raw().map((d) => d['azureADDeviceId']).filter((v): v is string => typeof v === 'string'))].filter((_, i) => i % 4 === 0);
      for (let i = 0; i < azureIds.length; i += 20) {
        outputs.push(
          ...(await Promise.all(azureIds.slice(i, i + 20).map((id) => connector.invoke('get_compliance', { azure_ad_device_id: id, include_policies: true }, context())))),
        );
      }
      for (const o of outputs) expect((o as { ok: boolean }).ok).toBe(true);
      for (const o of outputs.slice(1, ids.length)) {
        const v = (o as { value: { device?: unknown } }).value;
        if (v.device !== undefined) expect(DevicePostureSchema.safeParse(v.device).success).toBe(true);
      }
      expect(findLeaks(JSON.stringify(outputs), pii)).toEqual([]);
      expect(findLeaks(await dumpAllTables(db), pii)).toEqual([]);
      expect((await auditEvents(db)).length).toBe(outputs.length);
    });
  });
});
