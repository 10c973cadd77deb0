/**
 * JSON Schema derived from a zod declaration, in draft-07 (what Fastify's ajv and its serializer
 * speak). Requests are read as a client sends them (defaults optional); responses as the server
 * sends them (defaults filled in, so required).
 */
import { z } from 'zod';

function draft7(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io }) as Record<string, unknown>;
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
