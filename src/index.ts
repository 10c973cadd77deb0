/** Library entry point for hosts that embed the connector in Node. */
export { loadConfig, ConfigError, type Config } from './config/index.js';
export { openDatabase, type Db } from './db/index.js';
export * from './connector/contract.js';
export * from './connector/posture.js';
export type { Actor, AppendInput, AppendReceipt, ChronicleEvent, ChronicleWriter } from './chronicle/types.js';
export {
  createChronicle,
  ChronicleError,
  EVENT_CATALOG,
  EVENT_TYPES,
  VERIFY_FAILURES,
  GENESIS_HASH,
  canonicalJson,
  chainHash,
  validateEventData,
  validateAppendInput,
  type Chronicle,
  type ChronicleOptions,
  type ChronicleQuery,
  type ChronicleQueryResult,
  type ChronicleStats,
  type ChainVerifyReport,
  type Checkpoint,
  type CheckpointResult,
  type EventCatalogEntry,
  type EventType,
  type ExportOptions,
  type ValidationResult,
  type VerifyFailure,
  type VerifyReport,
} from './chronicle/index.js';
export {
  createIntuneConnector,
  redactDevice,
  fingerprintSerial,
  AuditUnavailableError,
  ConnectorUsageError,
  OPERATIONS,
  OPERATION_SCHEMAS,
  type IntuneConnector,
  type IntuneConnectorDeps,
  type IntuneConnectorOptions,
  type ComplianceLookup,
  type OperationInput,
  type OperationOutput,
} from './connector/index.js';
export {
  createGraphClient,
  graphClientFromConfig,
  GraphError,
  computeRetryDelayMs,
  buildDeviceFilter,
  ManagedDeviceSchema,
  type GraphClient,
  type GraphClientOptions,
  type GraphClientStats,
  type GraphErrorKind,
  type ManagedDevice,
  type DeviceFilter,
  type DevicePage,
  type RetryPolicy,
} from './connector/graph/index.js';
export {
  createMcpServer,
  mcpRoutes,
  mcpScope,
  startStdioServer,
  TOOLS as MCP_TOOLS,
  type McpRoutesOptions,
  type McpSessionOptions,
  type StdioServerOptions,
} from './mcp/index.js';
export {
  createGate,
  loadGatePolicy,
  resolveAccordPolicy,
  decide,
  describeDecision,
  readDeviceIdClaim,
  GateInputError,
  GATE_REASONS,
  OVERRIDABLE_REASONS,
  type Gate,
  type GateCheck,
  type GateOptions,
  type GateResult,
  type GatePolicy,
  type AccordPolicy,
  type GateReason,
  type Decision,
} from './gate/index.js';
export { gateRoutes, gateJwtOptions, GATE_PATH, type GateRoutesOptions, type GateJwtOptions } from './gate/http.js';
export { GATE_RESPONSE_JSON_SCHEMA, GATE_REQUEST_JSON_SCHEMA, type GateResponse } from './gate/schemas.js';
export {
  startSimulator,
  generateTenant,
  parseFaultSpec,
  createClientCertificate,
  simulatorAuthorityMetadata,
  simulatorCloudDiscoveryMetadata,
  SimulatorError,
  type SimulatorHandle,
  type SimulatorOptions,
  type FaultSpec,
  type RecordedRequest,
} from './simulator/index.js';
export { DEFAULT_TENANT, TENANT_PATTERN, GUID_PATTERN, isGuid, isTenant } from './common/ids.js';
export { openRuntime, fingerprintKeys, type Runtime, type OpenRuntimeOptions } from './runtime/index.js';
export {
  createPostureService,
  createSecretProvider,
  secretProviderFromConfig,
  parseSecretRef,
  PostureInputError,
  PostureNotFoundError,
  SyncInProgressError,
  SecretRefError,
  type PostureService,
  type PostureServiceDeps,
  type PostureServiceOptions,
  type Connection,
  type ConnectionInput,
  type ConnectionPatch,
  type DeviceQuery,
  type SnapshotDevice,
  type SnapshotDevicePage,
  type PostureSummary,
  type SecretProvider,
  type SecretPurpose,
  type SyncRunSummary,
  type SyncTrigger,
} from './posture/index.js';
export { startServer, describeServer, type ServerOptions, type RunningServer } from './api/server.js';
export { createApp, registeredRoutes, type AppOptions, type AppRuntime } from './api/app.js';
export {
  createKeyStore,
  parseApiKey,
  parseCapabilities,
  validateKeyInput,
  KeyInputError,
  type KeyStore,
  type KeyStoreOptions,
  type ApiKeyRecord,
  type CreatedApiKey,
  type CreateKeyInput,
} from './auth/keys.js';
export { ROLES, PERMISSIONS, type Role, type Principal, type Authenticator, type Permission } from './auth/index.js';
