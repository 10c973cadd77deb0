/**
 * Chronicle for reviewers over HTTP: query the tenant's chain and verify it. Keys of role auditor
 * (or admin) read their own tenant's chain only.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../auth-types.js';
import type { ChainVerifyReport, ChronicleEvent, EventType, VerifyReport } from '../../chronicle/types.js';
import { requirePermission } from '../auth.js';
import { chronicleEventsQuery } from '../schemas.js';

export const CHRONICLE_BASE = '/api/v1/chronicle';

/** The reading half of Chronicle this module needs. */
export interface ChronicleReader {
  query(filter: {
    tenant: string;
    types?: EventType[];
    actorId?: string;
    deviceId?: string;
    decision?: string;
    from?: string;
    to?: string;
    limit?: number;
    cursor?: string;
  }): Promise<{ events: ChronicleEvent[]; nextCursor: string | null }>;
  verify(options?: { tenant?: string }): Promise<VerifyReport>;
}

interface EventsQuery {
  type?: EventType[];
  actor?: string;
  device?: string;
  decision?: string;
  from?: string;
  to?: string;
  limit: number;
  cursor?: string;
}

/** The API speaks snake_case throughout; events are rendered the same way. */
export function eventToJson(event: ChronicleEvent): Record<string, unknown> {
  return {
    seq: event.seq,
    tenant: event.tenant,
    time: event.time,
    type: event.type,
    code: event.code,
    actor: event.actor,
    request_id: event.requestId,
    data: event.data,
    prev_hash: event.prevHash,
    hash: event.hash,
  };
}

function chainToJson(chain: ChainVerifyReport): Record<string, unknown> {
  return {
    tenant: chain.tenant,
    ok: chain.ok,
    events_checked: chain.eventsChecked,
    head_seq: chain.headSeq,
    checkpoints_checked: chain.checkpointsChecked,
    first_bad_seq: chain.firstBadSeq,
    reason: chain.reason,
    detail: chain.detail,
  };
}

export function verifyReportToJson(report: VerifyReport): Record<string, unknown> {
  return {
    ok: report.ok,
    chains: report.chains.map(chainToJson),
    events_checked: report.eventsChecked,
    duration_ms: report.durationMs,
    warnings: report.warnings,
  };
}

export function chronicleRoutes(app: FastifyInstance, { chronicle, authenticator }: { chronicle: ChronicleReader; authenticator: Authenticator }): void {
  app.get<{ Querystring: EventsQuery }>(`${CHRONICLE_BASE}/events`, { schema: { querystring: chronicleEventsQuery } }, async (request) => {
    const principal = await requirePermission(authenticator, request, 'chronicle:read');
    const q = request.query;
    const { events, nextCursor } = await chronicle.query({
      tenant: principal.tenant,
      ...(q.type !== undefined ? { types: q.type } : {}),
      ...(q.actor !== undefined ? { actorId: q.actor } : {}),
      ...(q.device !== undefined ? { deviceId: q.device } : {}),
      ...(q.decision !== undefined ? { decision: q.decision } : {}),
      ...(q.from !== undefined ? { from: q.from } : {}),
      ...(q.to !== undefined ? { to: q.to } : {}),
      limit: q.limit,
      ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
    });
    return { events: events.map(eventToJson), next_cursor: nextCursor };
  });

  app.get(`${CHRONICLE_BASE}/verify`, async (request) => {
    const principal = await requirePermission(authenticator, request, 'chronicle:read');
    return verifyReportToJson(await chronicle.verify({ tenant: principal.tenant }));
  });
}
