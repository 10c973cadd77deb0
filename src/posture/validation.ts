/**
 * Input validation at the service boundary: zod schemas declared once, their issues turned into a
 * PostureInputError that names the field and says what to send instead.
 */
import { z } from 'zod';
import { CLOUDS } from '../config/index.js';
import { COMPLIANCE_STATES, OS_FAMILIES, OWNERSHIPS } from '../connector/posture.js';
import { FINGERPRINT_PATTERN } from '../connector/redaction.js';
import { PostureInputError } from './errors.js';
import { GUID_PATTERN, isGuid, isTenant } from '../common/ids.js';
import { parseTimeBound, TIME_BOUND_RULE } from '../common/time.js';

const ENTRA_TENANT = /^[A-Za-z0-9.-]{1,253}$/;
const NO_CONTROL_CHARS = /^[^\p{Cc}]*$/u;

export function assertTenant(tenant: unknown): asserts tenant is string {
  if (typeof tenant !== 'string' || !isTenant(tenant)) {
    throw new PostureInputError('invalid_tenant', 'tenant', 'tenant must be 1 to 64 letters, digits, dots, dashes or underscores');
  }
}

const CONNECTION_FIELDS = ['display_name', 'entra_tenant_id', 'client_id', 'cloud', 'secret_ref', 'status'] as const;

const FIELD_HELP: Readonly<Record<string, string>> = {
  display_name: 'display_name must be a name of 1 to 200 characters, without control characters',
  entra_tenant_id: "entra_tenant_id must be the Entra tenant's GUID or its primary domain (e.g. contoso.onmicrosoft.com)",
  client_id: 'client_id must be the application (client) id of the app registration, a GUID',
  cloud: `cloud must be one of ${CLOUDS.join(', ')}`,
  secret_ref: 'secret_ref must be a secret reference, env:VARIABLE_NAME or file:/absolute/path (never the secret itself)',
  status: 'status must be active or disabled (error is set by the runtime)',
  os_family: `os_family must be one of ${OS_FAMILIES.join(', ')}`,
  compliance_state: `compliance_state must be one of ${COMPLIANCE_STATES.join(', ')}`,
  ownership: `ownership must be one of ${OWNERSHIPS.join(', ')}`,
  connection_id: 'connection_id must be a connection id (GUID)',
  last_sync_before: `last_sync_before must be ${TIME_BOUND_RULE}`,
  last_sync_after: `last_sync_after must be ${TIME_BOUND_RULE}`,
  q: 'q must be the start of an Intune device id: 1 to 36 hex digits and dashes',
  fingerprint: 'fingerprint must be a serial fingerprint as the API shows it: hmac-sha256: and 64 hex digits',
  limit: 'limit must be a whole number from 1 to 500',
  cursor: 'cursor must be the next_cursor of a previous page, unchanged',
};

const connectionFields = {
  display_name: z.string().trim().min(1).max(200).regex(NO_CONTROL_CHARS),
  entra_tenant_id: z.string().trim().min(1).max(253).regex(ENTRA_TENANT).describe("The Entra tenant's GUID or primary domain."),
  client_id: z.string().trim().regex(GUID_PATTERN).transform((v) => v.toLowerCase()).describe('The application (client) id of the app registration.'),
  cloud: z.enum(CLOUDS).describe('Default public. custom only where the operator configured INTUNE_CLOUD=custom (its hosts apply).'),
  secret_ref: z.string().min(1).max(520).describe('env:NAME or file:/path, registered for purpose intune; never the secret itself.'),
  status: z.enum(['active', 'disabled']).describe('Default active. error is set by the runtime, never by callers.'),
};

/** What an administrator sends to create a connection: the REST body and the service's input alike. Unknown fields are refused. */
export const ConnectionInputSchema = z
  .object({
    ...connectionFields,
    cloud: connectionFields.cloud.optional(),
    status: connectionFields.status.optional(),
  })
  .strict();

/** What an administrator sends to change a connection; the REST body also needs at least one field. */
export const ConnectionPatchSchema = z
  .object({
    display_name: connectionFields.display_name.optional(),
    entra_tenant_id: connectionFields.entra_tenant_id.optional(),
    client_id: connectionFields.client_id.optional(),
    cloud: connectionFields.cloud.optional(),
    secret_ref: connectionFields.secret_ref.optional(),
    status: connectionFields.status.optional(),
  })
  .strict();

/** As sent (before trimming and lower-casing). */
export type ConnectionInput = z.input<typeof ConnectionInputSchema>;
export type ConnectionPatch = z.input<typeof ConnectionPatchSchema>;
/** As validated: trimmed, client_id lower-cased, absent fields absent. */
export type ValidConnectionInput = StrictOptional<z.output<typeof ConnectionInputSchema>>;
export type ValidConnectionPatch = StrictOptional<z.output<typeof ConnectionPatchSchema>>;

// The forms the CLI accepts too (src/common/time.ts), passed on as one ISO instant so the
// database never reads a date alone in its session's time zone.
const isoDateTime = z
  .string()
  .refine((v) => parseTimeBound(v) !== null)
  .transform((v) => (parseTimeBound(v) as Date).toISOString());

export const DeviceQuerySchema = z
  .object({
    os_family: z.enum(OS_FAMILIES).optional(),
    compliance_state: z.enum(COMPLIANCE_STATES).optional(),
    ownership: z.enum(OWNERSHIPS).optional(),
    connection_id: z.string().regex(GUID_PATTERN).transform((v) => v.toLowerCase()).optional(),
    last_sync_before: isoDateTime.optional(),
    last_sync_after: isoDateTime.optional(),
    q: z
      .string()
      .regex(/^[0-9A-Fa-f-]{1,36}$/)
      .transform((v) => v.toLowerCase())
      .optional(),
    fingerprint: z
      .string()
      .regex(FINGERPRINT_PATTERN)
      .transform((v) => v.toLowerCase())
      .optional(),
    // Query strings arrive as text; a numeric string is as good as a number.
    limit: z.coerce.number().int().min(1).max(500).optional(),
    cursor: z.string().min(1).max(512).optional(),
  })
  .strict();

/** A device query as validated (the REST query string takes the same names). */
export type DeviceQuery = StrictOptional<z.output<typeof DeviceQuerySchema>>;

function inputError(error: z.ZodError, allowed: readonly string[], what: string): PostureInputError {
  const issue = error.issues[0];
  if (issue === undefined) return new PostureInputError('invalid_body', null, `invalid ${what}`);
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    return new PostureInputError('unknown_field', key, `unknown field "${key.slice(0, 64)}": ${what} takes ${allowed.join(', ')}`);
  }
  const field = issue.path.map(String).join('.');
  if (field === '') return new PostureInputError('invalid_body', null, `${what} must be a JSON object with ${allowed.join(', ')}`);
  const missing = issue.code === 'invalid_type' && issue.input === undefined;
  const help = FIELD_HELP[field] ?? `${field} is invalid`;
  return new PostureInputError(missing ? 'missing_field' : 'invalid_field', field, missing ? `${field} is required: ${help}` : help);
}

export function parseConnectionInput(input: unknown): ValidConnectionInput {
  const parsed = ConnectionInputSchema.safeParse(input);
  if (!parsed.success) throw inputError(parsed.error, CONNECTION_FIELDS, 'a connection');
  return stripUndefined(parsed.data);
}

export function parseConnectionPatch(patch: unknown): ValidConnectionPatch {
  const parsed = ConnectionPatchSchema.safeParse(patch);
  if (!parsed.success) throw inputError(parsed.error, CONNECTION_FIELDS, 'a connection update');
  return stripUndefined(parsed.data);
}

export function parseDeviceQuery(query: unknown): DeviceQuery {
  const parsed = DeviceQuerySchema.safeParse(query ?? {});
  if (!parsed.success) throw inputError(parsed.error, Object.keys(DeviceQuerySchema.shape), 'the device query');
  return stripUndefined(parsed.data);
}

/** exactOptionalPropertyTypes: an optional field is absent, never present and undefined. */
type StrictOptional<T> = { [K in keyof T]: Exclude<T[K], undefined> };

/** Callers may send an optional field as undefined; what the service passes on leaves it out. */
function stripUndefined<T extends object>(value: T): StrictOptional<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as StrictOptional<T>;
}
