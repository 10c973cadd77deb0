/**
 * Signed checkpoints: "chain C had head seq S with hash H at time T", signed with Ed25519 and
 * appended to files outside the database. Someone with database superuser rights can rewrite or
 * cut a chain consistently, but cannot sign; verify compares every chain with the checkpoints it
 * trusts and so catches a chopped tail or a whole-chain rewrite.
 *
 * Files: <checkpointDir>/checkpoints-YYYY-MM-DD.jsonl (UTC day of writing), opened append-only,
 * one JSON object per line, fsynced after each write:
 *   {"chain":"…","hash":"…","key_id":"…","seq":N,"sig":"…","time":"…","v":1}
 * `sig` is the base64 Ed25519 signature over the RFC 8785 canonical JSON of the line without `sig`.
 * `key_id` is the first 16 hex digits of SHA-256 over the raw 32-byte public key; the public key
 * itself is written beside the files as chronicle-signing-key.<key_id>.pub.pem for outside checks.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { canonicalJson } from './canonical.js';
import type { Checkpoint, CheckpointResult } from './types.js';
import { isTenant } from '../common/ids.js';
import { isPlainObject } from '../common/values.js';

export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;
  readonly publicKeyPem: string;
}

const KEY_VARIABLE = 'CHRONICLE_SIGNING_KEY_FILE';
const DIR_VARIABLE = 'CHRONICLE_CHECKPOINT_DIR';

function keyFromPrivate(privateKey: KeyObject): SigningKey {
  const publicKey = crypto.createPublicKey(privateKey);
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return {
    privateKey,
    publicKey,
    keyId: crypto.createHash('sha256').update(raw).digest('hex').slice(0, 16),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

function parseKeyFile(file: string, pem: string): SigningKey {
  let key: KeyObject;
  try {
    key = crypto.createPrivateKey(pem);
  } catch (err) {
    throw new ConfigError([`${KEY_VARIABLE} (${file}) is not a PEM private key (${(err as Error).message}); point it at an Ed25519 key in PKCS#8 PEM, or remove the file to have one generated`]);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new ConfigError([`${KEY_VARIABLE} (${file}) holds a ${key.asymmetricKeyType ?? 'non-asymmetric'} key; checkpoints are signed with Ed25519: generate one with \`openssl genpkey -algorithm ed25519\``]);
  }
  return keyFromPrivate(key);
}

/**
 * Loads the checkpoint signing key, generating it (mode 0600) when the file does not exist and
 * `create` is set. Two processes starting together agree on one key: the new key is written to a
 * temporary file and linked into place, which fails for the second, who then reads the first's.
 */
export function loadSigningKey(file: string, { create, logger }: { create: boolean; logger?: Logger }): SigningKey | null {
  const read = (): string | null => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new ConfigError([`${KEY_VARIABLE} (${file}) cannot be read: ${(err as Error).message}; fix its permissions or point the variable elsewhere`]);
    }
  };
  const existing = read();
  if (existing !== null) {
    try {
      const mode = fs.statSync(file).mode & 0o077;
      if (mode !== 0) logger?.warn({ file }, 'the Chronicle signing key file is readable by other users; chmod 600 it');
    } catch {
      // stat failing right after a successful read is not worth failing start for
    }
    return parseKeyFile(file, existing);
  }
  if (!create) return null;

  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, pem, { mode: 0o600, flag: 'wx' });
    try {
      fs.linkSync(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const theirs = read();
      if (theirs === null) throw err;
      return parseKeyFile(file, theirs);
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([`${KEY_VARIABLE} (${file}) could not be created: ${(err as Error).message}; make its directory writable or point the variable elsewhere`]);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  const key = keyFromPrivate(privateKey);
  logger?.info({ file, keyId: key.keyId }, 'generated a new Chronicle checkpoint signing key');
  return key;
}

/** Creates the checkpoint directory and the public key file beside the checkpoints. */
export function prepareCheckpointDir(dir: string, key: SigningKey): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.accessSync(dir, fs.constants.W_OK);
    const pub = path.join(dir, `chronicle-signing-key.${key.keyId}.pub.pem`);
    if (!fs.existsSync(pub)) fs.writeFileSync(pub, key.publicKeyPem, { mode: 0o644 });
  } catch (err) {
    throw new ConfigError([`${DIR_VARIABLE} (${dir}) is not a writable directory: ${(err as Error).message}; create it or point the variable elsewhere`]);
  }
}

type UnsignedCheckpoint = Omit<Checkpoint, 'sig'>;

function signedPayload(cp: UnsignedCheckpoint): Buffer {
  return Buffer.from(canonicalJson({ chain: cp.chain, hash: cp.hash, key_id: cp.key_id, seq: cp.seq, time: cp.time, v: cp.v }), 'utf8');
}

export function signCheckpoint(key: SigningKey, head: { chain: string; seq: number; hash: string }, time: Date): Checkpoint {
  const unsigned: UnsignedCheckpoint = { v: 1, chain: head.chain, seq: head.seq, hash: head.hash, time: time.toISOString(), key_id: key.keyId };
  const sig = crypto.sign(null, signedPayload(unsigned), key.privateKey).toString('base64');
  return { ...unsigned, sig };
}

export type SignatureCheck = { readonly ok: true } | { readonly ok: false; readonly detail: string };

export function checkSignature(cp: Checkpoint, key: SigningKey | null): SignatureCheck {
  if (key === null) {
    return { ok: false, detail: `checkpoint signed by key ${cp.key_id}, but this deployment has no signing key to check it with (${KEY_VARIABLE})` };
  }
  if (cp.key_id !== key.keyId) {
    return { ok: false, detail: `checkpoint signed by key ${cp.key_id}, not by this deployment's key ${key.keyId}` };
  }
  let valid = false;
  try {
    valid = crypto.verify(null, signedPayload(cp), key.publicKey, Buffer.from(cp.sig, 'base64'));
  } catch {
    valid = false;
  }
  return valid ? { ok: true } : { ok: false, detail: `the checkpoint's Ed25519 signature does not verify (key ${key.keyId}): the line was forged or altered` };
}

export function checkpointFileName(time: Date): string {
  return `checkpoints-${time.toISOString().slice(0, 10)}.jsonl`;
}

/** Appends signed lines for the given heads, fsynced before it resolves. */
export async function writeCheckpoints(
  dir: string,
  key: SigningKey,
  heads: readonly { chain: string; seq: number; hash: string }[],
  now: Date,
): Promise<CheckpointResult> {
  if (heads.length === 0) return { checkpoints: [], file: null };
  const checkpoints = heads.map((head) => signCheckpoint(key, head, now));
  const file = path.join(dir, checkpointFileName(now));
  const text = checkpoints.map((cp) => `${canonicalJson(cp)}\n`).join('');
  const handle = await fs.promises.open(file, 'a', 0o644);
  try {
    await handle.appendFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { checkpoints, file };
}

const HEX64 = /^[0-9a-f]{64}$/;
const KEY_ID = /^[0-9a-f]{16}$/;

function asCheckpoint(value: unknown): Checkpoint | null {
  if (!isPlainObject(value)) return null;
  const v = value as Record<string, unknown>;
  if (v['v'] !== 1) return null;
  if (!isTenant(v['chain'])) return null;
  if (typeof v['seq'] !== 'number' || !Number.isSafeInteger(v['seq']) || v['seq'] < 1) return null;
  if (typeof v['hash'] !== 'string' || !HEX64.test(v['hash'])) return null;
  if (typeof v['time'] !== 'string' || v['time'].length > 40) return null;
  if (typeof v['key_id'] !== 'string' || !KEY_ID.test(v['key_id'])) return null;
  if (typeof v['sig'] !== 'string' || v['sig'].length > 200) return null;
  return { v: 1, chain: v['chain'], seq: v['seq'], hash: v['hash'], time: v['time'], key_id: v['key_id'], sig: v['sig'] };
}

export interface CheckpointReadResult {
  readonly checkpoints: ReadonlyArray<Checkpoint & { readonly source: string }>;
  readonly warnings: string[];
}

/** Reads every checkpoint file of the directory; unreadable lines become warnings, not checkpoints. */
export async function readCheckpoints(dir: string): Promise<CheckpointReadResult> {
  let names: string[];
  try {
    names = (await fs.promises.readdir(dir)).filter((n) => /^checkpoints-.*\.jsonl$/.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { checkpoints: [], warnings: [] };
    throw err;
  }
  const checkpoints: Array<Checkpoint & { source: string }> = [];
  const warnings: string[] = [];
  for (const name of names) {
    const text = await fs.promises.readFile(path.join(dir, name), 'utf8');
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      if (line === '') return;
      const source = `${name}:${i + 1}`;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        warnings.push(`${source}: not JSON; ignored`);
        return;
      }
      const cp = asCheckpoint(parsed);
      if (cp === null) warnings.push(`${source}: not a checkpoint line; ignored`);
      else checkpoints.push({ ...cp, source });
    });
  }
  return { checkpoints, warnings };
}
