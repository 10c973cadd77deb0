/**
 * The matcher and the attribute merge as plain functions: serial first, then Entra id; ambiguity
 * reported, never merged; ids stable and per tenant; precedence, staleness and disagreements.
 */
import { describe, expect, it } from 'vitest';
import { assetIdOf, matchSources, sourceKey, type SourceIdentity } from '../../src/assets/match.js';
import { AGENT_STALE_AFTER_MS, INTUNE_STALE_AFTER_MS, mergeAttributes, summarize, type AgentObservation, type ObservedSource } from '../../src/assets/attributes.js';
import type { DevicePosture } from '../../src/connector/posture.js';
import { samplePosture } from '../helpers/posture.js';

const FP = (n: number) => `hmac-sha256:${n.toString(16).padStart(64, '0')}`;
const C = '11111111-1111-4111-8111-111111111111';
const intune = (id: string, serial: string | null, entra: string | null = null): SourceIdentity => ({
  kind: 'intune',
  origin: C,
  source_id: id,
  serial_fingerprint: serial,
  hardware_fingerprint: null,
  entra_device_id: entra,
});
const agent = (id: string, serial: string | null, hardware: string | null = null): SourceIdentity => ({
  kind: 'agent',
  origin: '',
  source_id: id,
  serial_fingerprint: serial,
  hardware_fingerprint: hardware,
  entra_device_id: null,
});

function groups(sources: SourceIdentity[]) {
  const { anchorOf, conflicts } = matchSources(sources);
  const byAnchor = new Map<string, string[]>();
  for (const s of sources) {
    const a = anchorOf.get(sourceKey(s)) as string;
    byAnchor.set(a, [...(byAnchor.get(a) ?? []), s.source_id].sort());
  }
  return { sets: [...byAnchor.values()].map((g) => g.join(',')).sort(), conflicts };
}

describe('matchSources', () => {
  it('joins an Intune record and an agent by serial fingerprint, and re-enrolled records with them', () => {
    const { sets, conflicts } = groups([intune('i1', FP(1), 'e1'), intune('i1-old', FP(1), 'e1'), agent('a1', FP(1), FP(100)), intune('i2', FP(2))]);
    expect(sets).toEqual(['a1,i1,i1-old', 'i2']);
    expect(conflicts).toEqual([]);
  });

  it('joins a record without a serial to the asset its Entra device id names', () => {
    expect(groups([intune('i1', FP(1), 'e1'), intune('i1-noserial', null, 'e1'), agent('a1', FP(1))]).sets).toEqual(['a1,i1,i1-noserial']);
    // Without a serial anywhere, records sharing an Entra id are one asset.
    expect(groups([intune('x', null, 'e9'), intune('y', null, 'e9')]).sets).toEqual(['x,y']);
  });

  it('reports two machines claiming one serial as a conflict and merges nothing on it', () => {
    const { sets, conflicts } = groups([agent('a1', FP(1), FP(100)), agent('a2', FP(1), FP(200)), intune('i1', FP(1))]);
    expect(sets).toEqual(['a1', 'a2', 'i1']);
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]).toMatchObject({ kind: 'serial_on_several_machines', serial_fingerprint: FP(1) });
    expect(conflicts[0]?.sources.map((s) => s.id)).toEqual(['a1', 'a2', 'i1']);
    expect(conflicts[0]?.anchors).toHaveLength(3);
  });

  it('reports an Entra id on two serials as a conflict; a serial-less record naming both stands alone', () => {
    const { sets, conflicts } = groups([intune('i1', FP(1), 'e1'), intune('i2', FP(2), 'e1'), intune('i3', null, 'e1')]);
    expect(sets).toEqual(['i1', 'i2', 'i3']);
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]).toMatchObject({ kind: 'entra_device_id_on_several_assets', entra_device_id: 'e1' });
  });

  it('gives the same machine the same id on every run, whatever the order, and another id in another tenant', () => {
    const sources = [intune('i1', FP(1)), agent('a1', FP(1)), intune('i2', null, 'e2'), agent('a3', null)];
    const a = matchSources(sources).anchorOf;
    const b = matchSources([...sources].reverse()).anchorOf;
    for (const s of sources) expect(a.get(sourceKey(s))).toBe(b.get(sourceKey(s)));
    const anchor = a.get(sourceKey(sources[0] as SourceIdentity)) as string;
    expect(assetIdOf('t1', anchor)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(assetIdOf('t1', anchor)).not.toBe(assetIdOf('t2', anchor));
    // Stored ids outlive releases: the derivation is pinned (SHA-256 of tenant NUL anchor, version 8, RFC 9562 variant).
    expect(assetIdOf('t1', 'serial:hmac-sha256:00ff')).toBe('49982228-8bd2-86ee-a43b-020f23127d6e');
    expect(assetIdOf('default', 'source:agent::a1')).toBe('1b2892b6-4d16-8917-8385-fdda0e8fce35');
  });
});

const NOW = Date.parse('2026-06-01T12:00:00Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const posture = (over: Partial<DevicePosture> = {}): DevicePosture =>
  samplePosture({
    device_id: 'd1',
    os_version: '14.4.1',
    threat_state: 'secured',
    enrolled_at: ago(90 * 86_400_000),
    last_sync_at: ago(3_600_000),
    serial_fingerprint: FP(1),
    ...over,
  });
const agentObs = (over: Partial<AgentObservation> = {}): AgentObservation => ({
  os_family: 'macos',
  os_version: '14.4.1',
  os_build: '23E224',
  model: 'MacBookPro18,3',
  filevault: true,
  firewall: true,
  sip: true,
  gatekeeper: 'unknown',
  agent_version: '1.0.0',
  ...over,
});
const I = (p: DevicePosture, seen = p.last_sync_at): ObservedSource => ({ kind: 'intune', source_id: p.device_id, last_seen_at: seen, observation: p });
const A = (o: AgentObservation, seen: string | null = ago(60_000), id = 'a1'): ObservedSource => ({ kind: 'agent', source_id: id, last_seen_at: seen, observation: o });

describe('mergeAttributes', () => {
  it('says the source and confidence of every attribute, by the documented precedence', () => {
    const { attributes, disagreements } = mergeAttributes([I(posture()), A(agentObs({ os_version: '14.4.1' }))], NOW);
    expect(attributes['encrypted']).toEqual({ value: true, source: 'intune', source_id: 'd1', confidence: 'mdm' });
    expect(attributes['os_version']).toMatchObject({ value: '14.4.1', source: 'agent', confidence: 'agent' });
    expect(attributes['firewall']).toMatchObject({ value: true, source: 'agent' });
    expect(attributes['compliance_state']).toMatchObject({ value: 'compliant', source: 'intune', confidence: 'mdm' });
    expect(attributes['gatekeeper']).toBeUndefined();
    expect(disagreements).toEqual([]);
  });

  it('keeps and shows a disagreement: Intune says encrypted, the agent says FileVault off', () => {
    const merged = mergeAttributes([I(posture({ is_encrypted: true })), A(agentObs({ filevault: false }))], NOW);
    expect(merged.attributes['encrypted']).toMatchObject({ value: true, source: 'intune' });
    expect(merged.disagreements).toEqual([
      {
        attribute: 'encrypted',
        values: [
          { source: 'intune', source_id: 'd1', value: true, confidence: 'mdm' },
          { source: 'agent', source_id: 'a1', value: false, confidence: 'agent' },
        ],
      },
    ]);
    expect(summarize([I(posture()), A(agentObs({ filevault: false }))]).disagreement).toBe(true);
  });

  it('treats "14.4.1 (23E224)" and "14.4.1" as the same version, 14.5 as another', () => {
    expect(mergeAttributes([I(posture({ os_version: '14.4.1 (23E224)' })), A(agentObs())], NOW).disagreements).toEqual([]);
    expect(mergeAttributes([I(posture({ os_version: '14.4.1' })), A(agentObs({ os_version: '14.5' }))], NOW).disagreements.map((d) => d.attribute)).toEqual(['os_version']);
  });

  it('marks a source stale past its age, and lets a fresh source of lower precedence speak first', () => {
    const staleIntune = posture({ last_sync_at: ago(INTUNE_STALE_AFTER_MS + 60_000) });
    const merged = mergeAttributes([I(staleIntune), A(agentObs())], NOW);
    expect(merged.attributes['encrypted']).toMatchObject({ value: true, source: 'agent', confidence: 'agent' });
    expect(merged.attributes['compliance_state']).toMatchObject({ source: 'intune', confidence: 'stale' });
    const staleAgent = mergeAttributes([I(posture()), A(agentObs({ os_version: '14.4.1' }), ago(AGENT_STALE_AFTER_MS + 1))], NOW);
    expect(staleAgent.attributes['os_version']).toMatchObject({ source: 'intune', confidence: 'mdm' });
    expect(staleAgent.attributes['firewall']).toMatchObject({ source: 'agent', confidence: 'stale' });
  });

  it('lets the current record of re-enrolled Intune records speak, and the most recently seen agent', () => {
    const old = posture({ device_id: 'old', compliance_state: 'noncompliant', last_sync_at: ago(10 * 86_400_000) });
    const current = posture({ device_id: 'new', compliance_state: 'compliant' });
    const merged = mergeAttributes([I(old), I(current), A(agentObs({ firewall: false }), ago(10 * 60_000), 'a-old'), A(agentObs({ firewall: true }), ago(60_000), 'a-new')], NOW);
    expect(merged.attributes['compliance_state']).toMatchObject({ value: 'compliant', source_id: 'new' });
    expect(merged.attributes['firewall']).toMatchObject({ value: true, source_id: 'a-new' });
    expect(summarize([I(old), I(current)])).toMatchObject({ compliance_state: 'compliant', has_intune: true, has_agent: false });
  });
});
