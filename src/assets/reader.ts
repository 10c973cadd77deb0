/**
 * Reading assets: pages of the filterable summary, each asset with its sources and its merged
 * attributes (source and confidence, computed at the time of reading), and the agents that see
 * the machine of an Intune record.
 */
import crypto from 'node:crypto';
import type { Db } from '../db/index.js';
import type { EndpointAgent } from '../connector/assets.js';
import type { OsFamily } from '../connector/posture.js';
import { confidenceOf, mergeAttributes, type AgentObservation, type ObservedSource } from './attributes.js';
import type { SourceKind } from './match.js';
import * as store from './store.js';
import type { ConflictRow, StoredSource } from './store.js';
import { AssetInputError, type AssetPage, type AssetQuery, type AssetView } from './types.js';
import { defined } from '../common/values.js';

export interface AssetReader {
  list(tenant: string, query: AssetQuery): Promise<AssetPage>;
  get(tenant: string, assetId: string): Promise<AssetView | null>;
  byFingerprint(tenant: string, fingerprint: string): Promise<AssetView[]>;
  bySource(tenant: string, kind: SourceKind, sourceId: string): Promise<AssetView | null>;
  endpointAgents(tenant: string, intuneDeviceIds: readonly string[]): Promise<EndpointAgent[]>;
}

interface CursorPosition {
  readonly a: string;
  readonly h: string;
}

function filterHash(tenant: string, query: AssetQuery): string {
  const { cursor: _cursor, limit: _limit, ...filters } = query;
  const canonical = JSON.stringify([tenant, Object.entries(filters).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1))]);
  return crypto.createHash('sha256').update(canonical).digest('base64url').slice(0, 16);
}

function decodeCursor(cursor: string, hash: string): string {
  const invalid = new AssetInputError('invalid_cursor', 'cursor', 'cursor must be the next_cursor of a previous page with the same filters, unchanged');
  let position: Partial<CursorPosition> | null;
  try {
    position = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<CursorPosition> | null;
  } catch {
    throw invalid;
  }
  if (typeof position !== 'object' || position === null || typeof position.a !== 'string' || !/^[0-9a-f-]{36}$/.test(position.a) || position.h !== hash) throw invalid;
  return position.a;
}

export function createAssetReader({ db, now }: { db: Db; now: () => number }): AssetReader {
  function viewOf(row: { asset_id: string; serial_fingerprint: string | null; os_family: string; conflict: boolean }, sources: StoredSource[], conflicts: ConflictRow[]): AssetView {
    const at = now();
    const observed = sources.map((s) => ({ kind: s.kind, source_id: s.source_id, last_seen_at: s.last_seen_at, observation: s.observation }) as ObservedSource);
    const merged = mergeAttributes(observed, at);
    return {
      asset_id: row.asset_id,
      // The stored summary's family is an Intune record's, an enrolled agent's (macos), or other.
      os_family: row.os_family as OsFamily,
      serial_fingerprint: row.serial_fingerprint,
      sources: sources.map((s) => ({
        kind: s.kind,
        id: s.source_id,
        ...(s.kind === 'intune' ? { connection_id: s.origin } : {}),
        last_seen_at: s.last_seen_at,
        confidence: confidenceOf(s, at),
      })),
      attributes: merged.attributes,
      disagreements: merged.disagreements.map((d) => ({ attribute: d.attribute, values: [...d.values] })),
      conflicts: conflicts.map((c) => ({
        conflict_id: c.conflict_id,
        kind: c.kind,
        serial_fingerprint: c.serial_fingerprint,
        entra_device_id: c.entra_device_id,
        asset_ids: [...c.asset_ids],
        sources: [...c.sources],
        detected_at: c.detected_at,
      })),
    };
  }

  async function views(tenant: string, rows: readonly { asset_id: string; serial_fingerprint: string | null; os_family: string; conflict: boolean }[]): Promise<AssetView[]> {
    const ids = rows.map((r) => r.asset_id);
    const [sources, conflicts] = await Promise.all([store.sourcesOfAssets(db, tenant, ids), store.conflictsOfAssets(db, tenant, ids.filter((_, i) => rows[i]?.conflict === true))]);
    const byAsset = new Map<string, StoredSource[]>();
    for (const s of sources) byAsset.set(s.asset_id, [...(byAsset.get(s.asset_id) ?? []), s]);
    return rows.map((row) => viewOf(row, byAsset.get(row.asset_id) ?? [], conflicts.filter((c) => c.asset_ids.includes(row.asset_id))));
  }

  async function list(tenant: string, query: AssetQuery): Promise<AssetPage> {
    const limit = query.limit ?? 100;
    const hash = filterHash(tenant, query);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, hash);
    const { rows, total } = await store.listAssetRows(
      db,
      tenant,
      {
        ...defined({
          os_family: query.os_family,
          source: query.source,
          compliance_state: query.compliance_state,
          disagreement: query.disagreement,
          fingerprint: query.fingerprint?.toLowerCase(),
        }),
      },
      { ...defined({ after }), limit },
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      assets: await views(tenant, page),
      next_cursor: rows.length > limit && last !== undefined ? Buffer.from(JSON.stringify({ a: last.asset_id, h: hash })).toString('base64url') : null,
      total,
    };
  }

  async function get(tenant: string, assetId: string): Promise<AssetView | null> {
    const rows = await store.assetRowsById(db, tenant, [assetId.toLowerCase()]);
    return rows.length === 0 ? null : ((await views(tenant, rows))[0] ?? null);
  }

  async function byFingerprint(tenant: string, fingerprint: string): Promise<AssetView[]> {
    const { rows } = await store.listAssetRows(db, tenant, { fingerprint: fingerprint.toLowerCase() }, { limit: 20 });
    return views(tenant, rows);
  }

  async function bySource(tenant: string, kind: SourceKind, sourceId: string): Promise<AssetView | null> {
    const assetId = await store.assetIdOfSource(db, tenant, kind, sourceId.toLowerCase());
    return assetId === null ? null : get(tenant, assetId);
  }

  async function endpointAgents(tenant: string, intuneDeviceIds: readonly string[]): Promise<EndpointAgent[]> {
    const ids = [...new Set(intuneDeviceIds.map((id) => id.toLowerCase()))].slice(0, 20);
    const assetIds = new Set<string>();
    for (const id of ids) {
      const assetId = await store.assetIdOfSource(db, tenant, 'intune', id);
      if (assetId !== null) assetIds.add(assetId);
    }
    const sources = await store.sourcesOfAssets(db, tenant, [...assetIds]);
    const at = now();
    const out: EndpointAgent[] = [];
    for (const assetId of assetIds) {
      const mine = sources.filter((s) => s.asset_id === assetId);
      const merged = mergeAttributes(mine.map((s) => ({ kind: s.kind, source_id: s.source_id, last_seen_at: s.last_seen_at, observation: s.observation }) as ObservedSource), at);
      for (const s of mine) {
        if (s.kind !== 'agent') continue;
        const o = s.observation as AgentObservation;
        const tri = (v: AgentObservation['filevault']) => (v === 'unknown' ? null : v);
        out.push({
          agent_id: s.source_id,
          asset_id: assetId,
          last_seen_at: s.last_seen_at,
          confidence: confidenceOf(s, at) === 'stale' ? 'stale' : 'agent',
          os_version: o.os_version,
          filevault: tri(o.filevault),
          firewall: tri(o.firewall),
          sip: tri(o.sip),
          gatekeeper: tri(o.gatekeeper),
          disagreements: merged.disagreements.filter((d) => d.values.some((v) => v.source_id === s.source_id)).map((d) => d.attribute),
        });
      }
    }
    return out;
  }

  return { list, get, byFingerprint, bySource, endpointAgents };
}
