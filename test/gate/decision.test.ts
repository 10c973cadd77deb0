import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COMPLIANCE_STATES, type DevicePosture } from '../../src/connector/posture.js';
import {
  GATE_REASONS,
  LOOKUP_NOT_PERFORMED,
  OVERRIDABLE_REASONS,
  decide,
  describeDecision,
  readDeviceIdClaim,
  withAuditUnavailable,
  type AccordPolicy,
  type ComplianceLookup,
  type Decision,
  type DeviceIdClaim,
} from '../../src/gate/index.js';
import { DAY_MS, ENTRA_ID, NOW, accordPolicy, answered, posture } from './fixtures.js';

const guid: DeviceIdClaim = { kind: 'guid', azureADDeviceId: ENTRA_ID };
const MODES = [
  { mode: 'strict', strict: true },
  { mode: 'permissive', strict: false },
] as const;

const run = (policy: AccordPolicy, lookup: ComplianceLookup, deviceId: DeviceIdClaim = guid) => decide({ deviceId, lookup, policy, now: NOW });

describe('reading the deviceid claim (untrusted input)', () => {
  it('absent, undefined and null mean no device id', () => {
    expect(readDeviceIdClaim({})).toEqual({ kind: 'absent' });
    expect(readDeviceIdClaim({ deviceid: undefined })).toEqual({ kind: 'absent' });
    expect(readDeviceIdClaim({ deviceid: null })).toEqual({ kind: 'absent' });
  });

  it('a GUID string is used, lower-cased', () => {
    expect(readDeviceIdClaim({ deviceid: ENTRA_ID.toUpperCase() })).toEqual({ kind: 'guid', azureADDeviceId: ENTRA_ID });
  });

  it.each([
    ['a number', 42],
    ['a boolean', true],
    ['an object', { id: ENTRA_ID }],
    ['an array', [ENTRA_ID]],
    ['an empty string', ''],
    ['a GUID in braces', `{${ENTRA_ID}}`],
    ['a GUID with trailing space', `${ENTRA_ID} `],
    ['an OData injection', "' or 1 eq 1"],
    ['a GUID with a filter appended', `${ENTRA_ID}' or azureADDeviceId ne '`],
  ])('%s is invalid, not a crash', (_label, value) => {
    expect(readDeviceIdClaim({ deviceid: value })).toEqual({ kind: 'invalid' });
  });

  it('reads only an own property, never one inherited through the prototype', () => {
    const claims = Object.create({ deviceid: ENTRA_ID }) as Record<string, unknown>;
    expect(readDeviceIdClaim(claims)).toEqual({ kind: 'absent' });
  });
});

describe.each(MODES)('the decision table, $mode mode', ({ mode, strict }) => {
  const policy = accordPolicy({ strict });

  it('compliance not required → allow, not evaluated, whatever the device', () => {
    const notRequired = accordPolicy({ strict, device_compliance_required: false });
    for (const deviceId of [guid, { kind: 'absent' } as const, { kind: 'invalid' } as const]) {
      const decision = decide({ deviceId, lookup: LOOKUP_NOT_PERFORMED, policy: notRequired, now: NOW });
      expect(decision).toMatchObject({ decision: 'allow', reason: 'compliance_not_required', evaluated: false, mode });
    }
  });

  it(`no device id → ${strict ? 'deny device_id_missing' : 'allow device_id_missing_permissive (not evaluated)'}`, () => {
    const decision = decide({ deviceId: { kind: 'absent' }, lookup: LOOKUP_NOT_PERFORMED, policy, now: NOW });
    expect(decision).toMatchObject(
      strict
        ? { decision: 'deny', reason: 'device_id_missing', evaluated: false }
        : { decision: 'allow', reason: 'device_id_missing_permissive', evaluated: false },
    );
  });

  it('device id not a GUID → deny device_id_invalid (in both modes)', () => {
    expect(decide({ deviceId: { kind: 'invalid' }, lookup: LOOKUP_NOT_PERFORMED, policy, now: NOW })).toMatchObject({
      decision: 'deny',
      reason: 'device_id_invalid',
      evaluated: false,
    });
    expect(run(policy, { ok: false, reason: 'invalid_id', message: 'not a GUID' })).toMatchObject({ decision: 'deny', reason: 'device_id_invalid' });
  });

  it('no managed device matches → deny device_not_managed', () => {
    expect(run(policy, answered([]))).toMatchObject({ decision: 'deny', reason: 'device_not_managed', evaluated: true, azureADDeviceId: ENTRA_ID });
  });

  it('compliant → allow compliant, with the record that decided', () => {
    const record = posture();
    expect(run(policy, answered([record]))).toMatchObject({ decision: 'allow', reason: 'compliant', evaluated: true, device: record, recordCount: 1, mode });
  });

  it('inGracePeriod before the expiry → allow in_grace_period', () => {
    const expires = new Date(NOW + 60_000).toISOString();
    expect(run(policy, answered([posture({ compliance_state: 'inGracePeriod', grace_period_expires_at: expires })]))).toMatchObject({
      decision: 'allow',
      reason: 'in_grace_period',
      gracePeriodExpiresAt: expires,
    });
  });

  it('inGracePeriod at or after the expiry, or with none readable → deny grace_period_expired', () => {
    for (const expires of [new Date(NOW).toISOString(), new Date(NOW - 1).toISOString(), null, 'not a date']) {
      expect(run(policy, answered([posture({ compliance_state: 'inGracePeriod', grace_period_expires_at: expires })]))).toMatchObject({
        decision: 'deny',
        reason: 'grace_period_expired',
      });
    }
  });

  it.each([
    ['noncompliant', 'noncompliant'],
    ['conflict', 'compliance_conflict'],
    ['error', 'compliance_error'],
    ['unknown', 'compliance_unknown'],
    ['configManager', 'compliance_config_manager'],
  ] as const)('%s → deny %s', (state, reason) => {
    expect(run(policy, answered([posture({ compliance_state: state })]))).toMatchObject({ decision: 'deny', reason, evaluated: true });
  });

  it('last check-in older than the max age → deny stale_checkin; exactly at the limit still allows', () => {
    const weekly = accordPolicy({ strict, max_checkin_age_days: 7 });
    const old = new Date(NOW - 7 * DAY_MS - 1).toISOString();
    expect(run(weekly, answered([posture({ last_sync_at: old })]))).toMatchObject({
      decision: 'deny',
      reason: 'stale_checkin',
      lastSyncAt: old,
      maxCheckinAgeMs: 7 * DAY_MS,
      stateReason: 'compliant',
    });
    expect(run(weekly, answered([posture({ last_sync_at: new Date(NOW - 7 * DAY_MS).toISOString() })]))).toMatchObject({ decision: 'allow', reason: 'compliant' });
  });

  it('a check-in never recorded counts as stale when the accord has a max age, and does not matter without one', () => {
    expect(run(accordPolicy({ strict, max_checkin_age_days: 30 }), answered([posture({ last_sync_at: null })]))).toMatchObject({ reason: 'stale_checkin', decision: 'deny' });
    expect(run(accordPolicy({ strict, max_checkin_age_days: null }), answered([posture({ last_sync_at: null })]))).toMatchObject({ reason: 'compliant', decision: 'allow' });
    // Without a policy setting, the default is Intune's own validity period: 30 days.
    expect(run(policy, answered([posture({ last_sync_at: new Date(NOW - 31 * DAY_MS).toISOString() })]))).toMatchObject({ reason: 'stale_checkin', maxCheckinAgeMs: 30 * DAY_MS });
    expect(run(policy, answered([posture({ last_sync_at: new Date(NOW - 29 * DAY_MS).toISOString() })]))).toMatchObject({ reason: 'compliant' });
  });

  it('staleness only guards an allow: a stale noncompliant device is reported as noncompliant, a stale one in grace as stale', () => {
    const weekly = accordPolicy({ strict, max_checkin_age_days: 7 });
    const old = new Date(NOW - 30 * DAY_MS).toISOString();
    expect(run(weekly, answered([posture({ compliance_state: 'noncompliant', last_sync_at: old })]))).toMatchObject({ reason: 'noncompliant' });
    const grace = posture({ compliance_state: 'inGracePeriod', grace_period_expires_at: new Date(NOW + DAY_MS).toISOString(), last_sync_at: old });
    expect(run(weekly, answered([grace]))).toMatchObject({ reason: 'stale_checkin', stateReason: 'in_grace_period', decision: 'deny' });
  });

  it.each(['throttled', 'graph_unavailable', 'graph_error', 'graph_forbidden', 'timeout'] as const)(
    'lookup failed (%s) and no cached answer young enough → deny compliance_unavailable',
    (failure) => {
      expect(run(policy, { ok: false, reason: failure, message: 'x', retryAfterMs: 2_000 })).toMatchObject({
        decision: 'deny',
        reason: 'compliance_unavailable',
        evaluated: false,
        failure,
        retryAfterMs: 2_000,
      });
    },
  );

  it('a device id that needed a lookup but got none fails closed', () => {
    expect(decide({ deviceId: guid, lookup: LOOKUP_NOT_PERFORMED, policy, now: NOW })).toMatchObject({
      decision: 'deny',
      reason: 'compliance_unavailable',
      failure: 'not_performed',
    });
  });

  it('an answer served stale within the window decides like a fresh one', () => {
    expect(run(policy, answered([posture()], { servedStale: true, cacheHit: true }))).toMatchObject({ decision: 'allow', reason: 'compliant' });
  });

  it('Chronicle unavailable → deny audit_unavailable, keeping what was not recorded', () => {
    const allowed = run(policy, answered([posture()]));
    expect(withAuditUnavailable(allowed)).toEqual({ reason: 'audit_unavailable', decision: 'deny', evaluated: true, mode, unrecorded: allowed });
  });
});

describe('several records for one Entra device id (re-enrolment)', () => {
  const policy = accordPolicy({ strict: true, max_checkin_age_days: 14 });
  const hoursAgo = (h: number) => new Date(NOW - h * 3_600_000).toISOString();

  it('the most recently synced record decides, whatever order the records come in; the count is kept', () => {
    const stale = posture({ device_id: '11111111-1111-4111-8111-111111111111', compliance_state: 'compliant', last_sync_at: hoursAgo(24 * 40) });
    const latest = posture({ device_id: '22222222-2222-4222-8222-222222222222', compliance_state: 'noncompliant', last_sync_at: hoursAgo(1) });
    const middle = posture({ device_id: '33333333-3333-4333-8333-333333333333', compliance_state: 'compliant', last_sync_at: hoursAgo(5) });
    for (const records of [
      [latest, middle, stale],
      [stale, middle, latest],
      [middle, stale, latest],
    ]) {
      expect(run(policy, answered(records))).toMatchObject({ decision: 'deny', reason: 'noncompliant', device: latest, recordCount: 3 });
    }
  });

  it('a newer compliant enrolment wins over an old noncompliant one', () => {
    const old = posture({ device_id: '11111111-1111-4111-8111-111111111111', compliance_state: 'noncompliant', last_sync_at: hoursAgo(48) });
    const fresh = posture({ device_id: '22222222-2222-4222-8222-222222222222', compliance_state: 'compliant', last_sync_at: hoursAgo(2) });
    expect(run(policy, answered([old, fresh]))).toMatchObject({ decision: 'allow', reason: 'compliant', device: fresh, recordCount: 2 });
  });

  it('records without a last sync never outrank ones with it', () => {
    const never = posture({ device_id: '11111111-1111-4111-8111-111111111111', compliance_state: 'compliant', last_sync_at: null });
    const synced = posture({ device_id: '22222222-2222-4222-8222-222222222222', compliance_state: 'error', last_sync_at: hoursAgo(3) });
    expect(run(policy, answered([never, synced]))).toMatchObject({ reason: 'compliance_error', device: synced, recordCount: 2 });
  });
});

describe('per-accord overrides', () => {
  it.each(OVERRIDABLE_REASONS)('decisions.%s: allow flips the verdict and keeps the reason', (row) => {
    const rules = {
      require_encryption: true,
      min_os_version: { macos: '14.0' },
      allowed_ownership: ['company'],
      allowed_management_agents: ['mdm'],
      max_threat_state: 'lowSeverity',
      require_supervised: true,
    };
    const flipped = accordPolicy({ max_checkin_age_days: 7, ...rules, decisions: { [row]: 'allow' } });
    const lookups: Record<(typeof OVERRIDABLE_REASONS)[number], ComplianceLookup> = {
      device_not_managed: answered([]),
      grace_period_expired: answered([posture({ compliance_state: 'inGracePeriod', grace_period_expires_at: new Date(NOW - 1).toISOString() })]),
      noncompliant: answered([posture({ compliance_state: 'noncompliant' })]),
      compliance_conflict: answered([posture({ compliance_state: 'conflict' })]),
      compliance_error: answered([posture({ compliance_state: 'error' })]),
      compliance_unknown: answered([posture({ compliance_state: 'unknown' })]),
      compliance_config_manager: answered([posture({ compliance_state: 'configManager' })]),
      stale_checkin: answered([posture({ last_sync_at: new Date(NOW - 8 * DAY_MS).toISOString() })]),
      not_encrypted: answered([posture({ is_encrypted: false })]),
      os_version_below_minimum: answered([posture({ os_version: '13.6.1' })]),
      ownership_not_allowed: answered([posture({ ownership: 'personal' })]),
      management_agent_not_allowed: answered([posture({ management_agent: 'jamf' })]),
      threat_state_too_high: answered([posture({ threat_state: 'highSeverity' })]),
      not_supervised: answered([posture({ os_family: 'ios', os_version: '17.5', supervised: false })]),
      compliance_unavailable: { ok: false, reason: 'graph_unavailable', message: 'down' },
    };
    const decision = run(flipped, lookups[row]);
    expect(decision).toMatchObject({ decision: 'allow', reason: row, overridden: true });
    expect(describeDecision(decision)).toContain('sets this case to allow');
    // Every other row keeps its default.
    expect(run(accordPolicy({ max_checkin_age_days: 7, ...rules }), lookups[row])).toMatchObject({ decision: 'deny', reason: row, overridden: false });
  });

  it('an allowed noncompliant state is still subject to the check-in age', () => {
    const policy = accordPolicy({ max_checkin_age_days: 7, decisions: { compliance_unknown: 'allow' } });
    const record = posture({ compliance_state: 'unknown', last_sync_at: new Date(NOW - 10 * DAY_MS).toISOString() });
    expect(run(policy, answered([record]))).toMatchObject({ decision: 'deny', reason: 'stale_checkin', stateReason: 'compliance_unknown' });
  });

  it('grace_period_counts: false turns a running grace period into noncompliant (and its override applies)', () => {
    const grace = posture({ compliance_state: 'inGracePeriod', grace_period_expires_at: new Date(NOW + DAY_MS).toISOString() });
    const decision = run(accordPolicy({ grace_period_counts: false }), answered([grace]));
    expect(decision).toMatchObject({ decision: 'deny', reason: 'noncompliant', graceCounted: false });
    expect(describeDecision(decision)).toMatch(/grace period, which this accord does not accept/);
    expect(run(accordPolicy({ grace_period_counts: false, decisions: { noncompliant: 'allow' } }), answered([grace]))).toMatchObject({
      decision: 'allow',
      reason: 'noncompliant',
    });
  });

  it('the accord overrides the global strict/permissive and required defaults', () => {
    const permissive = accordPolicy({ strict: false }, { strict: true });
    expect(decide({ deviceId: { kind: 'absent' }, lookup: LOOKUP_NOT_PERFORMED, policy: permissive, now: NOW })).toMatchObject({
      decision: 'allow',
      reason: 'device_id_missing_permissive',
    });
    const strict = accordPolicy({ strict: true }, { strict: false });
    expect(decide({ deviceId: { kind: 'absent' }, lookup: LOOKUP_NOT_PERFORMED, policy: strict, now: NOW })).toMatchObject({
      decision: 'deny',
      reason: 'device_id_missing',
    });
  });
});

describe('describeDecision', () => {
  it('has a sentence for every reason', () => {
    const policy = accordPolicy({
      strict: true,
      max_checkin_age_days: 1,
      require_encryption: true,
      min_os_version: { macos: '14.0' },
      allowed_ownership: ['company'],
      allowed_management_agents: ['mdm'],
      max_threat_state: 'lowSeverity',
      require_supervised: true,
    });
    const samples: Decision[] = [
      run(policy, answered([posture({ is_encrypted: false })])),
      run(policy, answered([posture({ os_version: '13.6' })])),
      run(policy, answered([posture({ ownership: 'personal' })])),
      run(policy, answered([posture({ management_agent: 'jamf' })])),
      run(policy, answered([posture({ threat_state: 'compromised' })])),
      run(policy, answered([posture({ os_family: 'ios', os_version: '17.1', supervised: false })])),
      decide({ deviceId: guid, lookup: LOOKUP_NOT_PERFORMED, policy: accordPolicy({ device_compliance_required: false }), now: NOW }),
      decide({ deviceId: { kind: 'absent' }, lookup: LOOKUP_NOT_PERFORMED, policy, now: NOW }),
      decide({ deviceId: { kind: 'absent' }, lookup: LOOKUP_NOT_PERFORMED, policy: accordPolicy({ strict: false }), now: NOW }),
      decide({ deviceId: { kind: 'invalid' }, lookup: LOOKUP_NOT_PERFORMED, policy, now: NOW }),
      run(policy, answered([])),
      ...COMPLIANCE_STATES.map((state) =>
        run(policy, answered([posture({ compliance_state: state, grace_period_expires_at: new Date(NOW + 1000).toISOString() })])),
      ),
      run(policy, answered([posture({ compliance_state: 'inGracePeriod', grace_period_expires_at: null })])),
      run(policy, answered([posture({ last_sync_at: '2020-01-01T00:00:00Z' })])),
      run(policy, { ok: false, reason: 'throttled', message: 'x', retryAfterMs: 1500 }),
    ];
    samples.push(withAuditUnavailable(samples[0] as Exclude<Decision, { reason: 'audit_unavailable' }>));
    expect(new Set(samples.map((d) => d.reason))).toEqual(new Set(GATE_REASONS));
    for (const decision of samples) expect(describeDecision(decision)).toMatch(/^[A-Z].{20,}\.$/);
    expect(describeDecision(run(policy, { ok: false, reason: 'throttled', message: 'x', retryAfterMs: 1500 }))).toContain('in 2 s');
  });
});

describe('properties of the table', () => {
  const isoAround = fc.integer({ min: -60 * DAY_MS, max: 30 * DAY_MS }).map((offset) => new Date(NOW + offset).toISOString());
  const record = fc.record({
    device_id: fc.uuid(),
    compliance_state: fc.constantFrom(...COMPLIANCE_STATES),
    grace_period_expires_at: fc.option(isoAround, { nil: null }),
    last_sync_at: fc.option(isoAround, { nil: null }),
  });
  const records = fc.array(record, { maxLength: 4 }).map((rs) => rs.map((r) => posture(r)));
  const lookup: fc.Arbitrary<ComplianceLookup> = fc.oneof(
    fc.record({ records, cacheHit: fc.boolean(), servedStale: fc.boolean() }).map((r) => answered(r.records, { cacheHit: r.cacheHit, servedStale: r.servedStale })),
    fc.constantFrom('throttled', 'graph_unavailable', 'graph_error', 'graph_forbidden', 'timeout').map(
      (reason): ComplianceLookup => ({ ok: false, reason, message: 'failed' }),
    ),
  );
  const deviceId: fc.Arbitrary<DeviceIdClaim> = fc.oneof(
    fc.constant<DeviceIdClaim>({ kind: 'absent' }),
    fc.constant<DeviceIdClaim>({ kind: 'invalid' }),
    fc.uuid().map((id): DeviceIdClaim => ({ kind: 'guid', azureADDeviceId: id })),
  );
  const settings = fc.record({
    device_compliance_required: fc.boolean(),
    strict: fc.boolean(),
    max_checkin_age_days: fc.option(fc.integer({ min: 1, max: 45 }), { nil: null }),
    grace_period_counts: fc.boolean(),
  });
  const overrides = fc.dictionary(fc.constantFrom(...OVERRIDABLE_REASONS), fc.constantFrom('allow', 'deny'));

  const allowsOnItsOwn = (device: DevicePosture, policy: AccordPolicy): boolean => {
    const fresh =
      policy.maxCheckinAgeMs === null ||
      (device.last_sync_at !== null && NOW - Date.parse(device.last_sync_at) <= policy.maxCheckinAgeMs);
    const graceRunning =
      policy.gracePeriodCounts &&
      device.compliance_state === 'inGracePeriod' &&
      device.grace_period_expires_at !== null &&
      NOW < Date.parse(device.grace_period_expires_at);
    return fresh && (device.compliance_state === 'compliant' || graceRunning);
  };

  it('never allows when required, with the default table, unless the deciding record is compliant or in a running grace period and fresh', () => {
    fc.assert(
      fc.property(settings, deviceId, lookup, (s, id, l) => {
        const policy = accordPolicy({ ...s, device_compliance_required: true });
        const decision = decide({ deviceId: id, lookup: l, policy, now: NOW });
        if (decision.decision === 'allow') {
          if (decision.reason === 'device_id_missing_permissive') return policy.mode === 'permissive' && id.kind === 'absent';
          return 'device' in decision && allowsOnItsOwn(decision.device, policy);
        }
        return true;
      }),
      { numRuns: 2_000 },
    );
  });

  it('denies whenever the lookup failed (no answer young enough), unless the accord allows compliance_unavailable', () => {
    fc.assert(
      fc.property(settings, fc.uuid(), lookup, (s, id, l) => {
        fc.pre(!l.ok);
        const policy = accordPolicy({ ...s, device_compliance_required: true });
        const decision = decide({ deviceId: { kind: 'guid', azureADDeviceId: id }, lookup: l, policy, now: NOW });
        return decision.decision === 'deny' && decision.reason === 'compliance_unavailable';
      }),
    );
  });

  it('overrides change the verdict, never the reason; not required always allows', () => {
    fc.assert(
      fc.property(settings, overrides, deviceId, lookup, (s, o, id, l) => {
        const plain = decide({ deviceId: id, lookup: l, policy: accordPolicy(s), now: NOW });
        const overridden = decide({ deviceId: id, lookup: l, policy: accordPolicy({ ...s, decisions: o }), now: NOW });
        if (!s.device_compliance_required) return plain.decision === 'allow' && plain.reason === 'compliance_not_required';
        if (overridden.reason !== plain.reason) {
          // Only staleness may appear or vanish: an overridden state verdict decides whether the age check runs.
          return [plain.reason, overridden.reason].includes('stale_checkin');
        }
        const row = plain.reason as (typeof OVERRIDABLE_REASONS)[number];
        return (OVERRIDABLE_REASONS as readonly string[]).includes(row) ? overridden.decision === (o[row] ?? 'deny') : overridden.decision === plain.decision;
      }),
      { numRuns: 1_000 },
    );
  });

  it('the order of the records does not matter', () => {
    fc.assert(
      fc.property(settings, records, fc.uuid(), (s, rs, id) => {
        const policy = accordPolicy(s);
        const deviceId: DeviceIdClaim = { kind: 'guid', azureADDeviceId: id };
        const forward = decide({ deviceId, lookup: answered(rs), policy, now: NOW });
        const backward = decide({ deviceId, lookup: answered([...rs].reverse()), policy, now: NOW });
        return forward.decision === backward.decision && forward.reason === backward.reason;
      }),
    );
  });
});
