/**
 * Short text renderings of results for models whose client shows text content only. They carry
 * the redacted posture fields and nothing else, so they can hold no more than structuredContent.
 */
import type { DevicePosture } from '../connector/posture.js';
import type { EndpointAgent } from '../connector/assets.js';

export function describeOs(p: Pick<DevicePosture, 'os_family' | 'os_version'>): string {
  return p.os_version === null ? p.os_family : `${p.os_family} ${p.os_version}`;
}

export function describeCompliance(p: Pick<DevicePosture, 'compliance_state' | 'grace_period_expires_at'>): string {
  return p.compliance_state === 'inGracePeriod' && p.grace_period_expires_at !== null
    ? `inGracePeriod until ${p.grace_period_expires_at}`
    : p.compliance_state;
}

/** One device on one line: id first, so a model can pass it straight to the next call. */
export function postureLine(p: DevicePosture): string {
  const hardware = [p.manufacturer, p.model].filter((v) => v !== null && v !== '').join(' ');
  return [
    p.device_id,
    describeOs(p),
    describeCompliance(p),
    `last sync ${p.last_sync_at ?? 'never'}`,
    p.ownership,
    ...(hardware !== '' ? [hardware] : []),
  ].join(' | ');
}

export function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

const tri = (v: boolean | null): string => (v === null ? 'unknown' : v ? 'on' : 'off');

/** What enrolled agents seeing the same machine report, one line each; a line saying none when none does. */
export function describeEndpointAgents(agents: readonly EndpointAgent[]): string {
  if (agents.length === 0) return 'No enrolled endpoint agent sees this machine.';
  return agents
    .map(
      (a) =>
        `Enrolled agent ${a.agent_id} sees the same machine (last heartbeat ${a.last_seen_at ?? 'never'}${a.confidence === 'stale' ? ', stale' : ''}): ` +
        `macOS ${a.os_version ?? 'unknown'}, FileVault ${tri(a.filevault)}, firewall ${tri(a.firewall)}, SIP ${tri(a.sip)}, Gatekeeper ${tri(a.gatekeeper)}` +
        (a.disagreements.length > 0 ? `; it disagrees with Intune on ${a.disagreements.join(', ')}.` : '.'),
    )
    .join('\n');
}
