/**
 * Reading the trail: filtered, paged queries for reviewers, and the JSONL export that an outside
 * script re-verifies with nothing but SHA-256. Events are rebuilt from the stored body (the bytes
 * that were hashed), never from the indexed columns, which only select rows.
 */
import { once } from 'node:events';
import { queryInKeyOrder, type Db } from '../db/index.js';
import { isEventType } from './catalog.js';
import { toChronicleEvent, type Envelope } from './envelope.js';
import { ChronicleError, type ChronicleEvent, type ChronicleQuery, type ChronicleQueryResult, type ExportOptions } from './types.js';
import { GUID_EXAMPLE_RULE, isGuid, isTenant, TENANT_RULE } from '../common/ids.js';
import { parseTimeBound, TIME_BOUND_RULE } from '../common/time.js';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

function invalid(field: string, message: string): ChronicleError {
  return new ChronicleError(`${field}: ${message}`, 'invalid_query', field);
}

function checkTenant(tenant: unknown, field = 'tenant'): string {
  if (!isTenant(tenant)) throw invalid(field, `must be ${TENANT_RULE}`);
  return tenant;
}

function timeBound(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : parseTimeBound(value);
  if (date === null || Number.isNaN(date.getTime())) throw invalid(field, `must be ${TIME_BOUND_RULE}`);
  return date.toISOString();
}

const DECISIONS: Readonly<Record<string, readonly string[]>> = {
  allow: ['allow', 'allowed'],
  allowed: ['allow', 'allowed'],
  deny: ['deny', 'denied'],
  denied: ['deny', 'denied'],
};

interface Cursor {
  readonly order: 'asc' | 'desc';
  readonly seq: number;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(`${cursor.order}:${cursor.seq}`, 'utf8').toString('base64url');
}

function decodeCursor(raw: unknown, order: 'asc' | 'desc'): Cursor {
  const text = typeof raw === 'string' && raw.length <= 64 ? Buffer.from(raw, 'base64url').toString('utf8') : '';
  const match = /^(asc|desc):(\d{1,16})$/.exec(text);
  if (match === null || match[1] !== order) throw invalid('cursor', 'is not a cursor this query returned; start again without it');
  return { order, seq: Number(match[2]) };
}

interface EventRow {
  seq: number;
  body: string;
  prev_hash: string;
  hash: string;
}

function rowToEvent(row: EventRow): ChronicleEvent {
  return toChronicleEvent(JSON.parse(row.body) as Envelope, row.prev_hash, row.hash);
}

export async function queryChronicle(db: Db, filter: ChronicleQuery): Promise<ChronicleQueryResult> {
  if (filter === null || typeof filter !== 'object') throw invalid('filter', 'must be an object with at least a tenant');
  const tenant = checkTenant(filter.tenant);
  const order = filter.order ?? 'asc';
  if (order !== 'asc' && order !== 'desc') throw invalid('order', 'must be asc or desc');
  const limit = filter.limit ?? DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw invalid('limit', `must be a whole number from 1 to ${MAX_LIMIT}`);

  const where = ['tenant = $1'];
  const params: unknown[] = [tenant];
  const add = (sql: (n: string) => string, value: unknown) => {
    params.push(value);
    where.push(sql(`$${params.length}`));
  };

  if (filter.types !== undefined) {
    if (!Array.isArray(filter.types) || filter.types.length === 0 || filter.types.length > 20) throw invalid('types', 'must be a non-empty list of event types');
    const bad = filter.types.find((t) => !isEventType(t));
    if (bad !== undefined) throw invalid('types', `has an unknown event type ${JSON.stringify(String(bad)).slice(0, 80)}`);
    add((p) => `type = ANY(${p}::text[])`, [...filter.types]);
  }
  if (filter.actorId !== undefined) {
    if (typeof filter.actorId !== 'string' || filter.actorId.length === 0 || filter.actorId.length > 200) throw invalid('actorId', 'must be 1 to 200 characters');
    add((p) => `actor_id = ${p}`, filter.actorId);
  }
  if (filter.deviceId !== undefined) {
    if (!isGuid(filter.deviceId)) throw invalid('deviceId', `must be a device id (Intune or Entra), ${GUID_EXAMPLE_RULE}`);
    add((p) => `device_ids @> ARRAY[${p}::text]`, filter.deviceId.toLowerCase());
  }
  if (filter.decision !== undefined) {
    const decisions = typeof filter.decision === 'string' ? DECISIONS[filter.decision] : undefined;
    if (decisions === undefined) throw invalid('decision', 'must be allow or deny');
    add((p) => `decision = ANY(${p}::text[])`, [...decisions]);
  }
  const from = timeBound(filter.from, 'from');
  const to = timeBound(filter.to, 'to');
  if (from !== undefined) add((p) => `time >= ${p}::timestamptz`, from);
  if (to !== undefined) add((p) => `time < ${p}::timestamptz`, to);
  if (filter.cursor !== undefined) {
    const cursor = decodeCursor(filter.cursor, order);
    add((p) => (order === 'asc' ? `seq > ${p}` : `seq < ${p}`), cursor.seq);
  }
  params.push(limit + 1);
  const { rows } = await db.query<EventRow>(
    `SELECT seq, body, prev_hash, hash FROM chronicle_event WHERE ${where.join(' AND ')} ORDER BY seq ${order === 'asc' ? 'ASC' : 'DESC'} LIMIT $${params.length}`,
    params,
  );
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    events: page.map(rowToEvent),
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor({ order, seq: Number(last.seq) }) : null,
  };
}

/**
 * One JSON object per line, in seq order, chain after chain:
 *   {"body":"<stored canonical JSON>","chain":"…","hash":"…","prev_hash":"…","seq":N}
 * `body` is the exact text that was hashed; the line itself is canonical JSON too.
 */
export async function exportChronicle(
  db: Db,
  options: ExportOptions,
  out: NodeJS.WritableStream,
  { chunkSize = 2_000 }: { chunkSize?: number } = {},
): Promise<{ events: number }> {
  if (options === null || typeof options !== 'object' || options.format !== 'jsonl') throw invalid('format', 'must be jsonl');
  const fromSeq = options.fromSeq ?? 1;
  if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) throw invalid('fromSeq', 'must be a whole number of at least 1');
  let tenants: string[];
  if (options.tenant !== undefined) {
    tenants = [checkTenant(options.tenant)];
  } else {
    tenants = (await db.query<{ tenant: string }>('SELECT tenant FROM chronicle_chain ORDER BY tenant')).rows.map((r) => r.tenant);
  }
  let events = 0;
  for (const tenant of tenants) {
    const { rows: top } = await db.query<{ max: number | null }>('SELECT max(seq) AS max FROM chronicle_event WHERE tenant = $1', [tenant]);
    const maxSeq = Number(top[0]?.max ?? 0);
    // Bounded seq ranges, read through the primary key: a chain's rows among other tenants' look
    // scattered to the planner, which would gather each range and sort it (queryInKeyOrder).
    for (let after = fromSeq - 1; after < maxSeq; after += chunkSize) {
      const { rows } = await queryInKeyOrder<EventRow>(
        db,
        'SELECT seq, body, prev_hash, hash FROM chronicle_event WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq',
        [tenant, after, after + chunkSize],
      );
      if (rows.length === 0) continue;
      let text = '';
      for (const row of rows) {
        text += `{"body":${JSON.stringify(row.body)},"chain":${JSON.stringify(tenant)},"hash":${JSON.stringify(row.hash)},"prev_hash":${JSON.stringify(row.prev_hash)},"seq":${Number(row.seq)}}\n`;
      }
      events += rows.length;
      if (!out.write(text)) await once(out, 'drain');
    }
  }
  return { events };
}
