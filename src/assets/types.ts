/** The asset views the REST API, the Settings panel and MCP show. */
import type { FoundAsset } from '../connector/assets.js';

/** Sources an asset list can be narrowed to: Intune only, agent only, or both. */
export const ASSET_SOURCE_FILTERS = ['intune', 'agent', 'both'] as const;
export type AssetSourceFilter = (typeof ASSET_SOURCE_FILTERS)[number];

export { FINGERPRINT_PATTERN } from '../connector/redaction.js';

export interface AssetQuery {
  readonly os_family?: string;
  readonly source?: AssetSourceFilter;
  readonly compliance_state?: string;
  readonly disagreement?: boolean;
  readonly fingerprint?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

/** One definition: the connector's schema of an asset (find_asset's output), which the REST API answers too. */
export type AssetView = FoundAsset;
export type AssetSourceView = FoundAsset['sources'][number];
export type AssetConflictView = FoundAsset['conflicts'][number];

export interface AssetPage {
  readonly assets: AssetView[];
  readonly next_cursor: string | null;
  /** Assets matching the filters (all pages). */
  readonly total: number;
}

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
