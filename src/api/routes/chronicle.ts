/**
 * Chronicle for reviewers over HTTP: query the tenant's chain and verify it. Keys of role auditor
 * (or admin) read their own tenant's chain only.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/types.js';
import type { Chronicle } from '../../chronicle/index.js';
import type { z } from 'zod';
import { reviewerQuery } from '../../chronicle/types.js';
import { eventToJson, verifyReportToJson } from '../../chronicle/json.js';
import type { ChronicleEventPage } from '../../chronicle/schemas.js';
import { requirePermission } from '../../auth/permissions.js';
import { defined } from '../../common/values.js';
import { chronicleEventPageResponse, chronicleEventsQuery, verifyReportResponse, type ChronicleEventsQuerySchema } from '../schemas.js';

export const CHRONICLE_BASE = '/api/v1/chronicle';

/** The reading half of Chronicle this module needs. */
export type ChronicleReader = Pick<Chronicle, 'query' | 'verify'>;

// The API speaks snake_case throughout; the CLI prints events and reports with the same mapping.
export { eventToJson, verifyReportToJson };

export function chronicleRoutes(app: FastifyInstance, { chronicle, authenticator }: { chronicle: ChronicleReader; authenticator: Authenticator }): void {
  app.get<{ Querystring: z.output<typeof ChronicleEventsQuerySchema> }>(
    `${CHRONICLE_BASE}/events`,
    { schema: { querystring: chronicleEventsQuery, response: { 200: chronicleEventPageResponse } } },
    async (request): Promise<ChronicleEventPage> => {
      const principal = await requirePermission(authenticator, request, 'chronicle:read');
      const { events, nextCursor } = await chronicle.query(reviewerQuery(principal.tenant, defined(request.query)));
      return { events: events.map(eventToJson), next_cursor: nextCursor };
    },
  );

  app.get(`${CHRONICLE_BASE}/verify`, { schema: { response: { 200: verifyReportResponse } } }, async (request) => {
    const principal = await requirePermission(authenticator, request, 'chronicle:read');
    return verifyReportToJson(await chronicle.verify({ tenant: principal.tenant }));
  });
}
