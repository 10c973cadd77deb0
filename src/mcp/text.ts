/**
 * Short text renderings of results for models whose client shows text content only. They carry
 * the redacted posture fields and nothing else, so they can hold no more than structuredContent.
 */
import type { DevicePosture } from '../connector/posture.js';

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
