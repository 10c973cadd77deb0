/**
 * Who may call what: pure functions over the descriptor, the caller's delegation scope and the
 * deployment policy. No I/O, no clock.
 *
 * The order of checks, in one place (IntuneConnector.invoke follows it step by step):
 *
 *   1. unknown operation                     -> denied 'unknown_operation'
 *   2. input validation (zod; GUIDs first)   -> denied 'invalid_input' (+ field)
 *   3. Intune enabled, tenant connected      -> denied 'intune_disabled'
 *   4. Phase 1: MUTATE not enabled           -> denied 'operation_disabled' (whatever the scope says)
 *   5. capability granted by the scope       -> denied 'capability_not_granted'
 *   6. operation granted by the scope        -> denied 'operation_not_granted'
 *   7. ceremony, when the scope requires one -> denied 'ceremony_required'
 *   8. run                                   -> succeeded, or failed with a FailureReason
 *
 * Steps 4 to 6 are `authorizeOperation` below; step 7 needs the CeremonyVerifier (async) and lives
 * in the connector. Every step's answer is audited the same way.
 */
import type { DelegationScope, DenialReason, OperationDescriptor, OperationName } from './contract.js';

/** Deployment policy: which MUTATE operations this deployment runs at all. Phase 1: none. */
export interface OperationPolicy {
  readonly enabledMutations: readonly OperationName[];
}

export const PHASE1_POLICY: OperationPolicy = Object.freeze({ enabledMutations: Object.freeze([]) });

export type Authorization =
  | { readonly allowed: true; readonly ceremonyRequired: boolean }
  | { readonly allowed: false; readonly reason: Extract<DenialReason, 'operation_disabled' | 'capability_not_granted' | 'operation_not_granted'>; readonly message: string };

/** Whether the deployment runs this operation at all (step 4). */
export function isOperationEnabled(descriptor: OperationDescriptor, policy: OperationPolicy): boolean {
  return descriptor.capability !== 'MUTATE' || policy.enabledMutations.includes(descriptor.name);
}

/** Steps 4 to 6 of the order above. */
export function authorizeOperation(descriptor: OperationDescriptor, scope: DelegationScope, policy: OperationPolicy): Authorization {
  const { name, capability } = descriptor;
  if (!isOperationEnabled(descriptor, policy)) {
    return {
      allowed: false,
      reason: 'operation_disabled',
      message: `${name} is disabled in Phase 1: MUTATE operations are not enabled in this deployment. Nothing was sent to Intune.`,
    };
  }
  if (!scope.capabilities.includes(capability)) {
    return {
      allowed: false,
      reason: 'capability_not_granted',
      message: `${name} needs the ${capability} capability, and this caller's delegation scope grants ${
        scope.capabilities.length > 0 ? scope.capabilities.join(', ') : 'none'
      }. Ask an administrator for a key or scope with ${capability}.`,
    };
  }
  if (scope.operations !== undefined && !scope.operations.includes(name)) {
    return {
      allowed: false,
      reason: 'operation_not_granted',
      message: `${name} is not among the operations this caller's delegation scope names (${
        scope.operations.length > 0 ? scope.operations.join(', ') : 'none'
      }).`,
    };
  }
  return { allowed: true, ceremonyRequired: scope.ceremonyRequiredFor.includes(name) };
}

/** What a scope may call now: the filter MCP lists tools with. Ceremony-gated operations are listed (they can be called with a ceremony). */
export function permittedOperations<D extends OperationDescriptor>(
  operations: readonly D[],
  scope: DelegationScope,
  policy: OperationPolicy,
): readonly D[] {
  return operations.filter((d) => authorizeOperation(d, scope, policy).allowed);
}
