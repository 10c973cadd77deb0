/**
 * Endpoint runtime-lite (OP-061): enrollment tokens, enrollment (rule table, CSR, client
 * certificate), identity summaries, revocation, renewal and identity-bound heartbeats.
 *
 * Every state change that matters is audited, and none is left without its record: a token is
 * unusable until its creation event has committed; an enrollment, a renewal or a revocation is
 * undone if Chronicle cannot record it. Serial numbers and hardware UUIDs are turned into keyed
 * fingerprints (the tenant's serial fingerprint key, as Intune serials get) before anything else
 * sees them; they are never stored, logged or returned.
 */
import { createCaStore } from './ca.js';
import type { AgentContext } from './context.js';
import { DEFAULT_CERT_VALIDITY_DAYS, enroll, renew } from './enrollment.js';
import { authenticate, checkIssuer, heartbeat } from './identity.js';
import { agentPosture, getAgent, listAgents, revokeAgent } from './registry.js';
import { createToken, DEFAULT_TOKEN_TTL_SECONDS } from './tokens.js';
import type { AgentService, AgentServiceOptions } from './types.js';

export { SERIAL_FINGERPRINT_PREFIX } from '../connector/redaction.js';
export { DEFAULT_CERT_VALIDITY_DAYS } from './enrollment.js';
export { fingerprintHardwareUuid, isAgentId } from './records.js';
export { DEFAULT_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS, TOKEN_PREFIX } from './tokens.js';
export type * from './types.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export function createAgentService(options: AgentServiceOptions): AgentService {
  const { db, chronicle, logger } = options;
  const now = options.now ?? Date.now;
  const cas = createCaStore({ db, dir: options.caDir, logger, now });
  const caListeners: Array<() => Promise<void>> = [];
  const ctx: AgentContext = {
    db,
    chronicle,
    logger,
    now,
    cas,
    validityMs: (options.certValidityDays ?? DEFAULT_CERT_VALIDITY_DAYS) * DAY_MS,
    defaultTokenTtlSeconds: options.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS,
    staleAfterMs: options.staleAfterMs ?? DAY_MS,
    fingerprintKeyFor: options.fingerprintKeyFor,
    changed: async (tenant, agentId) => {
      await options.onAgentChanged?.(tenant, agentId).catch((err: unknown) => logger.warn({ err, agentId }, 'could not re-match assets for the agent'));
    },
    caCreated: async () => {
      await Promise.all(caListeners.map((listener) => listener().catch((err: unknown) => logger.warn({ err }, 'could not reload agent CAs'))));
    },
  };

  return {
    cas,
    createToken: (tenant, input, actor, opts) => createToken(ctx, tenant, input, actor, opts),
    enroll: (input, opts) => enroll(ctx, input, opts),
    list: (tenant, opts) => listAgents(ctx, tenant, opts),
    get: (tenant, agentId) => getAgent(ctx, tenant, agentId),
    revoke: (tenant, agentId, actor, opts) => revokeAgent(ctx, tenant, agentId, actor, opts),
    authenticate: (peer) => authenticate(ctx, peer),
    checkIssuer: (peer) => checkIssuer(ctx, peer),
    heartbeat: (peer, input) => heartbeat(ctx, peer, input),
    renew: (agent, csr, opts) => renew(ctx, agent, csr, opts),
    posture: (tenant) => agentPosture(ctx, tenant),
    onCaCreated: (listener) => {
      caListeners.push(listener);
    },
  };
}
