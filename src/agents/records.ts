/**
 * An agent's stored row and what is shown of it: its status (active, stale, revoked), its summary,
 * and the keyed fingerprints that stand in for serial numbers and hardware UUIDs.
 */
import crypto from 'node:crypto';
import { iso, isoOrNull } from '../common/values.js';
import { fingerprintSerial } from '../connector/redaction.js';
import type { Db } from '../db/index.js';
import type { AgentRow } from '../assets/agent-rows.js';
import type { AgentClass, AgentOsFamily, Platform } from './rules.js';
import type { AgentStatus, AgentSummary } from './types.js';

const AGENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const AGENT_COLUMNS =
  'agent_id, tenant, platform, agent_class, os_family, os_version, os_build, model, serial_fingerprint, hardware_fingerprint, certificate_serial, certificate_expires_at, enrolled_at, last_seen_at, revoked_at, posture, posture_observed_at, posture_received_at';

export const digestOf = (token: string): Buffer => crypto.createHash('sha256').update(token, 'utf8').digest();

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

/** Revoked, else stale when its certificate has expired or it has not been heard from for staleAfterMs. */
export function statusOf(row: AgentRow, nowMs: number, staleAfterMs: number): AgentStatus {
  if (row.revoked_at !== null) return 'revoked';
  const seen = new Date(row.last_seen_at ?? row.enrolled_at).getTime();
  if (new Date(row.certificate_expires_at).getTime() <= nowMs || nowMs - seen > staleAfterMs) return 'stale';
  return 'active';
}

/** What the enrollment rule table admitted the agent as: a stored row carries nothing else. */
export function enrolledAs(row: AgentRow): { platform: Platform; agent_class: AgentClass; os_family: AgentOsFamily } {
  return { platform: row.platform as Platform, agent_class: row.agent_class as AgentClass, os_family: row.os_family as AgentOsFamily };
}

export function summaryOf(row: AgentRow, nowMs: number, staleAfterMs: number): AgentSummary & { tenant: string } {
  return {
    agent_id: row.agent_id,
    tenant: row.tenant,
    ...enrolledAs(row),
    os_version: row.os_version,
    os_build: row.os_build,
    model: row.model,
    enrolled_at: iso(row.enrolled_at),
    last_seen_at: isoOrNull(row.last_seen_at),
    certificate_expires_at: iso(row.certificate_expires_at),
    status: statusOf(row, nowMs, staleAfterMs),
    serial_fingerprint: row.serial_fingerprint,
    hardware_fingerprint: row.hardware_fingerprint,
  };
}

export const publicSummary = ({ tenant: _tenant, ...rest }: AgentSummary & { tenant: string }): AgentSummary => rest;

export async function loadAgent(db: Db, agentId: string): Promise<AgentRow | null> {
  if (!isAgentId(agentId)) return null;
  const { rows } = await db.query<AgentRow>(`SELECT ${AGENT_COLUMNS} FROM agents WHERE agent_id = $1`, [agentId]);
  return rows[0] ?? null;
}
