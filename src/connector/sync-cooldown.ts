/**
 * The sync_device cooldown: a device asked to sync within `cooldownMs` is not asked again. Kept in
 * the database (connector_sync_requests) so every replica agrees; an in-memory store serves hosts
 * that embed the connector without a database.
 *
 * `claim` is one atomic statement: of two replicas racing for the same device, one gets the claim
 * and the other sees the winner's time.
 */
import type { Queryable } from '../db/index.js';

export type ClaimResult = { readonly claimed: true; readonly requestedAt: number } | { readonly claimed: false; readonly requestedAt: number };

export interface SyncCooldownStore {
  /** Records `now` as the device's request time unless one newer than `now - cooldownMs` exists. */
  claim(tenant: string, deviceId: string, now: number, cooldownMs: number): Promise<ClaimResult>;
  /** Undoes a claim whose request definitely did not reach Intune (e.g. Graph said 429 or 404). */
  release(tenant: string, deviceId: string, requestedAt: number): Promise<void>;
}

export function databaseCooldownStore(db: Queryable): SyncCooldownStore {
  return {
    async claim(tenant, deviceId, now, cooldownMs) {
      const claimed = await db.query<{ requested_at_ms: number }>(
        `INSERT INTO connector_sync_requests AS s (tenant, device_id, requested_at)
         VALUES ($1, $2, $3::timestamptz)
         ON CONFLICT (tenant, device_id) DO UPDATE SET requested_at = EXCLUDED.requested_at
           WHERE s.requested_at <= $4::timestamptz
         RETURNING (extract(epoch FROM requested_at) * 1000)::bigint AS requested_at_ms`,
        [tenant, deviceId, new Date(now).toISOString(), new Date(now - cooldownMs).toISOString()],
      );
      if (claimed.rows.length > 0) return { claimed: true, requestedAt: now };
      const existing = await db.query<{ requested_at_ms: number }>(
        `SELECT (extract(epoch FROM requested_at) * 1000)::bigint AS requested_at_ms
           FROM connector_sync_requests WHERE tenant = $1 AND device_id = $2`,
        [tenant, deviceId],
      );
      const row = existing.rows[0];
      // The row was replaced between the two statements: someone claimed it just now.
      return { claimed: false, requestedAt: row !== undefined ? Number(row.requested_at_ms) : now };
    },
    async release(tenant, deviceId, requestedAt) {
      await db.query('DELETE FROM connector_sync_requests WHERE tenant = $1 AND device_id = $2 AND requested_at = $3::timestamptz', [
        tenant,
        deviceId,
        new Date(requestedAt).toISOString(),
      ]);
    },
  };
}

export function memoryCooldownStore(): SyncCooldownStore {
  const requests = new Map<string, number>();
  const key = (tenant: string, deviceId: string) => `${tenant}\u0000${deviceId}`;
  return {
    async claim(tenant, deviceId, now, cooldownMs) {
      const previous = requests.get(key(tenant, deviceId));
      if (previous !== undefined && previous > now - cooldownMs) return { claimed: false, requestedAt: previous };
      requests.set(key(tenant, deviceId), now);
      return { claimed: true, requestedAt: now };
    },
    async release(tenant, deviceId, requestedAt) {
      if (requests.get(key(tenant, deviceId)) === requestedAt) requests.delete(key(tenant, deviceId));
    },
  };
}
