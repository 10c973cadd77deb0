/**
 * Real parts for the gate's end-to-end tests: the simulator over HTTPS, the real Graph client
 * (real MSAL), the real connector and its compliance cache, a real Chronicle on the test database,
 * and the gate composed from them with an injected clock (cache TTLs, grace periods, check-in age).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Db } from '../../src/db/index.js';
import { createChronicle, type Chronicle } from '../../src/chronicle/index.js';
import { createGraphClient } from '../../src/connector/graph/index.js';
import { createIntuneConnector, type IntuneConnector } from '../../src/connector/index.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle, SimulatorOptions } from '../../src/simulator/types.js';
import { buildGatePolicy, createGate, type Gate, type GatePolicy } from '../../src/gate/index.js';
import type { TestDatabase } from '../helpers/db.js';
import { findLeaks, piiValues } from '../connector/helpers.js';

export const TENANT = 'acme';

export interface Clock {
  now: number;
  advance(ms: number): void;
}

export interface GateWorld {
  readonly sim: SimulatorHandle;
  readonly database: TestDatabase;
  readonly db: Db;
  readonly chronicle: Chronicle;
  readonly connector: IntuneConnector;
  readonly policy: GatePolicy;
  readonly gate: Gate;
  readonly clock: Clock;
  close(): Promise<void>;
}

export interface WorldOptions {
  /** The policy file's content (as parsed YAML/JSON). */
  readonly policy?: unknown;
  readonly requiredByDefault?: boolean;
  readonly strict?: boolean;
  readonly cacheTtlMs?: number;
  /** INTUNE_COMPLIANCE_STALE_MAX, in ms. */
  readonly staleMaxMs?: number;
  readonly simulator?: SimulatorOptions;
}

export async function openChronicleOn(db: Db): Promise<Chronicle> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-gate-chron-'));
  return createChronicle({
    db,
    signingKeyFile: path.join(dir, 'signing-key.pem'),
    checkpointDir: path.join(dir, 'checkpoints'),
    checkpointIntervalMs: 0,
    appendTimeoutMs: 2_000,
  });
}

export interface ComposedGate {
  readonly connector: IntuneConnector;
  readonly policy: GatePolicy;
  readonly gate: Gate;
  close(): Promise<void>;
}

/** The real connector over a simulator (real Graph client and MSAL, no retries), and the gate over it. */
export function composeGate(parts: { sim: SimulatorHandle; chronicle: Chronicle; clock: Clock; tenant?: string }, options: WorldOptions = {}): ComposedGate {
  const tenant = parts.tenant ?? TENANT;
  const { sim, chronicle, clock } = parts;
  const graph = createGraphClient({
    tenantId: sim.tenantId,
    clientId: sim.clientId,
    credential: { clientSecret: sim.clientSecret },
    graph: { cloud: 'custom', loginUrl: sim.loginUrl, graphUrl: sim.graphUrl, caFile: sim.caFile, timeoutMs: 10_000, maxRetries: 0 },
  });
  const staleMaxMs = options.staleMaxMs ?? 300_000;
  const connector = createIntuneConnector({
    chronicle,
    graphFor: (t) => (t === tenant ? graph : undefined),
    fingerprintKeyFor: () => Buffer.alloc(32, 0x6b),
    options: { intuneEnabled: true, cacheTtlMs: options.cacheTtlMs ?? 60_000, cacheMaxEntries: 10_000, staleMaxMs },
    now: () => clock.now,
  });
  const policy = buildGatePolicy(
    { intuneEnabled: true, compliance: { requiredByDefault: options.requiredByDefault ?? false, strict: options.strict ?? false, staleMaxMs } },
    options.policy ?? {},
  );
  const gate = createGate({ connector, chronicle, policy, tenant, now: () => clock.now });
  return { connector, policy, gate, close: () => graph.close() };
}

export function createClock(): Clock {
  return {
    now: Date.now(),
    advance(ms) {
      this.now += ms;
    },
  };
}

export async function openGateWorld(create: () => Promise<TestDatabase>, options: WorldOptions = {}): Promise<GateWorld> {
  const clock = createClock();
  const sim = await startSimulator({ devices: 60, seed: 'gate-tests', now: clock.now, ...options.simulator });
  const database = await create();
  const db = await database.open();
  const chronicle = await openChronicleOn(db);
  const composed = composeGate({ sim, chronicle, clock }, options);
  return {
    sim,
    database,
    db,
    chronicle,
    ...composed,
    clock,
    async close() {
      await chronicle.close().catch(() => undefined);
      await composed.close().catch(() => undefined);
      await database.drop();
      await sim.close();
    },
  };
}

type RawDevice = Readonly<Record<string, unknown>>;

/**
 * Devices to set up states on: each with an Entra id no other device shares, taken in order so
 * tests in one world never touch the same device. `updateDevice` then gives each the state a test needs.
 */
export function deviceAllocator(sim: SimulatorHandle): () => { id: string; azureADDeviceId: string } {
  const counts = new Map<string, number>();
  for (const d of sim.devices) {
    const entra = d['azureADDeviceId'];
    if (typeof entra === 'string') counts.set(entra, (counts.get(entra) ?? 0) + 1);
  }
  const free = sim.devices.filter((d) => typeof d['azureADDeviceId'] === 'string' && counts.get(d['azureADDeviceId'] as string) === 1);
  let next = 0;
  return () => {
    const device = free[next++] as RawDevice | undefined;
    if (device === undefined) throw new Error('the test tenant ran out of devices with a unique Entra id; generate more');
    return { id: device['id'] as string, azureADDeviceId: device['azureADDeviceId'] as string };
  };
}

export const isoAgo = (clock: Clock, ms: number): string => new Date(clock.now - ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
export const isoAhead = (clock: Clock, ms: number): string => new Date(clock.now + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
export const NO_GRACE = '9999-12-31T23:59:59Z';
export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
export const randomGuid = (): string => crypto.randomUUID();

export interface RecordedCheck {
  readonly seq: number;
  readonly hash: string;
  readonly actor: { kind: string; id: string };
  readonly data: Record<string, unknown>;
}

/** DEVICE_COMPLIANCE_CHECKED events of a chain, in order, read back from the stored canonical bodies. */
export async function recordedChecks(db: Db, tenant = TENANT): Promise<RecordedCheck[]> {
  const { rows } = await db.query<{ seq: number; hash: string; body: string }>(
    `SELECT seq, hash, body FROM chronicle_event WHERE tenant = $1 AND type = 'DEVICE_COMPLIANCE_CHECKED' ORDER BY seq`,
    [tenant],
  );
  return rows.map((row) => {
    const body = JSON.parse(row.body) as { actor: { kind: string; id: string }; data: Record<string, unknown> };
    return { seq: row.seq, hash: row.hash, actor: body.actor, data: body.data };
  });
}

/** Graph requests the simulator received that looked a device up by its Entra id. */
export function lookupsOf(sim: SimulatorHandle, azureADDeviceId: string): number {
  return sim.requests().filter((r) => r.kind === 'graph' && decodeURIComponent(r.url).includes(azureADDeviceId)).length;
}

/** PII values of the simulated devices that appear in `text` (the connector tests' list of PII properties). */
export function leakedPii(sim: SimulatorHandle, text: string): string[] {
  return findLeaks(text, piiValues(sim.devices));
}
