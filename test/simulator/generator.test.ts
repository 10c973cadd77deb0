import { describe, expect, it } from 'vitest';
import { FORCED_MIN_DEVICES, NO_GRACE_PERIOD, SimulatorError, generateTenant } from '../../src/simulator/index.js';
import { schemaProblems } from './schema.js';

const NOW = Date.parse('2025-06-02T12:00:00Z');
const DAY = 86_400_000;

describe('generateTenant', () => {
  it('gives the same devices for the same seed and reference time', () => {
    const a = generateTenant(300, 'alpha', { now: NOW });
    const b = generateTenant(300, 'alpha', { now: NOW });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });

  it('gives different devices for a different seed', () => {
    const a = generateTenant(100, 'alpha', { now: NOW });
    const b = generateTenant(100, 'beta', { now: NOW });
    const idsA = new Set(a.map((d) => d['id']));
    expect(b.filter((d) => idsA.has(d['id']))).toHaveLength(0);
    expect(a.map((d) => d['serialNumber'])).not.toEqual(b.map((d) => d['serialNumber']));
  });

  it('shifts every date, and nothing else, when the reference time moves', () => {
    const a = generateTenant(60, 'alpha', { now: NOW });
    const b = generateTenant(60, 'alpha', { now: NOW + 10 * DAY });
    for (const [i, d] of a.entries()) {
      const e = b[i] as Record<string, unknown>;
      expect(e['id']).toBe(d['id']);
      expect(e['userPrincipalName']).toBe(d['userPrincipalName']);
      expect(Date.parse(String(e['lastSyncDateTime'])) - Date.parse(String(d['lastSyncDateTime']))).toBe(10 * DAY);
    }
  });

  it('produces devices that conform to the v1.0 schema for several seeds', () => {
    for (const seed of ['alpha', 'beta', 'gamma', 'intune-connector']) {
      for (const device of generateTenant(250, seed, { now: NOW })) {
        expect(schemaProblems(device), `${seed} ${String(device['id'])}`).toEqual([]);
      }
    }
  });

  it(`contains every feature of a real tenant from ${FORCED_MIN_DEVICES} devices on`, () => {
    for (const count of [FORCED_MIN_DEVICES, 50, 137]) {
      for (const seed of ['alpha', 'beta', 'delta']) {
        const devices = generateTenant(count, seed, { now: NOW });
        expect(devices).toHaveLength(count);
        const states = new Set(devices.map((d) => d['complianceState']));
        expect([...states].sort()).toEqual(['compliant', 'configManager', 'conflict', 'error', 'inGracePeriod', 'noncompliant', 'unknown']);
        const grace = devices.filter((d) => d['complianceState'] === 'inGracePeriod').map((d) => Date.parse(String(d['complianceGracePeriodExpirationDateTime'])));
        expect(grace.some((t) => t < NOW)).toBe(true);
        expect(grace.some((t) => t > NOW)).toBe(true);
        const others = devices.filter((d) => d['complianceState'] !== 'inGracePeriod');
        expect(others.every((d) => d['complianceGracePeriodExpirationDateTime'] === NO_GRACE_PERIOD)).toBe(true);
        expect(devices.some((d) => Date.parse(String(d['lastSyncDateTime'])) < NOW - 14 * DAY)).toBe(true);
        expect(devices.some((d) => d['azureADDeviceId'] === null)).toBe(true);
        expect(new Set(devices.map((d) => d['managedDeviceOwnerType']))).toEqual(new Set(['company', 'personal']));
        expect(new Set(devices.map((d) => d['operatingSystem']))).toEqual(new Set(['macOS', 'Windows', 'iOS', 'Android']));
        // Re-enrolment: one Entra device id, several records, different last check-ins.
        const byAad = new Map<string, Record<string, unknown>[]>();
        for (const d of devices) {
          if (typeof d['azureADDeviceId'] === 'string') byAad.set(d['azureADDeviceId'], [...(byAad.get(d['azureADDeviceId']) ?? []), d]);
        }
        const shared = [...byAad.values()].filter((list) => list.length > 1);
        expect(shared.length).toBeGreaterThan(0);
        for (const list of shared) expect(new Set(list.map((d) => d['lastSyncDateTime'])).size).toBe(list.length);
      }
    }
  });

  it('mixes platforms roughly 30/45/15/10 and keeps ids and serials unique', () => {
    const devices = generateTenant(10_000, 'mix', { now: NOW });
    const share = (os: string): number => devices.filter((d) => d['operatingSystem'] === os).length / devices.length;
    expect(share('macOS')).toBeGreaterThan(0.26);
    expect(share('macOS')).toBeLessThan(0.34);
    expect(share('Windows')).toBeGreaterThan(0.41);
    expect(share('Windows')).toBeLessThan(0.49);
    expect(share('iOS')).toBeGreaterThan(0.12);
    expect(share('iOS')).toBeLessThan(0.18);
    expect(share('Android')).toBeGreaterThan(0.07);
    expect(share('Android')).toBeLessThan(0.13);
    expect(new Set(devices.map((d) => d['id'])).size).toBe(devices.length);
    // Re-enrolled records share their serial with the newer record; everything else is unique.
    const serials = devices.map((d) => d['serialNumber']);
    const repeats = serials.length - new Set(serials).size;
    expect(repeats).toBeGreaterThan(0);
    expect(repeats).toBeLessThan(devices.length * 0.05);
    const compliant = devices.filter((d) => d['complianceState'] === 'compliant').length / devices.length;
    expect(compliant).toBeGreaterThan(0.6);
  });

  it('fills PII with distinctive fake values a test can search for', () => {
    const devices = generateTenant(200, 'pii', { now: NOW });
    const upns = devices.map((d) => d['userPrincipalName']).filter((u) => u !== '');
    expect(upns.every((u) => typeof u === 'string' && /^[a-z.]+\d+@contoso\.example$/.test(u))).toBe(true);
    expect(devices.every((d) => /^FK[A-Z0-9]{10}$/.test(String(d['serialNumber'])))).toBe(true);
    expect(devices.every((d) => /^02[0-9a-f]{10}$/.test(String(d['wiFiMacAddress'])))).toBe(true);
    const phones = devices.map((d) => d['phoneNumber']).filter((p) => p !== '');
    expect(phones.length).toBeGreaterThan(0);
    expect(phones.every((p) => /^\+1\d{3}55501\d{2}$/.test(String(p)))).toBe(true);
    const imeis = devices.map((d) => String(d['imei'])).filter((p) => p !== '');
    expect(imeis.every((imei) => /^35\d{13}$/.test(imei))).toBe(true);
    expect(devices.some((d) => typeof d['notes'] === 'string')).toBe(true);
    expect(devices.some((d) => typeof d['activationLockBypassCode'] === 'string')).toBe(true);
  });

  it('refuses a bad size with a typed error', () => {
    expect(() => generateTenant(-1, 'x')).toThrow(SimulatorError);
    expect(() => generateTenant(1.5, 'x')).toThrow(/whole number/);
    expect(generateTenant(0, 'x')).toEqual([]);
  });
});
