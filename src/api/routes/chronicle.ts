/**
 * Chronicle for reviewers over HTTP: query the tenant's chain and verify it. Keys of role auditor
 * (or admin) read their own tenant's chain only.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/types.js';
import type { Chronicle } from '../../chronicle/index.js';
import { reviewerQuery, type ChainVerifyReport, type ChronicleEvent, type ReviewerFilter, type VerifyReport } from '../../chronicle/types.js';
import { requirePermission } from '../../auth/permissions.js';
import { chronicleEventsQuery } from '../schemas.js';

export const CHRONICLE_BASE = '/api/v1/chronicle';

/** The reading half of Chronicle this module needs. */
export type ChronicleReader = Pick<Chronicle, 'query' | 'verify'>;

type EventsQuery = ReviewerFilter & { limit: number };

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
    const { events, nextCursor } = await chronicle.query(reviewerQuery(principal.tenant, request.query));
    return { events: events.map(eventToJson), next_cursor: nextCursor };
  });

  app.get(`${CHRONICLE_BASE}/verify`, async (request) => {
    const principal = await requirePermission(authenticator, request, 'chronicle:read');
    return verifyReportToJson(await chronicle.verify({ tenant: principal.tenant }));
  });
}
