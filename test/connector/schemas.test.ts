import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  GetComplianceInputSchema,
  ListDevicesInputSchema,
  OPERATION_SCHEMAS,
  GetDeviceInputSchema,
  DeviceActionInputSchema,
} from '../../src/connector/operations.js';

const GUID = '0fa4e5e1-0000-4000-8000-00000000a001';

describe('operation input schemas', () => {
  it('list_devices defaults page_size to 25 and bounds it to 1..100', () => {
    expect(ListDevicesInputSchema.parse({}).page_size).toBe(25);
    expect(ListDevicesInputSchema.safeParse({ page_size: 100 }).success).toBe(true);
    for (const bad of [0, 101, 1000, 2.5, '10', -1]) {
      const r = ListDevicesInputSchema.safeParse({ page_size: bad });
      expect(r.success, String(bad)).toBe(false);
      expect(r.error?.issues[0]?.path).toEqual(['page_size']);
    }
  });

  it('refuses OData injection in every filter field', () => {
    const attempts = [
      { compliance_state: "compliant' or 1 eq 1 or complianceState eq '" },
      { os_family: "macos' or '1' eq '1" },
      { last_sync_after: '2025-01-01T00:00:00Z or 1 eq 1' },
      { ownership: 'company)' },
    ];
    for (const input of attempts) expect(ListDevicesInputSchema.safeParse(input).success, JSON.stringify(input)).toBe(false);
    expect(GetDeviceInputSchema.safeParse({ device_id: "x' or 1 eq 1" }).success).toBe(false);
    expect(GetComplianceInputSchema.safeParse({ azure_ad_device_id: `${GUID}' or '1' eq '1` }).success).toBe(false);
  });

  it('refuses unknown keys (strict) and wrong types', () => {
    expect(GetDeviceInputSchema.safeParse({ device_id: GUID, select: 'serialNumber' }).success).toBe(false);
    expect(GetDeviceInputSchema.safeParse({ device_id: 42 }).success).toBe(false);
    expect(DeviceActionInputSchema.safeParse({ device_id: GUID, reason: 7 }).success).toBe(false);
  });

  it('get_compliance takes exactly one id', () => {
    expect(GetComplianceInputSchema.safeParse({ device_id: GUID }).success).toBe(true);
    expect(GetComplianceInputSchema.safeParse({ azure_ad_device_id: GUID, include_policies: true }).success).toBe(true);
    const none = GetComplianceInputSchema.safeParse({});
    expect(none.success).toBe(false);
    expect(none.error?.issues[0]?.message).toMatch(/exactly one of device_id/);
    const both = GetComplianceInputSchema.safeParse({ device_id: GUID, azure_ad_device_id: GUID });
    expect(both.error?.issues[0]?.message).toMatch(/only one/);
  });

  it('list_devices refuses an after that is not before the before', () => {
    const r = ListDevicesInputSchema.safeParse({ last_sync_after: '2025-06-02T00:00:00Z', last_sync_before: '2025-06-01T00:00:00Z' });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['last_sync_after']);
  });

  it('every schema converts to JSON Schema (what MCP tool declarations are built from)', () => {
    for (const [name, { input, output }] of Object.entries(OPERATION_SCHEMAS)) {
      const inSchema = z.toJSONSchema(input, { io: 'input' }) as { type?: string; properties?: Record<string, unknown> };
      expect(inSchema.type, name).toBe('object');
      expect(Object.keys(inSchema.properties ?? {}).length, name).toBeGreaterThan(0);
      expect((z.toJSONSchema(output) as { type?: string }).type, name).toBe('object');
    }
    const compliance = z.toJSONSchema(GetComplianceInputSchema, { io: 'input' }) as { properties: Record<string, { pattern?: string }> };
    expect(compliance.properties['device_id']?.pattern).toBeDefined();
  });
});
