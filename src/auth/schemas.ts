/** An API key as the store records and answers it, declared once in zod; the type is inferred. */
import { z } from 'zod';
import { dateTimeString } from '../common/schemas.js';
import { CAPABILITIES } from '../config/index.js';
import { ROLES } from './types.js';

export const KEY_ID_PATTERN = /^[0-9a-f]{16}$/;

export const ApiKeyRecordSchema = z
  .object({
    key_id: z.string().regex(KEY_ID_PATTERN),
    tenant: z.string(),
    role: z.enum(ROLES),
    capabilities: z.array(z.enum(CAPABILITIES)),
    name: z.string().nullable(),
    created_at: dateTimeString,
    created_by: z.string(),
    revoked_at: dateTimeString.nullable(),
  })
  .strict();
export type ApiKeyRecord = z.infer<typeof ApiKeyRecordSchema>;
