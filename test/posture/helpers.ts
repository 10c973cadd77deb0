/**
 * A posture "world" for tests: a real database (PostgreSQL or PGlite), real Chronicle, the
 * simulator over HTTPS, the real Graph client (MSAL), and a posture service wired like `serve`
 * wires it. Logs are captured so tests can search them.
 */
import { piiValues as piiValuesOf } from '../helpers/pii.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { createChronicle, type Chronicle } from '../../src/chronicle/index.js';
import type { ChronicleWriter } from '../../src/chronicle/types.js';
import { loadConfig, type Config } from '../../src/config/index.js';
import type { Db } from '../../src/db/index.js';
import { createLogger } from '../../src/log/index.js';
import {
  createPostureService,
  secretProviderFromConfig,
  type PostureService,
  type PostureServiceOptions,
  type PostureServiceDeps,
  type SecretProvider,
} from '../../src/posture/index.js';
import { fingerprintKeys } from '../../src/runtime/index.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { FaultSpec, SimulatorHandle } from '../../src/simulator/types.js';
import type { TestDatabase } from '../helpers/db.js';

export const ADMIN = { kind: 'human', id: 'admin@acme.example' } as const;

export interface World {
  readonly database: TestDatabase;
  readonly db: Db;
  readonly chronicle: Chronicle;
  readonly sim: SimulatorHandle;
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly secrets: SecretProvider;
  readonly service: PostureService;
  readonly logs: string[];
  readonly dir: string;
  readonly fingerprintKeyFor: (tenant: string) => Buffer;
  /** Another service over the same database (another replica), with its own handle if `db` is given. */
  makeService(overrides?: {
    db?: Db;
    config?: Config;
    options?: PostureServiceOptions;
    secrets?: SecretProvider;
    chronicle?: ChronicleWriter;
    onSynced?: PostureServiceDeps['onSynced'];
  }): PostureService;
  close(): Promise<void>;
}

export interface WorldOptions {
  readonly devices?: number;
  readonly seed?: string;
  readonly faults?: FaultSpec;
  /** Extra environment (e.g. INTUNE_SECRET_REFS and the variables it names). */
  readonly env?: Record<string, string>;
  readonly options?: PostureServiceOptions;
}

export async function openWorld(database: TestDatabase, worldOptions: WorldOptions = {}): Promise<World> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'posture-world-'));
  const sim = await startSimulator({ devices: worldOptions.devices ?? 200, seed: worldOptions.seed ?? 'posture', ...(worldOptions.faults ? { faults: worldOptions.faults } : {}) });
  const env: Record<string, string> = {
    ...sim.env,
    INTUNE_DATA_DIR: path.join(dir, 'data'),
    INTUNE_SYNC_INTERVAL: '0',
    INTUNE_GRAPH_MAX_RETRIES: '0',
    INTUNE_GRAPH_TIMEOUT_MS: '10000',
    ...worldOptions.env,
  };
  const config = loadConfig(env, { cwd: dir });
  const logs: string[] = [];
  const logger = createLogger(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logs.push(chunk.toString('utf8'));
        callback();
      },
    }),
  );
  const db = await database.open();
  const chronicle = await createChronicle({
    db,
    logger,
    signingKeyFile: path.join(dir, 'chronicle-key.pem'),
    checkpointDir: path.join(dir, 'checkpoints'),
    checkpointIntervalMs: 0,
  });
  const secrets = secretProviderFromConfig(config, env);
  const fingerprintKeyFor = fingerprintKeys({ dataDir: path.join(dir, 'data') }).keyFor;
  const services: PostureService[] = [];
  const makeService: World['makeService'] = (overrides = {}) => {
    const service = createPostureService({
      db: overrides.db ?? db,
      chronicle: overrides.chronicle ?? chronicle,
      logger,
      secrets: overrides.secrets ?? secrets,
      config: overrides.config ?? config,
      fingerprintKeyFor,
      options: { ...worldOptions.options, ...overrides.options },
      ...(overrides.onSynced !== undefined ? { onSynced: overrides.onSynced } : {}),
    });
    services.push(service);
    return service;
  };
  const service = makeService();
  return {
    database,
    db,
    chronicle,
    sim,
    config,
    env,
    secrets,
    service,
    logs,
    dir,
    fingerprintKeyFor,
    makeService,
    async close() {
      for (const s of services) await s.close();
      await chronicle.close();
      await sim.close();
      await database.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every row of every table of the database, as text: what a leak search runs over. */
export async function dumpDatabase(db: Db): Promise<string> {
  const { rows } = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const parts: string[] = [];
  for (const { table_name } of rows) {
    const dump = await db.query<{ row: string }>(`SELECT t::text AS row FROM "${table_name}" t`);
    parts.push(`## ${table_name}\n${dump.rows.map((r) => r.row).join('\n')}`);
  }
  return parts.join('\n');
}

export { PII_PROPERTIES } from '../helpers/pii.js';

/** The simulator's distinctive PII values (see test/helpers/pii.ts). */
export const piiValues = (sim: SimulatorHandle): string[] => piiValuesOf(sim.devices);

/**
 * The values that occur in `text` (case-insensitive). Indexed by each value's first six
 * characters, so one pass over a large dump checks thousands of values.
 */
export function leaksIn(text: string, values: readonly string[]): string[] {
  const KEY = 6;
  const byPrefix = new Map<string, string[]>();
  for (const value of values) {
    const v = value.toLowerCase();
    const key = v.slice(0, KEY);
    byPrefix.set(key, [...(byPrefix.get(key) ?? []), v]);
  }
  const haystack = text.toLowerCase();
  const found = new Set<string>();
  for (let i = 0; i + KEY <= haystack.length; i++) {
    const candidates = byPrefix.get(haystack.slice(i, i + KEY));
    if (candidates === undefined) continue;
    for (const v of candidates) if (haystack.startsWith(v, i)) found.add(v);
  }
  return [...found];
}

/** Polls (real time) until fn returns a value other than undefined. */
export async function eventually<T>(fn: () => Promise<T | undefined>, { timeoutMs = 15_000, everyMs = 25 } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await delay(everyMs);
  }
}
