/**
 * Request schemas, declared once in zod; the JSON Schemas Fastify checks before a handler runs
 * (bodies without type coercion, query strings with it) are derived from them with
 * z.toJSONSchema, and test/api/specs.test.ts fails when specs/openapi.yaml says otherwise.
 * Unknown fields and unknown query parameters are refused: a mistyped filter must not silently
 * widen an answer. Connection bodies are the posture service's own input schemas.
 */
import { z } from 'zod';
import { EVENT_TYPES } from '../chronicle/types.js';
import { COMPLIANCE_STATES, OS_FAMILIES, OWNERSHIPS } from '../connector/posture.js';
import { ConnectionInputSchema, ConnectionPatchSchema } from '../posture/validation.js';
import { ROLES } from '../auth/types.js';
import { GUID_PATTERN } from '../common/ids.js';

const guid = z.string().regex(GUID_PATTERN);
// PostgreSQL refuses year 0000 and UTC offsets beyond ±15:59, which the date-time format admits;
// real offsets stop at ±14:00, so this pattern admits hours 00 to 14 only. The posture service
// checks the same rule (src/posture/validation.ts) for callers that do not come through HTTP;
// here it makes the answer a 400 before any work, and documents it in openapi.yaml.
const dateTime = z
  .string()
  .max(40)
  .regex(/^(?!0000)\d{4}-.*(?:[zZ]|[+-](?:0\d|1[0-4])(?::?\d\d)?)$/)
  .meta({ format: 'date-time' });
const cursor = z.string().min(1).max(1024);

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

/** The JSON Schema (draft-07, what Fastify's ajv speaks) of what a client sends. */
export function requestJsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io: 'input' }) as Record<string, unknown>;
  return rest;
}

export const connectionParams = requestJsonSchema(ConnectionParamsSchema);
export const runParams = requestJsonSchema(RunParamsSchema);
export const deviceParams = requestJsonSchema(DeviceParamsSchema);
export const keyParams = requestJsonSchema(KeyParamsSchema);
export const connectionCreateBody = requestJsonSchema(ConnectionCreateBodySchema);
export const connectionPatchBody = requestJsonSchema(ConnectionPatchBodySchema);
export const runsQuery = requestJsonSchema(RunsQuerySchema);
export const devicesQuery = requestJsonSchema(DevicesQuerySchema);
export const chronicleEventsQuery = requestJsonSchema(ChronicleEventsQuerySchema);
export const keyCreateBody = requestJsonSchema(KeyCreateBodySchema);
export const keysQuery = requestJsonSchema(KeysQuerySchema);
