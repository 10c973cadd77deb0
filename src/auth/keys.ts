/**
 * The API key store: keys bound to one tenant and one role (and, for agents and admins, delegated
 * capabilities), stored hashed, audited in Chronicle, and cached briefly for the hot path.
 *
 * Key format: `icn_<key id: 16 hex>_<secret: 43 base64url chars, 256 random bits>`. The key id is
 * the lookup handle (it is shown by `keys list` and recorded in Chronicle); the whole key is
 * compared by SHA-256 digest with a constant-time comparison. A fast hash is the right tool for
 * 256-bit random secrets: there is nothing to brute-force, and a slow KDF would cost every gate
 * request.
 *
 * Revocation: the replica that revokes a key drops it from its cache at once; every other process
 * stops accepting it within `cacheTtlMs` (default 5 s), the lifetime of a cached entry.
 */
import crypto from 'node:crypto';
import type { Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import type { Actor, ChronicleWriter } from '../chronicle/types.js';
import { CAPABILITIES, type Capability } from '../config/index.js';
import { ROLES, type Authenticator, type Principal, type Role } from './types.js';
import { isTenant } from '../common/ids.js';
import { defined, iso, isoOrNull } from '../common/values.js';
import { KEY_ID_PATTERN, type ApiKeyRecord } from './schemas.js';

export const KEY_PREFIX = 'icn_';
const KEY_PATTERN = /^icn_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const NAME_MAX_CHARS = 100;
// Printable text only: a label ends up in terminals and HTML.
const NAME_PATTERN = /^[^\p{Cc}\p{Cf}]+$/u;

/** Roles whose keys carry delegated capabilities (MCP callers). Other roles hold READ only. */
export const SCOPED_ROLES: readonly Role[] = ['agent', 'admin'];

export type { ApiKeyRecord } from './schemas.js';

export interface CreatedApiKey {
  /** The key itself: shown once, never stored. */
  readonly key: string;
  readonly record: ApiKeyRecord;
}

export interface CreateKeyInput {
  readonly tenant: string;
  readonly role: string;
  /** Defaults to READ. Only agent and admin keys may carry more. */
  readonly capabilities?: readonly string[];
  readonly name?: string | null;
}

export type KeyInputErrorCode = 'invalid_tenant' | 'invalid_role' | 'invalid_capabilities' | 'invalid_name' | 'invalid_key_id';

/** Input an administrator can fix; `message` says how. */
export class KeyInputError extends Error {
  override readonly name = 'KeyInputError';
  constructor(
    readonly code: KeyInputErrorCode,
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export interface KeyStore extends Authenticator {
  create(input: CreateKeyInput, actor: Actor, options?: { requestId?: string }): Promise<CreatedApiKey>;
  /** Newest first; without a tenant, every tenant's keys (CLI only: the API always passes one). */
  list(filter?: { tenant?: string; includeRevoked?: boolean }): Promise<ApiKeyRecord[]>;
  /** With `tenant`, a key of another tenant is reported as absent. */
  get(keyId: string, options?: { tenant?: string }): Promise<ApiKeyRecord | null>;
  /**
   * Revokes a key. Returns null when there is no such key (or it belongs to another tenant when
   * `tenant` is given); revoking a revoked key returns it unchanged without a second event.
   */
  revoke(keyId: string, actor: Actor, options?: { tenant?: string; requestId?: string }): Promise<ApiKeyRecord | null>;
  /**
   * The first admin key of a tenant, once: null when one was issued before (by this or any other
   * process), so a restart never prints a second key.
   */
  issueBootstrapKey(tenant: string, actor: Actor): Promise<CreatedApiKey | null>;
  /** Whether a bootstrap key was issued for the tenant. */
  bootstrapIssued(tenant: string): Promise<boolean>;
  /** Drops every cached entry (tests, and after bulk changes). */
  clearCache(): void;
}

export interface KeyStoreOptions {
  readonly db: Db;
  readonly chronicle: ChronicleWriter;
  /** How long an authenticated (or unknown) key id is remembered: the revocation bound for other processes. */
  readonly cacheTtlMs?: number;
  readonly cacheMaxEntries?: number;
  readonly now?: () => number;
  readonly logger?: Logger;
  /** Delays between attempts to remove a key whose audit event failed (default 1 s, 5 s, 30 s, 2 min). */
  readonly removalRetryMs?: readonly number[];
}

interface KeyRow {
  key_id: string;
  tenant: string;
  role: string;
  capabilities: string;
  name: string | null;
  secret_sha256: Buffer;
  created_at: Date | string;
  created_by: string;
  revoked_at: Date | string | null;
}

type CacheEntry = { readonly expiresAt: number } & ({ readonly principal: Principal; readonly digest: Buffer } | { readonly principal: null });

const SELECT_COLUMNS = 'key_id, tenant, role, capabilities, name, secret_sha256, created_at, created_by, revoked_at';

function toRecord(row: KeyRow): ApiKeyRecord {
  return {
    key_id: row.key_id,
    tenant: row.tenant,
    role: row.role as Role,
    capabilities: row.capabilities.split(',') as Capability[],
    name: row.name,
    created_at: iso(row.created_at),
    created_by: row.created_by,
    revoked_at: isoOrNull(row.revoked_at),
  };
}

// crypto.hash (Node >= 20.12) hashes in one call without a Hash object, most of the cost of
// hashing a short key; authenticate runs on every request.
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'buffer') => Buffer }).hash;

function digestOf(key: string): Buffer {
  return oneShotHash !== undefined ? oneShotHash('sha256', key, 'buffer') : crypto.createHash('sha256').update(key, 'utf8').digest();
}

/** Parses `READ,PROPOSE` (case-insensitive, duplicates ignored) or a list; throws KeyInputError. */
export function parseCapabilities(input: string | readonly string[]): Capability[] {
  const words = (typeof input === 'string' ? input.split(',') : input).map((w) => String(w).trim().toUpperCase()).filter((w) => w !== '');
  const unknown = words.filter((w) => !(CAPABILITIES as readonly string[]).includes(w));
  if (unknown.length > 0 || words.length === 0) {
    throw new KeyInputError(
      'invalid_capabilities',
      'capabilities',
      `capabilities must be a comma list of ${CAPABILITIES.join(', ')}${unknown.length > 0 ? ` (unknown: ${unknown.slice(0, 5).join(', ').slice(0, 80)})` : ''}`,
    );
  }
  // Canonical order, so the stored text and the audit record do not depend on how it was typed.
  return CAPABILITIES.filter((c) => words.includes(c));
}

export function validateTenant(tenant: unknown): string {
  if (!isTenant(tenant)) {
    throw new KeyInputError('invalid_tenant', 'tenant', 'tenant must be 1 to 64 characters of letters, digits, dot, underscore or hyphen');
  }
  return tenant;
}

/** The key id of a presented key; null when it cannot be one of ours (checked before any lookup). */
export function parseApiKey(presented: string): { keyId: string } | null {
  const match = KEY_PATTERN.exec(presented);
  return match === null ? null : { keyId: match[1] as string };
}

export function isKeyId(value: string): boolean {
  return KEY_ID_PATTERN.test(value);
}

/** Checks a key request without touching the database (the CLI calls it before opening one). */
export function validateKeyInput(input: CreateKeyInput): { tenant: string; role: Role; capabilities: Capability[]; name: string | null } {
  const tenant = validateTenant(input.tenant);
  if (typeof input.role !== 'string' || !(ROLES as readonly string[]).includes(input.role)) {
    throw new KeyInputError('invalid_role', 'role', `role must be one of ${ROLES.join(', ')}`);
  }
  const role = input.role as Role;
  let capabilities: Capability[] = ['READ'];
  if (input.capabilities !== undefined) {
    capabilities = parseCapabilities(input.capabilities);
    if (!SCOPED_ROLES.includes(role) && capabilities.some((c) => c !== 'READ')) {
      throw new KeyInputError(
        'invalid_capabilities',
        'capabilities',
        `only ${SCOPED_ROLES.join(' and ')} keys carry capabilities beyond READ; leave the scope out for a ${role} key`,
      );
    }
  }
  let name: string | null = null;
  if (input.name !== undefined && input.name !== null) {
    const trimmed = typeof input.name === 'string' ? input.name.trim() : '';
    if (trimmed === '' || trimmed.length > NAME_MAX_CHARS || !NAME_PATTERN.test(trimmed)) {
      throw new KeyInputError('invalid_name', 'name', `name must be 1 to ${NAME_MAX_CHARS} printable characters`);
    }
    name = trimmed;
  }
  return { tenant, role, capabilities, name };
}

/** Remembers an entry in an insertion-ordered Map used as a bounded cache: the oldest goes first when full. */
function rememberIn(cache: Map<string, CacheEntry>, ttlMs: number, maxEntries: number): (keyId: string, entry: CacheEntry) => void {
  return (keyId, entry) => {
    if (ttlMs <= 0) return;
    cache.delete(keyId);
    if (cache.size >= maxEntries) {
      const oldest = cache.keys().next();
      if (oldest.done !== true) cache.delete(oldest.value);
    }
    cache.set(keyId, entry);
  };
}

function principalOf(row: KeyRow): Principal {
  return Object.freeze({
    keyId: row.key_id,
    tenant: row.tenant,
    role: row.role as Role,
    capabilities: Object.freeze(row.capabilities.split(',') as Capability[]),
    actorId: `key:${row.key_id}`,
  });
}

/** Removes a key whose audit event never committed; a failed removal is logged and retried in the background. */
async function removeUnconfirmedKey(options: KeyStoreOptions, keyId: string, tenant: string, attempt = 0): Promise<void> {
  const removalRetryMs = options.removalRetryMs ?? [1_000, 5_000, 30_000, 120_000];
  try {
    await options.db.query('DELETE FROM api_keys WHERE key_id = $1 AND confirmed = false', [keyId]);
    if (attempt > 0) options.logger?.info({ keyId, tenant, attempt }, 'removed an API key whose audit event was never recorded');
  } catch (err) {
    const delay = removalRetryMs[attempt];
    const cause = err as { code?: unknown; message?: unknown };
    options.logger?.error(
      { keyId, tenant, attempt: attempt + 1, err: { code: cause?.code, message: cause?.message }, retryInMs: delay ?? null },
      delay !== undefined
        ? 'could not remove an API key whose audit event failed; it stays unusable and removal is retried'
        : 'gave up removing an API key whose audit event failed; it stays unusable (confirmed = false): delete it by hand',
    );
    if (delay !== undefined) setTimeout(() => void removeUnconfirmedKey(options, keyId, tenant, attempt + 1), delay).unref();
  }
}

export function createKeyStore(options: KeyStoreOptions): KeyStore {
  const { db, chronicle } = options;
  const now = options.now ?? Date.now;
  const cacheTtlMs = options.cacheTtlMs ?? 5_000;
  const cache = new Map<string, CacheEntry>();
  const remember = rememberIn(cache, cacheTtlMs, options.cacheMaxEntries ?? 10_000);

  async function loadRow(keyId: string): Promise<KeyRow | null> {
    // An unconfirmed key (its audit event never committed) does not exist for anyone.
    const { rows } = await db.query<KeyRow>(`SELECT ${SELECT_COLUMNS} FROM api_keys WHERE key_id = $1 AND confirmed`, [keyId]);
    return rows[0] ?? null;
  }

  const removeUnconfirmed = (keyId: string, tenant: string): Promise<void> => removeUnconfirmedKey(options, keyId, tenant);

  async function create(input: CreateKeyInput, actor: Actor, opts: { requestId?: string } = {}): Promise<CreatedApiKey> {
    const { tenant, role, capabilities, name } = validateKeyInput(input);
    const keyId = crypto.randomBytes(8).toString('hex');
    const key = `${KEY_PREFIX}${keyId}_${crypto.randomBytes(32).toString('base64url')}`;
    // Made unusable (confirmed = false): it becomes usable only once its audit event has committed.
    const { rows } = await db.query<KeyRow>(
      `INSERT INTO api_keys (key_id, tenant, role, capabilities, name, secret_sha256, created_by, confirmed)
       VALUES ($1, $2, $3, $4, $5, $6, $7, false) RETURNING ${SELECT_COLUMNS}`,
      [keyId, tenant, role, capabilities.join(','), name, digestOf(key), actor.id.slice(0, 200)],
    );
    try {
      await chronicle.append({
        tenant,
        type: 'admin.api_key_created',
        actor,
        ...defined({ requestId: opts.requestId }),
        data: { key_id: keyId, role, capabilities },
      });
    } catch (err) {
      // No unaudited key: the key was never shown to anyone, so withdrawing it is safe. Until it is
      // gone it stays unconfirmed, which authenticate refuses.
      await removeUnconfirmed(keyId, tenant);
      throw err;
    }
    await db.query('UPDATE api_keys SET confirmed = true WHERE key_id = $1', [keyId]);
    return { key, record: toRecord(rows[0] as KeyRow) };
  }

  async function list(filter: { tenant?: string; includeRevoked?: boolean } = {}): Promise<ApiKeyRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tenant !== undefined) {
      params.push(validateTenant(filter.tenant));
      where.push(`tenant = $${params.length}`);
    }
    if (filter.includeRevoked !== true) where.push('revoked_at IS NULL');
    where.push('confirmed');
    const { rows } = await db.query<KeyRow>(
      `SELECT ${SELECT_COLUMNS} FROM api_keys ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, key_id`,
      params,
    );
    return rows.map(toRecord);
  }

  async function get(keyId: string, opts: { tenant?: string } = {}): Promise<ApiKeyRecord | null> {
    if (!isKeyId(keyId)) return null;
    const row = await loadRow(keyId);
    if (row === null || (opts.tenant !== undefined && row.tenant !== opts.tenant)) return null;
    return toRecord(row);
  }

  async function revoke(keyId: string, actor: Actor, opts: { tenant?: string; requestId?: string } = {}): Promise<ApiKeyRecord | null> {
    if (!isKeyId(keyId)) {
      throw new KeyInputError('invalid_key_id', 'key_id', 'a key id is 16 lowercase hex characters, as `keys list` shows it');
    }
    const row = await loadRow(keyId);
    if (row === null || (opts.tenant !== undefined && row.tenant !== opts.tenant)) return null;
    if (row.revoked_at !== null) return toRecord(row);
    // Claim the revocation atomically, so concurrent calls record it once; then audit it, and if
    // Chronicle cannot record, put the key back as it was and tell the caller.
    const { rows } = await db.query<KeyRow>(
      `UPDATE api_keys SET revoked_at = now(), revoked_by = $2
       WHERE key_id = $1 AND revoked_at IS NULL RETURNING ${SELECT_COLUMNS}`,
      [keyId, actor.id.slice(0, 200)],
    );
    if (rows.length === 0) {
      const current = await loadRow(keyId);
      return current === null ? null : toRecord(current);
    }
    cache.delete(keyId);
    try {
      await chronicle.append({
        tenant: row.tenant,
        type: 'admin.api_key_revoked',
        actor,
        ...defined({ requestId: opts.requestId }),
        data: { key_id: row.key_id, role: row.role, capabilities: row.capabilities.split(',') },
      });
    } catch (err) {
      await db.query('UPDATE api_keys SET revoked_at = NULL, revoked_by = NULL WHERE key_id = $1', [keyId]).catch(() => undefined);
      throw err;
    }
    return toRecord(rows[0] as KeyRow);
  }

  async function authenticate(presented: string): Promise<Principal | null> {
    if (typeof presented !== 'string' || presented.length > 128) return null;
    const parsed = parseApiKey(presented);
    if (parsed === null) return null;
    const digest = digestOf(presented);
    const at = now();
    let entry = cache.get(parsed.keyId);
    if (entry === undefined || entry.expiresAt <= at) {
      const row = await loadRow(parsed.keyId);
      entry =
        row === null || row.revoked_at !== null
          ? { expiresAt: at + cacheTtlMs, principal: null }
          : { expiresAt: at + cacheTtlMs, principal: principalOf(row), digest: Buffer.from(row.secret_sha256) };
      remember(parsed.keyId, entry);
    }
    if (entry.principal === null) return null;
    return crypto.timingSafeEqual(entry.digest, digest) ? entry.principal : null;
  }

  async function bootstrapIssued(tenant: string): Promise<boolean> {
    const { rows } = await db.query('SELECT 1 FROM api_bootstrap WHERE tenant = $1', [validateTenant(tenant)]);
    return rows.length > 0;
  }

  async function issueBootstrapKey(tenant: string, actor: Actor): Promise<CreatedApiKey | null> {
    validateTenant(tenant);
    // Claim the bootstrap slot first, so two replicas starting together print at most one key.
    const claimed = await db.query(
      `INSERT INTO api_bootstrap (tenant, key_id) VALUES ($1, 'pending') ON CONFLICT (tenant) DO NOTHING RETURNING tenant`,
      [tenant],
    );
    if (claimed.rowCount === 0) return null;
    try {
      const created = await create({ tenant, role: 'admin', name: 'bootstrap admin key' }, actor);
      await db.query('UPDATE api_bootstrap SET key_id = $2 WHERE tenant = $1', [tenant, created.record.key_id]);
      return created;
    } catch (err) {
      await db.query(`DELETE FROM api_bootstrap WHERE tenant = $1 AND key_id = 'pending'`, [tenant]).catch(() => undefined);
      throw err;
    }
  }

  return {
    authenticate,
    create,
    list,
    get,
    revoke,
    issueBootstrapKey,
    bootstrapIssued,
    clearCache: () => cache.clear(),
  };
}
