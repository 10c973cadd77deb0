/**
 * `--tenant-file`: serve devices a user exported (a JSON array of managedDevice objects, or a
 * Graph page `{ value: [...] }`). Each device is checked against the v1.0 schema; properties it
 * lacks get Graph's defaults, so a partial export replays as a complete tenant.
 */
import { readFile } from 'node:fs/promises';
import { SimulatorError } from './errors.js';
import { MANAGED_DEVICE_PROPERTIES, ODATA_TYPE, PROPERTY_BY_NAME, graphDefault, propertyProblem } from './properties.js';
import { GUID_PATTERN } from '../common/ids.js';
import { isPlainObject } from '../common/values.js';
import { policyStatesProblem } from './compliance-settings.js';

/**
 * Where a tenant file's device keeps its own `deviceCompliancePolicyStates` (a navigation in
 * Graph, not a managedDevice property): a symbol key, so LIST and GET bodies (JSON) never show it.
 */
export const POLICY_STATES = Symbol('deviceCompliancePolicyStates');

const MAX_REPORTED_PROBLEMS = 10;

/** Validates and completes devices given as parsed JSON; `source` names the input in messages. */
export function devicesFromJson(json: unknown, source: string): Record<string, unknown>[] {
  const list = Array.isArray(json)
    ? json
    : json !== null && typeof json === 'object' && Array.isArray((json as { value?: unknown }).value)
      ? ((json as { value: unknown[] }).value)
      : undefined;
  if (list === undefined) {
    throw new SimulatorError('tenant_file_invalid', `${source} must hold a JSON array of managedDevice objects, or an object with a "value" array (a Graph page).`);
  }
  const problems: string[] = [];
  const seen = new Set<string>();
  const devices: Record<string, unknown>[] = [];
  list.forEach((item, index) => {
    const where = `${source}: device ${index}`;
    if (!isPlainObject(item)) {
      problems.push(`${where} is not an object`);
      return;
    }
    const input = item as Record<string, unknown>;
    const id = input['id'];
    if (typeof id !== 'string' || !GUID_PATTERN.test(id)) {
      problems.push(`${where}: id must be the Intune managed device GUID, found ${JSON.stringify(id) ?? 'nothing'}`);
      return;
    }
    if (seen.has(id.toLowerCase())) {
      problems.push(`${where}: id ${id} appears twice; each device needs its own id`);
      return;
    }
    seen.add(id.toLowerCase());
    for (const [name, value] of Object.entries(input)) {
      if (name.startsWith('@odata.')) continue;
      if (name === 'deviceCompliancePolicyStates') {
        const problem = policyStatesProblem(value);
        if (problem !== undefined) problems.push(`${where} (${id}): deviceCompliancePolicyStates${problem.startsWith('[') ? '' : ' '}${problem}`);
        continue;
      }
      const spec = PROPERTY_BY_NAME.get(name);
      if (spec === undefined) {
        problems.push(`${where} (${id}): '${name}' is not a v1.0 managedDevice property; remove it`);
        continue;
      }
      const problem = propertyProblem(spec, value);
      if (problem !== undefined) problems.push(`${where} (${id}): ${name} ${problem}`);
    }
    const device: Record<string, unknown> = { '@odata.type': ODATA_TYPE };
    for (const spec of MANAGED_DEVICE_PROPERTIES) device[spec.name] = spec.name in input ? input[spec.name] : graphDefault(spec);
    if (input['deviceCompliancePolicyStates'] !== undefined) (device as Record<PropertyKey, unknown>)[POLICY_STATES] = input['deviceCompliancePolicyStates'];
    devices.push(device);
  });
  if (problems.length > 0) {
    const shown = problems.slice(0, MAX_REPORTED_PROBLEMS);
    const more = problems.length > shown.length ? `\n  ... and ${problems.length - shown.length} more` : '';
    throw new SimulatorError('tenant_file_invalid', `The tenant file has ${problems.length} problem(s):\n  ${shown.join('\n  ')}${more}`);
  }
  return devices;
}

export async function loadTenantFile(file: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SimulatorError('tenant_file_unreadable', `Cannot read the tenant file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}. Check the path.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    throw new SimulatorError('tenant_file_invalid', `The tenant file ${file} is not valid JSON (${(err as Error).message}).`);
  }
  return devicesFromJson(json, file);
}
