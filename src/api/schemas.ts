/**
 * Request schemas, checked by Fastify before a handler runs (bodies without type coercion, query
 * strings with it). Unknown fields and unknown query parameters are refused: a mistyped filter
 * must not silently widen an answer. specs/openapi.yaml declares the same constraints.
 */
import { CLOUDS } from '../config/index.js';
import { COMPLIANCE_STATES, OS_FAMILIES, OWNERSHIPS } from '../connector/posture.js';
import { ROLES } from '../auth/types.js';
import { EVENT_TYPES } from '../chronicle/types.js';
import { GUID_PATTERN } from '../common/ids.js';

const guid = { type: 'string', pattern: GUID_PATTERN.source } as const;
// PostgreSQL refuses year 0000 and UTC offsets beyond ±15:59, which the date-time format admits;
// real offsets stop at ±14:00, so this pattern admits hours 00 to 14 only. The posture service
// checks the same rule (src/posture/validation.ts) for callers that do not come through HTTP;
// here it makes the answer a 400 before any work, and documents it in openapi.yaml.
const dateTime = {
  type: 'string',
  format: 'date-time',
  maxLength: 40,
  pattern: '^(?!0000)\\d{4}-.*(?:[zZ]|[+-](?:0\\d|1[0-4])(?::?\\d\\d)?)$',
} as const;

export const connectionParams = {
  type: 'object',
  required: ['connection_id'],
  additionalProperties: false,
  properties: { connection_id: guid },
} as const;

export const runParams = {
  type: 'object',
  required: ['connection_id', 'run_id'],
  additionalProperties: false,
  properties: { connection_id: guid, run_id: guid },
} as const;

export const deviceParams = {
  type: 'object',
  required: ['device_id'],
  additionalProperties: false,
  properties: { device_id: guid },
} as const;

export const keyParams = {
  type: 'object',
  required: ['key_id'],
  additionalProperties: false,
  properties: { key_id: { type: 'string', pattern: '^[0-9a-f]{16}$' } },
} as const;

const connectionFields = {
  display_name: { type: 'string', minLength: 1, maxLength: 200 },
  entra_tenant_id: { type: 'string', minLength: 1, maxLength: 253 },
  client_id: guid,
  cloud: { type: 'string', enum: [...CLOUDS] },
  secret_ref: { type: 'string', minLength: 1, maxLength: 520 },
  status: { type: 'string', enum: ['active', 'disabled'] },
} as const;

export const connectionCreateBody = {
  type: 'object',
  required: ['display_name', 'entra_tenant_id', 'client_id', 'secret_ref'],
  additionalProperties: false,
  properties: connectionFields,
} as const;

export const connectionPatchBody = {
  type: 'object',
  minProperties: 1,
  additionalProperties: false,
  properties: connectionFields,
} as const;

export const runsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { limit: { type: 'integer', minimum: 1, maximum: 200, default: 20 } },
} as const;

export const devicesQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    os_family: { type: 'string', enum: [...OS_FAMILIES] },
    compliance_state: { type: 'string', enum: [...COMPLIANCE_STATES] },
    ownership: { type: 'string', enum: [...OWNERSHIPS] },
    connection_id: guid,
    last_sync_before: dateTime,
    last_sync_after: dateTime,
    q: { type: 'string', pattern: '^[0-9a-fA-F-]{1,36}$' },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
    cursor: { type: 'string', minLength: 1, maxLength: 1024 },
  },
} as const;

export const chronicleEventsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    type: { type: 'array', maxItems: EVENT_TYPES.length, items: { type: 'string', enum: [...EVENT_TYPES] } },
    actor: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f\\u007f]+$' },
    device: guid,
    decision: { type: 'string', enum: ['allow', 'deny', 'allowed', 'denied'] },
    from: dateTime,
    to: dateTime,
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    cursor: { type: 'string', minLength: 1, maxLength: 1024 },
  },
} as const;

export const keyCreateBody = {
  type: 'object',
  required: ['role'],
  additionalProperties: false,
  properties: {
    role: { type: 'string', enum: [...ROLES] },
    capabilities: {
      type: 'array',
      minItems: 1,
      maxItems: 3,
      uniqueItems: true,
      items: { type: 'string', enum: ['READ', 'PROPOSE', 'MUTATE'] },
    },
    name: { type: 'string', minLength: 1, maxLength: 100 },
  },
} as const;

export const keysQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { include_revoked: { type: 'boolean', default: false } },
} as const;
