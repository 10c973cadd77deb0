/**
 * Each REST request shape is declared once, in zod (src/api/schemas.ts); Fastify's JSON Schemas
 * are derived from it. specs/openapi.yaml is written for readers, so this compares it with the
 * derived schemas: a body or query parameter that changes on one side only fails here.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ChronicleEventsQuerySchema,
  ConnectionCreateBodySchema,
  ConnectionParamsSchema,
  ConnectionPatchBodySchema,
  DeviceParamsSchema,
  DevicesQuerySchema,
  KeyCreateBodySchema,
  KeyParamsSchema,
  KeysQuerySchema,
  RunParamsSchema,
  RunsQuerySchema,
  requestJsonSchema,
} from '../../src/api/schemas.js';
import { AssetParamsSchema, AssetsQuerySchema } from '../../src/assets/types.js';
import { AgentParamsSchema, AgentsQuerySchema, EnrollBodySchema, HeartbeatBodySchema, RenewBodySchema, TokenCreateBodySchema } from '../../src/agents/schemas.js';
import { loadOpenApi, type OpenApiDoc } from './openapi.js';

const doc = loadOpenApi();
/** Words for readers, and defaults (the derived schemas carry them; openapi.yaml states them in prose). */
const IGNORED = new Set(['description', 'default', 'example', 'examples', 'title']);

/** Resolves $refs and drops the words, so only what a validator enforces is compared. */
function normalise(node: unknown, root: OpenApiDoc = doc): unknown {
  if (Array.isArray(node)) return node.map((n) => normalise(n, root));
  if (node === null || typeof node !== 'object') return node;
  const ref = (node as { $ref?: unknown }).$ref;
  if (typeof ref === 'string') {
    const target = ref
      .replace(/^#\//, '')
      .split('/')
      .reduce<any>((at, part) => at?.[part], root);
    expect(target, `openapi.yaml has no ${ref}`).toBeDefined();
    return normalise(target, root);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (IGNORED.has(key)) continue;
    out[key] = key === 'required' && Array.isArray(value) ? [...value].sort() : normalise(value, root);
  }
  return out;
}

const derived = (schema: Parameters<typeof requestJsonSchema>[0]) => normalise(requestJsonSchema(schema));

function operation(path: string, method: string): any {
  const op = doc.paths[path]?.[method];
  expect(op, `${method.toUpperCase()} ${path} is not in openapi.yaml`).toBeDefined();
  return op;
}

function bodyOf(path: string, method: string): unknown {
  return normalise(operation(path, method).requestBody.content['application/json'].schema);
}

/** The parameters of one location (path or query) as the object schema Fastify validates. */
function parametersOf(path: string, method: string, where: 'path' | 'query'): unknown {
  const params = [...(doc.paths[path]?.['parameters'] ?? []), ...(operation(path, method).parameters ?? [])]
    .map((p) => normalise(p) as { name: string; in: string; required?: boolean; schema: unknown })
    .filter((p) => p.in === where);
  const required = params.filter((p) => p.required === true).map((p) => p.name).sort();
  return {
    type: 'object',
    properties: Object.fromEntries(params.map((p) => [p.name, p.schema])),
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
  };
}

const I = '/api/v1/integrations/intune';

describe('specs/openapi.yaml states the request shapes the code declares', () => {
  it.each([
    ['POST', `${I}/connections`, ConnectionCreateBodySchema],
    ['PATCH', `${I}/connections/{connection_id}`, ConnectionPatchBodySchema],
    ['POST', '/api/v1/keys', KeyCreateBodySchema],
    ['POST', '/api/v1/agents/enrollment-tokens', TokenCreateBodySchema],
    ['POST', '/api/v1/agents/enroll', EnrollBodySchema],
    ['POST', '/api/v1/agents/heartbeat', HeartbeatBodySchema],
    ['POST', '/api/v1/agents/renew', RenewBodySchema],
  ] as const)('%s %s body', (method, path, schema) => {
    expect(bodyOf(path, method.toLowerCase())).toEqual(derived(schema));
  });

  it.each([
    ['GET', `${I}/connections/{connection_id}/runs`, RunsQuerySchema],
    ['GET', `${I}/devices`, DevicesQuerySchema],
    ['GET', '/api/v1/chronicle/events', ChronicleEventsQuerySchema],
    ['GET', '/api/v1/keys', KeysQuerySchema],
    ['GET', '/api/v1/agents', AgentsQuerySchema],
    ['GET', '/api/v1/assets', AssetsQuerySchema],
  ] as const)('%s %s query string', (method, path, schema) => {
    expect(parametersOf(path, method.toLowerCase(), 'query')).toEqual(derived(schema));
  });

  it.each([
    ['GET', `${I}/connections/{connection_id}`, ConnectionParamsSchema],
    ['GET', `${I}/connections/{connection_id}/runs/{run_id}`, RunParamsSchema],
    ['GET', `${I}/devices/{device_id}`, DeviceParamsSchema],
    ['DELETE', '/api/v1/keys/{key_id}', KeyParamsSchema],
    ['GET', '/api/v1/agents/{agent_id}', AgentParamsSchema],
    ['DELETE', '/api/v1/agents/{agent_id}', AgentParamsSchema],
    ['GET', '/api/v1/assets/{asset_id}', AssetParamsSchema],
  ] as const)('%s %s path', (method, path, schema) => {
    expect(parametersOf(path, method.toLowerCase(), 'path')).toEqual(derived(schema));
  });

  it('fails on drift: a changed limit is noticed', () => {
    const drifted = RunsQuerySchema.extend({ limit: z.int().min(1).max(201).default(20) });
    expect(parametersOf(`${I}/connections/{connection_id}/runs`, 'get', 'query')).not.toEqual(derived(drifted));
  });
});
