import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EVENT_CATALOG, ENVELOPE_SCHEMA_FILE, specPath, validateAppendInput, validateEventData } from '../../src/chronicle/index.js';
import { EVENT_TYPES, type EventType } from '../../src/chronicle/types.js';
import { GUID_A, SAMPLE_DATA } from './helpers.js';

type Schema = Record<string, unknown>;

function readSchema(file: string): Schema {
  return JSON.parse(fs.readFileSync(specPath(file), 'utf8')) as Schema;
}

/** Every object schema inside `schema`, with its path. */
function objectSchemas(schema: unknown, at = ''): Array<{ at: string; schema: Schema }> {
  if (schema === null || typeof schema !== 'object') return [];
  const s = schema as Schema;
  const found: Array<{ at: string; schema: Schema }> = [];
  const types = Array.isArray(s['type']) ? s['type'] : [s['type']];
  if (types.includes('object')) found.push({ at: at || '(root)', schema: s });
  for (const [key, value] of Object.entries((s['properties'] as Schema | undefined) ?? {})) found.push(...objectSchemas(value, `${at}.${key}`));
  if (s['items'] !== undefined) found.push(...objectSchemas(s['items'], `${at}[]`));
  return found;
}

/** Every string schema inside `schema`, with its path. */
function stringSchemas(schema: unknown, at = ''): Array<{ at: string; schema: Schema }> {
  if (schema === null || typeof schema !== 'object') return [];
  const s = schema as Schema;
  const found: Array<{ at: string; schema: Schema }> = [];
  const types = Array.isArray(s['type']) ? s['type'] : [s['type']];
  if (types.includes('string')) found.push({ at, schema: s });
  for (const [key, value] of Object.entries((s['properties'] as Schema | undefined) ?? {})) found.push(...stringSchemas(value, `${at}.${key}`));
  if (s['items'] !== undefined) found.push(...stringSchemas(s['items'], `${at}[]`));
  return found;
}

describe('event catalog', () => {
  it('lists every event type with its code and a schema file in specs/events', () => {
    expect(Object.keys(EVENT_CATALOG).sort()).toEqual([...EVENT_TYPES].sort());
    expect(EVENT_CATALOG.DEVICE_COMPLIANCE_CHECKED.code).toBe('0x2801');
    expect(EVENT_CATALOG.CONNECTOR_INVOKED.code).toBeNull();
    for (const type of EVENT_TYPES) {
      expect(EVENT_CATALOG[type].schemaFile).toBe(`specs/events/${type}.v1.schema.json`);
      expect(fs.existsSync(specPath(EVENT_CATALOG[type].schemaFile))).toBe(true);
    }
    // Nothing in specs/events that the catalog does not know.
    const files = fs.readdirSync(path.dirname(specPath(ENVELOPE_SCHEMA_FILE))).sort();
    expect(files).toEqual([...EVENT_TYPES.map((t) => `${t}.v1.schema.json`), path.basename(ENVELOPE_SCHEMA_FILE)].sort());
  });

  it.each([...EVENT_TYPES, 'chronicle.envelope'])('schema %s is an allow-list: additionalProperties false on every object, every string bounded', (name) => {
    const schema = readSchema(name === 'chronicle.envelope' ? ENVELOPE_SCHEMA_FILE : EVENT_CATALOG[name as EventType].schemaFile);
    const objects = objectSchemas(schema);
    expect(objects.length).toBeGreaterThan(0);
    for (const { at, schema: object } of objects) {
      if (name === 'chronicle.envelope' && at === '.data') continue; // validated by the type's own schema
      expect(object['additionalProperties'], `${name} ${at}`).toBe(false);
    }
    for (const { at, schema: string } of stringSchemas(schema)) {
      const bounded = string['maxLength'] !== undefined || string['enum'] !== undefined || string['const'] !== undefined;
      expect(bounded, `${name} ${at} has no maxLength`).toBe(true);
    }
  });

  it.each(EVENT_TYPES)('accepts a well-formed %s', (type) => {
    expect(validateEventData(type, SAMPLE_DATA[type])).toEqual({ ok: true });
    expect(validateAppendInput({ tenant: 'acme', type, actor: { kind: 'service', id: 'svc' }, data: SAMPLE_DATA[type] })).toEqual({ ok: true });
  });

  it('refuses device PII and free text wherever it appears, naming the field', () => {
    expect(validateEventData('CONNECTOR_INVOKED', { ...SAMPLE_DATA.CONNECTOR_INVOKED, deviceName: 'Alice’s MacBook' })).toEqual({
      ok: false,
      field: 'data.deviceName',
      message: expect.stringContaining('is not allowed here') as unknown as string,
    });
    const nested = validateEventData('CONNECTOR_INVOKED', { ...SAMPLE_DATA.CONNECTOR_INVOKED, target: { device_id: GUID_A, userPrincipalName: 'alice@contoso.com' } });
    expect(nested).toMatchObject({ ok: false, field: 'data.target.userPrincipalName' });
    const serial = validateEventData('DEVICE_COMPLIANCE_CHECKED', { ...SAMPLE_DATA.DEVICE_COMPLIANCE_CHECKED, serialNumber: 'C02XK0ABJGH5' });
    expect(serial).toMatchObject({ ok: false, field: 'data.serialNumber' });
    // The message names the field but never echoes the value.
    expect(JSON.stringify([nested, serial])).not.toMatch(/alice@contoso|C02XK0ABJGH5/);
  });

  it.each<[EventType, Record<string, unknown>, string, RegExp]>([
    ['CONNECTOR_INVOKED', { reason: 'Not A Code' }, 'data.reason', /must match pattern/],
    ['CONNECTOR_INVOKED', { operation: 'format_disk' }, 'data.operation', /must be equal to one of the allowed values/],
    ['CONNECTOR_INVOKED', { target: { device_id: 'not-a-guid' } }, 'data.target.device_id', /pattern/],
    ['CONNECTOR_INVOKED', { duration_ms: -1 }, 'data.duration_ms', />= 0/],
    ['CONNECTOR_INVOKED', { graph_request_id: 'x'.repeat(65) }, 'data.graph_request_id', /64 characters/],
    ['DEVICE_COMPLIANCE_CHECKED', { reason: 'looks_fine' }, 'data.reason', /must be equal to one of the allowed values \("compliance_not_required"/],
    ['DEVICE_COMPLIANCE_CHECKED', { compliance_state: 'Compliant' }, 'data.compliance_state', /allowed values/],
    ['DEVICE_COMPLIANCE_CHECKED', { last_sync_at: 'yesterday' }, 'data.last_sync_at', /date-time/],
    ['DEVICE_COMPLIANCE_CHECKED', { accord: 'has spaces' }, 'data.accord', /pattern/],
    ['integration.intune.sync_completed', { counts_by_os_family: { solaris: 1 } }, 'data.counts_by_os_family.solaris', /not allowed/],
    ['integration.intune.sync_completed', { devices: 1.5 }, 'data.devices', /integer/],
    ['agent.macos.enrolled', { platform: 'linux' }, 'data.platform', /constant "darwin"/],
    ['agent.macos.enrolled', { os_version: '14.x' }, 'data.os_version', /pattern/],
    ['integration.intune.connection_created', { secret_ref: 'hunter2' }, 'data.secret_ref', /pattern/],
    ['integration.intune.connection_updated', { changed_fields: ['display_name', 'display_name'] }, 'data.changed_fields', /duplicate/],
    ['admin.api_key_created', { role: 'root' }, 'data.role', /allowed values/],
    ['admin.api_key_revoked', { capabilities: ['DELETE'] }, 'data.capabilities.0', /allowed values/],
  ])('refuses %s with %j at %s', (type, change, field, message) => {
    const result = validateEventData(type, { ...SAMPLE_DATA[type], ...change });
    expect(result.ok).toBe(false);
    expect(result).toMatchObject({ field });
    expect((result as { message: string }).message).toMatch(message);
  });

  it('names a missing required field', () => {
    const { reason: _dropped, ...rest } = SAMPLE_DATA.DEVICE_COMPLIANCE_CHECKED;
    expect(validateEventData('DEVICE_COMPLIANCE_CHECKED', rest)).toEqual({ ok: false, field: 'data.reason', message: 'is required' });
  });

  it('validates the envelope: tenant, type, actor and request id', () => {
    const good = { tenant: 'acme', type: 'CONNECTOR_INVOKED', actor: { kind: 'agent', id: 'a' }, data: SAMPLE_DATA.CONNECTOR_INVOKED };
    expect(validateAppendInput({ ...good, tenant: '../etc' })).toMatchObject({ ok: false, field: 'tenant' });
    expect(validateAppendInput({ ...good, tenant: 'x'.repeat(65) })).toMatchObject({ ok: false, field: 'tenant' });
    expect(validateAppendInput({ ...good, type: 'USER_DELETED' })).toMatchObject({ ok: false, field: 'type' });
    expect(validateAppendInput({ ...good, actor: { kind: 'robot', id: 'a' } })).toMatchObject({ ok: false, field: 'actor.kind' });
    expect(validateAppendInput({ ...good, actor: { kind: 'agent', id: 'line\nbreak' } })).toMatchObject({ ok: false, field: 'actor.id' });
    expect(validateAppendInput({ ...good, actor: { kind: 'agent', id: 'a'.repeat(201) } })).toMatchObject({ ok: false, field: 'actor.id' });
    expect(validateAppendInput({ ...good, actor: { kind: 'agent', id: 'a', email: 'alice@contoso.com' } })).toMatchObject({ ok: false, field: 'actor.email' });
    expect(validateAppendInput({ ...good, requestId: 'has space' })).toMatchObject({ ok: false, field: 'requestId' });
    expect(validateAppendInput({ ...good, requestId: null })).toEqual({ ok: true });
    expect(validateAppendInput({ ...good, data: 'text' })).toMatchObject({ ok: false, field: 'data' });
    expect(validateAppendInput(null)).toMatchObject({ ok: false, field: 'input' });
    expect(validateAppendInput([])).toMatchObject({ ok: false, field: 'input' });
  });
});
