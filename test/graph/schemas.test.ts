import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  GraphError,
  MANAGED_DEVICE_PROPERTIES,
  ManagedDeviceSchema,
  NEVER_DATE,
  createManagedDeviceSchema,
  parseCollectionPage,
  parseManagedDevice,
} from '../../src/connector/graph/index.js';
import { generateTenant } from '../../src/simulator/index.js';

const graphSpecs = path.resolve(import.meta.dirname, '../../specs/graph');
const metadata = JSON.parse(fs.readFileSync(path.join(graphSpecs, 'managedDevice.v1.json'), 'utf8')) as {
  name: string;
  type: string;
  nullable: boolean;
  enumValues?: string[];
}[];
const sample = JSON.parse(fs.readFileSync(path.join(graphSpecs, 'sample-managedDevice-macos.json'), 'utf8')) as Record<string, unknown>;

function malformed(fn: () => unknown): GraphError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GraphError);
    expect((err as GraphError).kind).toBe('malformed_response');
    return err as GraphError;
  }
  throw new Error('expected a malformed_response GraphError');
}

describe('the managedDevice schema', () => {
  it("has exactly the 56 properties of Microsoft's v1.0 metadata, with their nullability and enum members", () => {
    expect(Object.keys(MANAGED_DEVICE_PROPERTIES)).toEqual(metadata.map((p) => p.name));
    expect(metadata).toHaveLength(56);
    for (const property of metadata) {
      const spec = MANAGED_DEVICE_PROPERTIES[property.name];
      expect(spec?.nullable, property.name).toBe(property.nullable);
      expect(spec?.enumValues ?? null, property.name).toEqual(property.enumValues ?? null);
      const kind = { 'Edm.String': 'string', 'Edm.Boolean': 'boolean', 'Edm.Int64': 'int64', 'Edm.DateTimeOffset': 'datetime' }[property.type];
      if (kind !== undefined) expect(spec?.kind, property.name).toBe(kind);
    }
  });

  it('reads the sample macOS device unchanged, dropping only OData annotations', () => {
    const device = ManagedDeviceSchema.parse(sample);
    const expected = Object.fromEntries(Object.entries(sample).filter(([key]) => !key.startsWith('@odata.')));
    expect(device).toEqual(expected);
  });

  it("maps an enum member Graph added later to 'unknownFutureValue' where the enum has it, else 'unknown'", () => {
    const reasons: string[] = [];
    const schema = createManagedDeviceSchema((property, reason) => reasons.push(`${property}:${reason}`));
    const device = schema.parse({
      ...sample,
      complianceState: 'quarantinedByPolicy',
      managementState: 'retireScheduled',
      managedDeviceOwnerType: 'shared',
      managementAgent: 'newAgent',
      exchangeAccessState: 'throttled',
    });
    expect(device.complianceState).toBe('unknown');
    expect(device['managementState']).toBe('unknownFutureValue');
    expect(device['managedDeviceOwnerType']).toBe('unknownFutureValue');
    expect(device['managementAgent']).toBe('unknown');
    expect(device['exchangeAccessState']).toBe('unknown');
    expect(reasons.sort()).toEqual(
      ['complianceState', 'exchangeAccessState', 'managedDeviceOwnerType', 'managementAgent', 'managementState'].map((p) => `${p}:unknown_enum`),
    );
  });

  it('replaces values of the wrong type with fail-closed defaults instead of failing', () => {
    const device = ManagedDeviceSchema.parse({
      ...sample,
      lastSyncDateTime: 'last tuesday',
      complianceGracePeriodExpirationDateTime: null,
      isEncrypted: 'yes',
      complianceState: null,
      totalStorageSpaceInBytes: '494384795648',
      freeStorageSpaceInBytes: 'lots',
      deviceName: 42,
      deviceActionResults: 'none',
    });
    // "Never" synced reads as stale; a grace period that "never" ends at 0001 reads as expired.
    expect(device.lastSyncDateTime).toBe(NEVER_DATE);
    expect(device.complianceGracePeriodExpirationDateTime).toBe(NEVER_DATE);
    expect(device['isEncrypted']).toBe(false);
    expect(device.complianceState).toBe('unknown');
    expect(device['totalStorageSpaceInBytes']).toBe(494384795648);
    expect(device['freeStorageSpaceInBytes']).toBe(0);
    expect(device['deviceName']).toBeNull();
    expect(device['deviceActionResults']).toBeNull();
  });

  it('fills the core properties when a $select left them out, and leaves other absent ones absent', () => {
    const device = ManagedDeviceSchema.parse({ id: sample['id'], model: 'MacBook Pro' });
    expect(device).toEqual({
      id: sample['id'],
      model: 'MacBook Pro',
      azureADDeviceId: null,
      complianceState: 'unknown',
      complianceGracePeriodExpirationDateTime: NEVER_DATE,
      lastSyncDateTime: NEVER_DATE,
      operatingSystem: null,
    });
  });

  it('answers with the compiled fast path exactly as the runtime parser does, and reports the same replacements', () => {
    const heard = { fast: [] as string[], runtime: [] as string[] };
    const fast = createManagedDeviceSchema((property, reason) => heard.fast.push(`${property}:${reason}`));
    const runtime = createManagedDeviceSchema((property, reason) => heard.runtime.push(`${property}:${reason}`), { compiled: false });
    const odd: Record<string, unknown>[] = [
      { ...sample, complianceState: 'quarantinedByPolicy', isEncrypted: 'yes', totalStorageSpaceInBytes: '494384795648' },
      { ...sample, lastSyncDateTime: 'last tuesday', freeStorageSpaceInBytes: 'lots', deviceName: 42, deviceActionResults: 'none' },
      { id: sample['id'], model: 'MacBook Pro' },
      { ...sample, hardwareInformation: { secret: 'x' }, newProperty2026: 1, '@odata.etag': 'W/1' },
      { ...sample, physicalMemoryInBytes: '17179869184', azureADDeviceId: null, osVersion: null },
      { ...sample, id: '' },
      { ...sample, id: 7 },
    ];
    const devices = [...generateTenant(300, 'fast-path'), ...odd];
    for (const [index, device] of devices.entries()) {
      const a = fast.safeParse(device);
      const b = runtime.safeParse(device);
      expect(a.success, `device ${index}`).toBe(b.success);
      if (a.success && b.success) {
        expect(a.data, `device ${index}`).toEqual(b.data);
        expect(Object.keys(a.data), `device ${index}`).toEqual(Object.keys(b.data));
      }
    }
    expect(heard.fast).toEqual(heard.runtime);
    expect(heard.fast.length).toBeGreaterThan(0);
  });

  it('drops properties it does not know', () => {
    const device = ManagedDeviceSchema.parse({ ...sample, hardwareInformation: { secret: 'x' }, newProperty2026: 1 });
    expect(device).not.toHaveProperty('hardwareInformation');
    expect(device).not.toHaveProperty('newProperty2026');
  });
});

describe('pages', () => {
  const parseItem = (item: unknown, index: number) => parseManagedDevice(ManagedDeviceSchema, item, index);

  it('reads the devices and the nextLink of a page', () => {
    const page = parseCollectionPage({ '@odata.context': 'x', '@odata.nextLink': 'https://graph.example/v1.0/next', value: [sample, sample] }, parseItem);
    expect(page.items).toHaveLength(2);
    expect(page.nextLink).toBe('https://graph.example/v1.0/next');
    expect(parseCollectionPage({ value: [] }, parseItem)).toEqual({ items: [] });
  });

  it.each([
    ['a JSON array instead of an object', [sample], 'not a JSON object'],
    ['null', null, 'not a JSON object'],
    ['a string', 'value', 'not a JSON object'],
    ['value missing', { '@odata.context': 'x' }, '`value` is missing or not an array'],
    ['value an object', { value: { 0: sample } }, '`value` is missing or not an array'],
    ['a nextLink that is not a string', { value: [], '@odata.nextLink': 42 }, 'nextLink is not a string'],
    ['a device without an id', { value: [sample, { ...sample, id: undefined }] }, 'position 1 has no usable id'],
    ['a device with an empty id', { value: [{ ...sample, id: '' }] }, 'position 0 has no usable id'],
    ['a device that is a string', { value: ['device'] }, 'position 0 is not a JSON object'],
  ])('refuses a page with %s as malformed_response', (_label, json, what) => {
    const details = { requestId: 'abc-123' };
    const error = malformed(() => parseCollectionPage(json, (item, index) => parseManagedDevice(ManagedDeviceSchema, item, index, details), details));
    expect(error.message).toContain(what);
    expect(error.requestId).toBe('abc-123');
    // The message describes the problem, never the content (which carries PII).
    expect(error.message).not.toContain(String(sample['serialNumber']));
    expect(error.message).not.toContain(String(sample['userPrincipalName']));
  });
});
