/**
 * Who may call what. One table, checked by one function: a route names its permission, the key's
 * role grants it or not. Keys see only their own tenant; an id from another tenant is answered
 * exactly like an unknown id (404), so a key cannot learn what another tenant holds.
 */
import type { FastifyRequest } from 'fastify';
import type { Authenticator, Principal, Role } from './auth-types.js';
import { forbidden, unauthorized } from './errors.js';

export const PERMISSIONS = {
  /** GET connections, runs, devices, summary. */
  'posture:read': ['admin', 'reader'],
  /** POST/PATCH connections, POST sync. */
  'posture:write': ['admin'],
  /** POST /api/v1/gate/device-compliance. */
  'gate:check': ['admin', 'gate'],
  /** Chronicle events and verify. */
  'chronicle:read': ['admin', 'auditor'],
  /** /mcp. */
  'mcp:call': ['admin', 'agent'],
  /** API key administration of the key's own tenant. */
  'keys:manage': ['admin'],
  /** Endpoint agents: enrollment tokens and revocation. */
  'agents:manage': ['admin'],
  /** Endpoint agents: identity summaries. */
  'agents:read': ['admin', 'reader'],
} as const satisfies Record<string, readonly Role[]>;
export type Permission = keyof typeof PERMISSIONS;

const BEARER = /^Bearer[ \t]+(\S{1,256})[ \t]*$/i;

/** The bearer key of a request, or undefined (no header, another scheme, or an oversized value). */
export function bearerKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  return BEARER.exec(header)?.[1];
}

/** Authenticates the request and checks the permission: 401 without a valid key, 403 for the wrong role. */
export async function requirePermission(authenticator: Authenticator, request: FastifyRequest, permission: Permission): Promise<Principal> {
  const key = bearerKey(request);
  if (key === undefined) throw unauthorized();
  const principal = await authenticator.authenticate(key);
  if (principal === null) throw unauthorized('the API key is unknown or revoked; create one with `intune-connector keys create`');
  const allowed: readonly Role[] = PERMISSIONS[permission];
  if (!allowed.includes(principal.role)) throw forbidden(principal.role, allowed);
  return principal;
}
