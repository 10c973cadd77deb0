/**
 * The event catalog: every event type Chronicle records, its catalog code, and its JSON Schema in
 * specs/events/<type>.v1.schema.json. The schemas are allow-lists (additionalProperties: false at
 * every level): that is what keeps device PII and free text out of the audit trail, so an event
 * that does not validate is refused, never trimmed.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020Module, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { EVENT_TYPES, type AppendInput, type EventType } from './types.js';

export interface EventCatalogEntry {
  /** The catalog code (e.g. "0x2801"), or null for events without one. */
  readonly code: string | null;
  /** The schema of the event's data, relative to the package root. */
  readonly schemaFile: string;
  readonly description: string;
  /** The data field holding the decision, for `query({ decision })`. */
  readonly decisionField?: string;
  /** Data fields (paths) holding device ids, for `query({ deviceId })`. */
  readonly deviceIdFields?: readonly (readonly string[])[];
}

const schemaFile = (type: EventType) => `specs/events/${type}.v1.schema.json`;

export const EVENT_CATALOG: Readonly<Record<EventType, EventCatalogEntry>> = Object.freeze({
  CONNECTOR_INVOKED: {
    code: null,
    schemaFile: schemaFile('CONNECTOR_INVOKED'),
    description: 'Every Intune connector invocation, allowed or denied, succeeded or failed.',
    decisionField: 'decision',
    deviceIdFields: [
      ['target', 'device_id'],
      ['target', 'azure_ad_device_id'],
    ],
  },
  DEVICE_COMPLIANCE_CHECKED: {
    code: '0x2801',
    schemaFile: schemaFile('DEVICE_COMPLIANCE_CHECKED'),
    description: 'The compliance gate evaluated a device during credential issuance.',
    decisionField: 'decision',
    deviceIdFields: [['intune_device_id'], ['azure_ad_device_id']],
  },
  'integration.intune.sync_completed': {
    code: null,
    schemaFile: schemaFile('integration.intune.sync_completed'),
    description: 'A posture sync run of an Intune connection finished.',
  },
  'agent.macos.enrolled': {
    code: null,
    schemaFile: schemaFile('agent.macos.enrolled'),
    description: 'A macOS endpoint agent enrolled.',
  },
  'integration.intune.connection_created': {
    code: null,
    schemaFile: schemaFile('integration.intune.connection_created'),
    description: 'An administrator created an Intune connection.',
  },
  'integration.intune.connection_updated': {
    code: null,
    schemaFile: schemaFile('integration.intune.connection_updated'),
    description: 'An administrator changed an Intune connection.',
  },
  'admin.api_key_created': {
    code: null,
    schemaFile: schemaFile('admin.api_key_created'),
    description: 'An API key was issued.',
  },
  'admin.api_key_revoked': {
    code: null,
    schemaFile: schemaFile('admin.api_key_revoked'),
    description: 'An API key was revoked.',
  },
});

/** The schema of the stored body (the envelope around `data`). */
export const ENVELOPE_SCHEMA_FILE = 'specs/events/chronicle.envelope.v1.schema.json';

/** The package root: specs/ ships beside dist/ (and src/ in a checkout). */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function specPath(relative: string): string {
  return `${PACKAGE_ROOT}${relative}`;
}

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && (EVENT_TYPES as readonly string[]).includes(value);
}

export type ValidationResult = { readonly ok: true } | { readonly ok: false; readonly field: string; readonly message: string };

interface Validators {
  readonly input: ValidateFunction;
  readonly data: ReadonlyMap<EventType, ValidateFunction>;
}

// ajv-formats and ajv are CommonJS; their default export is the module object under NodeNext.
type AjvClass = typeof Ajv2020Module.default;
const Ajv2020 = ((Ajv2020Module as unknown as { default?: AjvClass }).default ?? Ajv2020Module) as AjvClass;
type AddFormats = typeof addFormatsModule.default;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ?? addFormatsModule) as AddFormats;

function readSchema(relative: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(specPath(relative), 'utf8')) as Record<string, unknown>;
}

function compileValidators(): Validators {
  const ajv = new Ajv2020({ allErrors: false, strict: true, verbose: true });
  addFormats(ajv, ['date-time']);
  const envelope = readSchema(ENVELOPE_SCHEMA_FILE);
  ajv.addSchema(envelope);
  const envelopeId = envelope['$id'] as string;
  const input = ajv.compile({
    type: 'object',
    required: ['tenant', 'type', 'actor', 'data'],
    properties: {
      tenant: { $ref: `${envelopeId}#/$defs/chain` },
      type: { type: 'string', enum: [...EVENT_TYPES] },
      actor: { $ref: `${envelopeId}#/$defs/actor` },
      requestId: { $ref: `${envelopeId}#/$defs/request_id` },
      data: { type: 'object' },
    },
  });
  const data = new Map<EventType, ValidateFunction>();
  for (const type of EVENT_TYPES) data.set(type, ajv.compile(readSchema(EVENT_CATALOG[type].schemaFile)));
  return { input, data };
}

// Compiled on first use, once per process: the schemas are files that do not change while it runs,
// and compiling them on every createChronicle would cost tens of milliseconds each time.
let compiled: Validators | undefined;
function validators(): Validators {
  compiled ??= compileValidators();
  return compiled;
}

/** Compiles every schema now (createChronicle calls it so a broken spec file fails at start). */
export function loadEventSchemas(): void {
  validators();
}

const MAX_NAME_IN_MESSAGE = 64;

function safeName(name: string): string {
  // A property name is caller text: keep it short and printable in messages and logs.
  const printable = name.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > MAX_NAME_IN_MESSAGE ? `${printable.slice(0, MAX_NAME_IN_MESSAGE)}…` : printable;
}

function pointerToPath(root: string, pointer: string): string {
  if (pointer === '') return root;
  const parts = pointer
    .slice(1)
    .split('/')
    .map((p) => safeName(p.replace(/~1/g, '/').replace(/~0/g, '~')));
  return root === '' ? parts.join('.') : `${root}.${parts.join('.')}`;
}

function describe(error: ErrorObject, root: string): { field: string; message: string } {
  const at = pointerToPath(root, error.instancePath);
  const join = (name: string) => (at === '' ? safeName(name) : `${at}.${safeName(name)}`);
  switch (error.keyword) {
    case 'additionalProperties': {
      const allowed = Object.keys(((error.parentSchema as { properties?: object } | undefined)?.properties ?? {}) as object);
      return {
        field: join(String((error.params as { additionalProperty: string }).additionalProperty)),
        message: `is not allowed here; remove it (allowed: ${allowed.join(', ') || 'none'})`,
      };
    }
    case 'required':
      return { field: join(String((error.params as { missingProperty: string }).missingProperty)), message: 'is required' };
    case 'enum':
      return {
        field: at,
        message: `must be equal to one of the allowed values (${((error.params as { allowedValues: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')})`,
      };
    case 'const':
      return { field: at, message: `must be equal to constant ${JSON.stringify((error.params as { allowedValue: unknown }).allowedValue)}` };
    default:
      return { field: at, message: error.message ?? 'is invalid' };
  }
}

function firstError(validate: ValidateFunction, value: unknown, root: string): ValidationResult {
  if (validate(value)) return { ok: true };
  const error = validate.errors?.[0];
  return error === undefined ? { ok: false, field: root, message: 'is invalid' } : { ok: false, ...describe(error, root) };
}

/**
 * Validates an event's data against its type's schema without appending it. The result names the
 * first offending field as a path from `data` (e.g. `data.reason`).
 */
export function validateEventData(type: string, data: unknown): ValidationResult {
  if (!isEventType(type)) return { ok: false, field: 'type', message: `must be one of the catalog's event types (${EVENT_TYPES.join(', ')})` };
  return firstError(validators().data.get(type) as ValidateFunction, data, 'data');
}

/** Validates a whole append input: tenant, type, actor, requestId and data. */
export function validateAppendInput(input: unknown): ValidationResult {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return { ok: false, field: 'input', message: 'must be an object' };
  const raw = input as Record<string, unknown>;
  // null and undefined both mean "no request id".
  const normalised = raw['requestId'] === null || raw['requestId'] === undefined ? { ...raw, requestId: undefined } : raw;
  const envelope = firstError(validators().input, normalised, '');
  if (!envelope.ok) return envelope;
  return validateEventData(raw['type'] as string, raw['data']);
}

export type { AppendInput };
