/**
 * A device's compliance policy states with their per-setting states, through a compliance cache
 * of their own: read only when needed (the gate's deny, or get_compliance with include_policies),
 * cached under the same TTL and stale rules as the device records and coalesced the same way, so
 * a burst of denials for one device is one Graph request. What is cached is already reduced to
 * identifiers and states (./graph/schemas.ts): nothing personal is held.
 */
import { ComplianceCache, type CachedLookup } from './cache.js';
import { safeRequestId } from './errors.js';
import type { CompliancePolicyState, GraphClient } from './graph/types.js';

/** Setting states that mean "this is what to fix". */
const FAILING_STATES = new Set(['nonCompliant', 'error', 'conflict']);

export type CachedPolicyStatesLookup = (
  graph: GraphClient,
  tenant: string,
  intuneDeviceId: string,
  options: { maxStaleMs?: number; signal?: AbortSignal },
) => Promise<CachedLookup<CompliancePolicyState>>;

export function cachedPolicyStatesLookup(cache: ComplianceCache<CompliancePolicyState>): CachedPolicyStatesLookup {
  return (graph, tenant, intuneDeviceId, options) => {
    const id = intuneDeviceId.toLowerCase();
    return cache.lookup(
      ComplianceCache.key(tenant, 'policyStates', id),
      async () => {
        const states = await graph.getCompliancePolicyStates(id, options.signal !== undefined ? { signal: options.signal } : {});
        return { records: Object.freeze(states.value.map((s) => Object.freeze(s))), graphRequestId: safeRequestId(states.requestId) };
      },
      options,
    );
  };
}

/** The identifiers of the failing settings of one policy, in Graph's order, each once. */
export function failingSettingsOf(policy: CompliancePolicyState): string[] {
  const out = new Set<string>();
  for (const s of policy.settingStates) if (s.setting !== null && FAILING_STATES.has(s.state)) out.add(s.setting);
  return [...out];
}

/** Every failing setting of a device across its policies, each once (at most `max`). */
export function failingSettings(policies: readonly CompliancePolicyState[], max = 64): string[] {
  const out = new Set<string>();
  for (const p of policies) for (const s of failingSettingsOf(p)) out.add(s);
  return [...out].slice(0, max);
}
