/**
 * Chronicle's public types: what a writer hands to append, and what a reader gets back. The event
 * catalog (names, codes, JSON Schemas in specs/events/) lives in ./catalog.ts.
 */

/** Who caused an event. `system` is the connector itself (scheduled sync, bootstrap). */
export interface Actor {
  readonly kind: 'agent' | 'service' | 'human' | 'system';
  readonly id: string;
}

export const EVENT_TYPES = [
  'CONNECTOR_INVOKED',
  'DEVICE_COMPLIANCE_CHECKED',
  'integration.intune.sync_completed',
  'agent.macos.enrolled',
  'integration.intune.connection_created',
  'integration.intune.connection_updated',
  'admin.api_key_created',
  'admin.api_key_revoked',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface AppendInput {
  /** The chain: one per tenant. */
  readonly tenant: string;
  readonly type: EventType;
  readonly actor: Actor;
  readonly requestId?: string;
  /** Validated against specs/events/<type>.v1.schema.json (additionalProperties: false) before it is written. */
  readonly data: Readonly<Record<string, unknown>>;
}

/** What append resolves with, once the transaction that holds the event has committed. */
export interface AppendReceipt {
  readonly tenant: string;
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
}

/** A stored event as reviewers see it: the envelope, its data, and the chain links. */
export interface ChronicleEvent {
  readonly seq: number;
  readonly tenant: string;
  readonly time: string;
  readonly type: EventType;
  /** e.g. "0x2801" for DEVICE_COMPLIANCE_CHECKED; null for events without a catalog code. */
  readonly code: string | null;
  readonly actor: Actor;
  readonly requestId: string | null;
  readonly data: Readonly<Record<string, unknown>>;
  readonly prevHash: string;
  readonly hash: string;
}

/** The writer every other module depends on. */
export interface ChronicleWriter {
  append(input: AppendInput): Promise<AppendReceipt>;
}

export class ChronicleError extends Error {
  override readonly name = 'ChronicleError';
  constructor(
    message: string,
    /**
     * unavailable: the database could not be reached or the commit failed; nothing was recorded.
     * invalid_event: the event did not validate; `field` names the offending property.
     * closed: append after close().
     */
    readonly code: 'unavailable' | 'invalid_event' | 'closed',
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
