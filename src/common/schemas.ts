/**
 * The zod building blocks the declared requests and answers share: one declaration of each id,
 * time and digest form, so the REST contracts (and the JSON Schema derived from them) say it the
 * same way everywhere.
 */
import { z } from 'zod';
import { GUID_PATTERN } from './ids.js';

/** A GUID, as Intune, Entra and this product's own ids are written. */
export const guidString = z.string().regex(GUID_PATTERN);

/** An ISO 8601 date-time as the server writes it. */
export const dateTimeString = z.string().meta({ format: 'date-time' });

/** A SHA-256 digest in lowercase hex (Chronicle's hashes). */
export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/** A serial fingerprint as the server writes it (hmac-sha256: and 64 lowercase hex digits), or null. */
export const serialFingerprintOrNull = z
  .string()
  .regex(/^hmac-sha256:[0-9a-f]{64}$/)
  .nullable();
