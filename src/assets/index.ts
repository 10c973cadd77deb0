export { createAssetService, type AssetService, type AssetServiceOptions } from './service.js';
export type { MatchReport } from './rematch.js';
export { matchSources, assetIdOf, sourceKey, SOURCE_KINDS, CONFLICT_KINDS, type SourceIdentity, type SourceKind, type MatchResult } from './match.js';
export { mergeAttributes, summarize, ATTRIBUTE_PRECEDENCE, INTUNE_STALE_AFTER_MS, AGENT_STALE_AFTER_MS, CONFIDENCES, type Attribute, type Disagreement } from './attributes.js';
export * from './types.js';
