/**
 * The merged posture of an asset: per attribute, the value of the first source in the attribute's
 * precedence that reports one and is not stale, else the first that reports one (then marked
 * stale); and every disagreement between sources, kept and shown. Pure: sources and `now` in.
 *
 * Precedence (documented in README "Assets"):
 * - os_family, model: Intune, then the agent.
 * - os_version: the agent, then Intune (the agent reads it on the machine at every heartbeat;
 *   Intune's is from the last check-in).
 * - encrypted: Intune (isEncrypted, what compliance policies evaluate), then the agent (FileVault).
 * - compliance_state, ownership, management_agent, jailbroken, manufacturer: Intune only.
 * - firewall, sip, gatekeeper: the agent only.
 * Staleness: an Intune record is stale when its last check-in is older than 30 days (Intune's own
 * compliance validity period, the gate's default); an agent when its last heartbeat is older than
 * 24 hours (when the agent list calls it stale).
 */
import type { DevicePosture } from '../connector/posture.js';
import { currentRecordFirst } from '../connector/current-record.js';
import type { SourceKind } from './match.js';

export const INTUNE_STALE_AFTER_MS = 30 * 24 * 60 * 60 * 1000;
export const AGENT_STALE_AFTER_MS = 24 * 60 * 60 * 1000;

export const CONFIDENCES = ['mdm', 'agent', 'stale'] as const;
export type Confidence = (typeof CONFIDENCES)[number];
export type TriState = boolean | 'unknown';

/** What a stored heartbeat posture (jsonb, or its text) reports: booleans kept, anything else unknown. */
export function heartbeatReadings(raw: Record<string, unknown> | string | null): {
  filevault: TriState;
  firewall: TriState;
  sip: TriState;
  gatekeeper: TriState;
  uptime_seconds: number | null;
  agent_version: string | null;
} {
  const p = (raw === null ? {} : typeof raw === 'string' ? JSON.parse(raw) : raw) as Record<string, unknown>;
  const tri = (v: unknown): TriState => (v === true || v === false ? v : 'unknown');
  return {
    filevault: tri(p['filevault']),
    firewall: tri(p['firewall']),
    sip: tri(p['sip']),
    gatekeeper: tri(p['gatekeeper']),
    uptime_seconds: typeof p['uptime_seconds'] === 'number' ? p['uptime_seconds'] : null,
    agent_version: typeof p['agent_version'] === 'string' ? p['agent_version'] : null,
  };
}

/** What an agent contributes: its latest heartbeat's posture, never an identifier in clear. */
export interface AgentObservation {
  readonly os_family: string;
  readonly os_version: string | null;
  readonly os_build: string | null;
  readonly model: string | null;
  readonly filevault: TriState;
  readonly firewall: TriState;
  readonly sip: TriState;
  readonly gatekeeper: TriState;
  readonly agent_version: string | null;
}

export type ObservedSource =
  | { readonly kind: 'intune'; readonly source_id: string; readonly last_seen_at: string | null; readonly observation: DevicePosture }
  | { readonly kind: 'agent'; readonly source_id: string; readonly last_seen_at: string | null; readonly observation: AgentObservation };

export type AttributeValue = string | boolean | null;

export interface Attribute {
  /** Never null: an attribute no source reports is absent. */
  readonly value: Exclude<AttributeValue, null>;
  readonly source: SourceKind;
  readonly source_id: string;
  readonly confidence: Confidence;
}

export interface Disagreement {
  readonly attribute: string;
  readonly values: readonly { readonly source: SourceKind; readonly source_id: string; readonly value: AttributeValue; readonly confidence: Confidence }[];
}

/** What an asset's filterable summary reads of an Intune record: the current-record comparator's fields and the compared ones. */
export type IntuneSummaryFields = Pick<DevicePosture, 'device_id' | 'os_family' | 'os_version' | 'compliance_state' | 'is_encrypted' | 'last_sync_at' | 'enrolled_at'>;
/** What it reads of an agent's observation. */
export type AgentSummaryFields = Pick<AgentObservation, 'os_family' | 'os_version' | 'filevault'>;

/** A source as the summary sees it: an ObservedSource is one, and so is a row loaded with only these fields. */
export type SummarySource =
  | { readonly kind: 'intune'; readonly source_id: string; readonly last_seen_at: string | null; readonly observation: IntuneSummaryFields }
  | { readonly kind: 'agent'; readonly source_id: string; readonly last_seen_at: string | null; readonly observation: AgentSummaryFields };

type Reader = { readonly [K in SourceKind]?: (o: never) => AttributeValue };

const tri = (v: TriState): boolean | null => (v === 'unknown' ? null : v);
const intune = <T>(read: (o: DevicePosture) => T) => read as (o: never) => T;
const agent = <T>(read: (o: AgentObservation) => T) => read as (o: never) => T;

/** Attribute -> readers in precedence order (the object's key order is the precedence). */
export const ATTRIBUTE_PRECEDENCE: Readonly<Record<string, Reader>> = {
  os_family: { intune: intune((o) => o.os_family), agent: agent((o) => o.os_family) },
  os_version: { agent: agent((o) => o.os_version), intune: intune((o) => o.os_version) },
  compliance_state: { intune: intune((o) => o.compliance_state) },
  encrypted: { intune: intune((o) => o.is_encrypted), agent: agent((o) => tri(o.filevault)) },
  firewall: { agent: agent((o) => tri(o.firewall)) },
  sip: { agent: agent((o) => tri(o.sip)) },
  gatekeeper: { agent: agent((o) => tri(o.gatekeeper)) },
  jailbroken: { intune: intune((o) => (o.jailbroken === 'unknown' ? null : o.jailbroken === 'true')) },
  ownership: { intune: intune((o) => (o.ownership === 'unknown' ? null : o.ownership)) },
  management_agent: { intune: intune((o) => o.management_agent) },
  model: { intune: intune((o) => o.model), agent: agent((o) => o.model) },
  manufacturer: { intune: intune((o) => o.manufacturer) },
};

/** Attributes whose sources are compared: the same fact in both vocabularies. */
const COMPARED = ['os_family', 'os_version', 'encrypted'] as const;

/** "14.4.1" and "14.4.1 (23E224)" and "14.4" with a ".0" agree; "14.4.1" and "14.5" do not. */
function sameValue(attribute: string, a: AttributeValue, b: AttributeValue): boolean {
  if (attribute !== 'os_version' || typeof a !== 'string' || typeof b !== 'string') return a === b;
  const parts = (v: string) => (v.trim().split(/\s+/)[0] ?? '').split('.').map((p) => Number.parseInt(p, 10) || 0);
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < Math.max(x.length, y.length, 3); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return false;
  return true;
}

export function isStale(source: Pick<ObservedSource, 'kind' | 'last_seen_at'>, now: number): boolean {
  if (source.last_seen_at === null) return true;
  const age = now - Date.parse(source.last_seen_at);
  return Number.isNaN(age) || age > (source.kind === 'intune' ? INTUNE_STALE_AFTER_MS : AGENT_STALE_AFTER_MS);
}

export const confidenceOf = (source: Pick<ObservedSource, 'kind' | 'last_seen_at'>, now: number): Confidence =>
  isStale(source, now) ? 'stale' : source.kind === 'intune' ? 'mdm' : 'agent';

/**
 * One representative per kind: the current Intune record (the comparator the gate and MCP use) and
 * the most recently seen agent. Re-enrolled records stay listed as sources; the current one speaks.
 */
export function representatives<S extends SummarySource>(sources: readonly S[]): S[] {
  const out: S[] = [];
  let intuneRep: S | undefined;
  for (const s of sources) {
    if (s.kind !== 'intune') continue;
    // The comparator the gate and MCP use (currentRecord's), one record at a time.
    if (intuneRep === undefined || currentRecordFirst(s.observation as IntuneSummaryFields, intuneRep.observation as IntuneSummaryFields) < 0) intuneRep = s;
  }
  if (intuneRep !== undefined) out.push(intuneRep);
  let agentRep: S | undefined;
  for (const s of sources) {
    if (s.kind !== 'agent') continue;
    if (agentRep === undefined || (s.last_seen_at ?? '') > (agentRep.last_seen_at ?? '') || ((s.last_seen_at ?? '') === (agentRep.last_seen_at ?? '') && s.source_id > agentRep.source_id)) agentRep = s;
  }
  if (agentRep !== undefined) out.push(agentRep);
  return out;
}

function read(source: SummarySource, reader: Reader): AttributeValue | undefined {
  const fn = reader[source.kind] as ((o: unknown) => AttributeValue) | undefined;
  return fn === undefined ? undefined : fn(source.observation);
}

export interface MergedPosture {
  readonly attributes: Readonly<Record<string, Attribute>>;
  readonly disagreements: readonly Disagreement[];
}

export function mergeAttributes(sources: readonly ObservedSource[], now: number): MergedPosture {
  const reps = representatives(sources);
  const attributes: Record<string, Attribute> = {};
  for (const [name, reader] of Object.entries(ATTRIBUTE_PRECEDENCE)) {
    const candidates: Attribute[] = [];
    for (const kind of Object.keys(reader) as SourceKind[]) {
      const source = reps.find((s) => s.kind === kind);
      if (source === undefined) continue;
      const value = read(source, reader);
      if (value === undefined || value === null) continue;
      candidates.push({ value, source: kind, source_id: source.source_id, confidence: confidenceOf(source, now) });
    }
    const chosen = candidates.find((c) => c.confidence !== 'stale') ?? candidates[0];
    if (chosen !== undefined) attributes[name] = chosen;
  }
  return { attributes, disagreements: disagreementsOf(reps, now) };
}

/** Time-independent except for the confidence shown beside each value. */
export function disagreementsOf(reps: readonly SummarySource[], now: number): Disagreement[] {
  const out: Disagreement[] = [];
  // One source cannot disagree with itself (most assets of a large tenant).
  if (reps.length < 2) return out;
  for (const name of COMPARED) {
    const reader = ATTRIBUTE_PRECEDENCE[name] as Reader;
    const values = reps
      .map((s) => ({ source: s.kind, source_id: s.source_id, value: read(s, reader) ?? null, confidence: confidenceOf(s, now) }))
      .filter((v) => v.value !== null);
    if (values.length > 1 && values.some((v) => !sameValue(name, v.value, (values[0] as (typeof values)[number]).value))) {
      out.push({ attribute: name, values });
    }
  }
  return out;
}

/** The filterable summary of an asset, independent of the time of reading. */
export interface AssetSummary {
  readonly os_family: string;
  readonly compliance_state: string | null;
  readonly has_intune: boolean;
  readonly has_agent: boolean;
  readonly disagreement: boolean;
}

export function summarize(sources: readonly SummarySource[]): AssetSummary {
  const reps = representatives(sources);
  const intuneRep = reps.find((s): s is Extract<SummarySource, { kind: 'intune' }> => s.kind === 'intune');
  const agentRep = reps.find((s): s is Extract<SummarySource, { kind: 'agent' }> => s.kind === 'agent');
  return {
    os_family: intuneRep?.observation.os_family ?? agentRep?.observation.os_family ?? 'other',
    compliance_state: intuneRep?.observation.compliance_state ?? null,
    has_intune: intuneRep !== undefined,
    has_agent: agentRep !== undefined,
    disagreement: disagreementsOf(reps, 0).length > 0,
  };
}
