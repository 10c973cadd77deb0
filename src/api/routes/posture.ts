/**
 * The Intune posture routes of the runtime contract: connections, sync runs, devices, and the
 * summary the Settings panel shows. Every query is scoped to the key's tenant; another tenant's
 * id is a 404 like an unknown one.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator, Principal } from '../../auth/types.js';
import type { Actor } from '../../chronicle/types.js';
import type { ConnectionInput, ConnectionPatch, DeviceQuery, PostureService } from '../../posture/types.js';
import { requirePermission } from '../../auth/permissions.js';
import type { IntuneConnector } from '../../connector/index.js';
import type { DevicePosture } from '../../connector/posture.js';
import { describeSetting } from '../../gate/settings.js';
import { ApiError, notFound } from '../errors.js';
import type { PostureReadAudit } from '../read-audit.js';
import type { PreflightReport } from '../../posture/preflight.js';
import {
  connectionCreateBody,
  connectionListResponse,
  connectionParams,
  connectionPatchBody,
  connectionResponse,
  deviceDetailResponse,
  devicePageResponse,
  deviceParams,
  devicesQuery,
  FailingSettingsViewSchema,
  runListResponse,
  runParams,
  runResponse,
  runsQuery,
  summaryResponse,
} from '../schemas.js';
import type { z } from 'zod';

export const INTUNE_BASE = '/api/v1/integrations/intune';

export interface PostureRouteDeps {
  readonly posture: PostureService;
  readonly authenticator: Authenticator;
  /** Records who read device posture (one event per request). */
  readonly readAudit: Pick<PostureReadAudit, 'record'>;
  /** Reads a not-compliant device's failing settings for its detail (cached like the gate's reads). */
  readonly connector: Pick<IntuneConnector, 'lookupFailingSettings'>;
  /** The pre-flight behind POST …/connections/{id}/test; without it the route is not registered. */
  readonly preflight?: (tenant: string, connectionId: string) => Promise<PreflightReport>;
}

/** The Chronicle actor for a call made with this key. */
export function actorOf(principal: Principal): Actor & { kind: 'agent' | 'service' | 'human' } {
  const kind = principal.role === 'agent' ? 'agent' : principal.role === 'gate' ? 'service' : 'human';
  return { kind, id: principal.actorId };
}

/** What a device's detail says about its failing compliance settings. */
export type FailingSettingsView = z.infer<typeof FailingSettingsViewSchema>;

/**
 * A compliant device has nothing to fix and Graph is not asked; for any other state the settings
 * Intune reports as failing are read live (cached and coalesced as for the gate), named by their
 * identifiers with the product's own phrase for each: never Graph's text.
 */
async function failingSettingsView(
  connector: Pick<IntuneConnector, 'lookupFailingSettings'>,
  tenant: string,
  device: DevicePosture,
): Promise<FailingSettingsView> {
  if (device.compliance_state === 'compliant') return { status: 'none', settings: [] };
  const found = await connector.lookupFailingSettings(tenant, device.device_id);
  if (!found.ok) return { status: 'unavailable', reason: found.reason, settings: [] };
  if (found.settings.length === 0) return { status: 'none', settings: [] };
  return { status: 'listed', settings: found.settings.map((setting) => ({ setting, fix: describeSetting(setting, device) })) };
}

export function postureRoutes(app: FastifyInstance, { posture, authenticator, readAudit, preflight, connector }: PostureRouteDeps): void {
  const read = (request: Parameters<typeof requirePermission>[1]) => requirePermission(authenticator, request, 'posture:read');
  const write = (request: Parameters<typeof requirePermission>[1]) => requirePermission(authenticator, request, 'posture:write');

  app.get(`${INTUNE_BASE}/connections`, { schema: { response: { 200: connectionListResponse } } }, async (request) => {
    const principal = await read(request);
    return { connections: await posture.listConnections(principal.tenant) };
  });

  app.post<{ Body: ConnectionInput }>(`${INTUNE_BASE}/connections`, { schema: { body: connectionCreateBody, response: { 201: connectionResponse } } }, async (request, reply) => {
    const principal = await write(request);
    const connection = await posture.createConnection(principal.tenant, request.body, actorOf(principal));
    return reply.code(201).header('location', `${INTUNE_BASE}/connections/${connection.id}`).send(connection);
  });

  app.get<{ Params: { connection_id: string } }>(
    `${INTUNE_BASE}/connections/:connection_id`,
    { schema: { params: connectionParams, response: { 200: connectionResponse } } },
    async (request) => {
      const principal = await read(request);
      const connection = await posture.getConnection(principal.tenant, request.params.connection_id);
      if (connection === null) throw notFound('connection');
      return connection;
    },
  );

  app.patch<{ Params: { connection_id: string }; Body: ConnectionPatch }>(
    `${INTUNE_BASE}/connections/:connection_id`,
    { schema: { params: connectionParams, body: connectionPatchBody, response: { 200: connectionResponse } } },
    async (request) => {
      const principal = await write(request);
      const connection = await posture.updateConnection(principal.tenant, request.params.connection_id, request.body, actorOf(principal));
      if (connection === null) throw notFound('connection');
      return connection;
    },
  );

  app.post<{ Params: { connection_id: string } }>(
    `${INTUNE_BASE}/connections/:connection_id/sync`,
    { schema: { params: connectionParams, response: { 202: runResponse } } },
    async (request, reply) => {
      const principal = await write(request);
      // No body at all is the usual call; a schema would refuse it, so the "nothing or {}" rule is checked here.
      const body: unknown = request.body;
      if (body !== undefined && body !== null && !(typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0)) {
        throw new ApiError(400, 'invalid_body', 'a sync takes no parameters: send no body, or {}', { field: 'body' });
      }
      // Existence first, so another tenant's id is a plain 404 and never reaches the lease.
      if ((await posture.getConnection(principal.tenant, request.params.connection_id)) === null) throw notFound('connection');
      const { run, done } = await posture.startSync(principal.tenant, request.params.connection_id, actorOf(principal), { trigger: 'manual' });
      // The run reports its own outcome (run record, sync_completed event); nothing waits on it here.
      done.catch((err: unknown) => request.log.warn({ err, runId: run.id }, 'sync run ended with an error'));
      return reply
        .code(202)
        .header('location', `${INTUNE_BASE}/connections/${run.connection_id}/runs/${run.id}`)
        .send(run);
    },
  );

  if (preflight !== undefined) {
    app.post<{ Params: { connection_id: string } }>(
      `${INTUNE_BASE}/connections/:connection_id/test`,
      { schema: { params: connectionParams } },
      async (request) => {
        const principal = await write(request);
        const body: unknown = request.body;
        if (body !== undefined && body !== null && !(typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0)) {
          throw new ApiError(400, 'invalid_body', 'a connection test takes no parameters: send no body, or {}', { field: 'body' });
        }
        if ((await posture.getConnection(principal.tenant, request.params.connection_id)) === null) throw notFound('connection');
        // 200 whatever the outcome: the report is the answer; `ok` and `first_problem` say what to fix.
        return preflight(principal.tenant, request.params.connection_id);
      },
    );
  }

  app.get<{ Params: { connection_id: string }; Querystring: { limit: number } }>(
    `${INTUNE_BASE}/connections/:connection_id/runs`,
    { schema: { params: connectionParams, querystring: runsQuery, response: { 200: runListResponse } } },
    async (request) => {
      const principal = await read(request);
      if ((await posture.getConnection(principal.tenant, request.params.connection_id)) === null) throw notFound('connection');
      return { runs: await posture.listRuns(principal.tenant, request.params.connection_id, request.query.limit) };
    },
  );

  app.get<{ Params: { connection_id: string; run_id: string } }>(
    `${INTUNE_BASE}/connections/:connection_id/runs/:run_id`,
    { schema: { params: runParams, response: { 200: runResponse } } },
    async (request) => {
      const principal = await read(request);
      const run = await posture.getRun(principal.tenant, request.params.run_id);
      if (run === null || run.connection_id.toLowerCase() !== request.params.connection_id.toLowerCase()) throw notFound('sync run');
      return run;
    },
  );

  app.get<{ Querystring: DeviceQuery }>(`${INTUNE_BASE}/devices`, { schema: { querystring: devicesQuery, response: { 200: devicePageResponse } } }, async (request) => {
    const principal = await read(request);
    const page = await posture.listDevices(principal.tenant, request.query);
    await readAudit.record({
      tenant: principal.tenant,
      actor: actorOf(principal),
      requestId: request.id,
      route: 'list',
      status: 200,
      query: request.query,
      count: page.devices.length,
      total: page.total,
    });
    return page;
  });

  app.get<{ Params: { device_id: string } }>(`${INTUNE_BASE}/devices/:device_id`, { schema: { params: deviceParams, response: { 200: deviceDetailResponse } } }, async (request) => {
    const principal = await read(request);
    const device = await posture.getDevice(principal.tenant, request.params.device_id);
    // A look that found nothing is recorded too: probing for ids is a read worth seeing.
    await readAudit.record({
      tenant: principal.tenant,
      actor: actorOf(principal),
      requestId: request.id,
      route: 'detail',
      status: device === null ? 404 : 200,
      deviceId: request.params.device_id,
      count: device === null ? 0 : 1,
    });
    if (device === null) throw notFound('device');
    return { ...device, failing_settings: await failingSettingsView(connector, principal.tenant, device) };
  });

  app.get(`${INTUNE_BASE}/summary`, { schema: { response: { 200: summaryResponse } } }, async (request) => {
    const principal = await read(request);
    return posture.summary(principal.tenant);
  });
}
