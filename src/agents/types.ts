/** The agent service's public types: what it takes, what it returns, and its options. */
import type { TriState } from '../assets/attributes.js';
import type { Actor, ChronicleWriter } from '../chronicle/types.js';
import type { Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import type { CaStore } from './ca.js';
import type { z } from 'zod';
import type {
  AGENT_STATUSES,
  AgentPostureEntrySchema,
  AgentSummarySchema,
  CreatedTokenSchema,
  EnrollBodySchema,
  HeartbeatAckSchema,
  HeartbeatBodySchema,
  IssuedIdentitySchema,
} from './schemas.js';

export type { TriState };

// Request and answer shapes are inferred from their one declaration in ./schemas.ts.
export type AgentStatus = (typeof AGENT_STATUSES)[number];
export type EnrollInput = Readonly<z.infer<typeof EnrollBodySchema>>;
export type IssuedIdentity = Readonly<z.infer<typeof IssuedIdentitySchema>>;
export type AgentSummary = Readonly<z.infer<typeof AgentSummarySchema>>;
export type HeartbeatInput = Readonly<z.infer<typeof HeartbeatBodySchema>>;
export type HeartbeatAck = Readonly<z.infer<typeof HeartbeatAckSchema>>;
/** The posture an agent reported, as the posture API shows it until assets merge sources. */
export type AgentPostureEntry = Readonly<z.infer<typeof AgentPostureEntrySchema>>;
export type CreatedToken = Readonly<z.infer<typeof CreatedTokenSchema>>;

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
  heartbeat(peer: PeerIdentity, input: HeartbeatInput): Promise<HeartbeatAck>;
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
