/**
 * The stored body of an event and the columns derived from it.
 *
 * The body is the RFC 8785 canonical JSON of
 *   { actor, chain, code, data, request_id, seq, time, type, v: 1 }
 * Those keys are already in RFC 8785 order, so the body is assembled from canonical pieces: the
 * expensive part (canonicalising `data`) happens when append is called, outside the transaction,
 * and only seq and time, known once the chain's head row is locked, are spliced in inside it.
 */
import { canonicalJson } from './canonical.js';
import { EVENT_CATALOG } from './catalog.js';
import type { Actor, AppendInput, ChronicleEvent, EventType } from './types.js';

export const ENVELOPE_VERSION = 1;

/** Everything about an event that does not depend on its position in the chain. */
export interface PreparedEvent {
  readonly tenant: string;
  readonly type: EventType;
  readonly code: string | null;
  readonly actor: Actor;
  readonly requestId: string | null;
  /** `{"actor":…,"chain":…,"code":…,"data":…,"request_id":…,"seq":` */
  readonly head: string;
  /** `,"type":…,"v":1}` */
  readonly tail: string;
  readonly decision: string | null;
  /** Lowercased, distinct; joined with commas for the text[] column. */
  readonly deviceIds: readonly string[];
}

/** Body of a prepared event at a given position: only seq and time are spliced in. */
export function bodyAt(event: PreparedEvent, seq: number, time: string): string {
  return `${event.head}${seq},"time":"${time}"${event.tail}`;
}

function readPath(data: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let value: unknown = data;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

export function decisionOf(type: EventType, data: Readonly<Record<string, unknown>>): string | null {
  const field = EVENT_CATALOG[type].decisionField;
  if (field === undefined) return null;
  const value = data[field];
  return typeof value === 'string' ? value : null;
}

export function deviceIdsOf(type: EventType, data: Readonly<Record<string, unknown>>): string[] {
  const fields = EVENT_CATALOG[type].deviceIdFields;
  if (fields === undefined) return [];
  const ids: string[] = [];
  for (const path of fields) {
    const value = readPath(data, path);
    if (typeof value === 'string' && value !== '') {
      const id = value.toLowerCase();
      if (!ids.includes(id)) ids.push(id);
    }
  }
  return ids;
}

/**
 * Builds the position-independent parts of an already validated input. Throws TypeError when the
 * data cannot be written as canonical JSON (NaN, Infinity, lone surrogates).
 */
export function prepareEvent(input: AppendInput): PreparedEvent {
  const code = EVENT_CATALOG[input.type].code;
  const requestId = input.requestId ?? null;
  const actor: Actor = { kind: input.actor.kind, id: input.actor.id };
  const head =
    `{"actor":${canonicalJson(actor)},"chain":${canonicalJson(input.tenant)},"code":${canonicalJson(code)},` +
    `"data":${canonicalJson(input.data)},"request_id":${canonicalJson(requestId)},"seq":`;
  const tail = `,"type":${canonicalJson(input.type)},"v":${ENVELOPE_VERSION}}`;
  return {
    tenant: input.tenant,
    type: input.type,
    code,
    actor,
    requestId,
    head,
    tail,
    decision: decisionOf(input.type, input.data),
    deviceIds: deviceIdsOf(input.type, input.data),
  };
}

/** The parsed stored body. */
export interface Envelope {
  readonly v: number;
  readonly seq: number;
  readonly chain: string;
  readonly time: string;
  readonly type: EventType;
  readonly code: string | null;
  readonly actor: Actor;
  readonly request_id: string | null;
  readonly data: Readonly<Record<string, unknown>>;
}

export function toChronicleEvent(body: Envelope, prevHash: string, hash: string): ChronicleEvent {
  return {
    seq: body.seq,
    tenant: body.chain,
    time: body.time,
    type: body.type,
    code: body.code,
    actor: body.actor,
    requestId: body.request_id,
    data: body.data,
    prevHash,
    hash,
  };
}

/**
 * The indexed columns of a row, rendered as one string so verify compares them in one step; the
 * database renders the same string from the columns (see INDEX_KEY_SQL). Field values never hold
 * control characters (the schemas forbid them), so \x1f separates and \x1e marks SQL NULL.
 */
export function indexKeyOf(body: Envelope): string {
  const data = body.data !== null && typeof body.data === 'object' ? body.data : {};
  const type = body.type;
  const known = type in EVENT_CATALOG;
  return [
    body.time,
    type,
    body.code ?? '\x1e',
    body.actor?.kind,
    body.actor?.id,
    body.request_id ?? '\x1e',
    (known ? decisionOf(type, data) : null) ?? '\x1e',
    known ? deviceIdsOf(type, data).join(',') : '',
  ].join('\x1f');
}

/**
 * The indexed columns as stored, which verify copies instead of INDEX_KEY_SQL: rendering the key
 * (to_char above all) costs the database more than copying the columns, and verify compares them
 * with the body directly (verify-copy.ts).
 */
export const INDEX_COLUMNS_SQL = 'time, type, code, actor_kind, actor_id, request_id, decision, device_ids';

export const INDEX_KEY_SQL = `concat_ws(E'\\x1f',
    to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    type, coalesce(code, E'\\x1e'), actor_kind, actor_id, coalesce(request_id, E'\\x1e'),
    coalesce(decision, E'\\x1e'), array_to_string(device_ids, ','))`;
