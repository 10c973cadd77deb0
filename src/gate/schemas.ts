/**
 * The gate's HTTP contract, declared once in zod; the JSON Schemas (for Fastify's serializer, the
 * OpenAPI document and tests) are derived from it.
 */
import { z } from 'zod';
import { DevicePostureSchema } from '../connector/posture.js';
import { GATE_REASONS } from './types.js';

export const GateResponseSchema = z
  .object({
    decision: z.enum(['allow', 'deny']).describe('The answer: issue the accord (allow) or not (deny). Both come with 200.'),
    reason: z.enum(GATE_REASONS).describe('The row of the decision table that decided.'),
    evaluated: z.boolean().describe('True when the decision rests on an answer from Intune.'),
    message: z.string().describe('One sentence for the user or operator.'),
    device: DevicePostureSchema.nullable().describe('The redacted record that decided (the most recently synced match), or null.'),
    event: z
      .object({ seq: z.number().int().min(1), hash: z.string().regex(/^[0-9a-f]{64}$/) })
      .strict()
      .nullable()
      .describe('The DEVICE_COMPLIANCE_CHECKED event recording this decision; null only with audit_unavailable.'),
  })
  .strict();
export type GateResponse = z.infer<typeof GateResponseSchema>;

export const GateRequestSchema = z
  .object({
    accord: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/).describe('The accord template being issued.'),
    claims: z.record(z.string(), z.unknown()).optional().describe("The user token's claims; only deviceid is read. Send {} for a token without device claims."),
    user_token: z.string().max(8192).optional().describe('Instead of claims: the user token itself, verified against INTUNE_GATE_JWKS_URL.'),
  })
  .strict();

export const GateErrorSchema = z
  .object({ error: z.object({ code: z.string().regex(/^[a-z_]{1,64}$/), message: z.string() }).catchall(z.unknown()) })
  .strict();

const jsonSchemaOf = (schema: z.ZodType): Record<string, unknown> => {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-7' }) as Record<string, unknown>;
  return rest;
};

export const GATE_RESPONSE_JSON_SCHEMA = jsonSchemaOf(GateResponseSchema);
export const GATE_REQUEST_JSON_SCHEMA = jsonSchemaOf(GateRequestSchema);
export const GATE_ERROR_JSON_SCHEMA = jsonSchemaOf(GateErrorSchema);
