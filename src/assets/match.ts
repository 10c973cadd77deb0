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

/**
 * The identity keys of n sources as numbers: equal keys, equal numbers (any numbering, from 0),
 * -1 for none. Matching needs nothing else, so a whole tenant's match holds a few typed arrays,
 * never its sources' strings; whoever numbered the keys renders anchors from the members' keys.
 */
export interface KeyColumns {
  readonly count: number;
  /** 1 for an agent, 0 for an Intune record. */
  readonly agent: Uint8Array;
  readonly serial: Int32Array;
  readonly entra: Int32Array;
  /** Agents only. */
  readonly hardware: Int32Array;
}

/** What an asset was formed on; its anchor text is rendered from its members' keys by `anchorText`. */
export const ANCHOR_KINDS = ['serial', 'serial_intune', 'serial_hardware', 'entra', 'source'] as const;
export type AnchorKind = (typeof ANCHOR_KINDS)[number];
const SERIAL = 0;
const SERIAL_INTUNE = 1;
const SERIAL_HARDWARE = 2;
const ENTRA = 3;
const SOURCE = 4;

/** A conflict by index: the assets the key could have joined and the sources that report it. */
export interface IndexConflict {
  readonly kind: ConflictKind;
  /** A source whose serial (serial_on_several_machines) or Entra id (the other kind) is the ambiguous key. */
  readonly keySource: number;
  readonly assets: readonly number[];
  readonly sources: readonly number[];
}

/** Which asset each source belongs to (`assetOf`), what each asset was formed on, and the conflicts. */
export interface Membership {
  readonly assets: number;
  readonly assetOf: Int32Array;
  /** Per asset, an index into ANCHOR_KINDS. */
  readonly anchorKind: Uint8Array;
  /** Per asset, 1 when a conflict names it. */
  readonly inConflict: Uint8Array;
  readonly conflicts: readonly IndexConflict[];
}

/** Sources grouped by a numbered key (sources without one left out): `rows[start[g]..start[g + 1])` in source order. */
export function groupsOf(key: Int32Array): { start: Int32Array; rows: Int32Array } {
  let max = -1;
  for (const k of key) if (k > max) max = k;
  const start = new Int32Array(max + 2);
  for (const k of key) if (k >= 0) start[k + 1] = (start[k + 1] as number) + 1;
  for (let g = 0; g <= max; g++) start[g + 1] = (start[g + 1] as number) + (start[g] as number);
  const rows = new Int32Array(start[max + 1] as number);
  const next = start.slice(0, max + 1);
  for (let i = 0; i < key.length; i++) {
    const k = key[i] as number;
    if (k < 0) continue;
    rows[next[k] as number] = i;
    next[k] = (next[k] as number) + 1;
  }
  return { start, rows };
}

/** The matching rules over numbered keys (see the top of this file); the one implementation every match runs. */
export function matchKeys(keys: KeyColumns): Membership {
  const { count, agent, serial, entra, hardware } = keys;
  const assetOf = new Int32Array(count).fill(-1);
  const kinds: number[] = [];
  const conflicts: IndexConflict[] = [];
  const newAsset = (kind: number): number => kinds.push(kind) - 1;

  // Step 1: serial groups; a serial two machines claim is split per machine and reported.
  const bySerial = groupsOf(serial);
  for (let g = 0; g + 1 < bySerial.start.length; g++) {
    const group = bySerial.rows.subarray(bySerial.start[g], bySerial.start[g + 1]);
    if (group.length === 0) continue;
    let machine = -1;
    let several = false;
    for (const i of group) {
      const h = hardware[i] as number;
      if (agent[i] !== 1 || h < 0) continue;
      if (machine < 0) machine = h;
      else if (h !== machine) several = true;
    }
    if (!several) {
      const k = newAsset(SERIAL);
      for (const i of group) assetOf[i] = k;
      continue;
    }
    let intuneAsset = -1;
    const byMachine = new Map<number, number>();
    const formed: number[] = [];
    for (const i of group) {
      const h = hardware[i] as number;
      let k: number;
      if (agent[i] !== 1) {
        if (intuneAsset < 0) formed.push((intuneAsset = newAsset(SERIAL_INTUNE)));
        k = intuneAsset;
      } else if (h < 0) {
        formed.push((k = newAsset(SOURCE)));
      } else {
        const known = byMachine.get(h);
        if (known === undefined) {
          formed.push((k = newAsset(SERIAL_HARDWARE)));
          byMachine.set(h, k);
        } else k = known;
      }
      assetOf[i] = k;
    }
    conflicts.push({ kind: 'serial_on_several_machines', keySource: group[0] as number, assets: formed, sources: Array.from(group) });
  }

  // Step 2: Entra device ids, for the sources without a serial.
  const byEntra = groupsOf(entra);
  for (let g = 0; g + 1 < byEntra.start.length; g++) {
    const group = byEntra.rows.subarray(byEntra.start[g], byEntra.start[g + 1]);
    if (group.length === 0) continue;
    const loose: number[] = [];
    const found: number[] = [];
    for (const i of group) {
      const k = assetOf[i] as number;
      if (k < 0) loose.push(i);
      else if (!found.includes(k)) found.push(k);
    }
    if (found.length === 1) {
      for (const i of loose) assetOf[i] = found[0] as number;
    } else if (found.length === 0) {
      const k = newAsset(ENTRA);
      for (const i of loose) assetOf[i] = k;
    } else {
      for (const i of loose) found.push((assetOf[i] = newAsset(SOURCE)));
      conflicts.push({ kind: 'entra_device_id_on_several_assets', keySource: group[0] as number, assets: found, sources: Array.from(group) });
    }
  }

  // Step 3: everything else stands alone.
  for (let i = 0; i < count; i++) if (assetOf[i] === -1) assetOf[i] = newAsset(SOURCE);
  const inConflict = new Uint8Array(kinds.length);
  for (const c of conflicts) for (const k of c.assets) inConflict[k] = 1;
  return { assets: kinds.length, assetOf, anchorKind: Uint8Array.from(kinds), inConflict, conflicts };
}

/**
 * An asset's anchor text from its kind and its members' keys (in any order): the key it was formed
 * on, which every member carrying that key shares.
 */
export function anchorText(kind: AnchorKind, members: readonly SourceIdentity[]): string {
  const withSerial = () => members.find((s) => s.serial_fingerprint !== null) as SourceIdentity;
  const first = members[0] as SourceIdentity;
  switch (kind) {
    case 'serial':
      return `serial:${withSerial().serial_fingerprint as string}`;
    case 'serial_intune':
      return `serial:${withSerial().serial_fingerprint as string}|intune`;
    case 'serial_hardware':
      return `serial:${first.serial_fingerprint as string}|hardware:${first.hardware_fingerprint as string}`;
    case 'entra':
      return `entra:${first.entra_device_id as string}`;
    case 'source':
      return `source:${sourceKey(first)}`;
  }
}

/** Numbers the distinct values of one key column (-1 for none). */
function numbered(sources: readonly SourceIdentity[], keyOf: (s: SourceIdentity) => string | null): Int32Array {
  const seen = new Map<string, number>();
  const out = new Int32Array(sources.length);
  sources.forEach((s, i) => {
    const key = keyOf(s);
    if (key === null) out[i] = -1;
    else {
      let n = seen.get(key);
      if (n === undefined) seen.set(key, (n = seen.size));
      out[i] = n;
    }
  });
  return out;
}

/** The key columns of sources held as objects (an incremental re-match's few, the tests'). */
export function keyColumnsOf(sources: readonly SourceIdentity[]): KeyColumns {
  return {
    count: sources.length,
    agent: Uint8Array.from(sources, (s) => (s.kind === 'agent' ? 1 : 0)),
    serial: numbered(sources, (s) => s.serial_fingerprint),
    entra: numbered(sources, (s) => s.entra_device_id),
    hardware: numbered(sources, (s) => (s.kind === 'agent' ? s.hardware_fingerprint : null)),
  };
}

/** A conflict with its key and anchors rendered, its sources sorted. */
export function conflictOf(c: IndexConflict, sourceAt: (i: number) => SourceIdentity, anchorOfAsset: (k: number) => string): MatchConflict {
  const keySource = sourceAt(c.keySource);
  const serial = c.kind === 'serial_on_several_machines' ? keySource.serial_fingerprint : null;
  const entra = c.kind === 'entra_device_id_on_several_assets' ? keySource.entra_device_id : null;
  return {
    key: `${c.kind}:${(serial ?? entra) as string}`,
    kind: c.kind,
    serial_fingerprint: serial,
    entra_device_id: entra,
    anchors: c.assets.map(anchorOfAsset).sort(),
    sources: c.sources.map((i) => refOf(sourceAt(i))).sort(byRef),
  };
}

export const byConflictKey = (a: MatchConflict, b: MatchConflict): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * Matches the sources; `anchors[i]` is the anchor of `sources[i]` (`anchorOf` the same by source
 * key). Numbers the keys and runs `matchKeys`, the same rules a from-scratch match runs over
 * numbers the database assigned.
 */
export function matchSources(sources: readonly SourceIdentity[]): MatchResult & { readonly anchors: readonly string[]; readonly keys: readonly string[] } {
  const m = matchKeys(keyColumnsOf(sources));
  const members: SourceIdentity[][] = Array.from({ length: m.assets }, () => []);
  sources.forEach((s, i) => (members[m.assetOf[i] as number] as SourceIdentity[]).push(s));
  const anchorOfAsset = members.map((mine, k) => anchorText(ANCHOR_KINDS[m.anchorKind[k] as number] as AnchorKind, mine));
  const keys = sources.map(sourceKey);
  const anchors = Array.from(m.assetOf, (k) => anchorOfAsset[k] as string);
  const conflicts = m.conflicts.map((c) => conflictOf(c, (i) => sources[i] as SourceIdentity, (k) => anchorOfAsset[k] as string)).sort(byConflictKey);
  let anchorOf: Map<string, string> | undefined;
  return {
    // Built when asked for: the service reads anchors by index and never needs the map.
    get anchorOf() {
      anchorOf ??= new Map(anchors.map((a, i) => [keys[i] as string, a]));
      return anchorOf;
    },
    anchors,
    keys,
    conflicts,
  };
}

/** The keys a source can be matched on: what an incremental re-match follows to find its neighbours. */
export function keysOf(s: Pick<SourceIdentity, 'serial_fingerprint' | 'entra_device_id'>): { serials: string[]; entraIds: string[] } {
  return {
    serials: s.serial_fingerprint === null ? [] : [s.serial_fingerprint],
    entraIds: s.entra_device_id === null ? [] : [s.entra_device_id],
  };
}
