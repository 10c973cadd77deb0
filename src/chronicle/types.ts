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
  'agent.enrollment_token_created',
  'agent.certificate_renewed',
  'agent.revoked',
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
     * invalid_query: a query, export or verify filter was malformed; `field` names it.
     */
    readonly code: 'unavailable' | 'invalid_event' | 'closed' | 'invalid_query',
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A reviewer's filter over one tenant's chain. Results come in seq order. */
export interface ChronicleQuery {
  readonly tenant: string;
  readonly types?: readonly EventType[];
  /** Exact actor id. */
  readonly actorId?: string;
  /** A device id (Intune id or Entra device id) named anywhere in the event's data; case-insensitive. */
  readonly deviceId?: string;
  /** allow | deny (also accepts allowed | denied); matches both spellings the catalog uses. */
  readonly decision?: string;
  /** Inclusive lower bound on the event time (ISO 8601 or Date). */
  readonly from?: string | Date;
  /** Exclusive upper bound on the event time (ISO 8601 or Date). */
  readonly to?: string | Date;
  /** 1 to 1000, default 100. */
  readonly limit?: number;
  /** The nextCursor of the previous page. */
  readonly cursor?: string;
  /** asc (default, oldest first) or desc (newest first). */
  readonly order?: 'asc' | 'desc';
}

/**
 * The filters reviewers type (CLI flags, API query parameters), by their short names. One mapping,
 * `reviewerQuery`, turns them into a ChronicleQuery, so both surfaces filter alike.
 */
export interface ReviewerFilter {
  readonly type?: readonly EventType[];
  readonly actor?: string;
  readonly device?: string;
  readonly decision?: string;
  readonly from?: string;
  readonly to?: string;
  readonly limit?: number;
  readonly cursor?: string;
  readonly order?: 'asc' | 'desc';
}

export function reviewerQuery(tenant: string, f: ReviewerFilter): ChronicleQuery {
  return {
    tenant,
    ...(f.type !== undefined ? { types: f.type } : {}),
    ...(f.actor !== undefined ? { actorId: f.actor } : {}),
    ...(f.device !== undefined ? { deviceId: f.device } : {}),
    ...(f.decision !== undefined ? { decision: f.decision } : {}),
    ...(f.from !== undefined ? { from: f.from } : {}),
    ...(f.to !== undefined ? { to: f.to } : {}),
    ...(f.limit !== undefined ? { limit: f.limit } : {}),
    ...(f.cursor !== undefined ? { cursor: f.cursor } : {}),
    ...(f.order !== undefined ? { order: f.order } : {}),
  };
}

export interface ChronicleQueryResult {
  readonly events: ChronicleEvent[];
  /** Pass as `cursor` for the next page; null when this page is the last. */
  readonly nextCursor: string | null;
}

/**
 * Why verify stopped trusting a chain at `firstBadSeq`:
 * - hash_mismatch: the stored hash is not SHA-256(prev_hash || SHA-256(body)): the body or the hash was changed.
 * - chain_break: the row's prev_hash is not the hash of the row before it.
 * - gap: a seq is missing in the middle of the chain (a deleted row).
 * - reordered: the row holds another position's event, or time runs backwards (rows moved or swapped).
 * - inserted: a row was inserted at this seq (the event originally recorded here now sits one later).
 * - not_canonical: the stored body is not RFC 8785 canonical JSON (or not JSON at all).
 * - column_mismatch: an indexed column (type, actor, time, decision, device ids…) disagrees with the body.
 * - truncated: the chain ends before a seq that the head row or a signed checkpoint says exists.
 * - beyond_head: rows exist past the chain's head row.
 * - head_mismatch: the head row's hash is not the hash of the last event (or the head row is missing).
 * - checkpoint_mismatch: the chain's hash at a signed checkpoint differs: the chain was rewritten.
 * - bad_signature: a checkpoint line's Ed25519 signature does not verify with this deployment's key.
 */
export const VERIFY_FAILURES = [
  'hash_mismatch',
  'chain_break',
  'gap',
  'reordered',
  'inserted',
  'not_canonical',
  'column_mismatch',
  'truncated',
  'beyond_head',
  'head_mismatch',
  'checkpoint_mismatch',
  'bad_signature',
] as const;
export type VerifyFailure = (typeof VERIFY_FAILURES)[number];

export interface ChainVerifyReport {
  readonly tenant: string;
  readonly ok: boolean;
  /** Events found intact (hash, link, form, columns): all of them when ok, else those before firstBadSeq. */
  readonly eventsChecked: number;
  /** The head row's seq (0 for a chain without a head row). */
  readonly headSeq: number;
  /** Signed checkpoints of this chain that were compared with it. */
  readonly checkpointsChecked: number;
  /** The first seq that can no longer be trusted; null when intact. */
  readonly firstBadSeq: number | null;
  readonly reason: VerifyFailure | null;
  /** One sentence for a reviewer, e.g. "the stored hash is not SHA-256(prev_hash || SHA-256(body))". */
  readonly detail: string | null;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly chains: ChainVerifyReport[];
  readonly eventsChecked: number;
  readonly durationMs: number;
  /** Checkpoint lines that could not be read (not JSON, wrong shape); they prove nothing either way. */
  readonly warnings: string[];
}

/** One signed statement "chain `chain` had head `seq` with hash `hash` at `time`", stored outside the database. */
export interface Checkpoint {
  readonly v: 1;
  readonly chain: string;
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
  /** First 16 hex digits of SHA-256 of the raw 32-byte Ed25519 public key. */
  readonly key_id: string;
  /** Base64 Ed25519 signature over the RFC 8785 canonical JSON of the other fields. */
  readonly sig: string;
}

export interface CheckpointResult {
  readonly checkpoints: Checkpoint[];
  /** The append-only file the lines went to; null when nothing was written. */
  readonly file: string | null;
}

export interface ExportOptions {
  /** One chain; absent: every chain, one after the other in tenant order. */
  readonly tenant?: string;
  readonly format: 'jsonl';
  /** Start at this seq (the line carries its prev_hash, so a partial export still links). */
  readonly fromSeq?: number;
}

/** Counters for /metrics. */
export interface ChronicleStats {
  readonly appended: number;
  readonly failed: number;
  readonly batches: number;
  readonly pending: number;
}
