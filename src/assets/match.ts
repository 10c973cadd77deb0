/**
 * Deterministic matching: which sources are one machine. A pure function over plain data (no I/O,
 * no clock), so the same inputs always give the same assets and the same asset ids.
 *
 * 1. Serial fingerprint first: sources reporting one serial fingerprint are one asset, except when
 *    enrolled agents with that serial report different hardware fingerprints: then two machines
 *    claim one serial, nothing is merged on it, and a conflict names them.
 * 2. Then the Entra device id, for sources without a serial fingerprint: they join the one asset
 *    whose Intune records carry that Entra id; when it names several assets, nothing is merged and a
 *    conflict names them; when it names none, records sharing it are one asset (re-enrolled records
 *    without a serial).
 * 3. Everything else stands alone.
 *
 * An asset's id is derived from its anchor (the key it was formed on) and its tenant, so a re-match
 * finds the same id for the same machine, and the same serial in two tenants never shares an asset.
 */
import crypto from 'node:crypto';

export const SOURCE_KINDS = ['intune', 'agent'] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

export interface SourceIdentity {
  readonly kind: SourceKind;
  /** The connection id of an Intune record; '' for an agent. */
  readonly origin: string;
  /** Intune device id or agent id. */
  readonly source_id: string;
  readonly serial_fingerprint: string | null;
  /** Agents only. */
  readonly hardware_fingerprint: string | null;
  /** Intune records only. */
  readonly entra_device_id: string | null;
}

export const CONFLICT_KINDS = ['serial_on_several_machines', 'entra_device_id_on_several_assets'] as const;
export type ConflictKind = (typeof CONFLICT_KINDS)[number];

export interface SourceRef {
  readonly kind: SourceKind;
  readonly id: string;
}

export interface MatchConflict {
  /** Stable per tenant: the kind and the ambiguous key. */
  readonly key: string;
  readonly kind: ConflictKind;
  readonly serial_fingerprint: string | null;
  readonly entra_device_id: string | null;
  /** The assets the key could have joined, sorted. */
  readonly anchors: readonly string[];
  readonly sources: readonly SourceRef[];
}

export interface MatchResult {
  /** sourceKey(source) -> anchor. */
  readonly anchorOf: ReadonlyMap<string, string>;
  readonly conflicts: readonly MatchConflict[];
}

export const sourceKey = (s: Pick<SourceIdentity, 'kind' | 'origin' | 'source_id'>): string => `${s.kind}:${s.origin}:${s.source_id}`;

const soloAnchor = (s: SourceIdentity): string => `source:${sourceKey(s)}`;
const refOf = (s: SourceIdentity): SourceRef => ({ kind: s.kind, id: s.source_id });
const byRef = (a: SourceRef, b: SourceRef): number => (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** A UUID (version 8, RFC 9562: name-based, custom hash) from SHA-256 of tenant and anchor. */
export function assetIdOf(tenant: string, anchor: string): string {
  const h = crypto.createHash('sha256').update(`${tenant}\u0000${anchor}`, 'utf8').digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x80;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string | null): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    if (key === null) continue;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [item]);
    else group.push(item);
  }
  return groups;
}

/** Step 1: serial groups; a serial two machines claim is split per machine and reported. */
function matchSerials(sources: readonly SourceIdentity[], anchorOf: Map<string, string>, conflicts: MatchConflict[]): void {
  for (const [serial, group] of groupBy(sources, (s) => s.serial_fingerprint)) {
    const machines = new Set<string>();
    for (const s of group) if (s.kind === 'agent' && s.hardware_fingerprint !== null) machines.add(s.hardware_fingerprint);
    if (machines.size <= 1) {
      const anchor = `serial:${serial}`;
      for (const s of group) anchorOf.set(sourceKey(s), anchor);
      continue;
    }
    const anchors = new Set<string>();
    for (const s of group) {
      const anchor =
        s.kind === 'intune' ? `serial:${serial}|intune` : s.hardware_fingerprint === null ? soloAnchor(s) : `serial:${serial}|hardware:${s.hardware_fingerprint}`;
      anchorOf.set(sourceKey(s), anchor);
      anchors.add(anchor);
    }
    conflicts.push({
      key: `serial_on_several_machines:${serial}`,
      kind: 'serial_on_several_machines',
      serial_fingerprint: serial,
      entra_device_id: null,
      anchors: [...anchors].sort(),
      sources: group.map(refOf).sort(byRef),
    });
  }
}

/** Step 2: Entra device ids, for the sources without a serial. */
function matchEntraIds(sources: readonly SourceIdentity[], anchorOf: Map<string, string>, conflicts: MatchConflict[]): void {
  for (const [entra, group] of groupBy(sources, (s) => s.entra_device_id)) {
    const loose: SourceIdentity[] = [];
    const anchorSet = new Set<string>();
    for (const s of group) {
      const anchor = anchorOf.get(sourceKey(s));
      if (anchor === undefined) loose.push(s);
      else anchorSet.add(anchor);
    }
    const anchors = [...anchorSet].sort();
    if (anchors.length === 1) {
      for (const s of loose) anchorOf.set(sourceKey(s), anchors[0] as string);
    } else if (anchors.length === 0) {
      for (const s of loose) anchorOf.set(sourceKey(s), `entra:${entra}`);
    } else {
      for (const s of loose) anchorOf.set(sourceKey(s), soloAnchor(s));
      conflicts.push({
        key: `entra_device_id_on_several_assets:${entra}`,
        kind: 'entra_device_id_on_several_assets',
        serial_fingerprint: null,
        entra_device_id: entra,
        anchors: [...anchors, ...loose.map(soloAnchor)].sort(),
        sources: group.map(refOf).sort(byRef),
      });
    }
  }
}

export function matchSources(sources: readonly SourceIdentity[]): MatchResult {
  const anchorOf = new Map<string, string>();
  const conflicts: MatchConflict[] = [];
  matchSerials(sources, anchorOf, conflicts);
  matchEntraIds(sources, anchorOf, conflicts);
  for (const s of sources) {
    const key = sourceKey(s);
    if (!anchorOf.has(key)) anchorOf.set(key, `source:${key}`);
  }
  conflicts.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { anchorOf, conflicts };
}

/** The keys a source can be matched on: what an incremental re-match follows to find its neighbours. */
export function keysOf(s: Pick<SourceIdentity, 'serial_fingerprint' | 'entra_device_id'>): { serials: string[]; entraIds: string[] } {
  return {
    serials: s.serial_fingerprint === null ? [] : [s.serial_fingerprint],
    entraIds: s.entra_device_id === null ? [] : [s.entra_device_id],
  };
}
