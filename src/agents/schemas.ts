/**
 * Request schemas of the agent routes, checked by Fastify before a handler runs. Unknown fields
 * are refused: a heartbeat body cannot name an agent, a tenant or anything else the certificate
 * decides. specs/openapi.yaml declares the same constraints.
 */
import { MAX_TOKEN_TTL_SECONDS } from './tokens.js';

const GUID = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const OS_VERSION = { type: 'string', pattern: '^[0-9]{1,4}(\\.[0-9]{1,6}){0,3}$', maxLength: 32 } as const;
const OS_BUILD = { type: 'string', pattern: '^[A-Za-z0-9]{1,16}$' } as const;
const CSR = { type: 'string', minLength: 64, maxLength: 16_384 } as const;
const TRI = { oneOf: [{ type: 'boolean' }, { type: 'string', enum: ['unknown'] }] } as const;
const TIME = {
  type: 'string',
  format: 'date-time',
  maxLength: 40,
  pattern: '^(?!0000)\\d{4}-.*(?:[zZ]|[+-](?:0\\d|1[0-4])(?::?\\d\\d)?)$',
} as const;

export const tokenCreateBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ttl_seconds: { type: 'integer', minimum: 1, maximum: MAX_TOKEN_TTL_SECONDS },
    name: { type: 'string', minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' },
  },
} as const;

export const enrollBody = {
  type: 'object',
  additionalProperties: false,
  required: ['token', 'csr', 'platform', 'agent_class'],
  properties: {
    token: { type: 'string', minLength: 1, maxLength: 128 },
    csr: CSR,
    platform: { type: 'string', minLength: 1, maxLength: 32, pattern: '^[a-z0-9_-]+$' },
    agent_class: { type: 'string', minLength: 1, maxLength: 32, pattern: '^[a-z0-9_-]+$' },
    os_version: OS_VERSION,
    os_build: OS_BUILD,
    serial_number: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9 ._-]+$' },
    hardware_uuid: { type: 'string', pattern: GUID },
    model: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9 ,._()-]+$' },
  },
} as const;

export const agentParams = {
  type: 'object',
  required: ['agent_id'],
  additionalProperties: false,
  properties: { agent_id: { type: 'string', pattern: GUID } },
} as const;

export const agentsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { include_revoked: { type: 'boolean', default: true } },
} as const;

export const heartbeatBody = {
  type: 'object',
  additionalProperties: false,
  required: ['os_version', 'time'],
  properties: {
    os_version: OS_VERSION,
    os_build: OS_BUILD,
    uptime_seconds: { type: 'integer', minimum: 0, maximum: 3_153_600_000 },
    filevault: TRI,
    firewall: TRI,
    sip: TRI,
    gatekeeper: TRI,
    agent_version: { type: 'string', pattern: '^[A-Za-z0-9.+_-]{1,32}$' },
    time: TIME,
  },
} as const;

export const renewBody = {
  type: 'object',
  additionalProperties: false,
  required: ['csr'],
  properties: { csr: CSR },
} as const;
