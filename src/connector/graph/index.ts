/** The connector's Microsoft Graph client. Everything above it depends on ./types.ts only. */
export { createGraphClient, graphClientFromConfig, graphBudgetKey, type GraphClientOptions } from './client.js';
export { LocalGraphBudget, INTUNE_GRAPH_BUDGET, budgetMarginMs, type GraphBudget, type BudgetLimits } from './budget.js';
export { GraphError, GRAPH_ERROR_KINDS, isGraphError, type GraphErrorKind, type GraphErrorDetails } from './errors.js';
export {
  computeRetryDelayMs,
  parseRetryAfterMs,
  backoffDelayMs,
  decideRetry,
  DEFAULT_RETRY_POLICY,
  RETRYABLE_STATUSES,
  type RetryPolicy,
  type RetryDecision,
} from './retry.js';
export {
  ManagedDeviceSchema,
  createManagedDeviceSchema,
  CompliancePolicyStateSchema,
  MANAGED_DEVICE_PROPERTIES,
  MANAGED_DEVICE_PROPERTY_NAMES,
  CORE_PROPERTIES,
  NEVER_DATE,
  parseCollectionPage,
  parseManagedDevice,
  type CoercionListener,
  type CoercionReason,
} from './schemas.js';
export { buildDeviceFilter, isGuid, odataString, DEVICE_ACTIONS, MAX_PAGE_SIZE } from './filter.js';
export type { ClientCredential } from './auth.js';
export type { Sleep } from './pipeline.js';
export type * from './types.js';
