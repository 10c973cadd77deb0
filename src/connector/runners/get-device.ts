/** get_device: one managed device's redacted posture by its Intune id. */
import type { Logger } from '../../log/index.js';
import { safeRequestId } from '../errors.js';
import type { GetDeviceOutput } from '../operations.js';
import { failedFrom, succeeded, type RunOutcome } from '../outcome.js';
import { redactDevice } from '../redaction.js';
import { graphFailure, signalOption, type RunCall } from './call.js';
import type { ConnectorAssets, EndpointAgent } from '../assets.js';

export interface GetDeviceDeps {
  readonly fingerprintKeyFor: (tenant: string) => Buffer | Promise<Buffer>;
  readonly logger: Logger | undefined;
  readonly assets: () => ConnectorAssets | undefined;
}

/** The agents that see these records' machine; none when asset identity is absent or cannot answer (the Intune answer still stands). */
export async function endpointAgentsOf(deps: Pick<GetDeviceDeps, 'assets' | 'logger'>, tenant: string, deviceIds: readonly string[]): Promise<EndpointAgent[]> {
  const assets = deps.assets();
  if (assets === undefined) return [];
  try {
    return await assets.endpointAgents(tenant, deviceIds);
  } catch (err) {
    deps.logger?.warn({ err }, 'could not read the agents that see this device; answering without them');
    return [];
  }
}

export async function runGetDevice(deps: GetDeviceDeps, call: RunCall<{ readonly device_id: string }>): Promise<RunOutcome<GetDeviceOutput>> {
  try {
    const found = await call.graph.getDevice(call.input.device_id.toLowerCase(), signalOption(call.signal));
    const key = await deps.fingerprintKeyFor(call.tenant);
    const device = redactDevice(found.value, key);
    const endpoint_agents = await endpointAgentsOf(deps, call.tenant, [device.device_id]);
    return succeeded({ device, endpoint_agents }, { resultCount: 1, graphRequestId: safeRequestId(found.requestId) });
  } catch (err) {
    return failedFrom(graphFailure(deps.logger, err, 'get_device'));
  }
}
