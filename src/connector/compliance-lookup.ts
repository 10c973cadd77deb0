/**
 * Device records by Entra device id or Intune id, through the compliance cache: what get_compliance
 * reports and the gate decides on. Records are redacted before they are cached and held current
 * record first (./current-record.ts), the order get_compliance answers in.
 */
import { ComplianceCache, type CacheKeyKind, type CachedLookup } from './cache.js';
import { currentRecordFirst } from './current-record.js';
import { classifyGraphError, safeRequestId } from './errors.js';
import type { GraphClient } from './graph/types.js';
import { redactDevice } from './redaction.js';

export interface ComplianceLookupDeps {
  readonly cache: ComplianceCache;
  readonly fingerprintKeyFor: (tenant: string) => Buffer | Promise<Buffer>;
}

export type CachedComplianceLookup = (
  graph: GraphClient,
  tenant: string,
  kind: CacheKeyKind,
  id: string,
  options: { maxStaleMs?: number; signal?: AbortSignal },
) => Promise<CachedLookup>;

export function cachedComplianceLookup({ cache, fingerprintKeyFor }: ComplianceLookupDeps): CachedComplianceLookup {
  return (graph, tenant, kind, id, options) => {
    const lowerId = id.toLowerCase();
    return cache.lookup(
      ComplianceCache.key(tenant, kind, lowerId),
      async () => {
        const key = await fingerprintKeyFor(tenant);
        if (kind === 'azureADDeviceId') {
          const found = await graph.findDevicesByAzureADDeviceId(lowerId);
          const records = found.value.map((d) => Object.freeze(redactDevice(d, key))).sort(currentRecordFirst);
          return { records: Object.freeze(records), graphRequestId: safeRequestId(found.requestId) };
        }
        try {
          const found = await graph.getDevice(lowerId);
          return { records: Object.freeze([Object.freeze(redactDevice(found.value, key))]), graphRequestId: safeRequestId(found.requestId) };
        } catch (err) {
          const failure = classifyGraphError(err);
          if (failure.reason === 'not_found') return { records: Object.freeze([]), graphRequestId: failure.graphRequestId };
          throw err;
        }
      },
      options,
    );
  };
}
