/**
 * Who is calling the HTTP surfaces. API keys are bound to one tenant and one role (and, for agents,
 * a set of capabilities); the key store in ./keys.ts implements Authenticator.
 */
import type { Capability } from '../config/index.js';

export const ROLES = ['admin', 'reader', 'gate', 'auditor', 'agent'] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  readonly keyId: string;
  readonly tenant: string;
  readonly role: Role;
  /** Delegated capabilities (MCP/agent keys); READ only unless the key says more. */
  readonly capabilities: readonly Capability[];
  /** A label for the actor id in Chronicle, e.g. "key:3f2a…" */
  readonly actorId: string;
}

export interface Authenticator {
  /** The principal for a presented bearer key, or null when unknown or revoked. Never throws for bad input. */
  authenticate(presentedKey: string): Promise<Principal | null>;
}
