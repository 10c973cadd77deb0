/**
 * Enrollment tokens: made by an administrator, shown once, usable only after their creation has
 * been recorded, consumed by the one enrollment that succeeds. Only a SHA-256 digest is stored.
 */
import crypto from 'node:crypto';
import type { Actor } from '../chronicle/types.js';
import type { AgentContext } from './context.js';
import { AgentError, invalidToken } from './errors.js';
import { digestOf } from './records.js';
import { MAX_TOKEN_TTL_SECONDS } from './schemas.js';
import { defined } from '../common/values.js';

export const TOKEN_PREFIX = 'ice_';
const TOKEN_PATTERN = /^ice_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
export const DEFAULT_TOKEN_TTL_SECONDS = 3_600;
export { MAX_TOKEN_TTL_SECONDS };

export async function createToken(
  ctx: AgentContext,
  tenant: string,
  input: { ttlSeconds?: number; name?: string },
  actor: Actor,
  opts: { requestId?: string } = {},
): Promise<{ token: string; token_id: string; expires_at: string }> {
  const { db, chronicle, now } = ctx;
  const ttlSeconds = input.ttlSeconds ?? ctx.defaultTokenTtlSeconds;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
    throw new AgentError(400, 'invalid_ttl', `ttl_seconds must be a whole number from 1 to ${MAX_TOKEN_TTL_SECONDS} (7 days)`, 'ttl_seconds');
  }
  const tokenId = crypto.randomBytes(8).toString('hex');
  const token = `${TOKEN_PREFIX}${tokenId}_${crypto.randomBytes(32).toString('base64url')}`;
  const expiresAt = new Date(now() + ttlSeconds * 1000);
  await db.query(
    `INSERT INTO agent_enrollment_tokens (token_id, tenant, name, secret_sha256, usable, created_by, expires_at)
     VALUES ($1, $2, $3, $4, false, $5, $6)`,
    [tokenId, tenant, input.name ?? null, digestOf(token), actor.id.slice(0, 200), expiresAt],
  );
  try {
    await chronicle.append({
      tenant,
      type: 'agent.enrollment_token_created',
      actor,
      ...defined({ requestId: opts.requestId }),
      data: { token_id: tokenId, expires_at: expiresAt.toISOString(), ttl_seconds: ttlSeconds },
    });
  } catch (err) {
    await db.query('DELETE FROM agent_enrollment_tokens WHERE token_id = $1', [tokenId]).catch(() => undefined);
    throw err;
  }
  // Usable only now that its record has committed.
  await db.query('UPDATE agent_enrollment_tokens SET usable = true WHERE token_id = $1', [tokenId]);
  return { token, token_id: tokenId, expires_at: expiresAt.toISOString() };
}

/** The token's id and tenant when it could be consumed now; it is not consumed here. */
export async function checkToken(ctx: AgentContext, presented: string): Promise<{ tokenId: string; tenant: string }> {
  const match = TOKEN_PATTERN.exec(presented);
  if (match === null) throw invalidToken();
  const tokenId = match[1] as string;
  const { rows } = await ctx.db.query<{ tenant: string; secret_sha256: Buffer; usable: boolean; consumed_at: unknown; expires_at: Date | string }>(
    'SELECT tenant, secret_sha256, usable, consumed_at, expires_at FROM agent_enrollment_tokens WHERE token_id = $1',
    [tokenId],
  );
  const row = rows[0];
  if (row === undefined || !crypto.timingSafeEqual(Buffer.from(row.secret_sha256), digestOf(presented))) throw invalidToken();
  if (!row.usable || row.consumed_at !== null || new Date(row.expires_at).getTime() <= ctx.now()) throw invalidToken();
  return { tokenId, tenant: row.tenant };
}
