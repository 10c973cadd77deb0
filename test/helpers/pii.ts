/**
 * The PII a test must never find in an output: every property that Microsoft's metadata flags as
 * personal (specs/graph/managedDevice.v1.json, `pii: true`), except azureADDeviceId, which the
 * redacted posture carries by design (it is the device identity the gate looks up). Read from the
 * spec, not listed by hand, so a property added there is searched for here.
 */
import fs from 'node:fs';
import path from 'node:path';

const spec = JSON.parse(
  fs.readFileSync(path.resolve(import.meta.dirname, '../../specs/graph/managedDevice.v1.json'), 'utf8'),
) as { name: string; pii: boolean }[];

export const PII_PROPERTIES: readonly string[] = spec.filter((p) => p.pii && p.name !== 'azureADDeviceId').map((p) => p.name);

/** Short values ("", "N/A", a carrier name) could match by accident and prove nothing. */
const MIN_LENGTH = 6;

/** Each distinctive PII value of the devices, with the property it came from. */
export function piiValuesByProperty(devices: readonly Readonly<Record<string, unknown>>[]): Map<string, string> {
  const values = new Map<string, string>();
  for (const device of devices) {
    for (const name of PII_PROPERTIES) {
      const value = device[name];
      if (typeof value === 'string' && value.trim().length >= MIN_LENGTH) values.set(value, name);
    }
  }
  return values;
}

export function piiValues(devices: readonly Readonly<Record<string, unknown>>[]): string[] {
  return [...piiValuesByProperty(devices).keys()];
}

/** The PII values found in `text` (expected: none). */
export function findPii(text: string, values: Iterable<string>): string[] {
  const found: string[] = [];
  for (const value of values) if (text.includes(value)) found.push(value);
  return found;
}
