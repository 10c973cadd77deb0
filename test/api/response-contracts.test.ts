/**
 * Each REST response shape covered here is declared once, in zod (src/posture/schemas.ts,
 * src/auth/schemas.ts, src/api/schemas.ts); Fastify serialises the answer by the JSON Schema
 * derived from it. specs/openapi.yaml is written for readers, so this compares what a validator
 * enforces on each side: a field, a type, a nullability or an enum member that changes on one
 * side only fails here.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConnectionListSchema,
  CreatedKeySchema,
  KeyListSchema,
  responseJsonSchema,
  RunListSchema,
  SnapshotDeviceDetailSchema,
} from '../../src/api/schemas.js';
import { ApiKeyRecordSchema } from '../../src/auth/schemas.js';
import { ConnectionSchema, PostureSummarySchema, SnapshotDevicePageSchema, SyncRunSummarySchema } from '../../src/posture/schemas.js';
import { loadOpenApi } from './openapi.js';

const doc = loadOpenApi();
/** Words for readers; the derived schemas carry zod's own integer range, which says nothing here. */
const IGNORED = new Set(['description', 'default', 'example', 'examples', 'title']);
const SAFE_INTEGER_BOUNDS = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

function resolve(ref: string): unknown {
  const target = ref
    .replace(/^#\//, '')
    .split('/')
    .reduce<any>((at, part) => at?.[part], doc);
  expect(target, `openapi.yaml has no ${ref}`).toBeDefined();
  return target;
}

/** allOf of object schemas as one object schema; unevaluatedProperties: false closes it like additionalProperties: false. */
function mergeAllOf(node: Node): Node {
  const parts = (node['allOf'] as unknown[]).map((p) => normalise(p) as Node);
  const { allOf: _parts, unevaluatedProperties, ...rest } = node;
  const merged: Node = { ...(normalise(rest) as Node) };
  for (const part of parts) {
    for (const [key, value] of Object.entries(part)) {
      if (key === 'properties') merged['properties'] = { ...(merged['properties'] as Node | undefined), ...(value as Node) };
      else if (key === 'required') merged['required'] = [...new Set([...((merged['required'] as string[] | undefined) ?? []), ...(value as string[])])].sort();
      else merged[key] = value;
    }
  }
  if (unevaluatedProperties === false) merged['additionalProperties'] = false;
  return merged;
}

/** Resolves $refs, merges allOf, writes "X or null" one way, drops the words: what is left is what a validator enforces. */
function normalise(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(normalise);
  if (!isNode(node)) return node;
  if (typeof node['$ref'] === 'string') return normalise(resolve(node['$ref']));
  if (Array.isArray(node['allOf'])) return mergeAllOf(node);
  const out: Node = {};
  for (const [key, value] of Object.entries(node)) {
    if (IGNORED.has(key)) continue;
    if ((key === 'maximum' || key === 'minimum') && SAFE_INTEGER_BOUNDS.has(value as number)) continue;
    const name = key === 'oneOf' ? 'anyOf' : key;
    out[name] = key === 'required' && Array.isArray(value) ? [...value].sort() : normalise(value);
  }
  // "X or null" as { type: [X, 'null'], ...X's keywords }, however it was written.
  const branches = out['anyOf'];
  if (Array.isArray(branches) && branches.length === 2) {
    const nullAt = branches.findIndex((b) => isNode(b) && b['type'] === 'null' && Object.keys(b).length === 1);
    const other = branches[1 - nullAt];
    if (nullAt !== -1 && isNode(other) && typeof other['type'] === 'string') {
      const { anyOf: _branches, ...rest } = out;
      return { ...rest, ...other, type: [other['type'], 'null'].sort() };
    }
  }
  if (Array.isArray(out['type'])) out['type'] = [...(out['type'] as string[])].sort();
  return out;
}

function documented(method: string, path: string, status: number): unknown {
  const op = doc.paths[path]?.[method.toLowerCase()];
  expect(op, `${method} ${path} is not in openapi.yaml`).toBeDefined();
  const schema = op.responses?.[String(status)]?.content?.['application/json']?.schema;
  expect(schema, `${method} ${path} documents no JSON answer for ${status}`).toBeDefined();
  return normalise(schema);
}

const derived = (schema: z.ZodType) => normalise(responseJsonSchema(schema));

const I = '/api/v1/integrations/intune';

describe('specs/openapi.yaml states the response shapes the code declares', () => {
  it.each([
    ['GET', `${I}/connections`, 200, ConnectionListSchema],
    ['POST', `${I}/connections`, 201, ConnectionSchema],
    ['GET', `${I}/connections/{connection_id}`, 200, ConnectionSchema],
    ['PATCH', `${I}/connections/{connection_id}`, 200, ConnectionSchema],
    ['POST', `${I}/connections/{connection_id}/sync`, 202, SyncRunSummarySchema],
    ['GET', `${I}/connections/{connection_id}/runs`, 200, RunListSchema],
    ['GET', `${I}/connections/{connection_id}/runs/{run_id}`, 200, SyncRunSummarySchema],
    ['GET', `${I}/devices`, 200, SnapshotDevicePageSchema],
    ['GET', `${I}/devices/{device_id}`, 200, SnapshotDeviceDetailSchema],
    ['GET', `${I}/summary`, 200, PostureSummarySchema],
    ['GET', '/api/v1/keys', 200, KeyListSchema],
    ['POST', '/api/v1/keys', 201, CreatedKeySchema],
    ['DELETE', '/api/v1/keys/{key_id}', 200, ApiKeyRecordSchema],
  ] as const)('%s %s %i', (method, path, status, schema) => {
    expect(documented(method, path, status)).toEqual(derived(schema));
  });

  it('fails on drift: a field the code adds, or a nullability it changes, is noticed', () => {
    const documentedRun = documented('GET', `${I}/connections/{connection_id}/runs/{run_id}`, 200);
    expect(documentedRun).not.toEqual(derived(SyncRunSummarySchema.extend({ worker: z.string() })));
    expect(documentedRun).not.toEqual(derived(SyncRunSummarySchema.extend({ error_code: z.string() })));
  });
});
