/**
 * What the agent service's parts share, built once by createAgentService and passed to each of
 * them explicitly: storage, the audit trail, the clock, the tenant CAs and the service's limits.
 */
import type { ChronicleWriter } from '../chronicle/types.js';
import type { Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import type { CaStore } from './ca.js';
import { AgentError } from './errors.js';
import type { AgentRow } from '../assets/agent-rows.js';
import { summaryOf } from './records.js';
import type { AgentSummary } from './types.js';

export interface AgentContext {
  readonly db: Db;
  readonly chronicle: ChronicleWriter;
  readonly logger: Logger;
  readonly now: () => number;
  readonly cas: CaStore;
  /** Lifetime of an issued client certificate. */
  readonly validityMs: number;
  readonly defaultTokenTtlSeconds: number;
  readonly staleAfterMs: number;
  readonly fingerprintKeyFor: (tenant: string) => Buffer;
  /** Asset identity re-matches the agent; a failure is logged, never thrown. */
  readonly changed: (tenant: string, agentId: string) => Promise<void>;
  /** Tells this process's listeners that a tenant CA was just made; failures are logged. */
  readonly caCreated: () => Promise<void>;
}

/** A row's summary, its status judged at the context's now. */
export function summarize(ctx: AgentContext, row: AgentRow): AgentSummary & { tenant: string } {
  return summaryOf(row, ctx.now(), ctx.staleAfterMs);
}

export function unknownAgent(): AgentError {
  return new AgentError(401, 'unknown_agent', 'the client certificate does not name an enrolled agent of its tenant; enroll again');
}
