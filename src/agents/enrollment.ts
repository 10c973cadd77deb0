/**
 * Enrollment and renewal: a checked CSR becomes a client certificate from the tenant's agent CA.
 * Serial numbers and hardware UUIDs become keyed fingerprints here and go no further in clear; an
 * enrollment or a renewal Chronicle cannot record is undone.
 */
import crypto from 'node:crypto';
import { fingerprintSerial } from '../connector/redaction.js';
import type { AgentContext } from './context.js';
import { AgentError, invalidToken } from './errors.js';
import { fingerprintHardwareUuid } from './records.js';
import { decideEnrollment } from './rules.js';
import { checkToken } from './tokens.js';
import type { AuthenticatedAgent, EnrollInput, IssuedIdentity } from './types.js';
import { checkCsr, CsrError, issueClientCertificate } from './x509.js';
import { defined } from '../common/values.js';

export const DEFAULT_CERT_VALIDITY_DAYS = 30;

async function caWithNotice(ctx: AgentContext, tenant: string) {
  const before = await ctx.cas.fingerprintOf(tenant);
  const ca = await ctx.cas.caFor(tenant);
  // A new CA is trusted by this process's listener before its first certificate is handed out.
  if (before === null) await ctx.caCreated();
  return ca;
}

async function issue(ctx: AgentContext, tenant: string, agentId: string, csrPem: string) {
  let csr;
  try {
    csr = await checkCsr(csrPem);
  } catch (err) {
    if (err instanceof CsrError) throw new AgentError(err.code === 'weak_key' ? 422 : 400, err.code, err.message, 'csr');
    throw err;
  }
  const ca = await caWithNotice(ctx, tenant);
  const at = ctx.now();
  const issued = await issueClientCertificate({
    ca,
    csr,
    agentId,
    tenant,
    // A few minutes back, so an agent whose clock runs slightly behind accepts it at once.
    notBefore: new Date(at - 5 * 60 * 1000),
    notAfter: new Date(at + ctx.validityMs),
  });
  return { ...issued, caPem: ca.certPem };
}

export async function enroll(ctx: AgentContext, input: EnrollInput, opts: { requestId?: string } = {}): Promise<IssuedIdentity> {
  const { db, chronicle, logger, now } = ctx;
  const { tokenId, tenant } = await checkToken(ctx, input.token);
  const decision = decideEnrollment({ platform: input.platform, agentClass: input.agent_class, osVersion: input.os_version });
  if (!decision.accept) throw new AgentError(422, decision.code, decision.message, decision.field);

  const agentId = crypto.randomUUID();
  const enrollmentId = crypto.randomUUID();
  const issued = await issue(ctx, tenant, agentId, input.csr);
  // The identifiers become fingerprints here and go no further in clear.
  const key = ctx.fingerprintKeyFor(tenant);
  const serialFingerprint = fingerprintSerial(input.serial_number, key);
  const hardwareFingerprint = fingerprintHardwareUuid(input.hardware_uuid, key);
  const at = new Date(now());

  await db.transaction(async (tx) => {
    // Consumed only by the enrollment that succeeds; the conditions make two racing uses one.
    const consumed = await tx.query(
      `UPDATE agent_enrollment_tokens SET consumed_at = $3, consumed_by = $4
       WHERE token_id = $1 AND tenant = $2 AND usable AND consumed_at IS NULL AND expires_at > $3 RETURNING token_id`,
      [tokenId, tenant, at, agentId],
    );
    if (consumed.rowCount === 0) throw invalidToken();
    await tx.query(
      `INSERT INTO agents (agent_id, tenant, enrollment_id, token_id, platform, agent_class, os_family, os_version, os_build, model,
         serial_fingerprint, hardware_fingerprint, certificate_serial, certificate_expires_at, enrolled_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
      [
        agentId,
        tenant,
        enrollmentId,
        tokenId,
        decision.platform,
        decision.agentClass,
        decision.osFamily,
        input.os_version ?? null,
        input.os_build ?? null,
        input.model ?? null,
        serialFingerprint,
        hardwareFingerprint,
        issued.serial,
        issued.notAfter,
        at,
      ],
    );
  });
  try {
    await chronicle.append({
      tenant,
      type: 'agent.macos.enrolled',
      actor: { kind: 'agent', id: `agent:${agentId}` },
      ...defined({ requestId: opts.requestId }),
      data: {
        agent_id: agentId,
        platform: decision.platform,
        agent_class: decision.agentClass,
        os_family: decision.osFamily,
        os_version: input.os_version ?? null,
        enrollment_id: enrollmentId,
        token_id: tokenId,
        serial_fingerprint: serialFingerprint,
        hardware_fingerprint: hardwareFingerprint,
        certificate_serial: issued.serial,
        certificate_expires_at: issued.notAfter.toISOString(),
      },
    });
  } catch (err) {
    // No enrollment without its record: the certificate was never handed out, so undo it all.
    await db
      .transaction(async (tx) => {
        await tx.query('DELETE FROM agents WHERE agent_id = $1', [agentId]);
        await tx.query('UPDATE agent_enrollment_tokens SET consumed_at = NULL, consumed_by = NULL WHERE token_id = $1', [tokenId]);
      })
      .catch((undoErr: unknown) => logger.error({ err: undoErr, agentId }, 'could not undo an unaudited enrollment'));
    throw err;
  }
  logger.info({ tenant, agentId, platform: decision.platform }, 'agent enrolled');
  await ctx.changed(tenant, agentId);
  return { agent_id: agentId, certificate: issued.certPem, ca_chain: [issued.caPem], expires_at: issued.notAfter.toISOString() };
}

export async function renew(ctx: AgentContext, agent: AuthenticatedAgent, csrPem: string, opts: { requestId?: string } = {}): Promise<IssuedIdentity> {
  const { db, chronicle } = ctx;
  const issued = await issue(ctx, agent.tenant, agent.agentId, csrPem);
  const { rows } = await db.query<{ certificate_expires_at: Date | string }>(
    `UPDATE agents SET certificate_serial = $4, certificate_expires_at = $5
     WHERE agent_id = $1 AND tenant = $2 AND certificate_serial = $3 AND revoked_at IS NULL
     RETURNING (SELECT certificate_expires_at FROM agents WHERE agent_id = $1) AS certificate_expires_at`,
    [agent.agentId, agent.tenant, agent.serial, issued.serial, issued.notAfter],
  );
  const previous = rows[0];
  if (previous === undefined) throw new AgentError(403, 'agent_revoked', 'this agent was revoked or its certificate replaced; enroll again with a new token');
  try {
    await chronicle.append({
      tenant: agent.tenant,
      type: 'agent.certificate_renewed',
      actor: { kind: 'agent', id: `agent:${agent.agentId}` },
      ...defined({ requestId: opts.requestId }),
      data: { agent_id: agent.agentId, certificate_serial: issued.serial, certificate_expires_at: issued.notAfter.toISOString() },
    });
  } catch (err) {
    await db
      .query('UPDATE agents SET certificate_serial = $2, certificate_expires_at = $3 WHERE agent_id = $1 AND certificate_serial = $4', [
        agent.agentId,
        agent.serial,
        previous.certificate_expires_at,
        issued.serial,
      ])
      .catch(() => undefined);
    throw err;
  }
  return { agent_id: agent.agentId, certificate: issued.certPem, ca_chain: [issued.caPem], expires_at: issued.notAfter.toISOString() };
}
