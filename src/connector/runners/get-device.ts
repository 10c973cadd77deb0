/** get_device: one managed device's redacted posture by its Intune id. */
import type { Logger } from '../../log/index.js';
import { safeRequestId } from '../errors.js';
import type { GetDeviceOutput } from '../operations.js';
import { failedFrom, succeeded, type RunOutcome } from '../outcome.js';
import { redactDevice } from '../redaction.js';
import { graphFailure, signalOption, type RunCall } from './call.js';

export interface GetDeviceDeps {
  readonly fingerprintKeyFor: (tenant: string) => Buffer | Promise<Buffer>;
  readonly logger: Logger | undefined;
}

export async function runGetDevice(deps: GetDeviceDeps, call: RunCall<{ readonly device_id: string }>): Promise<RunOutcome<GetDeviceOutput>> {
  try {
    const found = await call.graph.getDevice(call.input.device_id.toLowerCase(), signalOption(call.signal));
    const key = await deps.fingerprintKeyFor(call.tenant);
    return succeeded({ device: redactDevice(found.value, key) }, { resultCount: 1, graphRequestId: safeRequestId(found.requestId) });
  } catch (err) {
    return failedFrom(graphFailure(deps.logger, err, 'get_device'));
  }
}
