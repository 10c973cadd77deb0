/**
 * Request and response schemas, declared once in zod; the JSON Schemas Fastify checks before a handler runs
 * (bodies without type coercion, query strings with it) are derived from them with
 * z.toJSONSchema, and test/api/specs.test.ts fails when specs/openapi.yaml says otherwise.
 * Unknown fields and unknown query parameters are refused: a mistyped filter must not silently
 * widen an answer. Connection bodies are the posture service's own input schemas.
 */
import { z } from 'zod';
import { guidString as guid } from '../common/schemas.js';
import { EVENT_TYPES } from '../chronicle/types.js';
import { COMPLIANCE_STATES, OS_FAMILIES, OWNERSHIPS } from '../connector/posture.js';
import { ConnectionInputSchema, ConnectionPatchSchema } from '../posture/validation.js';
import { ROLES } from '../auth/types.js';
import { TIME_BOUND_MAX_LENGTH, TIME_BOUND_PATTERN, TIME_BOUND_RULE } from '../common/time.js';
import { AssetPageSchema, AssetParamsSchema, AssetsQuerySchema } from '../assets/types.js';
import { FoundAssetSchema } from '../connector/assets.js';
import { ChronicleEventPageSchema, VerifyReportJsonSchema } from '../chronicle/schemas.js';
import { FINGERPRINT_PATTERN } from '../connector/redaction.js';
import { ConnectionSchema, PostureSummarySchema, SnapshotDevicePageSchema, SnapshotDeviceSchema, SyncRunSummarySchema } from '../posture/schemas.js';
import { ApiKeyRecordSchema } from '../auth/schemas.js';
import { requestJsonSchema, responseJsonSchema, serializerJsonSchema } from '../common/json-schema.js';

export { requestJsonSchema, responseJsonSchema, serializerJsonSchema, AssetParamsSchema, AssetsQuerySchema };

// The forms the CLI accepts too (src/common/time.ts); the handlers' own parsing checks the
// calendar (no 31 April), which a pattern cannot.
const dateTime = z.string().max(TIME_BOUND_MAX_LENGTH).regex(TIME_BOUND_PATTERN).describe(`An ISO 8601 time bound: ${TIME_BOUND_RULE}.`);
const cursor = z.string().min(1).max(1024);
const fingerprint = z.string().regex(FINGERPRINT_PATTERN);

export const ConnectionParamsSchema = z.object({ connection_id: guid }).strict();
export const RunParamsSchema = z.object({ connection_id: guid, run_id: guid }).strict();
export const DeviceParamsSchema = z.object({ device_id: guid }).strict();
export const KeyParamsSchema = z.object({ key_id: z.string().regex(/^[0-9a-f]{16}$/) }).strict();

export const ConnectionCreateBodySchema = ConnectionInputSchema;
export const ConnectionPatchBodySchema = ConnectionPatchSchema.meta({ minProperties: 1 });

export const RunsQuerySchema = z.object({ limit: z.int().min(1).max(200).default(20) }).strict();

export const DevicesQuerySchema = z
  .object({
    os_family: z.enum(OS_FAMILIES).optional(),
    compliance_state: z.enum(COMPLIANCE_STATES).optional(),
    ownership: z.enum(OWNERSHIPS).optional(),
    connection_id: guid.optional(),
    last_sync_before: dateTime.optional(),
    last_sync_after: dateTime.optional(),
    q: z.string().regex(/^[0-9a-fA-F-]{1,36}$/).optional(),
    fingerprint: fingerprint.optional(),
    limit: z.int().min(1).max(500).default(100),
    cursor: cursor.optional(),
  })
  .strict();

export const ChronicleEventsQuerySchema = z
  .object({
    type: z.array(z.enum(EVENT_TYPES)).max(EVENT_TYPES.length).optional(),
    actor: z.string().min(1).max(200).regex(/^[^\u0000-\u001f\u007f]+$/).optional(),
    device: guid.optional(),
    decision: z.enum(['allow', 'deny', 'allowed', 'denied']).optional(),
    from: dateTime.optional(),
    to: dateTime.optional(),
    limit: z.int().min(1).max(1000).default(100),
    cursor: cursor.optional(),
  })
  .strict();

export const KeyCreateBodySchema = z
  .object({
    role: z.enum(ROLES),
    capabilities: z.array(z.enum(['READ', 'PROPOSE', 'MUTATE'])).min(1).max(3).meta({ uniqueItems: true }).optional(),
    name: z.string().min(1).max(100).optional(),
  })
  .strict();

export const KeysQuerySchema = z.object({ include_revoked: z.boolean().default(false) }).strict();

export const connectionParams = requestJsonSchema(ConnectionParamsSchema);
export const runParams = requestJsonSchema(RunParamsSchema);
export const deviceParams = requestJsonSchema(DeviceParamsSchema);
export const keyParams = requestJsonSchema(KeyParamsSchema);
export const connectionCreateBody = requestJsonSchema(ConnectionCreateBodySchema);
export const connectionPatchBody = requestJsonSchema(ConnectionPatchBodySchema);
export const runsQuery = requestJsonSchema(RunsQuerySchema);
export const devicesQuery = requestJsonSchema(DevicesQuerySchema);
export const assetParams = requestJsonSchema(AssetParamsSchema);
export const assetsQuery = requestJsonSchema(AssetsQuerySchema);
export const chronicleEventsQuery = requestJsonSchema(ChronicleEventsQuerySchema);
export const keyCreateBody = requestJsonSchema(KeyCreateBodySchema);
export const keysQuery = requestJsonSchema(KeysQuerySchema);

// Responses: declared once in zod (the posture service's and the key store's own schemas, and the
// wrappers below); Fastify serialises each answer by the JSON Schema derived from it, so a field
// not declared never leaves, and test/api/contracts.test.ts compares them with specs/openapi.yaml.

export const FailingSettingsViewSchema = z
  .object({
    status: z.enum(['none', 'listed', 'unavailable']),
    reason: z.string().optional().describe('With unavailable: graph_unavailable, throttled, not_found, ...'),
    settings: z.array(
      z
        .object({
          setting: z.string().describe('deviceCompliancePolicySettingState.setting, e.g. MacOSCompliancePolicy.StorageRequireEncryption.'),
          fix: z.string().describe("The product's own phrase of what to fix, e.g. FileVault is off."),
        })
        .strict(),
    ),
  })
  .strict();

export const SnapshotDeviceDetailSchema = SnapshotDeviceSchema.extend({
  snapshot_at: z.string().meta({ format: 'date-time' }),
  failing_settings: FailingSettingsViewSchema,
}).strict();

export const ConnectionListSchema = z.object({ connections: z.array(ConnectionSchema) }).strict();
export const RunListSchema = z.object({ runs: z.array(SyncRunSummarySchema) }).strict();
export const KeyListSchema = z.object({ keys: z.array(ApiKeyRecordSchema) }).strict();
export const CreatedKeySchema = ApiKeyRecordSchema.extend({
  key: z.string().regex(/^icn_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/).describe('The key itself. Shown in this answer only; stored as a SHA-256 digest.'),
  revoked_at: z.null(),
}).strict();

export const connectionResponse = serializerJsonSchema(ConnectionSchema);
export const connectionListResponse = serializerJsonSchema(ConnectionListSchema);
export const runResponse = serializerJsonSchema(SyncRunSummarySchema);
export const runListResponse = serializerJsonSchema(RunListSchema);
export const devicePageResponse = serializerJsonSchema(SnapshotDevicePageSchema);
export const deviceDetailResponse = serializerJsonSchema(SnapshotDeviceDetailSchema);
export const summaryResponse = serializerJsonSchema(PostureSummarySchema);
export const keyResponse = serializerJsonSchema(ApiKeyRecordSchema);
export const keyListResponse = serializerJsonSchema(KeyListSchema);
export const createdKeyResponse = serializerJsonSchema(CreatedKeySchema);
export const assetPageResponse = serializerJsonSchema(AssetPageSchema);
export const assetResponse = serializerJsonSchema(FoundAssetSchema);
export const chronicleEventPageResponse = serializerJsonSchema(ChronicleEventPageSchema);
export const verifyReportResponse = serializerJsonSchema(VerifyReportJsonSchema);
