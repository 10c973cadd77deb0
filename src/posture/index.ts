/**
 * Posture runtime: tenant-scoped Intune connections with SecretProvider references, leased sync
 * runs that stream every managed device into redacted posture snapshots, and the scheduler.
 */
export { createPostureService, type PostureServiceDeps, type PostureServiceOptions } from './service.js';
export { createSecretProvider, secretProviderFromConfig, parseSecretRef } from './secrets.js';
export { PostureInputError, PostureNotFoundError, SyncInProgressError, SecretRefError, type SecretRefErrorCode } from './errors.js';
export * from './types.js';
