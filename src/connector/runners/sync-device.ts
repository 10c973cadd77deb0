/**
 * sync_device (PROPOSE): ask Intune to have a device check in now. A device asked within the
 * cooldown is not asked again; the cooldown is claimed before Graph is called, so replicas agree.
 */
import type { Logger } from '../../log/index.js';
import { safeRequestId } from '../errors.js';
import type { SyncDeviceOutput } from '../operations.js';
import { failedFrom, notStarted, succeeded, throttledByBudget, type RunOutcome } from '../outcome.js';
import type { SyncCooldownStore } from '../sync-cooldown.js';
import type { DeviceWriteBudget } from '../write-budget.js';
import { graphFailure, signalOption, type RunCall } from './call.js';

export interface SyncDeviceDeps {
  readonly cooldowns: SyncCooldownStore;
  readonly cooldownMs: number;
  readonly writeBudget: DeviceWriteBudget;
  readonly now: () => number;
  readonly logger: Logger | undefined;
  /** Forgets what the compliance cache holds about the device, on every replica: the action changes it. */
  readonly invalidateDevice: (tenant: string, deviceId: string) => Promise<void>;
}

export async function runSyncDevice(deps: SyncDeviceDeps, call: RunCall<{ readonly device_id: string }>): Promise<RunOutcome<SyncDeviceOutput>> {
  const { cooldowns, cooldownMs, writeBudget, logger } = deps;
  const { graph, tenant, signal } = call;
  const id = call.input.device_id.toLowerCase();
  // Cancelled before anything started: Intune is certainly not asked, so no cooldown is taken.
  if (signal?.aborted === true) return notStarted();
  const at = deps.now();
  let claim;
  try {
    claim = await cooldowns.claim(tenant, id, at, cooldownMs);
  } catch (err) {
    logger?.error({ err, operation: 'sync_device' }, 'sync_device could not record its cooldown in the database');
    return {
      ok: false,
      kind: 'failed',
      reason: 'graph_unavailable',
      message: 'sync_device could not record the request in the connector database, so Intune was not asked; try again shortly.',
      recordOnly: { auditReason: 'cooldown_store_unavailable' },
    };
  }
  const answer = (status: 'requested' | 'recently_requested', requestedAt: number): SyncDeviceOutput => ({
    status,
    requested_at: new Date(requestedAt).toISOString(),
    next_allowed_at: new Date(requestedAt + cooldownMs).toISOString(),
  });
  if (!claim.claimed) return succeeded(answer('recently_requested', claim.requestedAt), { graphRequestId: null });

  const budget = await writeBudget.take(tenant);
  if (!budget.ok) {
    await cooldowns.release(tenant, id, claim.requestedAt).catch(() => undefined);
    return throttledByBudget(budget.retryAfterMs);
  }
  try {
    const done = await graph.performDeviceAction(id, 'syncDevice', signalOption(signal));
    await deps.invalidateDevice(tenant, id);
    return succeeded(answer('requested', claim.requestedAt), { graphRequestId: safeRequestId(done.requestId) });
  } catch (err) {
    const failure = graphFailure(logger, err, 'sync_device');
    // Only a definitive "not performed" frees the device for another request; after a timeout or a
    // reset Intune may have been asked, and the cooldown keeps us from asking twice.
    if (failure.status !== null && failure.status >= 400 && failure.status < 500) {
      await cooldowns.release(tenant, id, claim.requestedAt).catch(() => undefined);
    }
    return failedFrom(failure);
  }
}
