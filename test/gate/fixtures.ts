/** Plain data for the pure tests: postures, policies and lookups as the connector and the loader produce them. */
import type { DevicePosture } from '../../src/connector/posture.js';
import { samplePosture } from '../helpers/posture.js';
import { buildGatePolicy, resolveAccordPolicy, type AccordPolicy, type ComplianceLookup } from '../../src/gate/index.js';

export const NOW = Date.parse('2025-06-10T12:00:00Z');
export const DAY_MS = 86_400_000;
export const ENTRA_ID = '0fa4e5e1-0000-4000-8000-00000000c001';

export function posture(overrides: Partial<DevicePosture> = {}): DevicePosture {
  return samplePosture({
    azure_ad_device_id: ENTRA_ID,
    enrolled_at: '2024-01-15T09:00:00Z',
    last_sync_at: new Date(NOW - 2 * 3_600_000).toISOString(),
    serial_fingerprint: 'hmac-sha256:00',
    threat_state: 'secured',
    supervised: true,
    ...overrides,
  });
}

export function answered(records: readonly DevicePosture[], extra: Partial<Extract<ComplianceLookup, { ok: true }>> = {}): ComplianceLookup {
  return { ok: true, records, cacheHit: false, servedStale: false, fetchedAt: NOW, graphRequestId: 'req-1', ...extra };
}

/** An accord's resolved policy, through the real loader: env defaults plus one policy-file entry. */
export function accordPolicy(
  entry: Record<string, unknown> = {},
  env: { required?: boolean; strict?: boolean; staleMaxMs?: number } = {},
): AccordPolicy {
  const policy = buildGatePolicy(
    {
      intuneEnabled: true,
      compliance: { requiredByDefault: env.required ?? false, strict: env.strict ?? false, staleMaxMs: env.staleMaxMs ?? 600_000 },
    },
    { accords: { 'device-management': { device_compliance_required: true, ...entry } } },
  );
  return resolveAccordPolicy(policy, 'device-management');
}
