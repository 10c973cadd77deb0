/** The asset views the REST API, the Settings panel and MCP show. */
import { z } from 'zod';
import { GUID_PATTERN } from '../common/ids.js';
import { FoundAssetSchema, type FoundAsset } from '../connector/assets.js';
import { COMPLIANCE_STATES, OS_FAMILIES } from '../connector/posture.js';
import { FINGERPRINT_PATTERN } from '../connector/redaction.js';

/** Sources an asset list can be narrowed to: Intune only, agent only, or both. */
export const ASSET_SOURCE_FILTERS = ['intune', 'agent', 'both'] as const;
export type AssetSourceFilter = (typeof ASSET_SOURCE_FILTERS)[number];

export { FINGERPRINT_PATTERN };

/**
 * The filters of an asset listing, declared once: the REST API validates its query string by the
 * JSON Schema derived from it (unknown parameters refused), and the type is inferred.
 */
export const AssetsQuerySchema = z
  .object({
    os_family: z.enum(OS_FAMILIES).optional(),
    source: z.enum(ASSET_SOURCE_FILTERS).optional(),
    compliance_state: z.enum(COMPLIANCE_STATES).optional(),
    disagreement: z.boolean().optional(),
    fingerprint: z.string().regex(FINGERPRINT_PATTERN).optional(),
    limit: z.int().min(1).max(500).default(100),
    cursor: z.string().min(1).max(1024).optional(),
  })
  .strict();
/** Filters as a caller passes them (limit defaults to 100). */
export type AssetQuery = Readonly<z.input<typeof AssetsQuerySchema>>;

export const AssetParamsSchema = z.object({ asset_id: z.string().regex(GUID_PATTERN) }).strict();

/** One definition: the connector's schema of an asset (find_asset's output), which the REST API answers too. */
export type AssetView = FoundAsset;
export type AssetSourceView = FoundAsset['sources'][number];
export type AssetConflictView = FoundAsset['conflicts'][number];

/** A page of assets, declared once: the REST API serialises GET /api/v1/assets by the JSON Schema derived from it. */
export const AssetPageSchema = z
  .object({
    assets: z.array(FoundAssetSchema),
    next_cursor: z.string().nullable(),
    total: z.int().min(0).describe('Assets matching the filters, all pages.'),
  })
  .strict();
export type AssetPage = z.infer<typeof AssetPageSchema>;

/** Bad input a caller can fix (the API answers 400 with `code` and `field`). */
export class AssetInputError extends Error {
  override readonly name = 'AssetInputError';
  constructor(
    readonly code: string,
    readonly field: string | null,
    message: string,
  ) {
    super(message);
  }
}
