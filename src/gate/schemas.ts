/**
 * The gate's HTTP contract, declared once in zod; the JSON Schemas (for Fastify's serializer, the
 * OpenAPI document and tests) are derived from it.
 */
import { z } from 'zod';
import { requestJsonSchema, responseJsonSchema, serializerJsonSchema } from '../common/json-schema.js';
import { sha256Hex } from '../common/schemas.js';
import { DevicePostureSchema } from '../connector/posture.js';
import { ACCORD_NAME_PATTERN, GATE_REASONS, POSTURE_RULES, VERDICTS } from './types.js';

export const GateResponseSchema = z
  .object({
    decision: z.enum(VERDICTS).describe('The answer: issue the accord (allow) or not (deny). Both come with 200.'),
    reason: z.enum(GATE_REASONS).describe('The row of the decision table that decided.'),
    evaluated: z.boolean().describe('True when the decision rests on an answer from Intune.'),
    message: z.string().describe('One sentence for the user or operator.'),
    device: DevicePostureSchema.nullable().describe('The redacted record that decided (the most recently synced match), or null.'),
    failed_rules: z.array(z.enum(POSTURE_RULES)).describe("The accord's posture rules the record fails, in rule order; empty when none failed or none were checked."),
    failing_settings: z
      .array(z.string())
      .describe('Identifiers of the compliance settings Intune reports as failing on the record (e.g. MacOSCompliancePolicy.StorageRequireEncryption), read when the state denies; empty otherwise.'),
    event: z
      .object({ seq: z.number().int().min(1), hash: sha256Hex })
      .strict()
      .nullable()
      .describe('The DEVICE_COMPLIANCE_CHECKED event recording this decision; null only with audit_unavailable.'),
  })
  .strict();
export type GateResponse = z.infer<typeof GateResponseSchema>;

export const MAX_USER_TOKEN_CHARS = 8192;

/** An unknown field's name as a message may show it: printable ASCII, at most 40 characters. */
const shownField = (name: string): string => name.replace(/[^\x20-\x7e]/g, '?').slice(0, 40);

/**
 * The request body. Each message says what to send instead; the HTTP route turns the first issue
 * into its error code (invalid_accord for a malformed accord, invalid_body for everything else).
 */
export const GateRequestSchema = z
  .strictObject(
    {
      accord: z
        .string({
          error: (issue) =>
            issue.input === undefined
              ? 'accord is required: the name of the accord template being issued'
              : 'accord must be 1 to 128 letters, digits, dots, underscores or hyphens (the accord template name)',
        })
        .regex(ACCORD_NAME_PATTERN, { error: 'accord must be 1 to 128 letters, digits, dots, underscores or hyphens (the accord template name)' })
        .describe('The accord template being issued.'),
      claims: z
        .record(z.string(), z.unknown(), { error: 'claims must be a JSON object of the user token\'s claims, e.g. { "deviceid": "..." }' })
        .optional()
        .describe("The user token's claims; only deviceid is read. Send {} for a token without device claims."),
      user_token: z
        .string({ error: `user_token must be the user's JWT as a string of at most ${MAX_USER_TOKEN_CHARS} characters` })
        .min(1, { error: `user_token must be the user's JWT as a string of at most ${MAX_USER_TOKEN_CHARS} characters` })
        .max(MAX_USER_TOKEN_CHARS, { error: `user_token must be the user's JWT as a string of at most ${MAX_USER_TOKEN_CHARS} characters` })
        .optional()
        .describe('Instead of claims: the user token itself, verified against INTUNE_GATE_JWKS_URL.'),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `the body has an unknown field "${shownField(issue.keys[0] ?? '')}"; send only accord and claims (or user_token)`
          : 'the body must be a JSON object: { "accord": "...", "claims": { "deviceid": "..." } }',
    },
  )
  .refine((body) => body.claims === undefined || body.user_token === undefined, { error: 'send claims or user_token, not both' })
  .refine((body) => body.claims !== undefined || body.user_token !== undefined, {
    error: "claims is required: the user token's claims (only deviceid is read; {} for a token without device claims), or user_token",
  });
export type GateRequest = z.infer<typeof GateRequestSchema>;

export const GateErrorSchema = z
  .object({ error: z.object({ code: z.string().regex(/^[a-z_]{1,64}$/), message: z.string() }).catchall(z.unknown()) })
  .strict();

export const GATE_RESPONSE_JSON_SCHEMA = responseJsonSchema(GateResponseSchema);

/** GATE_RESPONSE_JSON_SCHEMA as the route's serializer reads it: the same contract, nullable values by type (common/json-schema.ts). */
export const GATE_RESPONSE_SERIALIZER_SCHEMA = serializerJsonSchema(GateResponseSchema);
export const GATE_REQUEST_JSON_SCHEMA = requestJsonSchema(GateRequestSchema);
export const GATE_ERROR_JSON_SCHEMA = responseJsonSchema(GateErrorSchema);
