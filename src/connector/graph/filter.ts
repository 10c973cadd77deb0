/**
 * Everything a caller hands the client that ends up in a URL is checked here first: ids go into
 * paths and $filter only as GUIDs, string literals are quoted with OData's '' escaping, dates are
 * re-serialised from a parsed Date, $select names come from the known property list. Raw input
 * is never concatenated into an expression. Failures are GraphError 'bad_request' raised before
 * any request is sent.
 */
import { badRequest } from './errors.js';
import { COMPLIANCE_STATE_VALUES, MANAGED_DEVICE_PROPERTIES } from './schemas.js';
import type { DeviceAction, DeviceFilter } from './types.js';
import { isGuid } from '../../common/ids.js';

export { isGuid };

/** Returns the GUID in lower case, or throws GraphError 'bad_request' naming the field. */
export function requireGuid(value: unknown, field: string): string {
  if (!isGuid(value)) {
    throw badRequest(`${field} must be a GUID like 0fa4e5e1-0000-4000-8000-00000000a001; the value given is not one.`);
  }
  return value.toLowerCase();
}

/** OData string literal: single quotes doubled, the whole wrapped in single quotes. */
export function odataString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

const MAX_LITERAL_LENGTH = 256;

function requireLiteral(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw badRequest(`${field} must be a non-empty string.`);
  }
  if (value.length > MAX_LITERAL_LENGTH) {
    throw badRequest(`${field} is longer than ${MAX_LITERAL_LENGTH} characters; shorten it.`);
  }
  // Control characters have no place in an OS name or serial number and can confuse logs and proxies.
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw badRequest(`${field} contains control characters; remove them.`);
  }
  return value;
}

const ISO_INPUT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

function requireDateTime(value: unknown, field: string): string {
  if (typeof value !== 'string' || !ISO_INPUT.test(value) || Number.isNaN(Date.parse(value))) {
    throw badRequest(`${field} must be an ISO 8601 date-time such as 2025-06-01T00:00:00Z.`);
  }
  return new Date(value).toISOString();
}

const FILTER_KEYS: readonly (keyof DeviceFilter)[] = [
  'id',
  'azureADDeviceId',
  'operatingSystem',
  'complianceState',
  'serialNumber',
  'lastSyncAfter',
  'lastSyncOnOrAfter',
  'lastSyncBefore',
];

/**
 * The $filter expression for a DeviceFilter (clauses joined with `and`), or undefined for no
 * filter. Only what Intune supports on managedDevices is offered: eq on ids, operatingSystem,
 * complianceState and serialNumber; gt/ge/lt on lastSyncDateTime.
 */
export function buildDeviceFilter(filter: DeviceFilter | undefined): string | undefined {
  if (filter === undefined) return undefined;
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
    throw badRequest('filter must be an object such as { complianceState: "compliant" }.');
  }
  for (const key of Object.keys(filter)) {
    if (!(FILTER_KEYS as readonly string[]).includes(key)) {
      throw badRequest(`filter.${key.slice(0, 40)} is not supported; use ${FILTER_KEYS.join(', ')}.`);
    }
  }
  const clauses: string[] = [];
  if (filter.id !== undefined) clauses.push(`id eq ${odataString(requireGuid(filter.id, 'filter.id'))}`);
  if (filter.azureADDeviceId !== undefined) {
    clauses.push(`azureADDeviceId eq ${odataString(requireGuid(filter.azureADDeviceId, 'filter.azureADDeviceId'))}`);
  }
  if (filter.operatingSystem !== undefined) {
    clauses.push(`operatingSystem eq ${odataString(requireLiteral(filter.operatingSystem, 'filter.operatingSystem'))}`);
  }
  if (filter.complianceState !== undefined) {
    if (!(COMPLIANCE_STATE_VALUES as readonly unknown[]).includes(filter.complianceState)) {
      throw badRequest(`filter.complianceState must be one of ${COMPLIANCE_STATE_VALUES.join(', ')}.`);
    }
    clauses.push(`complianceState eq ${odataString(filter.complianceState)}`);
  }
  if (filter.serialNumber !== undefined) {
    clauses.push(`serialNumber eq ${odataString(requireLiteral(filter.serialNumber, 'filter.serialNumber'))}`);
  }
  const after = filter.lastSyncAfter !== undefined ? requireDateTime(filter.lastSyncAfter, 'filter.lastSyncAfter') : undefined;
  const onOrAfter = filter.lastSyncOnOrAfter !== undefined ? requireDateTime(filter.lastSyncOnOrAfter, 'filter.lastSyncOnOrAfter') : undefined;
  const before = filter.lastSyncBefore !== undefined ? requireDateTime(filter.lastSyncBefore, 'filter.lastSyncBefore') : undefined;
  if (after !== undefined && onOrAfter !== undefined) {
    throw badRequest('filter.lastSyncAfter and filter.lastSyncOnOrAfter are mutually exclusive: set only one.');
  }
  if (after !== undefined && before !== undefined && Date.parse(after) >= Date.parse(before)) {
    throw badRequest('filter.lastSyncAfter must be earlier than filter.lastSyncBefore.');
  }
  if (onOrAfter !== undefined && before !== undefined && Date.parse(onOrAfter) >= Date.parse(before)) {
    throw badRequest('filter.lastSyncOnOrAfter must be earlier than filter.lastSyncBefore.');
  }
  // DateTimeOffset literals are unquoted in OData; toISOString() output holds nothing else.
  if (after !== undefined) clauses.push(`lastSyncDateTime gt ${after}`);
  if (onOrAfter !== undefined) clauses.push(`lastSyncDateTime ge ${onOrAfter}`);
  if (before !== undefined) clauses.push(`lastSyncDateTime lt ${before}`);
  return clauses.length > 0 ? clauses.join(' and ') : undefined;
}

export const MAX_PAGE_SIZE = 1000;

export function requirePageSize(top: unknown): number {
  if (top === undefined) return MAX_PAGE_SIZE;
  if (typeof top !== 'number' || !Number.isInteger(top) || top < 1 || top > MAX_PAGE_SIZE) {
    throw badRequest(`top must be a whole number from 1 to ${MAX_PAGE_SIZE} (Graph's page size limit).`);
  }
  return top;
}

/** $select names, checked against the known properties and deduplicated, with `always` added. */
export function requireSelect(select: unknown, always: readonly string[]): string[] | undefined {
  if (select === undefined) return undefined;
  if (!Array.isArray(select) || select.length === 0) {
    throw badRequest('select must be a non-empty list of managedDevice property names.');
  }
  const names = new Set<string>(always);
  for (const name of select) {
    if (typeof name !== 'string' || !Object.hasOwn(MANAGED_DEVICE_PROPERTIES, name)) {
      throw badRequest(`select names a property managedDevice does not have (${typeof name === 'string' ? name.slice(0, 60).replace(/[^A-Za-z0-9]/g, '?') : typeof name}).`);
    }
    names.add(name);
  }
  return [...names];
}

export const DEVICE_ACTIONS: readonly DeviceAction[] = ['syncDevice', 'remoteLock', 'retire', 'wipe'];

export function requireAction(action: unknown): DeviceAction {
  if (!(DEVICE_ACTIONS as readonly unknown[]).includes(action)) {
    throw badRequest(`action must be one of ${DEVICE_ACTIONS.join(', ')}.`);
  }
  return action as DeviceAction;
}
