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
import { CONFLICT_KINDS, SOURCE_KINDS } from '../connector/assets.js';

export { CONFLICT_KINDS, SOURCE_KINDS };
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

const refOf = (s: SourceIdentity): SourceRef => ({ kind: s.kind, id: s.source_id });
const byRef = (a: SourceRef, b: SourceRef): number => (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

const HEX = '0123456789abcdef';
// One-shot crypto.hash where it exists (Node 20.12+): no Hash object per call. Node 20.11 builds one.
const sha256Hex: (text: string) => string =
  typeof crypto.hash === 'function' ? (text) => crypto.hash('sha256', text, 'hex') : (text) => crypto.createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * A UUID (version 8, RFC 9562: name-based, custom hash) from SHA-256 of tenant and anchor: one
 * one-shot hash per asset, the version and variant bits set on the hex text. Joined, not
 * concatenated: a template of slices is a rope that keeps the whole digest text and every slice
 * alive (about 380 bytes per id, 38 MB for 100,000 assets); a join is one flat 36-character string.
 */
export function assetIdOf(tenant: string, anchor: string): string {
  const hex = sha256Hex(`${tenant}\u0000${anchor}`);
  const variant = HEX[(Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8] as string;
  return [hex.slice(0, 8), hex.slice(8, 12), `8${hex.slice(13, 16)}`, `${variant}${hex.slice(17, 20)}`, hex.slice(20, 32)].join('-');
}

/** Indices of the sources grouped by a key (sources without one left out), in source order. */
function groupBy(sources: readonly SourceIdentity[], keyOf: (s: SourceIdentity) => string | null): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  for (let i = 0; i < sources.length; i++) {
    const key = keyOf(sources[i] as SourceIdentity);
    if (key === null) continue;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [i]);
    else group.push(i);
  }
  return groups;
}

/** What the steps share: the sources, each one's key (computed once), and the anchor found so far by index. */
interface MatchState {
  readonly sources: readonly SourceIdentity[];
  readonly keys: readonly string[];
  readonly anchors: (string | undefined)[];
  readonly conflicts: MatchConflict[];
}

const soloAnchorAt = (st: MatchState, i: number): string => `source:${st.keys[i] as string}`;

/** Step 1: serial groups; a serial two machines claim is split per machine and reported. */
function matchSerials(st: MatchState): void {
  const { sources, anchors } = st;
  for (const [serial, group] of groupBy(sources, (s) => s.serial_fingerprint)) {
    const machines = new Set<string>();
    for (const i of group) {
      const s = sources[i] as SourceIdentity;
      if (s.kind === 'agent' && s.hardware_fingerprint !== null) machines.add(s.hardware_fingerprint);
    }
    if (machines.size <= 1) {
      const anchor = `serial:${serial}`;
      for (const i of group) anchors[i] = anchor;
      continue;
    }
    const anchorSet = new Set<string>();
    for (const i of group) {
      const s = sources[i] as SourceIdentity;
      const anchor =
        s.kind === 'intune' ? `serial:${serial}|intune` : s.hardware_fingerprint === null ? soloAnchorAt(st, i) : `serial:${serial}|hardware:${s.hardware_fingerprint}`;
      anchors[i] = anchor;
      anchorSet.add(anchor);
    }
    st.conflicts.push({
      key: `serial_on_several_machines:${serial}`,
      kind: 'serial_on_several_machines',
      serial_fingerprint: serial,
      entra_device_id: null,
      anchors: [...anchorSet].sort(),
      sources: group.map((i) => refOf(sources[i] as SourceIdentity)).sort(byRef),
    });
  }
}

/** Step 2: Entra device ids, for the sources without a serial. */
function matchEntraIds(st: MatchState): void {
  const { sources, anchors } = st;
  for (const [entra, group] of groupBy(sources, (s) => s.entra_device_id)) {
    const loose: number[] = [];
    const anchorSet = new Set<string>();
    for (const i of group) {
      const anchor = anchors[i];
      if (anchor === undefined) loose.push(i);
      else anchorSet.add(anchor);
    }
    const found = [...anchorSet].sort();
    if (found.length === 1) {
      for (const i of loose) anchors[i] = found[0] as string;
    } else if (found.length === 0) {
      for (const i of loose) anchors[i] = `entra:${entra}`;
    } else {
      for (const i of loose) anchors[i] = soloAnchorAt(st, i);
      st.conflicts.push({
        key: `entra_device_id_on_several_assets:${entra}`,
        kind: 'entra_device_id_on_several_assets',
        serial_fingerprint: null,
        entra_device_id: entra,
        anchors: [...found, ...loose.map((i) => soloAnchorAt(st, i))].sort(),
        sources: group.map((i) => refOf(sources[i] as SourceIdentity)).sort(byRef),
      });
    }
  }
}

/**
 * Matches the sources; `anchors[i]` is the anchor of `sources[i]` (`anchorOf` the same by source
 * key). Each source's key is computed once, and the steps index sources by position, so a large
 * tenant's match allocates little beyond its result.
 */
export function matchSources(sources: readonly SourceIdentity[]): MatchResult & { readonly anchors: readonly string[]; readonly keys: readonly string[] } {
  const st: MatchState = { sources, keys: sources.map(sourceKey), anchors: new Array<string | undefined>(sources.length), conflicts: [] };
  matchSerials(st);
  matchEntraIds(st);
  for (let i = 0; i < sources.length; i++) st.anchors[i] ??= soloAnchorAt(st, i);
  st.conflicts.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const anchors = st.anchors as string[];
  let anchorOf: Map<string, string> | undefined;
  return {
    // Built when asked for: the service reads anchors by index and never needs the map.
    get anchorOf() {
      anchorOf ??= new Map(anchors.map((a, i) => [st.keys[i] as string, a]));
      return anchorOf;
    },
    anchors,
    keys: st.keys,
    conflicts: st.conflicts,
  };
}

/** The keys a source can be matched on: what an incremental re-match follows to find its neighbours. */
export function keysOf(s: Pick<SourceIdentity, 'serial_fingerprint' | 'entra_device_id'>): { serials: string[]; entraIds: string[] } {
  return {
    serials: s.serial_fingerprint === null ? [] : [s.serial_fingerprint],
    entraIds: s.entra_device_id === null ? [] : [s.entra_device_id],
  };
}
