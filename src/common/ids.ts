/**
 * Identifiers every layer shares, defined once: what a tenant name may be, what a GUID looks like,
 * and the tenant a single-tenant installation uses. The database's CHECK constraints (migrations)
 * spell the same tenant pattern in SQL.
 */

/** A tenant names a Chronicle chain, a key's scope and a connection's owner. */
export const TENANT_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** TENANT_PATTERN in words, for messages that say what to fix. */
export const TENANT_RULE = '1 to 64 letters, digits, dots, underscores or hyphens';

export function isTenant(value: unknown): value is string {
  return typeof value === 'string' && TENANT_PATTERN.test(value);
}

/** The tenant of ENTRA_*, the demo connection, the CLI and any check that names none. */
export const DEFAULT_TENANT = 'default';

/** The text of one GUID (8-4-4-4-12 hex digits, either case), for patterns that embed it. */
export const GUID_SOURCE = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
/** Intune device ids, Entra device, tenant and client ids, connection and run ids. */
export const GUID_PATTERN = new RegExp(`^${GUID_SOURCE}$`);

/** GUID_PATTERN in words, with an example to copy the shape from. */
export const GUID_EXAMPLE_RULE = 'a GUID such as 0fa4e5e1-6a7b-4c1d-9e2f-3a4b5c6d7e8f (8-4-4-4-12 hex digits)';

export function isGuid(value: unknown): value is string {
  return typeof value === 'string' && GUID_PATTERN.test(value);
}
