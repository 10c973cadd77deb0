/**
 * Chronicle for reviewers over HTTP: query the tenant's chain and verify it. Keys of role auditor
 * (or admin) read their own tenant's chain only.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/types.js';
import type { Chronicle } from '../../chronicle/index.js';
import { reviewerQuery, type ReviewerFilter } from '../../chronicle/types.js';
import { eventToJson, verifyReportToJson } from '../../chronicle/json.js';
import { requirePermission } from '../../auth/permissions.js';
import { chronicleEventsQuery } from '../schemas.js';

export const CHRONICLE_BASE = '/api/v1/chronicle';

/** The reading half of Chronicle this module needs. */
export type ChronicleReader = Pick<Chronicle, 'query' | 'verify'>;

type EventsQuery = ReviewerFilter & { limit: number };

// The API speaks snake_case throughout; the CLI prints events and reports with the same mapping.
export { eventToJson, verifyReportToJson };

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
