/**
 * Parsers for the values several commands take, so a value not in its documented form is a usage
 * mistake (exit 2) caught before anything opens, with the same sentence everywhere.
 */
import { InvalidArgumentError } from 'commander';
import { isGuid, isTenant } from '../common/ids.js';

export function tenantArg(value: string): string {
  if (!isTenant(value)) throw new InvalidArgumentError('a tenant is 1 to 64 letters, digits, dots, underscores or hyphens');
  return value;
}

export function guidArg(value: string): string {
  const trimmed = value.trim();
  if (!isGuid(trimmed)) throw new InvalidArgumentError('use a GUID such as 0fa4e5e1-0000-4000-8000-000000000001');
  return trimmed;
}

export function keyIdArg(value: string): string {
  const trimmed = value.trim().toLowerCase();
  if (!/^[0-9a-f]{16}$/.test(trimmed)) throw new InvalidArgumentError('a key id is 16 hexadecimal characters, as `keys list` shows it');
  return trimmed;
}
