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
import crypto from 'node:crypto';
import type { Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import type { Actor, ChronicleWriter } from '../chronicle/types.js';
import { fingerprintSerial, SERIAL_FINGERPRINT_PREFIX } from '../connector/redaction.js';
import { createCaStore, type CaStore } from './ca.js';
import { AgentError, invalidToken } from './errors.js';
import { decideEnrollment } from './rules.js';
import { heartbeatReadings, type TriState } from '../assets/attributes.js';
import { checkCsr, CsrError, issueClientCertificate } from './x509.js';

export const TOKEN_PREFIX = 'ice_';
const TOKEN_PATTERN = /^ice_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
export const DEFAULT_TOKEN_TTL_SECONDS = 3_600;
export const MAX_TOKEN_TTL_SECONDS = 7 * 24 * 3_600;
export const DEFAULT_CERT_VALIDITY_DAYS = 30;
const DAY_MS = 24 * 60 * 60 * 1000;
const AGENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type { TriState } from '../assets/attributes.js';
export type AgentStatus = 'active' | 'stale' | 'revoked';

export interface EnrollInput {
  readonly token: string;
  readonly csr: string;
  readonly platform: string;
  readonly agent_class: string;
  readonly os_version?: string;
  readonly os_build?: string;
  readonly serial_number?: string;
  readonly hardware_uuid?: string;
  readonly model?: string;
}

export interface IssuedIdentity {
  readonly agent_id: string;
  readonly certificate: string;
  readonly ca_chain: readonly string[];
  readonly expires_at: string;
}

export interface AgentSummary {
  readonly agent_id: string;
  readonly platform: string;
  readonly agent_class: string;
  readonly os_family: string;
  readonly os_version: string | null;
  readonly os_build: string | null;
  readonly model: string | null;
  readonly enrolled_at: string;
  readonly last_seen_at: string | null;
  readonly certificate_expires_at: string;
  readonly status: AgentStatus;
  readonly serial_fingerprint: string | null;
  readonly hardware_fingerprint: string | null;
}

export interface HeartbeatInput {
  readonly os_version: string;
  readonly os_build?: string;
  readonly uptime_seconds?: number;
  readonly filevault?: TriState;
  readonly firewall?: TriState;
  readonly sip?: TriState;
  readonly gatekeeper?: TriState;
  readonly agent_version?: string;
  readonly time: string;
}

/** The posture an agent reported, as the posture API shows it until assets merge sources. */
export interface AgentPostureEntry {
  readonly source: 'agent';
  readonly agent_id: string;
  readonly os_family: string;
  readonly os_version: string | null;
  readonly os_build: string | null;
  readonly model: string | null;
  readonly serial_fingerprint: string | null;
  readonly filevault: TriState;
  readonly firewall: TriState;
  readonly sip: TriState;
  readonly gatekeeper: TriState;
  readonly uptime_seconds: number | null;
  readonly agent_version: string | null;
  readonly observed_at: string | null;
  readonly received_at: string | null;
  readonly status: AgentStatus;
}

/** Who a client certificate says it is, as the TLS layer verified it. */
export interface PeerIdentity {
  readonly tenant: string;
  readonly agentId: string;
  /** Uppercase hex, as Node's TLS reports it. */
  readonly serial: string;
  /** SHA-256 fingerprint (AA:BB:…) of the certificate that issued the peer's. */
  readonly issuerFingerprint: string;
}

export interface AuthenticatedAgent {
  readonly tenant: string;
  readonly agentId: string;
  readonly serial: string;
}

export interface AgentService {
  readonly cas: CaStore;
  createToken(
    tenant: string,
    input: { ttlSeconds?: number; name?: string },
    actor: Actor,
    options?: { requestId?: string },
  ): Promise<{ token: string; token_id: string; expires_at: string }>;
  enroll(input: EnrollInput, options?: { requestId?: string }): Promise<IssuedIdentity>;
  list(tenant: string, options?: { includeRevoked?: boolean }): Promise<AgentSummary[]>;
  /** Without a tenant, any tenant's agent (CLI only). */
  get(tenant: string | undefined, agentId: string): Promise<(AgentSummary & { tenant: string }) | null>;
  revoke(tenant: string | undefined, agentId: string, actor: Actor, options?: { requestId?: string }): Promise<(AgentSummary & { tenant: string }) | null>;
  /** Checks a verified peer certificate against the tenant's CA and the agent's current record. */
  authenticate(peer: PeerIdentity): Promise<AuthenticatedAgent>;
  /** Refuses a certificate that its tenant's CA did not issue (cached: a CA never changes). */
  checkIssuer(peer: PeerIdentity): Promise<void>;
  /**
   * Records a heartbeat for the certificate's agent in one conditional update (unrevoked, current
   * certificate, unexpired); when nothing matches, says why as `authenticate` would.
   */
  heartbeat(peer: PeerIdentity, input: HeartbeatInput): Promise<{ agent_id: string; last_seen_at: string; certificate_expires_at: string }>;
  renew(agent: AuthenticatedAgent, csr: string, options?: { requestId?: string }): Promise<IssuedIdentity>;
  posture(tenant: string): Promise<AgentPostureEntry[]>;
  /** Called after this process makes a tenant CA (the listener reloads its trust list). */
  onCaCreated(listener: () => Promise<void>): void;
}

export interface AgentServiceOptions {
  readonly db: Db;
  readonly chronicle: ChronicleWriter;
  readonly logger: Logger;
  /** Where tenant CA key files live (INTUNE_AGENT_CA_DIR). */
  readonly caDir: string;
  readonly fingerprintKeyFor: (tenant: string) => Buffer;
  readonly certValidityDays?: number;
  readonly tokenTtlSeconds?: number;
  /** An agent not heard from for this long is `stale` (default 24 h). */
  readonly staleAfterMs?: number;
  readonly now?: () => number;
  /**
   * Called after an enrollment, a heartbeat or a revocation has committed: asset identity
   * re-matches the agent. Its failure is logged; the agent's request still succeeds.
   */
  readonly onAgentChanged?: (tenant: string, agentId: string) => Promise<unknown>;
}

interface AgentRow {
  agent_id: string;
  tenant: string;
  platform: string;
  agent_class: string;
  os_family: string;
  os_version: string | null;
  os_build: string | null;
  model: string | null;
  serial_fingerprint: string | null;
  hardware_fingerprint: string | null;
  certificate_serial: string;
  certificate_expires_at: Date | string;
  enrolled_at: Date | string;
  last_seen_at: Date | string | null;
  revoked_at: Date | string | null;
  posture: Record<string, unknown> | string | null;
  posture_observed_at: Date | string | null;
  posture_received_at: Date | string | null;
}

const AGENT_COLUMNS =
  'agent_id, tenant, platform, agent_class, os_family, os_version, os_build, model, serial_fingerprint, hardware_fingerprint, certificate_serial, certificate_expires_at, enrolled_at, last_seen_at, revoked_at, posture, posture_observed_at, posture_received_at';

const iso = (value: Date | string): string => (value instanceof Date ? value : new Date(value)).toISOString();
const isoOrNull = (value: Date | string | null): string | null => (value === null ? null : iso(value));
const digestOf = (token: string): Buffer => crypto.createHash('sha256').update(token, 'utf8').digest();

/**
 * A hardware UUID's keyed fingerprint: the same HMAC and tenant key as serials, over a labelled
 * input, so a hardware UUID can never collide with a serial that happens to spell the same text.
 */
export function fingerprintHardwareUuid(uuid: unknown, key: Buffer): string | null {
  if (typeof uuid !== 'string' || uuid.trim() === '') return null;
  return fingerprintSerial(`hardware-uuid:${uuid.trim().toUpperCase()}`, key);
}

export function isAgentId(value: string): boolean {
  return AGENT_ID.test(value);
}

export function createAgentService(options: AgentServiceOptions): AgentService {
  const { db, chronicle, logger } = options;
  const now = options.now ?? Date.now;
  const validityMs = (options.certValidityDays ?? DEFAULT_CERT_VALIDITY_DAYS) * DAY_MS;
  const defaultTtl = options.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  const staleAfterMs = options.staleAfterMs ?? DAY_MS;
  const cas = createCaStore({ db, dir: options.caDir, logger, now });
  const caListeners: Array<() => Promise<void>> = [];
  const changed = async (tenant: string, agentId: string): Promise<void> => {
    await options.onAgentChanged?.(tenant, agentId).catch((err: unknown) => logger.warn({ err, agentId }, 'could not re-match assets for the agent'));
  };

  const statusOf = (row: AgentRow): AgentStatus => {
    if (row.revoked_at !== null) return 'revoked';
    const seen = new Date(row.last_seen_at ?? row.enrolled_at).getTime();
    if (new Date(row.certificate_expires_at).getTime() <= now() || now() - seen > staleAfterMs) return 'stale';
    return 'active';
  };

  const summaryOf = (row: AgentRow): AgentSummary & { tenant: string } => ({
    agent_id: row.agent_id,
    tenant: row.tenant,
    platform: row.platform,
    agent_class: row.agent_class,
    os_family: row.os_family,
    os_version: row.os_version,
    os_build: row.os_build,
    model: row.model,
    enrolled_at: iso(row.enrolled_at),
    last_seen_at: isoOrNull(row.last_seen_at),
    certificate_expires_at: iso(row.certificate_expires_at),
    status: statusOf(row),
    serial_fingerprint: row.serial_fingerprint,
    hardware_fingerprint: row.hardware_fingerprint,
  });

  const publicSummary = ({ tenant: _tenant, ...rest }: AgentSummary & { tenant: string }): AgentSummary => rest;

  async function loadAgent(agentId: string): Promise<AgentRow | null> {
    if (!isAgentId(agentId)) return null;
    const { rows } = await db.query<AgentRow>(`SELECT ${AGENT_COLUMNS} FROM agents WHERE agent_id = $1`, [agentId]);
    return rows[0] ?? null;
  }

  async function caWithNotice(tenant: string) {
    const before = await cas.fingerprintOf(tenant);
    const ca = await cas.caFor(tenant);
    // A new CA is trusted by this process's listener before its first certificate is handed out.
    if (before === null) await Promise.all(caListeners.map((listener) => listener().catch((err: unknown) => logger.warn({ err }, 'could not reload agent CAs'))));
    return ca;
  }

  async function issue(tenant: string, agentId: string, csrPem: string) {
    let csr;
    try {
      csr = await checkCsr(csrPem);
    } catch (err) {
      if (err instanceof CsrError) throw new AgentError(err.code === 'weak_key' ? 422 : 400, err.code, err.message, 'csr');
      throw err;
    }
    const ca = await caWithNotice(tenant);
    const at = now();
    const issued = await issueClientCertificate({
      ca,
      csr,
      agentId,
      tenant,
      // A few minutes back, so an agent whose clock runs slightly behind accepts it at once.
      notBefore: new Date(at - 5 * 60 * 1000),
      notAfter: new Date(at + validityMs),
    });
    return { ...issued, caPem: ca.certPem };
  }

  async function createToken(
    tenant: string,
    input: { ttlSeconds?: number; name?: string },
    actor: Actor,
    opts: { requestId?: string } = {},
  ): Promise<{ token: string; token_id: string; expires_at: string }> {
    const ttlSeconds = input.ttlSeconds ?? defaultTtl;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
      throw new AgentError(400, 'invalid_ttl', `ttl_seconds must be a whole number from 1 to ${MAX_TOKEN_TTL_SECONDS} (7 days)`, 'ttl_seconds');
    }
    const tokenId = crypto.randomBytes(8).toString('hex');
    const token = `${TOKEN_PREFIX}${tokenId}_${crypto.randomBytes(32).toString('base64url')}`;
    const expiresAt = new Date(now() + ttlSeconds * 1000);
    await db.query(
      `INSERT INTO agent_enrollment_tokens (token_id, tenant, name, secret_sha256, usable, created_by, expires_at)
       VALUES ($1, $2, $3, $4, false, $5, $6)`,
      [tokenId, tenant, input.name ?? null, digestOf(token), actor.id.slice(0, 200), expiresAt],
    );
    try {
      await chronicle.append({
        tenant,
        type: 'agent.enrollment_token_created',
        actor,
        ...(opts.requestId !== undefined ? { requestId: opts.requestId } : {}),
        data: { token_id: tokenId, expires_at: expiresAt.toISOString(), ttl_seconds: ttlSeconds },
      });
    } catch (err) {
      await db.query('DELETE FROM agent_enrollment_tokens WHERE token_id = $1', [tokenId]).catch(() => undefined);
      throw err;
    }
    // Usable only now that its record has committed.
    await db.query('UPDATE agent_enrollment_tokens SET usable = true WHERE token_id = $1', [tokenId]);
    return { token, token_id: tokenId, expires_at: expiresAt.toISOString() };
  }

  /** The token's id and tenant when it could be consumed now; it is not consumed here. */
  async function checkToken(presented: string): Promise<{ tokenId: string; tenant: string }> {
    const match = TOKEN_PATTERN.exec(presented);
    if (match === null) throw invalidToken();
    const tokenId = match[1] as string;
    const { rows } = await db.query<{ tenant: string; secret_sha256: Buffer; usable: boolean; consumed_at: unknown; expires_at: Date | string }>(
      'SELECT tenant, secret_sha256, usable, consumed_at, expires_at FROM agent_enrollment_tokens WHERE token_id = $1',
      [tokenId],
    );
    const row = rows[0];
    if (row === undefined || !crypto.timingSafeEqual(Buffer.from(row.secret_sha256), digestOf(presented))) throw invalidToken();
    if (!row.usable || row.consumed_at !== null || new Date(row.expires_at).getTime() <= now()) throw invalidToken();
    return { tokenId, tenant: row.tenant };
  }

  async function enroll(input: EnrollInput, opts: { requestId?: string } = {}): Promise<IssuedIdentity> {
    const { tokenId, tenant } = await checkToken(input.token);
    const decision = decideEnrollment({ platform: input.platform, agentClass: input.agent_class, osVersion: input.os_version });
    if (!decision.accept) throw new AgentError(422, decision.code, decision.message, decision.field);

    const agentId = crypto.randomUUID();
    const enrollmentId = crypto.randomUUID();
    const issued = await issue(tenant, agentId, input.csr);
    // The identifiers become fingerprints here and go no further in clear.
    const key = options.fingerprintKeyFor(tenant);
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
        ...(opts.requestId !== undefined ? { requestId: opts.requestId } : {}),
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
    await changed(tenant, agentId);
    return { agent_id: agentId, certificate: issued.certPem, ca_chain: [issued.caPem], expires_at: issued.notAfter.toISOString() };
  }

  async function list(tenant: string, opts: { includeRevoked?: boolean } = {}): Promise<AgentSummary[]> {
    const { rows } = await db.query<AgentRow>(
      `SELECT ${AGENT_COLUMNS} FROM agents WHERE tenant = $1 ${opts.includeRevoked === false ? 'AND revoked_at IS NULL' : ''}
       ORDER BY enrolled_at DESC, agent_id LIMIT 10000`,
      [tenant],
    );
    return rows.map((row) => publicSummary(summaryOf(row)));
  }

  async function get(tenant: string | undefined, agentId: string) {
    const row = await loadAgent(agentId.toLowerCase());
    if (row === null || (tenant !== undefined && row.tenant !== tenant)) return null;
    return summaryOf(row);
  }

  async function revoke(tenant: string | undefined, agentId: string, actor: Actor, opts: { requestId?: string } = {}) {
    const id = agentId.toLowerCase();
    if (!isAgentId(id)) throw new AgentError(400, 'invalid_agent_id', 'an agent id is a GUID, as `agents list` shows it', 'agent_id');
    const row = await loadAgent(id);
    if (row === null || (tenant !== undefined && row.tenant !== tenant)) return null;
    if (row.revoked_at !== null) return summaryOf(row);
    const { rows } = await db.query<AgentRow>(
      `UPDATE agents SET revoked_at = $2, revoked_by = $3 WHERE agent_id = $1 AND revoked_at IS NULL RETURNING ${AGENT_COLUMNS}`,
      [id, new Date(now()), actor.id.slice(0, 200)],
    );
    const updated = rows[0];
    if (updated === undefined) {
      const current = await loadAgent(id);
      return current === null ? null : summaryOf(current);
    }
    try {
      await chronicle.append({
        tenant: row.tenant,
        type: 'agent.revoked',
        actor,
        ...(opts.requestId !== undefined ? { requestId: opts.requestId } : {}),
        data: { agent_id: id, platform: row.platform, agent_class: row.agent_class },
      });
    } catch (err) {
      await db.query('UPDATE agents SET revoked_at = NULL, revoked_by = NULL WHERE agent_id = $1', [id]).catch(() => undefined);
      throw err;
    }
    await changed(row.tenant, id);
    return summaryOf(updated);
  }

  const unknownAgent = () => new AgentError(401, 'unknown_agent', 'the client certificate does not name an enrolled agent of its tenant; enroll again');

  async function checkIssuer(peer: PeerIdentity): Promise<void> {
    const expected = await cas.fingerprintOf(peer.tenant);
    if (expected === null || expected !== peer.issuerFingerprint || !isAgentId(peer.agentId)) throw unknownAgent();
  }

  async function authenticate(peer: PeerIdentity): Promise<AuthenticatedAgent> {
    const refused = unknownAgent;
    await checkIssuer(peer);
    const row = await loadAgent(peer.agentId);
    if (row === null || row.tenant !== peer.tenant) throw refused();
    if (row.revoked_at !== null) throw new AgentError(403, 'agent_revoked', 'this agent was revoked by an administrator; it must be enrolled again with a new token');
    if (row.certificate_serial !== peer.serial) {
      throw new AgentError(401, 'certificate_superseded', 'this certificate was replaced by a renewal; use the newest certificate');
    }
    if (new Date(row.certificate_expires_at).getTime() <= now()) {
      throw new AgentError(401, 'certificate_expired', 'the client certificate has expired; enroll again with a new token');
    }
    return { tenant: row.tenant, agentId: row.agent_id, serial: row.certificate_serial };
  }

  async function heartbeat(peer: PeerIdentity, input: HeartbeatInput) {
    await checkIssuer(peer);
    const at = new Date(now());
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
    const { rows } = await db.query<{ last_seen_at: Date | string; certificate_expires_at: Date | string }>(
      `UPDATE agents SET last_seen_at = $4, os_version = $5, os_build = $6, posture = $7::jsonb, posture_observed_at = $8, posture_received_at = $4
       WHERE agent_id = $1 AND tenant = $2 AND certificate_serial = $3 AND revoked_at IS NULL AND certificate_expires_at > $4
       RETURNING last_seen_at, certificate_expires_at`,
      [peer.agentId, peer.tenant, peer.serial, at, input.os_version, input.os_build ?? null, JSON.stringify(posture), new Date(input.time)],
    );
    const row = rows[0];
    if (row === undefined) {
      await authenticate(peer);
      throw new AgentError(403, 'agent_revoked', 'this agent was revoked by an administrator; it must be enrolled again with a new token');
    }
    await changed(peer.tenant, peer.agentId);
    return { agent_id: peer.agentId, last_seen_at: iso(row.last_seen_at), certificate_expires_at: iso(row.certificate_expires_at) };
  }

  async function renew(agent: AuthenticatedAgent, csrPem: string, opts: { requestId?: string } = {}): Promise<IssuedIdentity> {
    const issued = await issue(agent.tenant, agent.agentId, csrPem);
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
        ...(opts.requestId !== undefined ? { requestId: opts.requestId } : {}),
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

  async function posture(tenant: string): Promise<AgentPostureEntry[]> {
    const { rows } = await db.query<AgentRow>(
      `SELECT ${AGENT_COLUMNS} FROM agents WHERE tenant = $1 AND revoked_at IS NULL ORDER BY enrolled_at DESC, agent_id LIMIT 10000`,
      [tenant],
    );
    return rows.map((row) => {
      return {
        source: 'agent',
        agent_id: row.agent_id,
        os_family: row.os_family,
        os_version: row.os_version,
        os_build: row.os_build,
        model: row.model,
        serial_fingerprint: row.serial_fingerprint,
        ...heartbeatReadings(row.posture),
        observed_at: isoOrNull(row.posture_observed_at),
        received_at: isoOrNull(row.posture_received_at),
        status: statusOf(row),
      };
    });
  }

  return {
    cas,
    createToken,
    enroll,
    list,
    get,
    revoke,
    authenticate,
    checkIssuer,
    heartbeat,
    renew,
    posture,
    onCaCreated: (listener) => {
      caListeners.push(listener);
    },
  };
}

export { SERIAL_FINGERPRINT_PREFIX };
