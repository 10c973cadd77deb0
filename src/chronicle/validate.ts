/**
 * Event validation against the JSON Schemas in specs/events/. The schemas are allow-lists
 * (additionalProperties: false at every level): that is what keeps device PII and free text out of
 * the audit trail, so an event that does not validate is refused, never trimmed.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type Ajv2020Module from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import type addFormatsModule from 'ajv-formats';
import { ENVELOPE_SCHEMA_FILE, EVENT_CATALOG, isEventType, specPath } from './catalog.js';
import { EVENT_TYPES, type EventType } from './types.js';
import { isPlainObject } from '../common/values.js';

export type ValidationResult = { readonly ok: true } | { readonly ok: false; readonly field: string; readonly message: string };

interface Validators {
  readonly input: ValidateFunction;
  readonly data: ReadonlyMap<EventType, ValidateFunction>;
}

// ajv-formats and ajv are CommonJS, required when the schemas are first compiled: a command that
// appends nothing (chronicle verify, query, export) never loads them.
type AjvClass = typeof Ajv2020Module.default;
type AddFormats = typeof addFormatsModule.default;
function loadAjv(): { Ajv2020: AjvClass; addFormats: AddFormats } {
  const require = createRequire(import.meta.url);
  const ajvModule = require('ajv/dist/2020.js') as { default?: AjvClass } & AjvClass;
  const formatsModule = require('ajv-formats') as { default?: AddFormats } & AddFormats;
  return { Ajv2020: ajvModule.default ?? ajvModule, addFormats: formatsModule.default ?? formatsModule };
}

function readSchema(relative: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(specPath(relative), 'utf8')) as Record<string, unknown>;
}

function compileValidators(): Validators {
  const { Ajv2020, addFormats } = loadAjv();
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
  if (!isPlainObject(input)) return { ok: false, field: 'input', message: 'must be an object' };
  const raw = input as Record<string, unknown>;
  // null and undefined both mean "no request id".
  const normalised = raw['requestId'] === null || raw['requestId'] === undefined ? { ...raw, requestId: undefined } : raw;
  const envelope = firstError(validators().input, normalised, '');
  if (!envelope.ok) return envelope;
  return validateEventData(raw['type'] as string, raw['data']);
}
