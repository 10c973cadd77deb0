/**
 * An enrolled agent's row of the `agents` table, declared once for the two folders that read it:
 * the agent service (which writes it and shows its summary) and asset identity (which reads live
 * agents as sources). It lives here because agents/ imports assets/, never the other way.
 */
export interface AgentRow {
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
  /** The latest heartbeat's readings (jsonb, or its text on drivers that hand it back as text). */
  posture: Record<string, unknown> | string | null;
  posture_observed_at: Date | string | null;
  posture_received_at: Date | string | null;
}

/** The columns asset identity reads of a live agent. */
export type AgentSourceRow = Pick<
  AgentRow,
  'agent_id' | 'os_family' | 'os_version' | 'os_build' | 'model' | 'serial_fingerprint' | 'hardware_fingerprint' | 'posture' | 'last_seen_at' | 'enrolled_at'
>;
