/**
 * Who may call what, for every HTTP surface (REST API, gate, /mcp). One table, checked by one
 * function: a route names its permission, the key's role grants it or not. Keys see only their own
 * tenant; an id from another tenant is answered exactly like an unknown id (404), so a key cannot
 * learn what another tenant holds.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError, databaseUnavailable } from './errors.js';
import type { Authenticator, Principal, Role } from './types.js';

export const PERMISSIONS = {
  /** GET connections, runs, devices, summary. */
  'posture:read': ['admin', 'reader'],
  /** POST/PATCH connections, POST sync. */
  'posture:write': ['admin'],
  /** POST /api/v1/gate/device-compliance. */
  'gate:check': ['gate', 'admin'],
  /** Chronicle events and verify. */
  'chronicle:read': ['admin', 'auditor'],
  /** /mcp. */
  'mcp:call': ['agent', 'admin'],
  /** API key administration of the key's own tenant. */
  'keys:manage': ['admin'],
  /** Endpoint agents: enrollment tokens and revocation. */
  'agents:manage': ['admin'],
  /** Endpoint agents: identity summaries. */
  'agents:read': ['admin', 'reader'],
} as const satisfies Record<string, readonly Role[]>;
export type Permission = keyof typeof PERMISSIONS;

/** How a refusal names what was called and which key to create; surfaces with their own callers say so. */
interface RefusalWording {
  /** The 401 sentence when no bearer key was sent. */
  readonly missing: string;
  /** The `keys create` command that makes a fitting key. */
  readonly create: string;
  /** What the caller tried to call, in "a reader key may not call …". */
  readonly target: string;
  readonly wwwAuthenticate: string;
}

export const WWW_AUTHENTICATE = 'Bearer realm="intune-connector"';
/** /mcp follows RFC 6750 so MCP clients know to present a different token. */
export const MCP_WWW_AUTHENTICATE = 'Bearer realm="intune-connector", error="invalid_token"';

const API_WORDING: RefusalWording = {
  missing: 'send an API key as `Authorization: Bearer icn_…`; create one with `intune-connector keys create`',
  create: '`intune-connector keys create`',
  target: 'this',
  wwwAuthenticate: WWW_AUTHENTICATE,
};

const WORDING: Readonly<Record<Permission, RefusalWording>> = {
  'posture:read': API_WORDING,
  'posture:write': API_WORDING,
  'chronicle:read': API_WORDING,
  'keys:manage': API_WORDING,
  'agents:manage': API_WORDING,
  'agents:read': API_WORDING,
  'gate:check': {
    missing: "send the service's API key as `Authorization: Bearer icn_…` (a key with role gate; create one with `intune-connector keys create --role gate`)",
    create: '`intune-connector keys create --role gate`',
    target: 'the gate',
    wwwAuthenticate: WWW_AUTHENTICATE,
  },
  'mcp:call': {
    missing: 'send an agent API key as `Authorization: Bearer icn_…`; create one with `intune-connector keys create --role agent`',
    create: '`intune-connector keys create --role agent`',
    target: '/mcp',
    wwwAuthenticate: MCP_WWW_AUTHENTICATE,
  },
};

/** Longer than any key this product issues, short enough that nothing large is ever looked up. */
const BEARER = /^Bearer[ \t]+(\S{1,256})[ \t]*$/i;

/** The bearer key of a request, or undefined (no header, another scheme, or an oversized value). */
export function bearerKey(request: Pick<FastifyRequest, 'headers'>): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  return BEARER.exec(header)?.[1];
}

// Outside requirePermission: no closure is made on the path of an accepted request.
const unauthorized = (wording: RefusalWording, message: string): ApiError =>
  new ApiError(401, 'unauthorized', message, {}, { 'www-authenticate': wording.wwwAuthenticate });

/**
 * Authenticates the request and checks the permission: 401 without a valid key, 403 for the wrong
 * role, 503 when keys cannot be looked up. Throws ApiError; never answers itself.
 */
export async function requirePermission(authenticator: Authenticator, request: Pick<FastifyRequest, 'headers'>, permission: Permission): Promise<Principal> {
  const wording = WORDING[permission];
  const key = bearerKey(request);
  if (key === undefined) throw unauthorized(wording, wording.missing);
  let principal: Principal | null;
  try {
    principal = await authenticator.authenticate(key);
  } catch (err) {
    throw databaseUnavailable(err, 'API keys cannot be checked right now');
  }
  if (principal === null) throw unauthorized(wording, `the API key is unknown or revoked; create one with ${wording.create}`);
  const allowed: readonly Role[] = PERMISSIONS[permission];
  if (!allowed.includes(principal.role)) {
    throw new ApiError(403, 'forbidden', `a ${principal.role} key may not call ${wording.target}; it needs a key with role ${allowed.join(' or ')}`);
  }
  return principal;
}
