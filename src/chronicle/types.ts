/**
 * Chronicle's public types: what a writer hands to append, and what a reader gets back. The event
 * catalog (names, codes, JSON Schemas in specs/events/) lives in ./catalog.ts.
 */

import { defined } from '../common/values.js';

/** Who caused an event. `system` is the connector itself (scheduled sync, bootstrap). */
export interface Actor {
  readonly kind: 'agent' | 'service' | 'human' | 'system';
  readonly id: string;
}

export const EVENT_TYPES = [
  'CONNECTOR_INVOKED',
  'DEVICE_COMPLIANCE_CHECKED',
  'integration.intune.sync_completed',
  'integration.intune.device_posture_changed',
  'agent.macos.enrolled',
  'integration.intune.connection_created',
  'integration.intune.connection_updated',
  'admin.api_key_created',
  'admin.api_key_revoked',
  'agent.enrollment_token_created',
  'agent.certificate_renewed',
  'agent.revoked',
  'integration.intune.posture_read',
  'asset.sources_merged',
  'asset.split',
  'asset.conflict_detected',
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
  /**
   * Appends inside the caller's transaction (same database), so the event commits exactly when the
   * caller's change does. Optional: writers that live elsewhere do not offer it.
   */
  appendWithin?(tx: import('../db/index.js').Queryable, input: AppendInput): Promise<AppendReceipt>;
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
    ...defined({
      types: f.type,
      actorId: f.actor,
      deviceId: f.device,
      decision: f.decision,
      from: f.from,
      to: f.to,
      limit: f.limit,
      cursor: f.cursor,
      order: f.order,
    }),
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
  readonly instance: InstanceReport;
  /** The chained checkpoint log of this instance; null when verify has no checkpoint directory. */
  readonly checkpointLog: CheckpointLogReport | null;
  readonly exposure: ExposureWindow;
  readonly eventsChecked: number;
  readonly durationMs: number;
  /** Things a reviewer should know that are not tampering (another instance's checkpoints, old-format lines). */
  readonly warnings: string[];
}

/**
 * One line of the checkpoint log: "chain `chain` had head `seq` with hash `hash` at `time`", line
 * `n` of the log of Chronicle instance `instance`, chained to the line before it by `prev`
 * (SHA-256 of that line's text) and signed over all of it.
 */
export interface Checkpoint {
  readonly v: 2;
  /** The line's number in its instance's log, from 1, without gaps. */
  readonly n: number;
  /** SHA-256 (hex) of the previous line's text; 64 zeros for line 1. */
  readonly prev: string;
  /** The Chronicle instance (database) whose chain this line signs. */
  readonly instance: string;
  readonly chain: string;
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
  /** First 16 hex digits of SHA-256 of the raw 32-byte Ed25519 public key. */
  readonly key_id: string;
  /** Base64 Ed25519 signature over the RFC 8785 canonical JSON of the other fields. */
  readonly sig: string;
}

/** A log line that hands signing over to a new key, signed by the old one. */
export interface KeyHandover {
  readonly v: 2;
  readonly n: number;
  readonly prev: string;
  readonly instance: string;
  readonly kind: 'key_rotation';
  readonly new_key_id: string;
  /** Base64 of the new raw 32-byte Ed25519 public key. */
  readonly new_public_key: string;
  readonly time: string;
  readonly key_id: string;
  readonly sig: string;
}

export type CheckpointLogLine = Checkpoint | KeyHandover;

export interface CheckpointResult {
  readonly checkpoints: Checkpoint[];
  /** The append-only file the lines went to; null when nothing was written. */
  readonly file: string | null;
}

/**
 * Why verify stopped trusting the checkpoint log at line `line`:
 * - missing: lines were removed (the numbering jumps, or a witness holds lines the log lacks).
 * - edited: the line is not what was signed (signature fails, not a log line, or the next line chains to other text).
 * - reordered: a line appears out of its numbered place, or twice.
 * - cut: the log ends in the middle of a line.
 * - bad_signature: the line is signed by a key this deployment does not trust.
 * - foreign_line: the line names another Chronicle instance than the log it sits in.
 * - witness_mismatch: the witness copy holds a different line under the same number.
 */
export const CHECKPOINT_LOG_FAILURES = ['missing', 'edited', 'reordered', 'cut', 'bad_signature', 'foreign_line', 'witness_mismatch'] as const;
export type CheckpointLogFailure = (typeof CHECKPOINT_LOG_FAILURES)[number];

/**
 * A checkpoint log line signed by a key after the line that handed it over to another: a server
 * still signing with the old key (one with its own copy of the key file), or someone who holds the
 * old key. Its signature is good, so it is not tampering by itself; verify says so plainly.
 */
export interface RetiredKeyUse {
  readonly line: number;
  readonly keyId: string;
  /** The hand-over line that retired the key. */
  readonly retiredAt: number;
}

export interface CheckpointLogReport {
  /** The log's directory (one per instance). */
  readonly dir: string;
  readonly ok: boolean;
  /** Lines read (complete or not). */
  readonly lines: number;
  /** The first line (by number) that can no longer be trusted; null when the log is intact. */
  readonly firstBadLine: number | null;
  readonly reason: CheckpointLogFailure | null;
  readonly detail: string | null;
  /** Key hand-overs found in the log, oldest first. */
  readonly keyRotations: ReadonlyArray<{ readonly line: number; readonly from: string; readonly to: string; readonly time: string }>;
  /** Lines signed by a key after the hand-over that retired it (a warning names them). */
  readonly retiredKeyLines: readonly RetiredKeyUse[];
  /** The witness copy compared with this log, when one was given. */
  readonly witness: { readonly dir: string; readonly lines: number } | null;
}

/**
 * What the checkpoints do not yet vouch for: events appended after the newest checkpoint of their
 * chain. Someone who can rewrite the database and the checkpoint directory can change exactly these
 * without a trace, unless a witness holds newer lines.
 */
export interface ExposureWindow {
  /** When the newest checkpoint line was signed; null when there is none. */
  readonly newestCheckpointTime: string | null;
  /** Events past the newest checkpoint of their chain, over every verified chain. */
  readonly uncoveredEvents: number;
}

/** Which database this is, and what else shares its checkpoint directory. */
export interface InstanceReport {
  /** This database's Chronicle instance id; null for a database migrated before instance ids existed. */
  readonly id: string | null;
  /** Set when checkpoints of this deployment name another instance and none name this one. */
  readonly replaced: { readonly previous: string; readonly detail: string } | null;
  /** Other instances' logs in the same directory: not compared with this database, and not tampering. */
  readonly others: ReadonlyArray<{ readonly id: string; readonly lines: number; readonly keyId: string | null; readonly note: string }>;
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
  /** Batches sent while the one before them was still committing (pipelined). */
  readonly pipelined: number;
  /** Batches the database refused unwritten because a head moved under them, then sent again. */
  readonly resent: number;
  /** Checkpoint lines waiting for a witness (directory or URL). */
  readonly witnessBacklog: number;
  /** Witness deliveries that failed and will be retried. */
  readonly witnessFailures: number;
}
