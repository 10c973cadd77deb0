/**
 * A verified client certificate checked against its tenant's CA and the agent's current record,
 * and the identity-bound heartbeat that writes only when that record still matches.
 */
import { iso } from '../common/values.js';
import { unknownAgent, type AgentContext } from './context.js';
import { AgentError } from './errors.js';
import { isAgentId, loadAgent } from './records.js';
import type { AuthenticatedAgent, HeartbeatInput, PeerIdentity } from './types.js';

export async function checkIssuer(ctx: AgentContext, peer: PeerIdentity): Promise<void> {
  const expected = await ctx.cas.fingerprintOf(peer.tenant);
  if (expected === null || expected !== peer.issuerFingerprint || !isAgentId(peer.agentId)) throw unknownAgent();
}

export async function authenticate(ctx: AgentContext, peer: PeerIdentity): Promise<AuthenticatedAgent> {
  await checkIssuer(ctx, peer);
  const row = await loadAgent(ctx.db, peer.agentId);
  if (row === null || row.tenant !== peer.tenant) throw unknownAgent();
  if (row.revoked_at !== null) throw new AgentError(403, 'agent_revoked', 'this agent was revoked by an administrator; it must be enrolled again with a new token');
  if (row.certificate_serial !== peer.serial) {
    throw new AgentError(401, 'certificate_superseded', 'this certificate was replaced by a renewal; use the newest certificate');
  }
  if (new Date(row.certificate_expires_at).getTime() <= ctx.now()) {
    throw new AgentError(401, 'certificate_expired', 'the client certificate has expired; enroll again with a new token');
  }
  return { tenant: row.tenant, agentId: row.agent_id, serial: row.certificate_serial };
}

export async function heartbeat(
  ctx: AgentContext,
  peer: PeerIdentity,
  input: HeartbeatInput,
): Promise<{ agent_id: string; last_seen_at: string; certificate_expires_at: string }> {
  await checkIssuer(ctx, peer);
  const at = new Date(ctx.now());
  const posture = {
    filevault: input.filevault ?? 'unknown',
    firewall: input.firewall ?? 'unknown',
    sip: input.sip ?? 'unknown',
    gatekeeper: input.gatekeeper ?? 'unknown',
    uptime_seconds: input.uptime_seconds ?? null,
    agent_version: input.agent_version ?? null,
  };
  // The identity is the certificate's, and the record is read in the same statement that writes:
  // a revocation committed on any replica before it is honoured.
  const { rows } = await ctx.db.query<{ last_seen_at: Date | string; certificate_expires_at: Date | string }>(
    `UPDATE agents SET last_seen_at = $4, os_version = $5, os_build = $6, posture = $7::jsonb, posture_observed_at = $8, posture_received_at = $4
     WHERE agent_id = $1 AND tenant = $2 AND certificate_serial = $3 AND revoked_at IS NULL AND certificate_expires_at > $4
     RETURNING last_seen_at, certificate_expires_at`,
    [peer.agentId, peer.tenant, peer.serial, at, input.os_version, input.os_build ?? null, JSON.stringify(posture), new Date(input.time)],
  );
  const row = rows[0];
  if (row === undefined) {
    await authenticate(ctx, peer);
    throw new AgentError(403, 'agent_revoked', 'this agent was revoked by an administrator; it must be enrolled again with a new token');
  }
  await ctx.changed(peer.tenant, peer.agentId);
  return { agent_id: peer.agentId, last_seen_at: iso(row.last_seen_at), certificate_expires_at: iso(row.certificate_expires_at) };
}
