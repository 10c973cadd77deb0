/**
 * Asset identity end to end, against a real server (PostgreSQL and PGlite): the demo simulator
 * tenant synced over HTTPS with MSAL, demo and reference agents enrolled and heartbeating over
 * mTLS. Merges by serial fingerprint, re-enrolled records, conflicts, disagreements, agent-only
 * and Intune-only assets, incremental re-match after a sync, tenant isolation, the audit records,
 * bad input, and PII canaries searched for in every answer, event and stored row.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fingerprintSerial } from '../../src/connector/redaction.js';
import { heartbeat, runSimulatedAgent, type MtlsIdentity } from '../../src/agents/reference-agent.js';
import { OTHER_SECRET_VAR, OTHER_TENANT, findPii, piiValues, startTestServer, waitForRun, type TestResponse, type TestServer } from '../api/helpers.js';
import { specChecker } from '../api/openapi.js';
import { eventChecker } from '../api/asyncapi.js';
import { pgAvailable } from '../helpers/db.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const AS = '/api/v1/assets';
const EXAMPLE_POLICY = new URL('../../examples/accord-policy.yaml', import.meta.url).pathname;
const D = '/api/v1/integrations/intune/devices';

function suite(kind: 'postgres' | 'pglite') {
  let t: TestServer;
  let admin: string;
  let reader: string;
  let acmeAdmin: string;
  const seen: string[] = [];
  const spec = specChecker();
  const events = eventChecker();
  const canaries: string[] = [];

  const onceAcrossBackends = (name: string, fn: () => Promise<void>, timeoutMs: number): void => {
    if (kind === 'pglite') it(name, fn, timeoutMs);
  };

  async function call(urlPath: string, template: string, key = reader): Promise<TestResponse> {
    const res = await t.request('GET', urlPath, { key });
    seen.push(res.text);
    spec.check('GET', template, res);
    return res;
  }

  const fp = (serial: string, tenant = 'default') => fingerprintSerial(serial, t.server.runtime.fingerprintKeyFor(tenant)) as string;
  const macs = () => t.server.runtime.demo!.simulator.devices.filter((d) => d['operatingSystem'] === 'macOS' && typeof d['serialNumber'] === 'string' && d['serialNumber'] !== '');
  /** A demo Mac the example policy's device-management accord allows on Intune's word alone (compliant, encrypted, macOS 14+, checked in this week). */
  const passesExamplePolicy = (d: Record<string, unknown>) =>
    d['complianceState'] === 'compliant' &&
    d['isEncrypted'] === true &&
    /^1[4-9]\./.test(String(d['osVersion'])) &&
    typeof d['azureADDeviceId'] === 'string' &&
    Date.now() - Date.parse(String(d['lastSyncDateTime'])) < 7 * 86_400_000;

  async function agentFor(serial: string, posture: Record<string, unknown> = {}, hardwareUuid = crypto.randomUUID().toUpperCase(), key = admin) {
    canaries.push(serial, hardwareUuid, hardwareUuid.toLowerCase());
    const token = await t.request('POST', '/api/v1/agents/enrollment-tokens', { key, body: {} });
    expect(token.status).toBe(201);
    const run = await runSimulatedAgent({
      url: t.url,
      token: token.body.token as string,
      agentUrl: `https://127.0.0.1:${t.server.agentListener.port}`,
      enroll: { osVersion: '14.5', serialNumber: serial, hardwareUuid, model: 'MacBookPro18,3' },
      posture: { filevault: true, firewall: true, sip: true, gatekeeper: true, ...posture },
      heartbeats: 1,
    });
    return run.agentId;
  }

  beforeAll(async () => {
    // The example policy: device-management requires encryption and macOS 14.0, so an agent's measurement can matter.
    // The gate's agent cache lives an hour here: whatever changes a decision below does so by dropping it, not by its expiry.
    t = await startTestServer(kind, { otherDevices: 20, env: { INTUNE_POLICY_FILE: EXAMPLE_POLICY, INTUNE_GATE_AGENT_CACHE_TTL: '3600' } });
    admin = await t.key('default', 'admin');
    reader = await t.key('default', 'reader');
    acmeAdmin = await t.key(OTHER_TENANT, 'admin');
    canaries.push(...piiValues(t.server.runtime.demo!.simulator.devices), ...piiValues(t.otherSim.devices));
  }, 180_000);

  afterAll(async () => {
    await t?.close();
  });

  it('merges the demo agents with the Intune Macs of the same serial, and lists agent-only and Intune-only assets', async () => {
    const both = await call(`${AS}?source=both&limit=500`, AS);
    expect(both.status).toBe(200);
    expect(both.body.total).toBe(3);
    for (const asset of both.body.assets) {
      expect(asset.sources.map((s: any) => s.kind)).toContain('agent');
      expect(asset.sources.map((s: any) => s.kind)).toContain('intune');
      expect(asset.os_family).toBe('macos');
      expect(asset.attributes.compliance_state).toMatchObject({ source: 'intune', confidence: expect.stringMatching(/^(mdm|stale)$/) });
      expect(asset.attributes.sip).toMatchObject({ value: true, source: 'agent', confidence: 'agent' });
    }
    const serials = macs().slice(0, 3).map((d) => fp(String(d['serialNumber'])));
    expect(both.body.assets.map((a: any) => a.serial_fingerprint).sort()).toEqual([...new Set(serials)].sort());

    const agentOnly = await call(`${AS}?source=agent`, AS);
    expect(agentOnly.body.total).toBe(2);
    for (const asset of agentOnly.body.assets) expect(asset.sources.map((s: any) => s.kind)).toEqual(['agent']);

    const intuneOnly = await call(`${AS}?source=intune&limit=1`, AS);
    const all = await call(`${AS}?limit=1`, AS);
    expect(intuneOnly.body.total).toBe(all.body.total - 5);
    expect(intuneOnly.body.assets[0].sources.every((s: any) => s.kind === 'intune')).toBe(true);
    expect(intuneOnly.body.assets[0].attributes.firewall).toBeUndefined();
  });

  it('joins re-enrolled Intune records of one machine into one asset, and finds it by fingerprint', async () => {
    const bySerial = new Map<string, string[]>();
    for (const d of t.server.runtime.demo!.simulator.devices) {
      const serial = typeof d['serialNumber'] === 'string' ? d['serialNumber'].trim().toUpperCase() : '';
      if (serial !== '') bySerial.set(serial, [...(bySerial.get(serial) ?? []), String(d['id']).toLowerCase()]);
    }
    const reenrolled = [...bySerial].filter(([, ids]) => ids.length > 1);
    expect(reenrolled.length).toBeGreaterThan(0);
    for (const [serial, ids] of reenrolled.slice(0, 5)) {
      const res = await call(`${AS}?fingerprint=${fp(serial)}`, AS);
      expect(res.body.total).toBe(1);
      const intuneIds = res.body.assets[0].sources.filter((s: any) => s.kind === 'intune').map((s: any) => s.id);
      expect(intuneIds.sort()).toEqual([...ids].sort());
      const one = await call(`${AS}/${res.body.assets[0].asset_id}`, `${AS}/{asset_id}`);
      expect(one.status).toBe(200);
      expect(one.body.asset_id).toBe(res.body.assets[0].asset_id);
      // The devices route answers the same fingerprint with the records themselves.
      const devices = await call(`${D}?fingerprint=${fp(serial).toUpperCase().replace('HMAC-SHA256:', 'hmac-sha256:')}`, D);
      expect(devices.body.devices.map((d: any) => d.device_id).sort()).toEqual([...ids].sort());
    }
  });

  it('keeps and shows a disagreement: Intune says encrypted, the agent says FileVault off', async () => {
    const mac = macs().find((d, i) => i >= 4 && d['isEncrypted'] === true);
    expect(mac).toBeDefined();
    const agentId = await agentFor(String(mac!['serialNumber']), { filevault: false });
    const res = await call(`${AS}?disagreement=true&fingerprint=${fp(String(mac!['serialNumber']))}`, AS);
    expect(res.body.total).toBe(1);
    const asset = res.body.assets[0];
    expect(asset.attributes.encrypted).toMatchObject({ value: true, source: 'intune', confidence: 'mdm' });
    const encrypted = asset.disagreements.find((d: any) => d.attribute === 'encrypted');
    expect(encrypted.values).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ source: 'intune', value: true, confidence: 'mdm' }),
        { source: 'agent', source_id: agentId, value: false, confidence: 'agent' },
      ]),
    );
    const agreeing = await call(`${AS}?disagreement=false&source=both&limit=500`, AS);
    expect(agreeing.body.assets.map((a: any) => a.asset_id)).not.toContain(asset.asset_id);
  });

  it('gate: an agent on the same Mac saying FileVault is off denies require_encryption though Intune says encrypted, and the record names the agent', async () => {
    const used = new Set((await call(`${AS}?source=both&limit=500`, AS)).body.assets.map((a: any) => a.serial_fingerprint));
    const mac = macs().find((d) => passesExamplePolicy(d) && !used.has(fp(String(d['serialNumber']))));
    expect(mac).toBeDefined();
    const gateKey = await t.key('default', 'gate');
    const check = () =>
      t.request('POST', '/api/v1/gate/device-compliance', { key: gateKey, body: { accord: 'device-management', claims: { deviceid: mac!['azureADDeviceId'] } } });
    const before = await check();
    expect(before.body).toMatchObject({ decision: 'allow', reason: 'compliant' });

    const agentId = await agentFor(String(mac!['serialNumber']), { filevault: false });
    const after = await check();
    expect(after.status).toBe(200);
    expect(after.body).toMatchObject({ decision: 'deny', reason: 'not_encrypted', failed_rules: ['not_encrypted'] });
    expect(after.body.message).toContain('FileVault is off (as the endpoint agent reports)');
    const recorded = await t.request('GET', `/api/v1/chronicle/events?type=DEVICE_COMPLIANCE_CHECKED&device=${mac!['azureADDeviceId']}`, { key: await t.key('default', 'auditor') });
    const event = recorded.body.events.find((e: any) => e.seq === after.body.event.seq);
    expect(event.data.agent_rule_failures).toEqual([{ rule: 'not_encrypted', agent_id: agentId }]);
    expect(events.errorsFor(event)).toEqual([]);
  });

  it("gate: reuses a Mac's agent measurements, and a heartbeat or revocation on this replica changes the next decision at once", async () => {
    const used = new Set((await call(`${AS}?source=both&limit=500`, AS)).body.assets.map((a: any) => a.serial_fingerprint));
    // Not the Macs later tests take by position (0, 10, and the first of 20..39).
    const mac = macs().find((d, i) => ![0, 10, 20].includes(i) && passesExamplePolicy(d) && !used.has(fp(String(d['serialNumber']))));
    expect(mac).toBeDefined();
    const serial = String(mac!['serialNumber']);
    canaries.push(serial);
    const gateKey = await t.key('default', 'gate');
    const check = () =>
      t.request('POST', '/api/v1/gate/device-compliance', { key: gateKey, body: { accord: 'device-management', claims: { deviceid: mac!['azureADDeviceId'] } } });

    const token = await t.request('POST', '/api/v1/agents/enrollment-tokens', { key: admin, body: {} });
    const run = await runSimulatedAgent({
      url: t.url,
      token: token.body.token as string,
      agentUrl: `https://127.0.0.1:${t.server.agentListener.port}`,
      enroll: { osVersion: '14.5', serialNumber: serial, hardwareUuid: crypto.randomUUID().toUpperCase(), model: 'MacBookPro18,3' },
      posture: { filevault: true, firewall: true, sip: true, gatekeeper: true },
      heartbeats: 1,
    });
    const identity: MtlsIdentity = { certificate: run.enrollment.certificate, keyPem: run.enrollment.keyPem, ...(run.enrollment.server_ca !== undefined ? { serverCa: run.enrollment.server_ca } : {}) };
    const beat = (filevault: boolean) => heartbeat(run.agentUrl, identity, { osVersion: '14.5', filevault, firewall: true, sip: true, gatekeeper: true });

    const reads = vi.spyOn(t.server.assets, 'endpointAgents');
    try {
      // One asset-identity read for the Mac, then its answer is reused, also by concurrent checks.
      expect((await check()).body).toMatchObject({ decision: 'allow', reason: 'compliant' });
      expect(reads).toHaveBeenCalledTimes(1);
      const again = await Promise.all([check(), check(), check()]);
      for (const res of again) expect(res.body).toMatchObject({ decision: 'allow', reason: 'compliant' });
      expect(reads).toHaveBeenCalledTimes(1);
      expect(reads.mock.calls[0]?.[1]).toEqual([String(mac!['id']).toLowerCase()]);

      // A heartbeat that changes nothing but the time: the Mac's agents are read again, the decision stands.
      await beat(true);
      expect((await check()).body).toMatchObject({ decision: 'allow' });
      expect(reads).toHaveBeenCalledTimes(2);

      // FileVault off: the very next check denies (the cache's TTL is an hour).
      await beat(false);
      const denied = await check();
      expect(denied.body).toMatchObject({ decision: 'deny', reason: 'not_encrypted', failed_rules: ['not_encrypted'] });
      expect(denied.body.message).toContain('FileVault is off (as the endpoint agent reports)');
      expect(reads).toHaveBeenCalledTimes(3);
      expect((await check()).body).toMatchObject({ decision: 'deny', reason: 'not_encrypted' });
      expect(reads).toHaveBeenCalledTimes(3);

      // Revoked: its measurement no longer counts, at once.
      const revoked = await t.request('DELETE', `/api/v1/agents/${run.agentId}`, { key: admin });
      expect(revoked.status).toBe(200);
      expect((await check()).body).toMatchObject({ decision: 'allow', reason: 'compliant' });
      expect(reads).toHaveBeenCalledTimes(4);
    } finally {
      reads.mockRestore();
    }
  });

  it('reports two machines claiming one serial as a conflict, audits it, and merges once the ambiguity goes away', async () => {
    const mac = macs().find((d, i) => i >= 4 && d['isEncrypted'] !== true) ?? macs()[6]!;
    const serial = String(mac['serialNumber']);
    const first = await agentFor(serial);
    const merged = await call(`${AS}?fingerprint=${fp(serial)}`, AS);
    expect(merged.body.total).toBe(1);
    expect(merged.body.assets[0].sources.map((s: any) => s.id)).toContain(first);

    const second = await agentFor(serial);
    const split = await call(`${AS}?fingerprint=${fp(serial)}`, AS);
    // Nothing merged on an ambiguous serial: each agent alone, the Intune record(s) alone, all flagged.
    expect(split.body.total).toBe(3);
    for (const asset of split.body.assets) {
      expect(asset.conflicts).toHaveLength(1);
      expect(asset.conflicts[0]).toMatchObject({ kind: 'serial_on_several_machines', serial_fingerprint: fp(serial) });
      expect(asset.conflicts[0].asset_ids).toHaveLength(3);
    }
    const audit = await t.server.runtime.chronicle.query({ tenant: 'default', types: ['asset.conflict_detected', 'asset.split', 'asset.sources_merged'] });
    const types = audit.events.map((e: any) => e.type);
    expect(types).toContain('asset.conflict_detected');
    expect(types).toContain('asset.split');
    const conflict = audit.events.filter((e: any) => e.type === 'asset.conflict_detected').flatMap((e: any) => e.data.conflicts);
    expect(conflict.find((c: any) => c.serial_fingerprint === fp(serial)).sources.map((s: any) => s.id)).toEqual(expect.arrayContaining([first, second]));

    const revoked = await t.request('DELETE', `/api/v1/agents/${second}`, { key: admin });
    expect(revoked.status).toBe(200);
    const after = await call(`${AS}?fingerprint=${fp(serial)}`, AS);
    expect(after.body.total).toBe(1);
    expect(after.body.assets[0].conflicts).toEqual([]);
    expect(after.body.assets[0].sources.map((s: any) => s.id)).toContain(first);
    expect(after.body.assets[0].sources.map((s: any) => s.id)).not.toContain(second);
  });

  it('re-matches what a sync changed: a Mac whose serial now matches an agent-only machine joins it', async () => {
    const agentOnly = await call(`${AS}?source=agent&limit=500`, AS);
    const lonely = agentOnly.body.assets[0];
    const target = macs()[10]!;
    const serial = `MOVED${crypto.randomBytes(4).toString('hex').toUpperCase()}`;
    canaries.push(serial);
    const agentId = await agentFor(serial);
    const before = await call(`${AS}?fingerprint=${fp(serial)}`, AS);
    expect(before.body.assets[0].sources.map((s: any) => s.id)).toEqual([agentId]);

    t.server.runtime.demo!.simulator.updateDevice(String(target['id']), { serialNumber: serial, complianceState: 'noncompliant' });
    const connection = (await t.request('GET', '/api/v1/integrations/intune/connections', { key: admin })).body.connections[0];
    const started = await t.request('POST', `/api/v1/integrations/intune/connections/${connection.id}/sync`, { key: admin });
    expect(started.status).toBe(202);
    await waitForRun(t, admin, connection.id, started.body.id);
    // The run's completion waits for the re-match, but the API answers 202 at start: poll until it shows.
    let after: TestResponse | undefined;
    for (let i = 0; i < 100; i++) {
      after = await call(`${AS}?fingerprint=${fp(serial)}`, AS);
      if (after.body.assets[0]?.sources.length === 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const asset = after!.body.assets[0];
    expect(asset.sources.map((s: any) => s.id).sort()).toEqual([agentId, String(target['id']).toLowerCase()].sort());
    expect(asset.attributes.compliance_state).toMatchObject({ value: 'noncompliant', source: 'intune' });
    const audit = await t.server.runtime.chronicle.query({ tenant: 'default', types: ['asset.sources_merged'] });
    const merges = audit.events.flatMap((e: any) => e.data.merges);
    expect(merges.find((m: any) => m.serial_fingerprint === fp(serial))).toMatchObject({ rule: 'serial_fingerprint', joined: [{ kind: 'intune', id: String(target['id']).toLowerCase() }] });
    // The agent-only asset untouched by the sync is still what it was.
    expect((await call(`${AS}/${lonely.asset_id}`, `${AS}/{asset_id}`)).body.sources).toEqual(lonely.sources.map((s: any) => ({ ...s, confidence: expect.any(String), last_seen_at: expect.any(String) })));
  });

  it("after a sync reads only the records the sync lists, and every record when the list starts from a snapshot the assets do not show", async () => {
    const db = t.server.runtime.db;
    const connection = (await t.request('GET', '/api/v1/integrations/intune/connections', { key: admin })).body.connections[0];
    const [a, b] = macs().slice(-2);
    const idOf = (d: Record<string, unknown> | undefined) => String(d?.['id']).toLowerCase();
    const complianceOf = async (d: Record<string, unknown> | undefined) =>
      (await call(`${AS}?fingerprint=${fp(String(d?.['serialNumber']))}`, AS)).body.assets[0].attributes.compliance_state.value;
    const current = (await db.query<{ id: string }>('SELECT current_snapshot_id::text AS id FROM intune_connections WHERE id = $1', [connection.id])).rows[0]!.id;
    const intuneSays = await complianceOf(a);
    const outOfStep = intuneSays === 'inGracePeriod' ? 'conflict' : 'inGracePeriod';
    // What a missed re-match leaves behind: a stored observation that is not the snapshot's.
    await db.query(`UPDATE asset_sources SET observation = observation || jsonb_build_object('compliance_state', $2::text) WHERE kind = 'intune' AND source_id = $1`, [idOf(a), outOfStep]);
    expect(await complianceOf(a)).toBe(outOfStep);

    // A list that starts from the snapshot the assets show and names another record: A is not read.
    await t.server.assets.rematchConnection('default', connection.id, { previousSnapshotId: current, snapshotId: current, deviceIds: [idOf(b)] });
    expect(await complianceOf(a)).toBe(outOfStep);
    // A list from another snapshot: every record is compared, and A says what Intune says again.
    await t.server.assets.rematchConnection('default', connection.id, { previousSnapshotId: crypto.randomUUID(), snapshotId: current, deviceIds: [idOf(b)] });
    expect(await complianceOf(a)).toBe(intuneSays);
  });

  it('MCP: get_device and get_device_compliance say which enrolled agent sees the machine and what it reports; find_asset finds it by fingerprint', async () => {
    const agentKey = await t.key('default', 'agent');
    const client = new Client({ name: 'asset-test-agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${agentKey}` } } }));
    try {
      const tools = (await client.listTools()).tools.map((tool) => tool.name);
      expect(tools).toContain('find_asset');
      // The disagreeing Mac of the test above: Intune says encrypted, its agent says FileVault off.
      const mac = macs().find((d, i) => i >= 4 && d['isEncrypted'] === true)!;
      const device = await client.callTool({ name: 'get_device', arguments: { device_id: String(mac['id']) } });
      expect(device.isError).not.toBe(true);
      const sightings = (device.structuredContent as any).endpoint_agents;
      expect(sightings).toHaveLength(1);
      expect(sightings[0]).toMatchObject({ filevault: false, confidence: 'agent' });
      expect(sightings[0].disagreements).toContain('encrypted');
      const text = (device.content as any[]).map((c) => c.text).join('\n');
      expect(text).toContain(`Enrolled agent ${sightings[0].agent_id} sees the same machine`);
      expect(text).toMatch(/disagrees with Intune on [a-z_, ]*encrypted/);
      seen.push(text);

      const compliance = await client.callTool({ name: 'get_device_compliance', arguments: { device_id: String(mac['id']) } });
      expect((compliance.structuredContent as any).endpoint_agents.map((a: any) => a.agent_id)).toEqual([sightings[0].agent_id]);
      const lonely = macs().find((d, i) => i >= 20 && i < 40);
      const none = await client.callTool({ name: 'get_device', arguments: { device_id: String(lonely!['id']) } });
      expect((none.structuredContent as any).endpoint_agents).toEqual([]);

      const found = await client.callTool({ name: 'find_asset', arguments: { fingerprint: fp(String(mac['serialNumber'])) } });
      expect(found.isError).not.toBe(true);
      const asset = (found.structuredContent as any).assets[0];
      expect(asset.sources.map((s: any) => s.id)).toContain(sightings[0].agent_id);
      expect(asset.attributes.encrypted).toMatchObject({ source: 'intune', confidence: 'mdm' });
      const missing = await client.callTool({ name: 'find_asset', arguments: { fingerprint: `hmac-sha256:${'0'.repeat(64)}` } });
      expect(missing.isError).toBe(true);
      const bad = await client.callTool({ name: 'find_asset', arguments: { fingerprint: 'C02ABC' } });
      expect(bad.isError).toBe(true);
      for (const r of [device, compliance, none, found, missing, bad]) seen.push(JSON.stringify(r));
      const audit = await t.server.runtime.chronicle.query({ tenant: 'default', types: ['CONNECTOR_INVOKED'] });
      expect(audit.events.some((e: any) => e.data.operation === 'find_asset')).toBe(true);
      for (const r of [device, compliance, found]) expect(findPii(JSON.stringify(r), canaries)).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('keeps tenants apart: the same serial in another tenant is another fingerprint and another asset', async () => {
    const mac = macs()[0]!;
    const serial = String(mac['serialNumber']);
    const created = await t.request('POST', '/api/v1/integrations/intune/connections', {
      key: acmeAdmin,
      body: { display_name: 'Acme', entra_tenant_id: t.otherSim.tenantId, client_id: t.otherSim.clientId, cloud: 'custom', secret_ref: `env:${OTHER_SECRET_VAR}` },
    });
    expect(created.status).toBe(201);
    const started = await t.request('POST', `/api/v1/integrations/intune/connections/${created.body.id}/sync`, { key: acmeAdmin });
    await waitForRun(t, acmeAdmin, created.body.id, started.body.id);
    const acmeAgent = await agentFor(serial, {}, undefined, acmeAdmin);
    expect(fp(serial, OTHER_TENANT)).not.toBe(fp(serial));

    const acmeReader = await t.key(OTHER_TENANT, 'reader');
    const mine = await call(`${AS}?fingerprint=${fp(serial, OTHER_TENANT)}`, AS, acmeReader);
    expect(mine.body.total).toBe(1);
    expect(mine.body.assets[0].sources).toEqual([expect.objectContaining({ kind: 'agent', id: acmeAgent })]);
    expect((await call(`${AS}?fingerprint=${fp(serial)}`, AS, acmeReader)).body.total).toBe(0);
    const theirs = await call(`${AS}?fingerprint=${fp(serial)}`, AS);
    expect(theirs.body.assets[0].sources.map((s: any) => s.id)).not.toContain(acmeAgent);
    expect((await call(`${AS}/${theirs.body.assets[0].asset_id}`, `${AS}/{asset_id}`, acmeReader)).status).toBe(404);
    const acmeAll = await call(`${AS}?limit=500`, AS, acmeReader);
    expect(acmeAll.body.total).toBeGreaterThanOrEqual(20);
  }, 60_000);

  // The panel reads the same routes on both backends: it is driven once, on the embedded default.
  onceAcrossBackends('Settings panel: assets with their sources, source filters and a row\'s attribute provenance, at 1280 px', async () => {
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const problems: string[] = [];
      page.on('pageerror', (err) => problems.push(err.message));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      await page.goto(`${t.url}/settings`);
      await page.waitForSelector('#key-form:not([hidden])');
      await page.fill('#api-key', reader);
      await page.click('#key-form button[type=submit]');
      await page.waitForFunction(() => (globalThis as any).document.getElementById('asset-total')?.textContent !== '');
      const all = await call(`${AS}?limit=1`, AS);
      expect(await page.textContent('#asset-total')).toBe(`(${all.body.total})`);

      const both = await call(`${AS}?source=both&limit=25`, AS);
      await page.selectOption('#fa-source', 'both');
      await page.waitForFunction((n) => (globalThis as any).document.getElementById('asset-total')?.textContent === `(${n})`, both.body.total);
      const rows = page.locator('#assets-body tr');
      expect(await rows.count()).toBe(both.body.assets.length);
      for (const text of await rows.allTextContents()) expect(text).toContain('agent');

      const disagreeing = await call(`${AS}?source=both&disagreement=true&limit=25`, AS);
      await page.selectOption('#fa-disagreement', 'true');
      await page.waitForFunction((n) => (globalThis as any).document.getElementById('asset-total')?.textContent === `(${n})`, disagreeing.body.total);
      const first = disagreeing.body.assets[0];
      await page.click(`[data-testid="asset-${first.asset_id}"] button`);
      const provenance = page.locator(`[data-testid="provenance-${first.asset_id}"]`);
      await provenance.waitFor();
      const detail = (await provenance.textContent()) ?? '';
      for (const [name, a] of Object.entries<any>(first.attributes)) {
        expect(detail).toContain(name);
        expect(detail).toContain(`${a.source} ${a.source_id}`);
      }
      expect(detail).toContain(`Sources disagree on ${first.disagreements[0].attribute}`);
      // The section keeps to the page's width: nothing scrolls sideways at 1280 px.
      expect(await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth)).toBeLessThanOrEqual(1280);
      seen.push(await page.content());
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 60_000);

  it('answers bad input with a 400 that says what to fix', async () => {
    const cases: [string, RegExp][] = [
      [`${AS}?source=mdm`, /intune|agent|both/],
      [`${AS}?fingerprint=abc`, /fingerprint/],
      [`${AS}?disagreement=maybe`, /disagreement/],
      [`${AS}?limit=0`, /limit/],
      [`${AS}?cursor=bm90LWEtY3Vyc29y`, /cursor/],
      [`${AS}?colour=red`, /colour/],
      [`${D}?fingerprint=hmac-sha256:xyz`, /fingerprint/],
    ];
    for (const [url, hint] of cases) {
      const res = await t.request('GET', url, { key: reader });
      seen.push(res.text);
      expect(res.status, url).toBe(400);
      expect(res.body.error.message, url).toMatch(hint);
    }
    expect((await t.request('GET', `${AS}/not-a-guid`, { key: reader })).status).toBe(400);
    expect((await t.request('GET', `${AS}/${crypto.randomUUID()}`, { key: reader })).status).toBe(404);
    expect((await t.request('GET', AS)).status).toBe(401);
  });

  it('pages with a cursor bound to its filters', async () => {
    const first = await call(`${AS}?limit=7`, AS);
    const second = await call(`${AS}?limit=7&cursor=${first.body.next_cursor}`, AS);
    expect(second.body.assets.map((a: any) => a.asset_id)[0] > first.body.assets.at(-1).asset_id).toBe(true);
    expect((await t.request('GET', `${AS}?limit=7&source=intune&cursor=${first.body.next_cursor}`, { key: reader })).status).toBe(400);
  });

  it('a from-scratch match finds the same assets the incremental re-matches kept', async () => {
    const snapshot = async () => {
      const rows = await t.server.runtime.db.query<{ kind: string; source_id: string; asset_id: string }>(
        `SELECT kind, source_id, asset_id::text AS asset_id FROM asset_sources WHERE tenant = 'default' ORDER BY kind, source_id`,
      );
      const assets = await t.server.runtime.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM assets WHERE tenant = 'default'`);
      return { sources: rows.rows.map((r) => `${r.kind}:${r.source_id}:${r.asset_id}`), assets: assets.rows[0]?.n };
    };
    const incremental = await snapshot();
    expect(incremental.sources.length).toBeGreaterThan(200);
    const report = await t.server.assets.rebuild('default');
    expect(report.sources).toBe(incremental.sources.length);
    expect(await snapshot()).toEqual(incremental);
  });

  it('never lets a serial, hardware UUID or other PII out: answers, events and stored asset rows', async () => {
    const audit = await t.request('GET', '/api/v1/chronicle/events?type=asset.sources_merged&type=asset.split&type=asset.conflict_detected&limit=1000', { key: admin });
    expect(audit.status).toBe(200);
    expect(audit.body.events.length).toBeGreaterThan(0);
    for (const e of audit.body.events) expect(events.errorsFor(e), e.type).toEqual([]);
    const rows = await t.server.runtime.db.query('SELECT row_to_json(s)::text AS r FROM asset_sources s UNION ALL SELECT row_to_json(c)::text FROM asset_conflicts c');
    const everything = [...seen, audit.text, ...rows.rows.map((r: any) => String(r.r))].join('\n');
    expect(findPii(everything, canaries)).toEqual([]);
  });
}

describe.skipIf(!pgAvailable())('assets [postgres]', () => suite('postgres'));
describe('assets [pglite]', () => suite('pglite'));
