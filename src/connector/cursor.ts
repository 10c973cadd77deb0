/**
 * list_devices cursors: opaque to callers, bound to one tenant and one set of filters.
 *
 * A cursor holds a position in Graph's paging: the nextLink of the Graph page to read (null: the
 * first page of the filtered query), how many devices of that page were already consumed, and the
 * Graph page size. It is sealed with AES-256-GCM under a key derived from the tenant's
 * fingerprint key, with the tenant and a hash of the filters as associated data. So a caller
 * cannot read the Graph URL out of it, cannot alter it, and a cursor replayed with other filters
 * or against another tenant fails authentication and is refused as invalid_input. Replicas that
 * share the fingerprint master key accept each other's cursors.
 */
import crypto from 'node:crypto';

export interface ListPosition {
  /** Graph nextLink of the page to read; null = the first page of the query. */
  readonly link: string | null;
  /** Devices of that page already consumed. */
  readonly skip: number;
  /** Graph $top the position was made with (a nextLink already carries it; the first page needs it). */
  readonly top: number;
}

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class CursorError extends Error {
  override readonly name = 'CursorError';
}

function cursorKey(fingerprintKey: Buffer, tenant: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', fingerprintKey, 'intune-connector/list-cursor/v1', tenant, 32));
}

/** A stable hash of the filters a listing was made with. */
export function filterHash(filters: Readonly<Record<string, unknown>>): string {
  const entries = Object.entries(filters)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return crypto.createHash('sha256').update(JSON.stringify(entries)).digest('base64url');
}

function aad(tenant: string, filters: string): Buffer {
  return Buffer.from(`list_devices\u0000${tenant}\u0000${filters}`, 'utf8');
}

export function sealCursor(position: ListPosition, context: { fingerprintKey: Buffer; tenant: string; filterHash: string }): string {
  const iv = crypto.randomBytes(IV_BYTES);
  const cipher = crypto.createCipheriv('aes-256-gcm', cursorKey(context.fingerprintKey, context.tenant), iv);
  cipher.setAAD(aad(context.tenant, context.filterHash));
  const plain = Buffer.from(JSON.stringify({ v: VERSION, l: position.link, s: position.skip, t: position.top }), 'utf8');
  const sealed = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, sealed, cipher.getAuthTag()]).toString('base64url');
}

/** Throws CursorError when the cursor was not issued by this tenant's connector for these filters, or was altered. */
export function openCursor(cursor: string, context: { fingerprintKey: Buffer; tenant: string; filterHash: string }): ListPosition {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new CursorError('not a cursor');
  const raw = Buffer.from(cursor, 'base64url');
  if (raw.length < IV_BYTES + TAG_BYTES + 2) throw new CursorError('not a cursor');
  let plain: Buffer;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', cursorKey(context.fingerprintKey, context.tenant), raw.subarray(0, IV_BYTES));
    decipher.setAAD(aad(context.tenant, context.filterHash));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    plain = Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new CursorError('cursor does not authenticate');
  }
  const parsed = JSON.parse(plain.toString('utf8')) as { v?: unknown; l?: unknown; s?: unknown; t?: unknown };
  if (
    parsed.v !== VERSION ||
    !(parsed.l === null || typeof parsed.l === 'string') ||
    !Number.isSafeInteger(parsed.s) ||
    (parsed.s as number) < 0 ||
    !Number.isSafeInteger(parsed.t) ||
    (parsed.t as number) < 1
  ) {
    throw new CursorError('cursor of another version');
  }
  return { link: parsed.l, skip: parsed.s as number, top: parsed.t as number };
}
