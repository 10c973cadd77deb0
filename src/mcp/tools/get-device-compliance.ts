/** get_device_compliance: is this device compliant? The connector's get_compliance, through its cache. */
import { describeCompliance, describeEndpointAgents, plural } from '../text.js';
import { describeTool } from './types.js';

export const getDeviceComplianceDescriptor = describeTool(
  'get_device_compliance',
  'get_compliance',
  {
    description:
      'Answers whether a device is compliant with its Intune policies. Give exactly one of device_id (the Intune id, as ' +
      'list_devices shows it) or azure_ad_device_id (the Entra device id, the deviceid claim of a user token). Returns the ' +
      'compliance state (compliant, noncompliant, inGracePeriod, conflict, error, unknown, configManager), the grace-period end, ' +
      'the last check-in, and every matching Intune record (re-enrolment can leave several; the most recently synced decides). ' +
      'Set include_policies to also list the compliance policies, their states and the identifiers of their failing settings ' +
      '(e.g. MacOSCompliancePolicy.StorageRequireEncryption). endpoint_agents lists enrolled endpoint agents ' +
      'that see the same machine and what they report, with the attributes on which they disagree with Intune. ' +
      'Answers come from a short-lived cache: ' +
      'cache.hit and cache.stale say how fresh the answer is.',
  },
  (v) => {
    const ids = v.azure_ad_device_id === null ? `Device ${v.device_id}` : `Device ${v.device_id} (Entra device ${v.azure_ad_device_id})`;
    const freshness = v.cache.stale
      ? 'Served stale from cache because Intune could not be reached.'
      : v.cache.hit
        ? 'Answered from cache.'
        : 'Fresh from Intune.';
    const lines = [
      `${ids} is ${describeCompliance(v)}. Last check-in: ${v.last_sync_at ?? 'never'}.`,
      `${plural(v.record_count, 'Intune record')} match${v.record_count === 1 ? 'es' : ''}${v.record_count > 1 ? '; the most recently synced decides' : ''}. ${freshness}`,
    ];
    if (v.policies !== undefined) {
      lines.push(
        v.policies.length === 0
          ? 'No compliance policies are assigned.'
          : `Policies: ${v.policies.map((p) => `${p.display_name ?? p.id}: ${p.state}${p.failing_settings.length > 0 ? ` (failing: ${p.failing_settings.join(', ')})` : ''}`).join('; ')}.`,
      );
    }
    lines.push(describeEndpointAgents(v.endpoint_agents));
    return lines.join('\n');
  },
);
