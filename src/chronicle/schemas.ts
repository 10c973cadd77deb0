/**
 * Chronicle's answers as reviewers read them over the API (and `chronicle query` prints them),
 * declared once in zod: ./json.ts maps events and reports into these shapes, the types are
 * inferred, and the REST API serialises by the JSON Schema derived from them, so a field not
 * declared here never leaves. test/api/response-contracts.test.ts compares them with
 * specs/openapi.yaml.
 */
import { z } from 'zod';
import { dateTimeString, sha256Hex as hash } from '../common/schemas.js';
import { EVENT_TYPES, VERIFY_FAILURES } from './types.js';

const count = z.int().min(0);

export const ActorSchema = z
  .object({
    kind: z.enum(['agent', 'service', 'human', 'system']),
    id: z.string().max(200),
  })
  .strict();

export const ChronicleEventJsonSchema = z
  .object({
    seq: z.int().min(1),
    tenant: z.string(),
    time: dateTimeString,
    type: z.enum(EVENT_TYPES),
    code: z.string().nullable(),
    actor: ActorSchema,
    request_id: z.string().nullable(),
    data: z.record(z.string(), z.unknown()).describe('The event payload; its schema is specs/events/<type>.v1.schema.json (see specs/asyncapi.yaml).'),
    prev_hash: hash,
    hash,
  })
  .strict();
export type ChronicleEventJson = z.infer<typeof ChronicleEventJsonSchema>;

export const ChronicleEventPageSchema = z
  .object({
    events: z.array(ChronicleEventJsonSchema),
    next_cursor: z.string().nullable(),
  })
  .strict();
export type ChronicleEventPage = z.infer<typeof ChronicleEventPageSchema>;

export const ChainReportJsonSchema = z
  .object({
    tenant: z.string(),
    ok: z.boolean(),
    events_checked: count,
    head_seq: count,
    checkpoints_checked: count,
    first_bad_seq: z.int().min(1).nullable().describe('The first seq that can no longer be trusted.'),
    reason: z.enum(VERIFY_FAILURES).nullable(),
    detail: z.string().nullable(),
  })
  .strict();
export type ChainReportJson = z.infer<typeof ChainReportJsonSchema>;

/**
 * The chain of the key's tenant, walked in seq order: each event's hash, link, canonical form and
 * indexed columns, and the signed checkpoints outside the database. A tenant without events has no
 * chain (`chains` is empty and `ok` true).
 */
export const VerifyReportJsonSchema = z
  .object({
    ok: z.boolean(),
    chains: z.array(ChainReportJsonSchema),
    events_checked: count,
    duration_ms: z.number().min(0),
    warnings: z.array(z.string()),
  })
  .strict();
export type VerifyReportJson = z.infer<typeof VerifyReportJsonSchema>;
