/** The administrator's view of enrolled agents: list, look up, revoke, and the posture they report. */
import { heartbeatReadings } from '../assets/attributes.js';
import type { Actor } from '../chronicle/types.js';
import { isoOrNull, defined } from '../common/values.js';
import { summarize, type AgentContext } from './context.js';
import { AgentError } from './errors.js';
import type { AgentRow } from '../assets/agent-rows.js';
import { AGENT_COLUMNS, enrolledAs, isAgentId, loadAgent, publicSummary, statusOf } from './records.js';
import type { AgentPostureEntry, AgentSummary } from './types.js';

export async function listAgents(ctx: AgentContext, tenant: string, opts: { includeRevoked?: boolean } = {}): Promise<AgentSummary[]> {
  const { rows } = await ctx.db.query<AgentRow>(
    `SELECT ${AGENT_COLUMNS} FROM agents WHERE tenant = $1 ${opts.includeRevoked === false ? 'AND revoked_at IS NULL' : ''}
     ORDER BY enrolled_at DESC, agent_id LIMIT 10000`,
    [tenant],
  );
  return rows.map((row) => publicSummary(summarize(ctx, row)));
}

export async function getAgent(ctx: AgentContext, tenant: string | undefined, agentId: string): Promise<(AgentSummary & { tenant: string }) | null> {
  const row = await loadAgent(ctx.db, agentId.toLowerCase());
  if (row === null || (tenant !== undefined && row.tenant !== tenant)) return null;
  return summarize(ctx, row);
}

export async function revokeAgent(
  ctx: AgentContext,
  tenant: string | undefined,
  agentId: string,
  actor: Actor,
  opts: { requestId?: string } = {},
): Promise<(AgentSummary & { tenant: string }) | null> {
  const { db, chronicle } = ctx;
  const id = agentId.toLowerCase();
  if (!isAgentId(id)) throw new AgentError(400, 'invalid_agent_id', 'an agent id is a GUID, as `agents list` shows it', 'agent_id');
  const row = await loadAgent(db, id);
  if (row === null || (tenant !== undefined && row.tenant !== tenant)) return null;
  if (row.revoked_at !== null) return summarize(ctx, row);
  const { rows } = await db.query<AgentRow>(
    `UPDATE agents SET revoked_at = $2, revoked_by = $3 WHERE agent_id = $1 AND revoked_at IS NULL RETURNING ${AGENT_COLUMNS}`,
    [id, new Date(ctx.now()), actor.id.slice(0, 200)],
  );
  const updated = rows[0];
  if (updated === undefined) {
    const current = await loadAgent(db, id);
    return current === null ? null : summarize(ctx, current);
  }
  try {
    await chronicle.append({
      tenant: row.tenant,
      type: 'agent.revoked',
      actor,
      ...defined({ requestId: opts.requestId }),
      data: { agent_id: id, platform: row.platform, agent_class: row.agent_class },
    });
  } catch (err) {
    await db.query('UPDATE agents SET revoked_at = NULL, revoked_by = NULL WHERE agent_id = $1', [id]).catch(() => undefined);
    throw err;
  }
  await ctx.changed(row.tenant, id);
  return summarize(ctx, updated);
}

export async function agentPosture(ctx: AgentContext, tenant: string): Promise<AgentPostureEntry[]> {
  const { rows } = await ctx.db.query<AgentRow>(
    `SELECT ${AGENT_COLUMNS} FROM agents WHERE tenant = $1 AND revoked_at IS NULL ORDER BY enrolled_at DESC, agent_id LIMIT 10000`,
    [tenant],
  );
  return rows.map((row) => {
    return {
      source: 'agent',
      agent_id: row.agent_id,
      os_family: enrolledAs(row).os_family,
      os_version: row.os_version,
      os_build: row.os_build,
      model: row.model,
      serial_fingerprint: row.serial_fingerprint,
      ...heartbeatReadings(row.posture),
      observed_at: isoOrNull(row.posture_observed_at),
      received_at: isoOrNull(row.posture_received_at),
      status: statusOf(row, ctx.now(), ctx.staleAfterMs),
    };
  });
}
