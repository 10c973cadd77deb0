/**
 * Asset identity on the REST API: assets with their sources, merged attributes (source and
 * confidence each), disagreements and conflicts. Scoped to the key's tenant; another tenant's
 * asset is a 404 like an unknown one.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/types.js';
import type { AssetQuery, AssetService } from '../../assets/index.js';
import { requirePermission } from '../../auth/permissions.js';
import { notFound } from '../errors.js';
import { assetPageResponse, assetParams, assetResponse, assetsQuery } from '../schemas.js';

export const ASSETS_BASE = '/api/v1/assets';

export interface AssetRouteDeps {
  readonly assets: AssetService;
  readonly authenticator: Authenticator;
}

export function assetRoutes(app: FastifyInstance, { assets, authenticator }: AssetRouteDeps): void {
  app.get<{ Querystring: AssetQuery }>(ASSETS_BASE, { schema: { querystring: assetsQuery, response: { 200: assetPageResponse } } }, async (request) => {
    const principal = await requirePermission(authenticator, request, 'posture:read');
    return assets.list(principal.tenant, request.query);
  });

  app.get<{ Params: { asset_id: string } }>(`${ASSETS_BASE}/:asset_id`, { schema: { params: assetParams, response: { 200: assetResponse } } }, async (request) => {
    const principal = await requirePermission(authenticator, request, 'posture:read');
    const asset = await assets.get(principal.tenant, request.params.asset_id);
    if (asset === null) throw notFound('asset');
    return asset;
  });
}
