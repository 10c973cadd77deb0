/**
 * An independent check of a served device against specs/graph/managedDevice.v1.json (Microsoft's
 * published metadata), written from that file, not from the simulator's own property table.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface SharedProperty {
  readonly name: string;
  readonly type: string;
  readonly nullable: boolean;
  readonly pii: boolean;
  readonly enumValues?: readonly string[];
}

export const GRAPH_SPEC_DIR = path.resolve(import.meta.dirname, '../../specs/graph');
export const SHARED_PROPERTIES: readonly SharedProperty[] = JSON.parse(
  readFileSync(path.join(GRAPH_SPEC_DIR, 'managedDevice.v1.json'), 'utf8'),
) as SharedProperty[];
export const SAMPLE_MACOS: Record<string, unknown> = JSON.parse(readFileSync(path.join(GRAPH_SPEC_DIR, 'sample-managedDevice-macos.json'), 'utf8')) as Record<
  string,
  unknown
>;

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Every way `device` departs from the schema; empty when it conforms. */
export function schemaProblems(device: Readonly<Record<string, unknown>>): string[] {
  const problems: string[] = [];
  const expected = new Set(SHARED_PROPERTIES.map((p) => p.name));
  for (const key of Object.keys(device)) {
    if (key === '@odata.type') {
      if (device[key] !== '#microsoft.graph.managedDevice') problems.push(`@odata.type is ${String(device[key])}`);
      continue;
    }
    if (!expected.has(key)) problems.push(`unexpected property ${key}`);
  }
  for (const p of SHARED_PROPERTIES) {
    if (!(p.name in device)) {
      problems.push(`missing ${p.name}`);
      continue;
    }
    const v = device[p.name];
    if (v === null) {
      if (!p.nullable) problems.push(`${p.name} is null but not nullable`);
      continue;
    }
    let ok: boolean;
    if (p.enumValues !== undefined) ok = typeof v === 'string' && p.enumValues.includes(v);
    else if (p.type === 'Edm.String') ok = typeof v === 'string';
    else if (p.type === 'Edm.Boolean') ok = typeof v === 'boolean';
    else if (p.type === 'Edm.Int64') ok = typeof v === 'number' && Number.isInteger(v);
    else if (p.type === 'Edm.DateTimeOffset') ok = typeof v === 'string' && DATE_TIME.test(v) && !Number.isNaN(Date.parse(v));
    else if (p.type.startsWith('Collection(')) ok = Array.isArray(v);
    else ok = typeof v === 'object' && !Array.isArray(v);
    if (!ok) problems.push(`${p.name} has ${JSON.stringify(v)} which is not a valid ${p.type}`);
  }
  return problems;
}

/** The PII values of a device (strings only, non-trivial), for searching outputs. */
export function piiValues(device: Readonly<Record<string, unknown>>): string[] {
  return SHARED_PROPERTIES.filter((p) => p.pii)
    .map((p) => device[p.name])
    .filter((v): v is string => typeof v === 'string' && v.length >= 6);
}
