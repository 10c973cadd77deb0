/** get_compliance: a device's compliance by Intune id or Entra device id, through the compliance cache. */
import type { Logger } from '../../log/index.js';
import type { CachedComplianceLookup } from '../compliance-lookup.js';
import { failingSettingsOf, type CachedPolicyStatesLookup } from '../policy-states.js';
import { safeRequestId } from '../errors.js';
import type { GetComplianceInput, GetComplianceOutput } from '../operations.js';
import { failedFrom, succeeded, type RunOutcome } from '../outcome.js';
import { graphFailure, noteFailure, signalOption, type RunCall } from './call.js';
import type { ConnectorAssets } from '../assets.js';
import { endpointAgentsOf } from './get-device.js';
import { defined } from '../../common/values.js';

export interface GetComplianceDeps {
  readonly lookup: CachedComplianceLookup;
  readonly policyStates: CachedPolicyStatesLookup;
  readonly logger: Logger | undefined;
  readonly assets: () => ConnectorAssets | undefined;
}

export async function runGetCompliance(deps: GetComplianceDeps, call: RunCall<GetComplianceInput>): Promise<RunOutcome<GetComplianceOutput>> {
  const { graph, tenant, input, signal } = call;
  const byEntra = input.azure_ad_device_id !== undefined;
  const id = (input.azure_ad_device_id ?? input.device_id) as string;
  const lookup = await deps.lookup(graph, tenant, byEntra ? 'azureADDeviceId' : 'deviceId', id, signalOption(signal));
  if (!lookup.ok) return failedFrom(noteFailure(deps.logger, lookup.failure, 'get_compliance'));
  const cache = { hit: lookup.cacheHit, stale: lookup.servedStale };
  // The records are held current record first: the one the gate decides on.
  const current = lookup.records[0];
  if (current === undefined) {
    return {
      ok: false,
      kind: 'failed',
      reason: 'not_found',
      message: byEntra
        ? 'No Intune managed device has that Entra device id (azure_ad_device_id): the device is not enrolled in Intune.'
        : 'Intune has no managed device with that device_id.',
      ...defined({ graphRequestId: lookup.graphRequestId ?? undefined }),
      recordOnly: { cache },
    };
  }
  let graphRequestId = lookup.graphRequestId;
  let policies: GetComplianceOutput['policies'];
  if (input.include_policies === true) {
    const states = await deps.policyStates(graph, tenant, current.device_id, signalOption(signal));
    if (!states.ok) return failedFrom(noteFailure(deps.logger, states.failure, 'get_compliance'), { cache });
    graphRequestId = states.graphRequestId ?? graphRequestId;
    policies = states.records.map((p) => ({
      id: p.id,
      ...defined({ display_name: p.displayName ?? undefined }),
      state: p.state,
      platform_type: p.platformType,
      setting_count: p.settingCount,
      failing_settings: failingSettingsOf(p),
    }));
  }
  const value: GetComplianceOutput = {
    compliance_state: current.compliance_state,
    grace_period_expires_at: current.grace_period_expires_at,
    last_sync_at: current.last_sync_at,
    device_id: current.device_id,
    azure_ad_device_id: current.azure_ad_device_id,
    record_count: lookup.records.length,
    devices: [...lookup.records],
    ...defined({ policies }),
    cache,
    endpoint_agents: await endpointAgentsOf(deps, tenant, lookup.records.map((r) => r.device_id)),
  };
  return succeeded(value, { resultCount: lookup.records.length, graphRequestId, cache });
}
