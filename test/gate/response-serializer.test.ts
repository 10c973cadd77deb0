/**
 * The gate route serialises its answer from GATE_RESPONSE_SERIALIZER_SCHEMA (nullable objects by
 * type) instead of GATE_RESPONSE_JSON_SCHEMA (zod's anyOf). A caller must not see a difference:
 * the same answers are written byte for byte, for allows, denies, and the answer without a device
 * or an event.
 */
import { writtenBy } from '../helpers/fastify.js';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { GATE_RESPONSE_JSON_SCHEMA, GATE_RESPONSE_SERIALIZER_SCHEMA, type GateResponse } from '../../src/gate/schemas.js';
import { samplePosture } from '../helpers/posture.js';

const HASH = 'a'.repeat(64);

const ANSWERS: Record<string, GateResponse> = {
  allow: {
    decision: 'allow',
    reason: 'compliant',
    evaluated: true,
    message: 'The device is compliant with its Intune compliance policies.',
    device: samplePosture({ azure_ad_device_id: '0fa4e5e1-0000-4000-8000-00000000c001', last_sync_at: '2025-06-10T10:00:00Z', enrolled_at: '2024-01-15T09:00:00Z' }),
    failed_rules: [],
    failing_settings: [],
    event: { seq: 12, hash: HASH },
  },
  'deny with rules and settings': {
    decision: 'deny',
    reason: 'os_version_below_minimum',
    evaluated: true,
    message: 'This accord\'s device rules are not met: macOS 13.6 is below 14.0 "quoted" \\ and \u2028.',
    device: samplePosture({ os_version: '13.6 (22G120)', is_encrypted: false, grace_period_expires_at: '2025-06-11T00:00:00Z' }),
    failed_rules: ['not_encrypted', 'os_version_below_minimum'],
    failing_settings: ['MacOSCompliancePolicy.StorageRequireEncryption'],
    event: { seq: 9_007_199_254_740_991, hash: HASH },
  },
  'deny without a device': {
    decision: 'deny',
    reason: 'device_not_managed',
    evaluated: true,
    message: 'No device managed by Intune has this Entra device id: enrol the device in Intune.',
    device: null,
    failed_rules: [],
    failing_settings: [],
    event: { seq: 1, hash: HASH },
  },
  'audit unavailable': {
    decision: 'deny',
    reason: 'audit_unavailable',
    evaluated: false,
    message: 'The decision could not be recorded in the audit trail, so it is refused.',
    device: null,
    failed_rules: [],
    failing_settings: [],
    event: null,
  },
};

describe('the gate answer as written', () => {
  it('is the contract schema with nullable objects by type, and nothing else', () => {
    expect(JSON.stringify(GATE_RESPONSE_SERIALIZER_SCHEMA)).not.toContain('anyOf');
    const ajv = new Ajv({ strict: false });
    const contract = ajv.compile(GATE_RESPONSE_JSON_SCHEMA);
    const serializer = ajv.compile(GATE_RESPONSE_SERIALIZER_SCHEMA);
    for (const answer of Object.values(ANSWERS)) {
      expect(serializer(answer)).toBe(true);
      expect(contract(answer)).toBe(true);
    }
    for (const wrong of [{ ...ANSWERS['allow'], device: 'x' }, { ...ANSWERS['allow'], event: { seq: 0, hash: HASH } }, { ...ANSWERS['allow'], event: [] }]) {
      expect(serializer(wrong)).toBe(contract(wrong));
    }
  });

  for (const [name, answer] of Object.entries(ANSWERS)) {
    it(`writes the same bytes as the contract schema: ${name}`, async () => {
      const written = await writtenBy(GATE_RESPONSE_SERIALIZER_SCHEMA, answer);
      expect(written).toBe(await writtenBy(GATE_RESPONSE_JSON_SCHEMA, answer));
      expect(JSON.parse(written)).toEqual(answer);
    });
  }
});
