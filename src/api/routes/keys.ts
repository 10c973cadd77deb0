/**
 * API key administration over HTTP, for the key's own tenant. It exists beside `intune-connector
 * keys` because the embedded database admits one process: while `serve` runs on PGlite, the CLI
 * cannot open it, but an admin key can still mint a reader key for the Settings panel.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/types.js';
import type { KeyStore } from '../../auth/keys.js';
import { requirePermission } from '../../auth/permissions.js';
import { notFound } from '../errors.js';
import { createdKeyResponse, keyCreateBody, keyListResponse, keyParams, keyResponse, keysQuery } from '../schemas.js';
import { actorOf } from './posture.js';
import { defined } from '../../common/values.js';

export const KEYS_BASE = '/api/v1/keys';

export function keyRoutes(app: FastifyInstance, { keys, authenticator }: { keys: KeyStore; authenticator: Authenticator }): void {
  app.get<{ Querystring: { include_revoked: boolean } }>(KEYS_BASE, { schema: { querystring: keysQuery, response: { 200: keyListResponse } } }, async (request) => {
    const principal = await requirePermission(authenticator, request, 'keys:manage');
    return { keys: await keys.list({ tenant: principal.tenant, includeRevoked: request.query.include_revoked }) };
  });

  app.post<{ Body: { role: string; capabilities?: string[]; name?: string } }>(
    KEYS_BASE,
    { schema: { body: keyCreateBody, response: { 201: createdKeyResponse } } },
    async (request, reply) => {
      const principal = await requirePermission(authenticator, request, 'keys:manage');
      const { key, record } = await keys.create(
        {
          tenant: principal.tenant,
          role: request.body.role,
          ...defined({ capabilities: request.body.capabilities, name: request.body.name }),
        },
        actorOf(principal),
        { requestId: request.id },
      );
      return reply.code(201).header('location', `${KEYS_BASE}/${record.key_id}`).send({ key, ...record });
    },
  );

  app.delete<{ Params: { key_id: string } }>(`${KEYS_BASE}/:key_id`, { schema: { params: keyParams, response: { 200: keyResponse } } }, async (request) => {
    const principal = await requirePermission(authenticator, request, 'keys:manage');
    const record = await keys.revoke(request.params.key_id, actorOf(principal), { tenant: principal.tenant, requestId: request.id });
    if (record === null) throw notFound('API key');
    return record;
  });
}
