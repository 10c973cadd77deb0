/**
 * Shared pieces of the Chronicle tests: valid sample events of every type, temp directories for
 * keys and checkpoints, and the tampering a database superuser could do (with the append-only
 * triggers disabled, exactly as such an attacker would).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll } from 'vitest';
import type { Db, Queryable } from '../../src/db/index.js';
import { canonicalJson, chainHash, createChronicle, type AppendInput, type Chronicle, type EventType } from '../../src/chronicle/index.js';

export const GUID_A = '0f8fad5b-d9cb-469f-a165-70867728950e';
export const GUID_B = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
export const GUID_C = '3f2504e0-4f89-11d3-9a0c-0305e82c3301';

export const SAMPLE_DATA: Readonly<Record<EventType, Record<string, unknown>>> = {
  CONNECTOR_INVOKED: {
    operation: 'get_compliance',
    capability: 'READ',
    decision: 'allowed',
    reason: 'allowed',
    outcome: 'succeeded',
    target: { device_id: GUID_A, azure_ad_device_id: GUID_B },
    result_count: 1,
    duration_ms: 12.5,
    graph_request_id: 'a1b2c3d4-0000-4000-8000-000000000001',
    cache: { hit: false, stale: false },
    channel: 'mcp',
  },
  DEVICE_COMPLIANCE_CHECKED: {
    accord: 'infrastructure-operations',
    mode: 'strict',
    required: true,
    decision: 'deny',
    reason: 'noncompliant',
    evaluated: true,
    cache_hit: true,
    served_stale: false,
    intune_device_id: GUID_A,
    azure_ad_device_id: GUID_B,
    record_count: 1,
    compliance_state: 'noncompliant',
    last_sync_at: '2025-01-02T03:04:05Z',
    channel: 'api',
  },
  'integration.intune.sync_completed': {
    connection_id: GUID_C,
    run_id: GUID_A,
    status: 'succeeded',
    started_at: '2025-01-02T03:04:05.000Z',
    finished_at: '2025-01-02T03:04:09.500Z',
    duration_ms: 4500,
    devices: 200,
    pages: 1,
    graph_requests: 2,
    throttled_waits: 0,
    counts_by_compliance_state: { compliant: 150, noncompliant: 30, inGracePeriod: 20 },
    counts_by_os_family: { macos: 120, windows: 60, ios: 20 },
    error_code: null,
  },
  'integration.intune.device_posture_changed': {
    connection_id: GUID_A,
    run_id: GUID_B,
    summary: false,
    intune_device_id: GUID_C,
    azure_ad_device_id: GUID_A,
    changed: ['is_encrypted', 'os_major_version'],
    old: { compliance_state: 'compliant', is_encrypted: false, os_major_version: 14 },
    new: { compliance_state: 'compliant', is_encrypted: true, os_major_version: 15 },
    devices_not_listed: 0,
  },
  'agent.macos.enrolled': {
    agent_id: 'agent-01.example:mac',
    platform: 'darwin',
    agent_class: 'endpoint',
    os_family: 'macos',
    os_version: '14.4.1',
    enrollment_id: GUID_C,
  },
  'agent.enrollment_token_created': {
    token_id: '0123456789abcdef',
    expires_at: '2025-01-02T04:04:05.000Z',
    ttl_seconds: 3600,
  },
  'agent.certificate_renewed': {
    agent_id: GUID_C,
    certificate_serial: '5A0B9C',
    certificate_expires_at: '2025-02-01T03:04:05.000Z',
  },
  'asset.sources_merged': {
    match_id: '5a3c1f0e-9b2d-8c4e-a1f2-0123456789ab',
    merges: [{ asset_id: '6b4d2e1f-0c3e-8d5f-b2a3-123456789abc', rule: 'serial_fingerprint', serial_fingerprint: 'hmac-sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', entra_device_id: null, joined: [{ kind: 'agent', id: '5a3c1f0e-9b2d-8c4e-a1f2-0123456789ab' }], previous_asset_ids: [] }],
  },
  'asset.split': { match_id: '5a3c1f0e-9b2d-8c4e-a1f2-0123456789ab', splits: [{ asset_id: '6b4d2e1f-0c3e-8d5f-b2a3-123456789abc', serial_fingerprint: null, into_asset_ids: ['5a3c1f0e-9b2d-8c4e-a1f2-0123456789ab', '6b4d2e1f-0c3e-8d5f-b2a3-123456789abc'] }] },
  'asset.conflict_detected': {
    match_id: '5a3c1f0e-9b2d-8c4e-a1f2-0123456789ab',
    conflicts: [
      {
        conflict_id: '6b4d2e1f-0c3e-8d5f-b2a3-123456789abc',
        kind: 'serial_on_several_machines',
        serial_fingerprint: 'hmac-sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
        entra_device_id: null,
        asset_ids: ['5a3c1f0e-9b2d-8c4e-a1f2-0123456789ab', '6b4d2e1f-0c3e-8d5f-b2a3-123456789abc'],
        sources: [{ kind: 'agent', id: '5a3c1f0e-9b2d-8c4e-a1f2-0123456789ab' }, { kind: 'agent', id: '6b4d2e1f-0c3e-8d5f-b2a3-123456789abc' }],
      },
    ],
  },
  'agent.revoked': {
    agent_id: GUID_C,
    platform: 'darwin',
    agent_class: 'endpoint',
  },
  'integration.intune.connection_created': {
    connection_id: GUID_C,
    entra_tenant_id: 'contoso.onmicrosoft.com',
    client_id: GUID_B,
    cloud: 'public',
    secret_ref: 'env:INTUNE_CLIENT_SECRET',
    status: 'active',
  },
  'integration.intune.connection_updated': {
    connection_id: GUID_C,
    entra_tenant_id: 'contoso.onmicrosoft.com',
    client_id: GUID_B,
    cloud: 'usgov',
    secret_ref: 'file:/run/secrets/intune',
    status: 'disabled',
    changed_fields: ['cloud', 'status'],
  },
  'admin.api_key_created': { key_id: 'k_3f2a9c0d1e', role: 'agent', capabilities: ['READ', 'PROPOSE'] },
  'admin.api_key_revoked': { key_id: 'k_3f2a9c0d1e', role: 'agent' },
  'integration.intune.posture_read': { route: 'GET /api/v1/integrations/intune/devices/{device_id}', status: 200, device_id: GUID_A, count: 1 },
};

export function invoked(tenant: string, i: number, overrides: Record<string, unknown> = {}): AppendInput {
  return {
    tenant,
    type: 'CONNECTOR_INVOKED',
    actor: { kind: 'agent', id: `agent-${i % 3}` },
    requestId: `req-${i}`,
    data: { ...SAMPLE_DATA.CONNECTOR_INVOKED, result_count: i, ...overrides },
  };
}

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ic-chronicle-${prefix}-`));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export const uniqueTenant = (prefix = 't'): string => `${prefix}-${crypto.randomBytes(4).toString('hex')}`;

// --- tampering, as a superuser with the triggers disabled -------------------------------------

const EVENT_TRIGGERS = ['chronicle_event_append_only', 'chronicle_event_no_truncate'];
const CHAIN_TRIGGERS = ['chronicle_chain_forward_only', 'chronicle_chain_no_delete', 'chronicle_chain_no_truncate'];

export async function asSuperuserWithoutGuards<T>(db: Db, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    for (const t of EVENT_TRIGGERS) await tx.query(`ALTER TABLE chronicle_event DISABLE TRIGGER ${t}`);
    for (const t of CHAIN_TRIGGERS) await tx.query(`ALTER TABLE chronicle_chain DISABLE TRIGGER ${t}`);
    const result = await fn(tx);
    for (const t of EVENT_TRIGGERS) await tx.query(`ALTER TABLE chronicle_event ENABLE ALWAYS TRIGGER ${t}`);
    for (const t of CHAIN_TRIGGERS) await tx.query(`ALTER TABLE chronicle_chain ENABLE ALWAYS TRIGGER ${t}`);
    return result;
  });
}

interface StoredRow {
  seq: number;
  body: string;
  prev_hash: string;
  hash: string;
}

export async function rows(db: Queryable, tenant: string): Promise<StoredRow[]> {
  return (await db.query<StoredRow>('SELECT seq, body, prev_hash, hash FROM chronicle_event WHERE tenant = $1 ORDER BY seq', [tenant])).rows.map(
    (r) => ({ ...r, seq: Number(r.seq) }),
  );
}

/** Changes one character of the stored body of `seq` (to a different printable character). */
export async function changeBodyByte(db: Db, tenant: string, seq: number, at: number): Promise<void> {
  await asSuperuserWithoutGuards(db, async (tx) => {
    const row = (await rows(tx, tenant)).find((r) => r.seq === seq);
    if (row === undefined) throw new Error(`no row ${seq}`);
    const i = at % row.body.length;
    const replacement = row.body[i] === 'a' ? 'b' : 'a';
    await tx.query('UPDATE chronicle_event SET body = $3 WHERE tenant = $1 AND seq = $2', [tenant, seq, row.body.slice(0, i) + replacement + row.body.slice(i + 1)]);
  });
}

export async function deleteRow(db: Db, tenant: string, seq: number): Promise<void> {
  await asSuperuserWithoutGuards(db, (tx) => tx.query('DELETE FROM chronicle_event WHERE tenant = $1 AND seq = $2', [tenant, seq]));
}

const FAR = 1_000_000_000;

/** Swaps the positions of two events (every column moves with its event). */
export async function swapRows(db: Db, tenant: string, a: number, b: number): Promise<void> {
  await asSuperuserWithoutGuards(db, async (tx) => {
    await tx.query('UPDATE chronicle_event SET seq = $3 WHERE tenant = $1 AND seq = $2', [tenant, a, FAR]);
    await tx.query('UPDATE chronicle_event SET seq = $3 WHERE tenant = $1 AND seq = $2', [tenant, b, a]);
    await tx.query('UPDATE chronicle_event SET seq = $3 WHERE tenant = $1 AND seq = $2', [tenant, FAR, b]);
  });
}

function forgedBody(tenant: string, seq: number, time: string): string {
  return canonicalJson({
    actor: { id: 'agent-0', kind: 'agent' },
    chain: tenant,
    code: null,
    data: { ...SAMPLE_DATA.CONNECTOR_INVOKED, decision: 'denied', reason: 'capability_not_granted', outcome: 'denied' },
    request_id: 'forged',
    seq,
    time,
    type: 'CONNECTOR_INVOKED',
    v: 1,
  });
}

async function insertForged(tx: Queryable, tenant: string, seq: number, prevHash: string, time: string): Promise<void> {
  const body = forgedBody(tenant, seq, time);
  await tx.query(
    `INSERT INTO chronicle_event (tenant, seq, time, type, code, actor_kind, actor_id, request_id, decision, device_ids, body, prev_hash, hash)
     VALUES ($1, $2, $3, 'CONNECTOR_INVOKED', NULL, 'agent', 'agent-0', 'forged', 'denied', $4, $5, $6, $7)`,
    [tenant, seq, time, [GUID_A, GUID_B], body, prevHash, chainHash(prevHash, body)],
  );
}

/**
 * Inserts a well-forged event at `at`: later rows move up one, the forged row links to the row
 * before it and carries a correctly computed hash.
 */
export async function insertRow(db: Db, tenant: string, at: number): Promise<void> {
  await asSuperuserWithoutGuards(db, async (tx) => {
    const all = await rows(tx, tenant);
    const before = all.find((r) => r.seq === at - 1);
    const prevHash = before?.hash ?? '0'.repeat(64);
    const time = before !== undefined ? (JSON.parse(before.body) as { time: string }).time : (JSON.parse((all[0] as StoredRow).body) as { time: string }).time;
    await tx.query('UPDATE chronicle_event SET seq = seq + $3 WHERE tenant = $1 AND seq >= $2', [tenant, at, FAR]);
    await tx.query('UPDATE chronicle_event SET seq = seq - $3 + 1 WHERE tenant = $1 AND seq >= $2', [tenant, FAR, FAR]);
    await insertForged(tx, tenant, at, prevHash, time);
  });
}

/** Deletes seq >= from; with moveHead, also moves the head row back so the chain looks whole. */
export async function truncateTail(db: Db, tenant: string, from: number, { moveHead }: { moveHead: boolean }): Promise<void> {
  await asSuperuserWithoutGuards(db, async (tx) => {
    await tx.query('DELETE FROM chronicle_event WHERE tenant = $1 AND seq >= $2', [tenant, from]);
    if (moveHead) {
      const last = (await rows(tx, tenant)).at(-1);
      await tx.query('UPDATE chronicle_chain SET head_seq = $2, head_hash = $3 WHERE tenant = $1', [tenant, last?.seq ?? 0, last?.hash ?? '0'.repeat(64)]);
    }
  });
}

/**
 * Rewrites the chain from `from` on, consistently: the event at `from` gets different data, every
 * hash after it is recomputed, the head row follows. Only a signed checkpoint can tell.
 */
export async function rewriteChain(db: Db, tenant: string, from: number): Promise<void> {
  await asSuperuserWithoutGuards(db, async (tx) => {
    const all = await rows(tx, tenant);
    let prev = all.find((r) => r.seq === from - 1)?.hash ?? '0'.repeat(64);
    for (const row of all.filter((r) => r.seq >= from)) {
      const envelope = JSON.parse(row.body) as { data: Record<string, unknown> };
      if (row.seq === from) envelope.data = { ...envelope.data, result_count: 999_999 };
      const body = canonicalJson(envelope);
      const hash = chainHash(prev, body);
      await tx.query('UPDATE chronicle_event SET body = $3, prev_hash = $4, hash = $5 WHERE tenant = $1 AND seq = $2', [tenant, row.seq, body, prev, hash]);
      prev = hash;
    }
    await tx.query('UPDATE chronicle_chain SET head_hash = $2 WHERE tenant = $1', [tenant, prev]);
  });
}

/** Appends one well-forged row past the head without moving the head row. */
export async function appendPastHead(db: Db, tenant: string): Promise<void> {
  await asSuperuserWithoutGuards(db, async (tx) => {
    const last = (await rows(tx, tenant)).at(-1) as StoredRow;
    await insertForged(tx, tenant, last.seq + 1, last.hash, (JSON.parse(last.body) as { time: string }).time);
  });
}

/** Changes the data of the event at `seq` and recomputes that row's hash only (the rows after it are left alone). */
export async function editBodyRehashed(db: Db, tenant: string, seq: number): Promise<void> {
  await asSuperuserWithoutGuards(db, async (tx) => {
    const row = (await rows(tx, tenant)).find((r) => r.seq === seq);
    if (row === undefined) throw new Error(`no row ${seq}`);
    const envelope = JSON.parse(row.body) as { data: Record<string, unknown> };
    envelope.data = { ...envelope.data, result_count: 424_242 };
    const body = canonicalJson(envelope);
    await tx.query('UPDATE chronicle_event SET body = $3, hash = $4 WHERE tenant = $1 AND seq = $2', [tenant, seq, body, chainHash(row.prev_hash, body)]);
  });
}

/** Every checkpoint log file under a checkpoint directory (each instance has a directory of its own). */
export function logFiles(checkpointDir: string): string[] {
  if (!fs.existsSync(checkpointDir)) return [];
  return fs
    .readdirSync(checkpointDir, { recursive: true, encoding: 'utf8' })
    .filter((n) => /(^|\/)checkpoints-\d{4}-\d{2}-\d{2}\.jsonl$/.test(n))
    .sort()
    .map((n) => path.join(checkpointDir, n));
}

/** Characters the random-edit properties insert or replace with: JSON syntax, digits, escapes, controls, non-ASCII. */
export const EDIT_CHARS = [' ', '\n', '"', '\\', '0', '1', '.', 'e', '-', 'E', '+', ',', ':', '{', '}', '[', ']', 'a', 'z', 'u', '\u0001', '€', '\u0080'];

/** `base` after one to three random edits (a character replaced, inserted, deleted, or two swapped). */
export const edited = (base: string, chars: readonly string[]) =>
  fc
    .array(fc.record({ at: fc.nat({ max: base.length - 1 }), kind: fc.constantFrom('replace', 'insert', 'delete', 'swap'), char: fc.constantFrom(...chars) }), { minLength: 1, maxLength: 3 })
    .map((edits) => {
      let text = base;
      for (const e of edits) {
        const i = e.at % text.length;
        if (e.kind === 'replace') text = text.slice(0, i) + e.char + text.slice(i + 1);
        else if (e.kind === 'insert') text = text.slice(0, i) + e.char + text.slice(i);
        else if (e.kind === 'delete') text = text.slice(0, i) + text.slice(i + 1);
        else text = text.slice(0, i) + text.slice(i + 1, i + 2) + text.slice(i, i + 1) + text.slice(i + 2);
      }
      return text;
    });

/**
 * One writer for a whole suite on its database (batches of up to 500, so a Promise.all of appends
 * goes in a few statements): opened before the suite's tests, closed after them and before the
 * database is dropped (call it after suiteDatabase).
 */
export function suiteWriter(suite: { readonly db: Db }): Pick<Chronicle, 'append'> {
  let writer: Chronicle | undefined;
  beforeAll(async () => {
    writer = await createChronicle({ db: suite.db, maxBatch: 500 });
  });
  afterAll(async () => {
    await writer?.close();
  });
  return {
    append: (input) => {
      if (writer === undefined) throw new Error('suiteWriter: append inside a test or hook, once the suite has started');
      return writer.append(input);
    },
  };
}
