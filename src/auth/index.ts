/** Credentials and who may call what: every HTTP surface authenticates through this module. */
export { ROLES, type Role, type Principal, type Authenticator } from './types.js';
export { PERMISSIONS, type Permission, bearerKey, requirePermission, WWW_AUTHENTICATE, MCP_WWW_AUTHENTICATE } from './permissions.js';
export { ApiError, sendError, type ErrorBody } from './errors.js';
