/**
 * Endpoint agents on the main listener: enrollment tokens, identity summaries and revocation
 * (admin keys, tenant-scoped: another tenant's agent is a 404), the agents' posture entries, and
 * enrollment itself, which takes no API key: the one-time token in the body is the credential.
 * Heartbeat and renewal are on the mTLS listener (src/agents/listener.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Authenticator } from '../../auth/types.js';
import { AgentError } from '../../agents/errors.js';
import {
  agentIdentityResponse,
  agentListResponse,
  agentParams,
  agentPostureListResponse,
  agentsQuery,
  agentSummaryResponse,
  createdTokenResponse,
  enrollBody,
  tokenCreateBody,
  type AgentParamsSchema,
  type AgentsQuerySchema,
  type TokenCreateBodySchema,
} from '../../agents/schemas.js';
import type { AgentService, EnrollInput } from '../../agents/service.js';
import { requirePermission } from '../../auth/permissions.js';
import { ApiError, notFound } from '../errors.js';
import { actorOf } from './posture.js';
import { defined } from '../../common/values.js';

export const AGENTS_BASE = '/api/v1/agents';

export interface AgentRouteDeps {
  readonly agents: AgentService;
  readonly authenticator: Authenticator;
  /** Where agents reach the mTLS listener: its port, and the CA of its certificate when made here. */
  readonly listener?: () => { readonly port: number; readonly serverCaPem?: string } | undefined;
}

const HOSTNAME = /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})$/;

async function mapped<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof AgentError) throw new ApiError(err.statusCode, err.code, err.message, err.field !== undefined ? { field: err.field } : {}, err.headers);
    throw err;
  }
}

export function agentRoutes(app: FastifyInstance, { agents, authenticator, listener }: AgentRouteDeps): void {
  const manage = (request: FastifyRequest) => requirePermission(authenticator, request, 'agents:manage');
  const read = (request: FastifyRequest) => requirePermission(authenticator, request, 'agents:read');

  app.post<{ Body: z.infer<typeof TokenCreateBodySchema> | undefined }>(
    `${AGENTS_BASE}/enrollment-tokens`,
    {
      schema: { body: tokenCreateBody, response: { 201: createdTokenResponse } },
      // Every field is optional, so no body at all means the defaults.
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
    },
    async (request, reply) => {
      const principal = await manage(request);
      const body = request.body ?? {};
      const created = await mapped(() =>
        agents.createToken(
          principal.tenant,
          { ...defined({ ttlSeconds: body.ttl_seconds, name: body.name }) },
          actorOf(principal),
          { requestId: request.id },
        ),
      );
      return reply.code(201).send({ token: created.token, expires_at: created.expires_at });
    },
  );

  app.post<{ Body: EnrollInput }>(`${AGENTS_BASE}/enroll`, { schema: { body: enrollBody, response: { 201: agentIdentityResponse } } }, async (request, reply) => {
    const issued = await mapped(() => agents.enroll(request.body, { requestId: request.id }));
    const where = listener?.();
    const hostname = request.hostname;
    return reply.code(201).send({
      ...issued,
      ...(where !== undefined && HOSTNAME.test(hostname) ? { agent_url: `https://${hostname}:${where.port}` } : {}),
      ...defined({ server_ca: where?.serverCaPem }),
    });
  });

  app.get<{ Querystring: z.output<typeof AgentsQuerySchema> }>(AGENTS_BASE, { schema: { querystring: agentsQuery, response: { 200: agentListResponse } } }, async (request) => {
    const principal = await read(request);
    return { agents: await agents.list(principal.tenant, { includeRevoked: request.query.include_revoked }) };
  });

  // Until asset identity merges sources, agents' posture is listed beside Intune's as its own source.
  app.get(`${AGENTS_BASE}/posture`, { schema: { response: { 200: agentPostureListResponse } } }, async (request) => {
    const principal = await requirePermission(authenticator, request, 'posture:read');
    return { devices: await agents.posture(principal.tenant) };
  });

  app.get<{ Params: z.infer<typeof AgentParamsSchema> }>(`${AGENTS_BASE}/:agent_id`, { schema: { params: agentParams, response: { 200: agentSummaryResponse } } }, async (request) => {
    const principal = await read(request);
    const agent = await agents.get(principal.tenant, request.params.agent_id);
    if (agent === null) throw notFound('agent');
    const { tenant: _tenant, ...summary } = agent;
    return summary;
  });

  app.delete<{ Params: z.infer<typeof AgentParamsSchema> }>(`${AGENTS_BASE}/:agent_id`, { schema: { params: agentParams, response: { 200: agentSummaryResponse } } }, async (request) => {
    const principal = await manage(request);
    const agent = await mapped(() => agents.revoke(principal.tenant, request.params.agent_id, actorOf(principal), { requestId: request.id }));
    if (agent === null) throw notFound('agent');
    const { tenant: _tenant, ...summary } = agent;
    return summary;
  });
}
