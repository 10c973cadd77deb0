/**
 * JSON Schema derived from a zod declaration, in draft-07 (what Fastify's ajv and its serializer
 * speak). Requests are read as a client sends them (defaults optional); responses as the server
 * sends them (defaults filled in, so required).
 */
import { z } from 'zod';

type Node = Record<string, unknown>;
const isNode = (value: unknown): value is Node => typeof value === 'object' && value !== null && !Array.isArray(value);

function draft7(schema: z.ZodType, io: 'input' | 'output'): Node {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io }) as Node;
  return rest;
}

/** The JSON Schema of what a client sends. */
export function requestJsonSchema(schema: z.ZodType): Record<string, unknown> {
  return draft7(schema, 'input');
}

/** The JSON Schema of what the server sends. */
export function responseJsonSchema(schema: z.ZodType): Record<string, unknown> {
  return draft7(schema, 'output');
}

/**
 * One node rewritten for Fastify's serializer, which writes the same JSON either way but much
 * faster: "X or null" (zod's `anyOf: [X, { type: 'null' }]`) as `{ type: [X, 'null'] }`, which it
 * writes directly where an anyOf makes it run a validator on every value to choose a branch; and a
 * map of anything (an event's `data`) as "anything", which it hands to JSON.stringify whole instead
 * of key by key. Pages of assets, devices and events carry thousands of these.
 */
function forSerializer(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(forSerializer);
  if (!isNode(node)) return node;
  const out: Node = {};
  for (const [key, value] of Object.entries(node)) out[key] = forSerializer(value);
  if (out['type'] === 'object' && out['properties'] === undefined && isNode(out['additionalProperties']) && Object.keys(out['additionalProperties']).length === 0) {
    const { type: _type, propertyNames: _names, additionalProperties: _any, ...words } = out;
    return words;
  }
  const branches = out['anyOf'];
  if (!Array.isArray(branches) || branches.length !== 2) return out;
  const nullAt = branches.findIndex((b) => isNode(b) && b['type'] === 'null' && Object.keys(b).length === 1);
  const other: unknown = branches[1 - nullAt];
  if (nullAt === -1 || !isNode(other) || typeof other['type'] !== 'string' || 'const' in other || 'anyOf' in other) return out;
  const { anyOf: _branches, ...rest } = out;
  const enumValues = other['enum'];
  return { ...rest, ...other, type: [other['type'], 'null'], ...(Array.isArray(enumValues) ? { enum: [...enumValues, null] } : {}) };
}

/** The JSON Schema Fastify serialises an answer by: responseJsonSchema's constraints, in the form its serializer writes fastest. */
export function serializerJsonSchema(schema: z.ZodType): Record<string, unknown> {
  return forSerializer(responseJsonSchema(schema)) as Record<string, unknown>;
}
