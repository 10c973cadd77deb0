/** get_device: one managed device's redacted posture by its Intune id. */
import { describeCompliance, describeEndpointAgents, describeOs } from '../text.js';
import { describeTool } from './types.js';

export const getDeviceDescriptor = describeTool(
  'get_device',
  'get_device',
  {
    description:
      'Returns the redacted posture of one Intune managed device by its Intune id (device_id, a GUID as list_devices shows it): ' +
      'OS, compliance state and grace-period end, encryption, jailbreak, management agent, ownership, enrolment and last check-in ' +
      'times, model and manufacturer, and a keyed fingerprint of the serial number. No names, users or serial numbers. ' +
      'endpoint_agents lists enrolled endpoint agents that see the same machine and what they report (FileVault, firewall, SIP, ' +
      'Gatekeeper, OS version), with the attributes on which they disagree with Intune. ' +
      'For an Entra device id (the deviceid claim of a token), use get_device_compliance instead.',
  },
  ({ device: d, endpoint_agents }) =>
    [
      `Device ${d.device_id}: ${describeOs(d)}, ${describeCompliance(d)}.`,
      `Entra device id: ${d.azure_ad_device_id ?? 'none'}. Encrypted: ${d.is_encrypted ? 'yes' : 'no'}. Jailbroken: ${d.jailbroken}.`,
      `Managed by ${d.management_agent} (${d.management_state}), ${d.ownership} ownership.`,
      `Enrolled ${d.enrolled_at ?? 'unknown'}; last sync ${d.last_sync_at ?? 'never'}.`,
      ...(d.manufacturer !== null || d.model !== null ? [`Hardware: ${[d.manufacturer, d.model].filter((v) => v !== null).join(' ')}.`] : []),
      describeEndpointAgents(endpoint_agents),
    ].join('\n'),
);
