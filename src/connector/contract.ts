/**
 * The plugin contract a host framework adopts: capability levels, operation descriptors, the
 * invocation context, and invoke's typed outcome. Types only; IntuneConnector implements it.
 *
 * One field decides: an operation's `capability`. The scope check, MCP annotations and the audit
 * record are all derived from it, so what callers are told and what is enforced cannot drift.
 */
import type { z } from 'zod';
import type { Capability } from '../config/index.js';
import type { Actor } from '../chronicle/types.js';

export type { Capability } from '../config/index.js';
export { CAPABILITIES } from '../config/index.js';

export const OPERATION_NAMES = [
  'list_devices',
  'get_device',
  'get_compliance',
  'find_asset',
  'sync_device',
  'remote_lock',
  'retire_device',
  'wipe_device',
] as const;
export type OperationName = (typeof OPERATION_NAMES)[number];

export interface OperationDescriptor<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  readonly name: OperationName;
  /** Required: everything about governance derives from it. */
  readonly capability: Capability;
  readonly title: string;
  /** For humans and models: what it does, what it returns, when to use it. */
  readonly description: string;
  readonly input: I;
  readonly output: O;
  /** Graph endpoint it calls, for docs and the audit record. */
  readonly graph: string;
}

/**
 * What a caller is allowed to do. `operations` narrows within the granted capabilities (absent: all
 * operations of those capabilities). `ceremonyRequiredFor` names operations that need an approved
 * ceremony (human approval) on the context before they run.
 */
export interface DelegationScope {
  readonly capabilities: readonly Capability[];
  readonly operations?: readonly OperationName[];
  readonly ceremonyRequiredFor: readonly OperationName[];
}

export interface InvocationContext {
  readonly tenant: string;
  readonly actor: Omit<Actor, 'kind'> & { readonly kind: 'agent' | 'service' | 'human' };
  readonly scope: DelegationScope;
  readonly requestId: string;
  /** Evidence of an approved ceremony, checked by the connector's CeremonyVerifier. */
  readonly ceremony?: { readonly approvalId: string };
  readonly signal?: AbortSignal;
  /** The surface the call came through, recorded in the audit event. */
  readonly channel?: InvocationChannel;
}

export const INVOCATION_CHANNELS = ['library', 'mcp', 'api', 'cli'] as const;
export type InvocationChannel = (typeof INVOCATION_CHANNELS)[number];

/**
 * Checks the ceremony evidence on a context (e.g. a human approval recorded elsewhere) for one
 * operation. The connector asks it only for operations the caller's scope lists in
 * `ceremonyRequiredFor`; false, a throw, or no verifier at all is a 'ceremony_required' denial.
 */
export interface CeremonyVerifier {
  verify(context: InvocationContext, operation: OperationName): Promise<boolean>;
}

/** Why a call was not carried out. Each has a sentence for the caller in `message`. */
export type DenialReason =
  | 'unknown_operation'
  | 'invalid_input'
  | 'capability_not_granted'
  | 'operation_not_granted'
  | 'operation_disabled'
  | 'ceremony_required'
  | 'intune_disabled';

/** Why an allowed call did not succeed. */
export type FailureReason = 'not_found' | 'throttled' | 'graph_unavailable' | 'graph_error' | 'graph_forbidden' | 'timeout' | 'cancelled';

/** How a call ended: invoke's outcome before the audit step adds its receipt. */
export type SettledOutcome<O> =
  | { readonly ok: true; readonly value: O }
  | {
      readonly ok: false;
      readonly kind: 'denied';
      readonly reason: DenialReason;
      readonly message: string;
      /** For invalid_input: the offending field path. */
      readonly field?: string;
    }
  | {
      readonly ok: false;
      readonly kind: 'failed';
      readonly reason: FailureReason;
      readonly message: string;
      readonly retryAfterMs?: number;
      readonly graphRequestId?: string;
    };

/** What invoke answers: how the call ended, and the sequence number of its CONNECTOR_INVOKED record. */
export type InvokeOutcome<O> = SettledOutcome<O> & { readonly audit: { readonly seq: number } };
