/**
 * Chronicle: the tamper-evident audit trail. One hash chain per tenant in PostgreSQL (or PGlite),
 * appended with group commit, guarded by append-only triggers, and anchored by Ed25519-signed
 * checkpoints written outside the database. See README "Chronicle" for the formats and the
 * outside-verifier recipe.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../config/index.js';
import type { Db, Queryable } from '../db/index.js';
import type { Logger } from '../log/index.js';
import { loadEventSchemas } from './validate.js';
import {
  appendLogLines,
  archiveDirOf,
  checkpointFileName,
  fileStamp,
  instanceLogDir,
  loadKeyRing,
  loadSigningKey,
  parseKeyFile,
  prepareCheckpointDir,
  rereadKeyFile,
  writeCheckpoints,
  type SigningKey,
} from './checkpoints.js';
import { Witnesses } from './witness.js';
import { exportChronicle, queryChronicle } from './query.js';
import type {
  AppendInput,
  AppendReceipt,
  CheckpointResult,
  ChronicleQuery,
  ChronicleQueryResult,
  ChronicleStats,
  ChronicleWriter,
  ExportOptions,
  VerifyReport,
} from './types.js';
import { readInstanceId, verifyChronicle, type VerifyProgress } from './verify.js';
import { VerifyPool } from './verify-pool.js';
import { GroupCommitWriter } from './writer.js';
import { defined } from '../common/values.js';

export interface ChronicleOptions {
  db: Db;
  logger?: Logger;
  /** Config.chronicle.signingKeyFile; generated (0600) when missing unless createSigningKey is false. */
  signingKeyFile?: string;
  /** Config.chronicle.checkpointDir. */
  checkpointDir?: string;
  /** Periodic checkpoints of chains whose head moved (0 or absent: no timer). */
  checkpointIntervalMs?: number;
  /** Group commit bound: at most this many events per transaction (default 500). */
  maxBatch?: number;
  /** An append that has not committed within this time rejects with 'unavailable' (default 5000). */
  appendTimeoutMs?: number;
  /**
   * Generate the signing key when the file is missing (default true). Reviewer tools pass false:
   * a verifier that made itself a new key would only prove that old checkpoints are not its own.
   */
  createSigningKey?: boolean;
  /**
   * Worker threads verify may use for long chains (default: up to 2, one per CPU; 0: none).
   * `minEventsForWorkers` (default 20000) and `chunkSize` (rows per range, default 5000) tune it.
   */
  verify?: { workers?: number; minEventsForWorkers?: number; chunkSize?: number };
  /** Config.chronicle.witnessDir: a second directory (another volume) that receives every checkpoint line. */
  witnessDir?: string;
  /** Config.chronicle.witnessUrl: an HTTPS webhook that receives every checkpoint line, in the background. */
  witnessUrl?: string;
  /** Config.chronicle.witnessCaFile: PEM CA bundle to trust for the witness URL. */
  witnessCaFile?: string;
  /** Redelivery backoff bounds for the witness URL (defaults 1 s and 60 s). */
  witnessRetry?: { minMs?: number; maxMs?: number };
  /**
   * Compile the event schemas at open (default true), so a server with a broken specs/ directory
   * fails at start. Short commands pass false: the schemas are compiled at the first append, and a
   * reviewer command that appends nothing (verify, query, export) never pays for them.
   */
  compileSchemasAtOpen?: boolean;
}

export interface KeyRotation {
  readonly oldKeyId: string;
  readonly newKeyId: string;
  /** The hand-over line's number in the checkpoint log. */
  readonly line: number;
  /** Where the retired public key was archived. */
  readonly archivedPublicKey: string;
}

export interface Chronicle extends ChronicleWriter {
  appendWithin(tx: Queryable, input: AppendInput): Promise<AppendReceipt>;
  /** Walks every chain (or one) and reports, per chain, whether it is intact or its first bad seq and why. */
  verify(options?: { tenant?: string; witnessDir?: string; onProgress?: (progress: VerifyProgress) => void }): Promise<VerifyReport>;
  /** Events of one tenant's chain in seq order, filtered; page with nextCursor. */
  query(filter: ChronicleQuery): Promise<ChronicleQueryResult>;
  /** Writes events as JSONL that an outside script re-verifies with SHA-256 alone. */
  export(options: ExportOptions, out: NodeJS.WritableStream): Promise<{ events: number }>;
  /** Writes a signed checkpoint of every chain head now. */
  checkpoint(): Promise<CheckpointResult>;
  /**
   * Makes a new signing key: archives the old public key, records the hand-over in the checkpoint
   * log signed by the old key, then replaces the key file. Other processes keep signing with the
   * old key until they restart; verify trusts both, each for the lines it signed.
   */
  rotateKey(): Promise<KeyRotation>;
  /** This database's Chronicle instance id (made with the database). */
  instanceId(): Promise<string | null>;
  /** Counters for metrics. */
  stats(): ChronicleStats;
  /** Id of the checkpoint signing key, or null when checkpoints are not configured. */
  readonly keyId: string | null;
  /** Refuses new appends, waits for pending ones, stops the timer and checkpoints the chains it wrote to. */
  close(): Promise<void>;
}

export { ChronicleError } from './types.js';
export type {
  Actor,
  AppendInput,
  AppendReceipt,
  ChainVerifyReport,
  Checkpoint,
  CheckpointResult,
  ChronicleEvent,
  ChronicleQuery,
  ChronicleQueryResult,
  ChronicleStats,
  ChronicleWriter,
  EventType,
  ExportOptions,
  VerifyFailure,
  VerifyReport,
} from './types.js';
export { EVENT_TYPES, VERIFY_FAILURES } from './types.js';
export type { VerifyProgress } from './verify.js';
export { EVENT_CATALOG, ENVELOPE_SCHEMA_FILE, specPath, type EventCatalogEntry } from './catalog.js';
export { validateAppendInput, validateEventData, type ValidationResult } from './validate.js';
export { GENESIS_HASH, canonicalJson, chainHash } from './canonical.js';

const DEFAULT_MAX_BATCH = 500;
const DEFAULT_APPEND_TIMEOUT_MS = 5_000;

function positiveInt(value: number | undefined, fallback: number, name: string, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) throw new ConfigError([`Chronicle option ${name} is ${value}; set it to a whole number from 1 to ${max}`]);
  return value;
}

/** The witnesses checkpoint lines are sent to (a directory and/or a URL), with the CA the URL is trusted by. */
function openWitnesses(options: ChronicleOptions): Witnesses {
  const { logger } = options;
  let witnessCa: string | undefined;
  if (options.witnessCaFile !== undefined) {
    try {
      witnessCa = fs.readFileSync(options.witnessCaFile, 'utf8');
    } catch (err) {
      throw new ConfigError([`CHRONICLE_WITNESS_CA_FILE (${options.witnessCaFile}) cannot be read: ${(err as Error).message}; point it at a PEM CA bundle`]);
    }
  }
  const witnesses = new Witnesses({
    ...defined({
      dir: options.witnessDir,
      url: options.witnessUrl,
      ca: witnessCa,
      minRetryMs: options.witnessRetry?.minMs,
      maxRetryMs: options.witnessRetry?.maxMs,
      logger,
    }),
  });
  return witnesses;
}

export async function createChronicle(options: ChronicleOptions): Promise<Chronicle> {
  const { db, logger } = options;
  if (options.compileSchemasAtOpen ?? true) loadEventSchemas();
  const maxBatch = positiveInt(options.maxBatch, DEFAULT_MAX_BATCH, 'maxBatch', 10_000);
  const appendTimeoutMs = positiveInt(options.appendTimeoutMs, DEFAULT_APPEND_TIMEOUT_MS, 'appendTimeoutMs', 600_000);
  const intervalMs = options.checkpointIntervalMs ?? 0;
  if (!Number.isInteger(intervalMs) || intervalMs < 0) {
    throw new ConfigError([`Chronicle option checkpointIntervalMs is ${intervalMs}; set it to a whole number of milliseconds (0: no periodic checkpoints)`]);
  }

  let key: SigningKey | null =
    options.signingKeyFile !== undefined
      ? loadSigningKey(options.signingKeyFile, { create: options.createSigningKey ?? true, ...defined({ logger }) })
      : null;
  const checkpointDir = options.checkpointDir;
  const canCheckpoint = key !== null && checkpointDir !== undefined;
  if (canCheckpoint) prepareCheckpointDir(checkpointDir, key as SigningKey);
  // The key file as this process last read it. A hand-over made by another process (rotate-key
  // beside serve) replaces the file while it holds the log's lock, and signers ask for their key
  // under that lock: the next line this process signs uses the new key, never the retired one.
  let keyFileSeen = options.signingKeyFile === undefined ? null : fileStamp(options.signingKeyFile);
  const currentKey = (): SigningKey => {
    if (options.signingKeyFile === undefined) return key as SigningKey;
    const reread = rereadKeyFile(options.signingKeyFile, key as SigningKey, keyFileSeen, logger);
    keyFileSeen = reread.seen;
    if (reread.key !== null) {
      key = reread.key;
      if (checkpointDir !== undefined) prepareCheckpointDir(checkpointDir, reread.key);
    }
    return key as SigningKey;
  };
  const witnesses = openWitnesses(options);
  const verifiedLines = new Set<string>();
  let instance: string | null | undefined;
  const instanceId = async (): Promise<string | null> => (instance ??= await readInstanceId(db));
  const requireInstance = async (): Promise<string> => {
    const id = await instanceId();
    if (id === null) throw new ConfigError(['the database has no Chronicle instance id: run `intune-connector migrate` so checkpoints can name the database they sign']);
    return id;
  };

  const writer = new GroupCommitWriter({ db, maxBatch, appendTimeoutMs, ...defined({ logger }) });

  // What this process last signed per chain, so the timer only writes chains whose head moved.
  const lastSigned = new Map<string, number>();
  let checkpointChain: Promise<unknown> = Promise.resolve();

  const writeNow = async (onlyMoved: boolean, chains?: ReadonlySet<string>): Promise<CheckpointResult> => {
    if (!canCheckpoint) {
      throw new ConfigError([
        'Chronicle checkpoints need a signing key and a directory: set CHRONICLE_SIGNING_KEY_FILE and CHRONICLE_CHECKPOINT_DIR (options signingKeyFile and checkpointDir)',
      ]);
    }
    const { rows } = await db.query<{ tenant: string; head_seq: number; head_hash: string }>(
      'SELECT tenant, head_seq, head_hash FROM chronicle_chain WHERE head_seq > 0 ORDER BY tenant',
    );
    const heads = rows
      .map((r) => ({ chain: r.tenant, seq: Number(r.head_seq), hash: r.head_hash }))
      .filter((h) => (!onlyMoved || lastSigned.get(h.chain) !== h.seq) && (chains === undefined || chains.has(h.chain)));
    const now = new Date();
    const id = await requireInstance();
    const result = await writeCheckpoints(checkpointDir as string, currentKey, id, heads, now);
    witnesses.send(id, checkpointFileName(now), result.texts);
    for (const cp of result.checkpoints) lastSigned.set(cp.chain, cp.seq);
    if (result.file !== null) logger?.debug({ file: result.file, chains: result.checkpoints.length }, 'Chronicle checkpoint written');
    return { checkpoints: result.checkpoints, file: result.file };
  };
  // One checkpoint write at a time: the timer and an explicit call never interleave lines.
  const serialised = (onlyMoved: boolean, chains?: ReadonlySet<string>): Promise<CheckpointResult> => {
    const run = checkpointChain.then(() => writeNow(onlyMoved, chains));
    checkpointChain = run.catch(() => undefined);
    return run;
  };

  let timer: NodeJS.Timeout | undefined;
  if (canCheckpoint && intervalMs > 0) {
    timer = setInterval(() => {
      serialised(true).catch((err: unknown) => logger?.warn({ err: { message: (err as Error).message } }, 'Chronicle checkpoint failed; will retry'));
    }, intervalMs);
    timer.unref();
  }

  const rotate = async (): Promise<KeyRotation> => {
    const keyFile = options.signingKeyFile;
    if (key === null || keyFile === undefined || checkpointDir === undefined) {
      throw new ConfigError(['rotating the Chronicle signing key needs the current key and the checkpoint directory: set CHRONICLE_SIGNING_KEY_FILE and CHRONICLE_CHECKPOINT_DIR']);
    }
    const { next, stamp, rotation } = await handOver({ keyFile, checkpointDir, instance: await requireInstance(), current: currentKey, witnesses });
    keyFileSeen = stamp;
    key = next;
    logger?.info({ oldKeyId: rotation.oldKeyId, newKeyId: rotation.newKeyId }, 'rotated the Chronicle checkpoint signing key');
    return rotation;
  };

  const verifyWorkers = options.verify?.workers ?? Math.min(2, os.availableParallelism());
  let pool: VerifyPool | undefined;
  let closing: Promise<void> | undefined;
  return {
    append: (input: AppendInput): Promise<AppendReceipt> => writer.append(input),
    appendWithin: (tx, input) => writer.appendWithin(tx, input),
    get keyId() {
      return key?.keyId ?? null;
    },
    instanceId,
    rotateKey: () => {
      const run = checkpointChain.then(() => rotate());
      checkpointChain = run.catch(() => undefined);
      return run;
    },
    verify: (verifyOptions = {}) =>
      verifyChronicle({
        db,
        keys: loadKeyRing(key, options.signingKeyFile),
        verifiedLines,
        ...defined({
          checkpointDir,
          tenant: verifyOptions.tenant,
          witnessDir: verifyOptions.witnessDir,
          onProgress: verifyOptions.onProgress,
          chunkSize: options.verify?.chunkSize,
          minEventsForWorkers: options.verify?.minEventsForWorkers,
        }),
        // Started on the first long chain and kept until close(): starting threads costs more than a short verify.
        pool: () => {
          if (verifyWorkers <= 0 || closing !== undefined) return undefined;
          pool ??= new VerifyPool(verifyWorkers);
          return pool;
        },
      }),
    query: (filter) => queryChronicle(db, filter),
    export: (exportOptions, out) => exportChronicle(db, exportOptions, out),
    checkpoint: () => serialised(false),
    stats: () => {
      const w = witnesses.stats();
      return { ...writer.stats(), witnessBacklog: w.backlog, witnessFailures: w.failures };
    },
    close() {
      closing ??= (async () => {
        if (timer !== undefined) clearInterval(timer);
        await writer.close();
        await pool?.close();
        // Only chains this instance wrote: a reviewer's tool that merely reads never signs anything.
        if (canCheckpoint && writer.touchedChains.size > 0) {
          await serialised(true, writer.touchedChains).catch((err: unknown) =>
            logger?.warn({ err: { message: (err as Error).message } }, 'Chronicle could not write its closing checkpoint'),
          );
        }
        await witnesses.close();
      })();
      return closing;
    },
  };
}

/**
 * A new signing key, handed over in the log. Under the log's lock: the key handed over is the one
 * the key file holds now (another process may have rotated it since this one read it), its public
 * key is archived beside the key file first (its lines stay verifiable whatever happens next), the
 * hand-over line is signed by it, and the key file is replaced (rename, 0600) before the lock is
 * released, so no writer signs with the old key after the hand-over line.
 */
async function handOver(o: {
  keyFile: string;
  checkpointDir: string;
  instance: string;
  current: () => SigningKey;
  witnesses: Witnesses;
}): Promise<{ next: SigningKey; stamp: string | null; rotation: KeyRotation }> {
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const next = parseKeyFile(o.keyFile, pem);
  let old = next;
  let archivedPublicKey = '';
  // The replaced file's stamp, taken under the lock: one taken after it could be a later rotation's,
  // which this process would then never follow.
  let stamp: string | null = null;
  const now = new Date();
  const signer = (): SigningKey => {
    old = o.current();
    const archiveDir = archiveDirOf(o.keyFile);
    fs.mkdirSync(archiveDir, { recursive: true, mode: 0o700 });
    archivedPublicKey = path.join(archiveDir, `chronicle-signing-key.${old.keyId}.pub.pem`);
    fs.writeFileSync(archivedPublicKey, old.publicKeyPem, { mode: 0o644 });
    return old;
  };
  const replaceKeyFile = (): void => {
    const tmp = `${o.keyFile}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, pem, { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, o.keyFile);
    stamp = fileStamp(o.keyFile);
  };
  const { lines, texts } = await appendLogLines(instanceLogDir(o.checkpointDir, o.instance), signer, o.instance, [{ kind: 'key_rotation', newKey: next }], now, replaceKeyFile);
  o.witnesses.send(o.instance, checkpointFileName(now), texts);
  // Its public key goes beside the checkpoints.
  prepareCheckpointDir(o.checkpointDir, next);
  return { next, stamp, rotation: { oldKeyId: old.keyId, newKeyId: next.keyId, line: (lines[0] as { n: number }).n, archivedPublicKey } };
}
