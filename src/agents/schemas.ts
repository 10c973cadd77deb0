/**
 * What the agent routes take and answer, declared once in zod: the TypeScript types are inferred
 * from these schemas (./types.ts), and the JSON Schemas Fastify validates requests and serialises
 * answers with are derived from them, so a field not declared here never leaves. Unknown fields
 * are refused: a heartbeat body cannot name an agent, a tenant or anything else the certificate
 * decides. test/api/contracts.test.ts and response-contracts.test.ts compare them with
 * specs/openapi.yaml.
 */
import { z } from 'zod';
import { dateTimeString as dateTime, guidString as guid, serialFingerprintOrNull as fingerprint } from '../common/schemas.js';
import { requestJsonSchema, serializerJsonSchema } from '../common/json-schema.js';
import { AGENT_CLASSES, AGENT_OS_FAMILIES, OS_VERSION_PATTERN, PLATFORMS } from './rules.js';

export const MAX_TOKEN_TTL_SECONDS = 7 * 24 * 3_600;
export const AGENT_STATUSES = ['active', 'stale', 'revoked'] as const;

const osVersion = z.string().max(32).regex(OS_VERSION_PATTERN);
const osBuild = z.string().regex(/^[A-Za-z0-9]{1,16}$/);
const csr = z.string().min(64).max(16_384);
/** A reading the agent could not make is "unknown", never absent or null. */
const triState = z.union([z.boolean(), z.enum(['unknown'])]);

// ---- requests ------------------------------------------------------------------------------

export const TokenCreateBodySchema = z
  .object({
    ttl_seconds: z.int().min(1).max(MAX_TOKEN_TTL_SECONDS).optional(),
    name: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[^\u0000-\u001f\u007f]+$/)
      .optional(),
  })
  .strict();

export const EnrollBodySchema = z
  .object({
    token: z.string().min(1).max(128),
    csr,
    platform: z
      .string()
      .min(1)
      .max(32)
      .regex(/^[a-z0-9_-]+$/),
    agent_class: z
      .string()
      .min(1)
      .max(32)
      .regex(/^[a-z0-9_-]+$/),
    os_version: osVersion.optional(),
    os_build: osBuild.optional(),
    serial_number: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9 ._-]+$/)
      .optional(),
    hardware_uuid: guid.optional(),
    model: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9 ,._()-]+$/)
      .optional(),
  })
  .strict();

export const AgentParamsSchema = z.object({ agent_id: guid }).strict();

export const AgentsQuerySchema = z.object({ include_revoked: z.boolean().default(true) }).strict();

export const HeartbeatBodySchema = z
  .object({
    os_version: osVersion,
    os_build: osBuild.optional(),
    uptime_seconds: z.int().min(0).max(3_153_600_000).optional(),
    filevault: triState.optional(),
    firewall: triState.optional(),
    sip: triState.optional(),
    gatekeeper: triState.optional(),
    agent_version: z
      .string()
      .regex(/^[A-Za-z0-9.+_-]{1,32}$/)
      .optional(),
    time: z
      .string()
      .max(40)
      .regex(/^(?!0000)\d{4}-.*(?:[zZ]|[+-](?:0\d|1[0-4])(?::?\d\d)?)$/)
      .meta({ format: 'date-time' }),
  })
  .strict();

export const RenewBodySchema = z.object({ csr }).strict();

// ---- answers -------------------------------------------------------------------------------

export const CreatedTokenSchema = z
  .object({
    token: z.string().regex(/^ice_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/),
    expires_at: dateTime,
  })
  .strict();

/** A client certificate issued at enrollment or renewal. */
export const IssuedIdentitySchema = z
  .object({
    agent_id: guid,
    certificate: z.string().describe('The client certificate (PEM) naming the agent (CN) and tenant (O).'),
    ca_chain: z.array(z.string()).min(1).describe("The tenant's agent CA certificate (PEM)."),
    expires_at: dateTime,
  })
  .strict();

/** What the enroll and renew routes answer: the identity, and where to reach the agent listener. */
export const AgentIdentitySchema = IssuedIdentitySchema.extend({
  agent_url: z.string().optional().describe('Where the agent listener is, as seen from the host name the agent used (https://HOST:PORT).'),
  server_ca: z.string().optional().describe("The CA (PEM) of the agent listener's certificate, when the server made it; absent when it was configured."),
}).strict();

export const AgentSummarySchema = z
  .object({
    agent_id: guid,
    platform: z.enum(PLATFORMS),
    agent_class: z.enum(AGENT_CLASSES),
    os_family: z.enum(AGENT_OS_FAMILIES),
    os_version: z.string().nullable(),
    os_build: z.string().nullable(),
    model: z.string().nullable(),
    enrolled_at: dateTime,
    last_seen_at: dateTime.nullable(),
    certificate_expires_at: dateTime,
    status: z.enum(AGENT_STATUSES).describe('stale - not heard from for 24 hours, or its certificate expired.'),
    serial_fingerprint: fingerprint,
    hardware_fingerprint: fingerprint,
  })
  .strict();

export const AgentListSchema = z.object({ agents: z.array(AgentSummarySchema) }).strict();

/** The posture an agent reported, as the posture API shows it beside Intune's. */
export const AgentPostureEntrySchema = z
  .object({
    source: z.literal('agent'),
    agent_id: guid,
    os_family: z.enum(AGENT_OS_FAMILIES),
    os_version: z.string().nullable(),
    os_build: z.string().nullable(),
    model: z.string().nullable(),
    serial_fingerprint: fingerprint,
    filevault: triState,
    firewall: triState,
    sip: triState,
    gatekeeper: triState,
    uptime_seconds: z.int().nullable(),
    agent_version: z.string().nullable(),
    observed_at: dateTime.nullable().describe("The agent's clock when it sent the heartbeat."),
    received_at: dateTime.nullable(),
    status: z.enum(AGENT_STATUSES),
  })
  .strict();

export const AgentPostureListSchema = z.object({ devices: z.array(AgentPostureEntrySchema) }).strict();

export const HeartbeatAckSchema = z
  .object({
    agent_id: guid,
    last_seen_at: dateTime,
    certificate_expires_at: dateTime,
  })
  .strict();

// ---- derived for Fastify -------------------------------------------------------------------

export const tokenCreateBody = requestJsonSchema(TokenCreateBodySchema);
export const enrollBody = requestJsonSchema(EnrollBodySchema);
export const agentParams = requestJsonSchema(AgentParamsSchema);
export const agentsQuery = requestJsonSchema(AgentsQuerySchema);
export const heartbeatBody = requestJsonSchema(HeartbeatBodySchema);
export const renewBody = requestJsonSchema(RenewBodySchema);

export const createdTokenResponse = serializerJsonSchema(CreatedTokenSchema);
export const agentIdentityResponse = serializerJsonSchema(AgentIdentitySchema);
export const agentSummaryResponse = serializerJsonSchema(AgentSummarySchema);
export const agentListResponse = serializerJsonSchema(AgentListSchema);
export const agentPostureListResponse = serializerJsonSchema(AgentPostureListSchema);
export const heartbeatAckResponse = serializerJsonSchema(HeartbeatAckSchema);
