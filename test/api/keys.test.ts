/**
 * The API key store against real databases and a real Chronicle: keys are shown once and stored
 * only as a digest, authenticate to their tenant and role, revocation is audited and takes effect
 * at once here and within the cache lifetime elsewhere, and the bootstrap key is issued once.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChronicle, type Chronicle } from '../../src/chronicle/index.js';
import { createKeyStore, KeyInputError, parseApiKey, parseCapabilities } from '../../src/auth/keys.js';
import { DbError, openPostgres, type Db } from '../../src/db/index.js';
import { toApiError } from '../../src/api/errors.js';
import type { Logger } from '../../src/log/index.js';
import { forEachDatabase, type TestDatabase } from '../helpers/db.js';

const ADMIN = { kind: 'human' as const, id: 'test-admin' };

const openChronicle = (db: Db, dir: string): Promise<Chronicle> =>
  createChronicle({ db, signingKeyFile: path.join(dir, 'signing-key.pem'), checkpointDir: path.join(dir, 'checkpoints'), checkpointIntervalMs: 0 });

forEachDatabase('API key store', (create) => {
  let database: TestDatabase;
  let db: Db;
  let chronicle: Chronicle;
  let dir: string;

  // One database per suite (PGlite takes seconds to open); each test works in its own tenants.
  beforeAll(async () => {
    database = await create();
    db = await database.open();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-keys-'));
    chronicle = await openChronicle(db, dir);
  });
  afterAll(async () => {
    await chronicle.close();
    await database.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates a key shown once, stores only its digest, and authenticates it to its tenant and role', async () => {
    const keys = createKeyStore({ db, chronicle });
    const { key, record } = await keys.create({ tenant: 'acme', role: 'agent', capabilities: ['propose', 'READ'], name: 'claude desktop' }, ADMIN);

    expect(key).toMatch(/^icn_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(parseApiKey(key)?.keyId).toBe(record.key_id);
    expect(record).toMatchObject({ tenant: 'acme', role: 'agent', capabilities: ['READ', 'PROPOSE'], name: 'claude desktop', revoked_at: null });

    const principal = await keys.authenticate(key);
    expect(principal).toEqual({ keyId: record.key_id, tenant: 'acme', role: 'agent', capabilities: ['READ', 'PROPOSE'], actorId: `key:${record.key_id}` });

    // Neither the key nor its secret half is anywhere in the table.
    const { rows } = await db.query('SELECT * FROM api_keys');
    const dump = JSON.stringify(rows, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v));
    expect(dump).not.toContain(key.slice(21));
    expect(dump).not.toContain(Buffer.from(key.slice(21)).toString('hex'));
    expect(rows[0]!['secret_sha256']).toEqual(crypto.createHash('sha256').update(key).digest());
  });

  it('removes a key whose audit failed, retrying a failed removal and logging it; until then it is never listed', async () => {
    // Chronicle refuses (closed), and the database refuses the first two removals (backends terminated).
    const refusing = await openChronicle(db, dir);
    await refusing.close();
    let deletesRefused = 0;
    const flaky: Db = {
      ...db,
      query: ((sql: string, params?: unknown[]) => {
        if (/^DELETE FROM api_keys/.test(sql) && deletesRefused < 2) {
          deletesRefused++;
          return Promise.reject(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }));
        }
        return db.query(sql, params as never);
      }) as Db['query'],
    };
    const logged: Array<{ msg: string; obj: Record<string, unknown> }> = [];
    const logger = {
      error: (obj: Record<string, unknown>, msg: string) => logged.push({ obj, msg }),
      info: (obj: Record<string, unknown>, msg: string) => logged.push({ obj, msg }),
    } as unknown as Logger;
    const keys = createKeyStore({ db: flaky, chronicle: refusing, logger, removalRetryMs: [20, 20, 20] });
    await expect(keys.create({ tenant: 't-unaudited', role: 'admin' }, ADMIN)).rejects.toMatchObject({ code: 'closed' });
    const left = await db.query<{ confirmed: boolean }>("SELECT confirmed FROM api_keys WHERE tenant = 't-unaudited'");
    expect(left.rows).toEqual([{ confirmed: false }]);
    expect(await keys.list({ tenant: 't-unaudited' })).toEqual([]);
    await expect.poll(async () => (await db.query("SELECT 1 FROM api_keys WHERE tenant = 't-unaudited'")).rows.length, { timeout: 5_000 }).toBe(0);
    expect(deletesRefused).toBe(2);
    expect(logged.map((l) => l.msg)).toEqual([
      'could not remove an API key whose audit event failed; it stays unusable and removal is retried',
      'could not remove an API key whose audit event failed; it stays unusable and removal is retried',
      'removed an API key whose audit event was never recorded',
    ]);
    // The audit trail has no event for it, and no key of that tenant was ever usable.
    expect((await chronicle.query({ tenant: 't-unaudited' })).events).toEqual([]);
  });

  it('answers 503 with a code, not 500, when the database refuses writes (read-only)', async () => {
    if (database.kind !== 'postgres') return; // PGlite has no read-only mode to switch on
    const name = new URL(database.url as string).pathname.slice(1);
    await db.query(`ALTER DATABASE ${name} SET default_transaction_read_only = on`);
    const readOnly = openPostgres({ url: database.url as string });
    try {
      const keys = createKeyStore({ db: readOnly, chronicle });
      const err = await keys.create({ tenant: 't-readonly', role: 'reader' }, ADMIN).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DbError);
      expect(toApiError(err)).toMatchObject({ statusCode: 503, code: 'service_unavailable', extra: { database: 'read_only' } });
      expect((toApiError(err) as Error).message).toMatch(/refuses writes \(it is read-only/);
    } finally {
      await readOnly.close();
      await db.query(`ALTER DATABASE ${name} SET default_transaction_read_only = off`);
    }
  });

  it('never authenticates a key whose audit event has not committed (unconfirmed)', async () => {
    const keys = createKeyStore({ db, chronicle, cacheTtlMs: 0 });
    const keyId = crypto.randomBytes(8).toString('hex');
    const key = `icn_${keyId}_${crypto.randomBytes(32).toString('base64url')}`;
    // What a process that died between the insert and the audit leaves behind.
    await db.query(
      `INSERT INTO api_keys (key_id, tenant, role, capabilities, secret_sha256, created_by, confirmed) VALUES ($1, 't-pending', 'admin', 'READ', $2, 'test', false)`,
      [keyId, crypto.createHash('sha256').update(key).digest()],
    );
    expect(await keys.authenticate(key)).toBeNull();
    expect(await keys.get(keyId)).toBeNull();
    await db.query('UPDATE api_keys SET confirmed = true WHERE key_id = $1', [keyId]);
    expect(await keys.authenticate(key)).toMatchObject({ keyId, tenant: 't-pending', role: 'admin' });
  });

  it('refuses wrong, malformed, oversized and tampered keys without throwing', async () => {
    const keys = createKeyStore({ db, chronicle });
    const { key } = await keys.create({ tenant: 't-refuse', role: 'reader' }, ADMIN);
    const tampered = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
    for (const presented of [tampered, '', 'icn_', 'Bearer x', key + 'x', 'x'.repeat(10_000), `icn_${'0'.repeat(16)}_${'A'.repeat(43)}`, "icn_' OR 1=1 --"]) {
      expect(await keys.authenticate(presented)).toBeNull();
    }
    expect(await keys.authenticate(key)).not.toBeNull();
  });

  it('audits creation and revocation in the tenant chain with key id, role and capabilities only', async () => {
    const keys = createKeyStore({ db, chronicle });
    const { key, record } = await keys.create({ tenant: 't-audit', role: 'gate', name: 'authorize.py' }, ADMIN);
    const revoked = await keys.revoke(record.key_id, ADMIN);
    expect(revoked?.revoked_at).not.toBeNull();

    const { events } = await chronicle.query({ tenant: 't-audit', types: ['admin.api_key_created', 'admin.api_key_revoked'] });
    expect(events.map((e) => [e.type, e.data])).toEqual([
      ['admin.api_key_created', { key_id: record.key_id, role: 'gate', capabilities: ['READ'] }],
      ['admin.api_key_revoked', { key_id: record.key_id, role: 'gate', capabilities: ['READ'] }],
    ]);
    expect(events.every((e) => e.actor.id === 'test-admin')).toBe(true);
    expect(JSON.stringify(events)).not.toContain(key);
    expect(JSON.stringify(events)).not.toContain('authorize.py');

    // Revoking again changes nothing and records nothing.
    await keys.revoke(record.key_id, ADMIN);
    expect((await chronicle.query({ tenant: 't-audit', types: ['admin.api_key_revoked'] })).events).toHaveLength(1);
  });

  it('records one revocation when the same key is revoked by concurrent calls', async () => {
    const keys = createKeyStore({ db, chronicle });
    const { record } = await keys.create({ tenant: 't-revoke-race', role: 'reader' }, ADMIN);
    const results = await Promise.all(Array.from({ length: 6 }, () => keys.revoke(record.key_id, ADMIN)));
    expect(results.every((r) => r?.revoked_at !== null)).toBe(true);
    expect((await chronicle.query({ tenant: 't-revoke-race', types: ['admin.api_key_revoked'] })).events).toHaveLength(1);
  });

  it('keeps a key usable when Chronicle cannot record its revocation', async () => {
    const keys = createKeyStore({ db, chronicle });
    const { key, record } = await keys.create({ tenant: 't-revoke-unaudited', role: 'reader' }, ADMIN);
    const closed = await openChronicle(db, dir);
    await closed.close();
    const unaudited = createKeyStore({ db, chronicle: closed });
    await expect(unaudited.revoke(record.key_id, ADMIN)).rejects.toThrow();
    expect(await unaudited.authenticate(key)).not.toBeNull();
    expect((await keys.get(record.key_id))?.revoked_at).toBeNull();
  });

  it('stops accepting a revoked key at once in the revoking store and within the cache TTL in another', async () => {
    let now = 1_000_000;
    const here = createKeyStore({ db, chronicle, cacheTtlMs: 5_000, now: () => now });
    const elsewhere = createKeyStore({ db, chronicle, cacheTtlMs: 5_000, now: () => now });
    const { key, record } = await here.create({ tenant: 't-revoke', role: 'admin' }, ADMIN);
    expect(await here.authenticate(key)).not.toBeNull();
    expect(await elsewhere.authenticate(key)).not.toBeNull();

    await here.revoke(record.key_id, ADMIN);
    expect(await here.authenticate(key)).toBeNull();
    // The other replica still holds its cached answer, for at most the TTL.
    now += 4_999;
    expect(await elsewhere.authenticate(key)).not.toBeNull();
    now += 1;
    expect(await elsewhere.authenticate(key)).toBeNull();
  });

  it('validates input with errors that say what to fix', async () => {
    const keys = createKeyStore({ db, chronicle });
    const cases: Array<[Parameters<typeof keys.create>[0], string]> = [
      [{ tenant: 'bad tenant!', role: 'reader' }, 'invalid_tenant'],
      [{ tenant: 't-input', role: 'superuser' }, 'invalid_role'],
      [{ tenant: 't-input', role: 'agent', capabilities: ['READ', 'DELETE'] }, 'invalid_capabilities'],
      [{ tenant: 't-input', role: 'reader', capabilities: ['READ', 'PROPOSE'] }, 'invalid_capabilities'],
      [{ tenant: 't-input', role: 'reader', name: 'x'.repeat(101) }, 'invalid_name'],
      [{ tenant: 't-input', role: 'reader', name: 'line\nbreak' }, 'invalid_name'],
    ];
    for (const [input, code] of cases) {
      const err = await keys.create(input, ADMIN).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KeyInputError);
      expect((err as KeyInputError).code).toBe(code);
      expect((err as KeyInputError).message.length).toBeGreaterThan(10);
    }
    expect(await keys.list({ tenant: 't-input', includeRevoked: true })).toEqual([]);
    expect(() => parseCapabilities('read, propose')).not.toThrow();
    expect(parseCapabilities('propose,read,READ')).toEqual(['READ', 'PROPOSE']);
    await expect(keys.revoke('not-an-id', ADMIN)).rejects.toBeInstanceOf(KeyInputError);
  });

  it('lists keys per tenant without secrets and hides other tenants from tenant-scoped lookups', async () => {
    const keys = createKeyStore({ db, chronicle });
    const a = await keys.create({ tenant: 't-list-a', role: 'reader' }, ADMIN);
    const b = await keys.create({ tenant: 't-list-b', role: 'auditor' }, ADMIN);
    expect((await keys.list({ tenant: 't-list-a' })).map((r) => r.key_id)).toEqual([a.record.key_id]);
    expect((await keys.list()).map((r) => r.key_id)).toEqual(expect.arrayContaining([a.record.key_id, b.record.key_id]));
    expect(JSON.stringify(await keys.list())).not.toContain('icn_');
    expect(await keys.get(b.record.key_id, { tenant: 't-list-a' })).toBeNull();
    expect(await keys.get(b.record.key_id, { tenant: 't-list-b' })).not.toBeNull();
    expect(await keys.revoke(b.record.key_id, ADMIN, { tenant: 't-list-a' })).toBeNull();
    expect(await keys.authenticate(b.key)).not.toBeNull();
  });

  it('issues the bootstrap admin key once, even across store instances', async () => {
    const first = createKeyStore({ db, chronicle });
    const second = createKeyStore({ db, chronicle });
    expect(await first.bootstrapIssued('default')).toBe(false);
    const [x, y] = await Promise.all([first.issueBootstrapKey('default', ADMIN), second.issueBootstrapKey('default', ADMIN)]);
    const issued = [x, y].filter((k) => k !== null);
    expect(issued).toHaveLength(1);
    expect((await first.authenticate(issued[0]!.key))?.role).toBe('admin');
    expect(await second.issueBootstrapKey('default', ADMIN)).toBeNull();
    expect(await first.bootstrapIssued('default')).toBe(true);
  });

  it('withdraws a key whose creation Chronicle could not record', async () => {
    const closed = await openChronicle(db, dir);
    await closed.close();
    const keys = createKeyStore({ db, chronicle: closed });
    await expect(keys.create({ tenant: 't-unaudited', role: 'admin' }, ADMIN)).rejects.toThrow();
    expect(await keys.list({ tenant: 't-unaudited', includeRevoked: true })).toEqual([]);
  });
});

describe('key format', () => {
  it('parses only well-formed keys', () => {
    expect(parseApiKey('icn_0123456789abcdef_' + 'a'.repeat(43))).toEqual({ keyId: '0123456789abcdef' });
    expect(parseApiKey('icn_0123456789ABCDEF_' + 'a'.repeat(43))).toBeNull();
    expect(parseApiKey('icn_0123456789abcdef_' + 'a'.repeat(42))).toBeNull();
  });
});
