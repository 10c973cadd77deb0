/**
 * Real parts for connector tests: the simulator over HTTPS, the real Graph client (real MSAL),
 * a real Chronicle on the test database, and the connector composed from them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Db } from '../../src/db/index.js';
import { createChronicle, type Chronicle } from '../../src/chronicle/index.js';
import { createGraphClient } from '../../src/connector/graph/index.js';
import type { GraphClient } from '../../src/connector/graph/types.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { createIntuneConnector, type IntuneConnector, type IntuneConnectorDeps, type IntuneConnectorOptions } from '../../src/connector/index.js';
import type { DelegationScope, InvocationContext } from '../../src/connector/contract.js';
import { piiValuesByProperty } from '../helpers/pii.js';

export const TENANT = 'acme';
/** Tests share one database and tell their audit chains apart by tenant: each test takes a fresh one. */
let currentTenant = TENANT;
let tenantCounter = 0;
export function freshTenant(): string {
  tenantCounter += 1;
  currentTenant = `acme-${process.pid}-${tenantCounter}`;
  return currentTenant;
}
export const tenant = (): string => currentTenant;
/** Tenants with this prefix have no Intune connection. */
export const UNCONNECTED = 'unconnected';
export const FINGERPRINT_KEY = Buffer.alloc(32, 0x5a);

export type ClosableGraph = GraphClient & { close(): Promise<void> };

export function graphFor(sim: SimulatorHandle, overrides: { maxRetries?: number; timeoutMs?: number } = {}): ClosableGraph {
  return createGraphClient({
    tenantId: sim.tenantId,
    clientId: sim.clientId,
    credential: { clientSecret: sim.clientSecret },
    graph: { cloud: 'custom', loginUrl: sim.loginUrl, graphUrl: sim.graphUrl, caFile: sim.caFile, timeoutMs: overrides.timeoutMs ?? 10_000, maxRetries: overrides.maxRetries ?? 0 },
  });
}

export async function openChronicle(db: Db): Promise<{ chronicle: Chronicle; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-conn-chron-'));
  const chronicle = await createChronicle({
    db,
    signingKeyFile: path.join(dir, 'signing-key.pem'),
    checkpointDir: path.join(dir, 'checkpoints'),
    checkpointIntervalMs: 0,
  });
  return { chronicle, dir };
}

export const DEFAULT_OPTIONS: IntuneConnectorOptions = {
  intuneEnabled: true,
  cacheTtlMs: 300_000,
  cacheMaxEntries: 10_000,
  staleMaxMs: 0,
};

export function makeConnector(parts: {
  chronicle: Chronicle;
  graph: GraphClient | undefined;
  db?: Db;
  options?: Partial<IntuneConnectorOptions>;
  now?: () => number;
  ceremony?: IntuneConnectorDeps['ceremony'];
}): IntuneConnector {
  return createIntuneConnector({
    chronicle: parts.chronicle,
    graphFor: (t) => (t.startsWith(UNCONNECTED) ? undefined : parts.graph),
    fingerprintKeyFor: () => FINGERPRINT_KEY,
    options: { ...DEFAULT_OPTIONS, ...parts.options },
    ...(parts.db !== undefined ? { db: parts.db } : {}),
    ...(parts.now !== undefined ? { now: parts.now } : {}),
    ...(parts.ceremony !== undefined ? { ceremony: parts.ceremony } : {}),
  });
}

export function context(scope: Partial<DelegationScope> = {}, extra: Partial<InvocationContext> = {}): InvocationContext {
  return {
    tenant: currentTenant,
    actor: { kind: 'agent', id: 'agent:test' },
    scope: { capabilities: ['READ'], ceremonyRequiredFor: [], ...scope },
    requestId: 'req-test',
    channel: 'library',
    ...extra,
  };
}

export interface AuditRow {
  seq: number;
  actor: { kind: string; id: string };
  request_id: string | null;
  data: Record<string, unknown>;
}

/** CONNECTOR_INVOKED events of a tenant, in chain order, read from the stored bodies. */
export async function auditEvents(db: Db, chain = currentTenant): Promise<AuditRow[]> {
  const { rows } = await db.query<{ body: string }>(`SELECT body FROM chronicle_event WHERE tenant = $1 AND type = 'CONNECTOR_INVOKED' ORDER BY seq`, [chain]);
  return rows.map((r) => JSON.parse(r.body) as AuditRow);
}

/** Every row of every table in the database, as text: what a PII search must come up empty on. */
export async function dumpAllTables(db: Db): Promise<string> {
  const { rows } = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const parts: string[] = [];
  for (const { table_name } of rows) {
    const all = await db.query(`SELECT * FROM "${table_name}"`);
    parts.push(`${table_name}: ${JSON.stringify(all.rows)}`);
  }
  return parts.join('\n');
}

export { PII_PROPERTIES } from '../helpers/pii.js';

/** The simulator's PII values, each with the property it came from (see test/helpers/pii.ts). */
export const piiValues = piiValuesByProperty;

export function findLeaks(text: string, values: Map<string, string>): string[] {
  const leaks: string[] = [];
  for (const [value, prop] of values) if (text.includes(value)) leaks.push(`${prop}=${value}`);
  return leaks;
}

export function graphRequests(sim: SimulatorHandle) {
  return sim.requests().filter((r) => r.kind === 'graph' || (r.kind === undefined && r.url.includes('/v1.0/')));
}
