/** remote_lock, retire_device, wipe_device (MUTATE): run only when a deployment enables them and the ceremony passed. */
import type { Logger } from '../../log/index.js';
import { safeRequestId } from '../errors.js';
import { DEVICE_ACTIONS, type DeviceActionOutput } from '../operations.js';
import { failedFrom, notStarted, succeeded, throttledByBudget, type RunOutcome } from '../outcome.js';
import type { DeviceWriteBudget } from '../write-budget.js';
import { graphFailure, signalOption, type RunCall } from './call.js';

export interface DeviceActionDeps {
  readonly writeBudget: DeviceWriteBudget;
  readonly now: () => number;
  readonly logger: Logger | undefined;
  /** Forgets what the compliance cache holds about the device, on every replica: the action changes it. */
  readonly invalidateDevice: (tenant: string, deviceId: string) => Promise<void>;
}

export async function runDeviceAction(
  deps: DeviceActionDeps,
  operation: 'remote_lock' | 'retire_device' | 'wipe_device',
  call: RunCall<{ readonly device_id: string }>,
): Promise<RunOutcome<DeviceActionOutput>> {
  const { graph, tenant, signal } = call;
  if (signal?.aborted === true) return notStarted();
  const budget = await deps.writeBudget.take(tenant);
  if (!budget.ok) return throttledByBudget(budget.retryAfterMs);
  const requestedAt = deps.now();
  try {
    const id = call.input.device_id.toLowerCase();
    const done = await graph.performDeviceAction(id, DEVICE_ACTIONS[operation], signalOption(signal));
    await deps.invalidateDevice(tenant, id);
    return succeeded({ status: 'requested', requested_at: new Date(requestedAt).toISOString() }, { graphRequestId: safeRequestId(done.requestId) });
  } catch (err) {
    return failedFrom(graphFailure(deps.logger, err, operation));
  }
}
