/**
 * Signed checkpoints: "chain C had head seq S with hash H at time T", signed with Ed25519 and
 * appended to a log outside the database. Someone with database superuser rights can rewrite or
 * cut a chain consistently, but cannot sign; verify compares every chain with the checkpoints it
 * trusts and so catches a chopped tail or a whole-chain rewrite.
 *
 * The log is itself a chain, one per Chronicle instance (database), so that someone who can also
 * write the checkpoint directory cannot quietly drop the lines that would betray a rewrite:
 *   <checkpointDir>/<instance id>/checkpoints-YYYY-MM-DD.jsonl   (UTC day of writing)
 * one RFC 8785 canonical JSON object per line, appended under a lock and fsynced:
 *   {"chain":"…","hash":"…","instance":"…","key_id":"…","n":N,"prev":"…","seq":S,"sig":"…","time":"…","v":2}
 * `n` numbers the lines of the instance's log from 1 without gaps (across the day files); `prev` is
 * SHA-256 (hex) of the previous line's text (64 zeros for line 1); `sig` is the base64 Ed25519
 * signature over the canonical JSON of the line without `sig`. A removed, edited, moved or cut
 * line therefore shows by its number. A key hand-over is a line of the same log
 * (`"kind":"key_rotation","new_key_id":…,"new_public_key":…`) signed by the outgoing key.
 *
 * `key_id` is the first 16 hex digits of SHA-256 over the raw 32-byte public key; the public key
 * itself is written beside the files as chronicle-signing-key.<key_id>.pub.pem for outside checks,
 * and retired public keys are kept beside the signing key in archived-keys/ (verify trusts those).
 *
 * Lines of the first format (v 1, no n/prev/instance) written directly in <checkpointDir> are still
 * read and compared with the chains; they are reported as unchained.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { canonicalJson } from './canonical.js';
import type { Checkpoint, CheckpointLogFailure, CheckpointLogLine, CheckpointResult, KeyHandover, RetiredKeyUse } from './types.js';
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

export function parseKeyFile(file: string, pem: string): SigningKey {
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

/** What tells a file's new contents from its old (inode, size, modification time); null when it cannot be read. */
export function fileStamp(file: string): string | null {
  try {
    const st = fs.statSync(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return null;
  }
}

/**
 * The key file read again when it changed since `seen` (its stamp then): `key` is the key it holds
 * now when that is another key than `loaded` (a rotation made elsewhere), else null (unchanged, the
 * same key, or unreadable: the caller keeps signing with `loaded`); `seen` is the stamp to keep.
 */
export function rereadKeyFile(file: string, loaded: SigningKey, seen: string | null, logger?: Logger): { key: SigningKey | null; seen: string | null } {
  const stamp = fileStamp(file);
  if (stamp === null || stamp === seen) return { key: null, seen };
  let next: SigningKey;
  try {
    next = parseKeyFile(file, fs.readFileSync(file, 'utf8'));
  } catch (err) {
    logger?.warn({ file, err: { message: (err as Error).message } }, 'the Chronicle signing key file changed and cannot be read; signing with the key read before');
    return { key: null, seen: stamp };
  }
  if (next.keyId === loaded.keyId) return { key: null, seen: stamp };
  logger?.info({ oldKeyId: loaded.keyId, newKeyId: next.keyId }, 'the Chronicle signing key file holds a new key (a rotation): signing with it from now on');
  return { key: next, seen: stamp };
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

export const ZERO_HASH = '0'.repeat(64);
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(-32);
}

export function keyIdOf(raw: Buffer): string {
  return crypto.createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

/** An Ed25519 public key from its raw 32 bytes (base64); null when it is not one. */
export function publicKeyFromRaw(base64: string): KeyObject | null {
  const raw = Buffer.from(base64, 'base64');
  if (raw.length !== 32) return null;
  try {
    return crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
  } catch {
    return null;
  }
}

/** Public keys by key id. */
export type KeyRing = ReadonlyMap<string, KeyObject>;

/** Where retired public keys are kept: beside the signing key, not in the checkpoint directory (which an attacker may write). */
export function archiveDirOf(signingKeyFile: string): string {
  return path.join(path.dirname(signingKeyFile), 'archived-keys');
}

/** The keys verify trusts: the current one and every archived one. */
export function loadKeyRing(key: SigningKey | null, signingKeyFile: string | undefined): Map<string, KeyObject> {
  const ring = new Map<string, KeyObject>();
  if (key !== null) ring.set(key.keyId, key.publicKey);
  if (signingKeyFile === undefined) return ring;
  let names: string[] = [];
  try {
    names = fs.readdirSync(archiveDirOf(signingKeyFile)).filter((n) => n.endsWith('.pub.pem'));
  } catch {
    return ring;
  }
  for (const name of names) {
    try {
      const pub = crypto.createPublicKey(fs.readFileSync(path.join(archiveDirOf(signingKeyFile), name), 'utf8'));
      if (pub.asymmetricKeyType === 'ed25519') ring.set(keyIdOf(rawPublicKey(pub)), pub);
    } catch {
      // an unreadable archive file trusts nothing
    }
  }
  return ring;
}

const unsignedText = (line: Record<string, unknown>): Buffer => {
  const { sig: _sig, ...rest } = line;
  return Buffer.from(canonicalJson(rest), 'utf8');
};

export const lineHash = (text: string): string => crypto.createHash('sha256').update(text, 'utf8').digest('hex');

function signLine<T extends Omit<CheckpointLogLine, 'sig'>>(key: SigningKey, unsigned: T): T & { sig: string } {
  const sig = crypto.sign(null, unsignedText(unsigned as unknown as Record<string, unknown>), key.privateKey).toString('base64');
  return { ...unsigned, sig };
}

export type SignatureCheck = { readonly ok: true } | { readonly ok: false; readonly detail: string };

/** Checks a line's signature with the key its key_id names, if this deployment trusts that key. */
export function checkLineSignature(line: { readonly key_id: string; readonly sig: string }, ring: KeyRing): SignatureCheck {
  const key = ring.get(line.key_id);
  if (key === undefined) {
    return ring.size === 0
      ? { ok: false, detail: `checkpoint signed by key ${line.key_id}, but this deployment has no signing key to check it with (${KEY_VARIABLE})` }
      : { ok: false, detail: `checkpoint signed by key ${line.key_id}, not by this deployment's key ${[...ring.keys()].join(' or ')}` };
  }
  let valid = false;
  try {
    valid = crypto.verify(null, unsignedText(line as unknown as Record<string, unknown>), key, Buffer.from(line.sig, 'base64'));
  } catch {
    valid = false;
  }
  return valid ? { ok: true } : { ok: false, detail: `the checkpoint's Ed25519 signature does not verify (key ${line.key_id}): the line was forged or altered` };
}

export function checkpointFileName(time: Date): string {
  return `checkpoints-${time.toISOString().slice(0, 10)}.jsonl`;
}

const LOG_FILE = /^checkpoints-\d{4}-\d{2}-\d{2}\.jsonl$/;
export const INSTANCE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function instanceLogDir(checkpointDir: string, instance: string): string {
  return path.join(checkpointDir, instance);
}

async function logFiles(dir: string): Promise<string[]> {
  try {
    return (await fs.promises.readdir(dir)).filter((n) => LOG_FILE.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** The last complete line of the log (its number and hash), or the start of an empty log. */
async function logTail(dir: string): Promise<{ n: number; prev: string; needsNewline: string | null }> {
  const files = await logFiles(dir);
  for (let i = files.length - 1; i >= 0; i--) {
    const file = path.join(dir, files[i] as string);
    const text = await fs.promises.readFile(file, 'utf8');
    const needsNewline = text.length > 0 && !text.endsWith('\n') && i === files.length - 1 ? file : null;
    const lines = text.split('\n');
    if (!text.endsWith('\n')) lines.pop(); // a cut last line chains nothing; verify reports it
    for (let j = lines.length - 1; j >= 0; j--) {
      const line = lines[j] as string;
      if (line === '') continue;
      const parsed = parseLogLine(line);
      if (parsed !== null) return { n: parsed.n, prev: lineHash(line), needsNewline };
    }
    if (needsNewline !== null) return { n: 0, prev: ZERO_HASH, needsNewline };
  }
  return { n: 0, prev: ZERO_HASH, needsNewline: null };
}

/**
 * Serialises writers of one log, across processes: a lock directory made with mkdir (atomic), taken
 * over when its holder left it more than 30 s ago (a crash between mkdir and rmdir).
 */
async function withLogLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(dir, '.lock');
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.promises.mkdir(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        const age = Date.now() - (await fs.promises.stat(lock)).mtimeMs;
        if (age > 30_000) await fs.promises.rm(lock, { recursive: true, force: true });
      } catch {
        // released meanwhile
      }
      if (attempt > 2_000) throw new Error(`the checkpoint log ${dir} stayed locked for over 20 s (${lock}); remove the lock if no process holds it`);
      await sleep(10);
    }
  }
  try {
    return await fn();
  } finally {
    await fs.promises.rm(lock, { recursive: true, force: true });
  }
}

export type LogEntry =
  | { readonly kind: 'checkpoint'; readonly chain: string; readonly seq: number; readonly hash: string }
  | { readonly kind: 'key_rotation'; readonly newKey: SigningKey };

/**
 * Appends signed, chained lines to an instance's log (and returns their text), fsynced before it
 * resolves. The log's tail is read under the lock, so writers in several processes keep one chain.
 * `key` may be a function: it is asked under the lock, so a writer that follows the key file signs
 * with the key a hand-over in another process has just put there. `thenUnderLock` runs after the
 * lines are on disk, before the lock is released (a key hand-over replaces the key file there, so
 * no writer signs with the old key after the hand-over line).
 */
export async function appendLogLines(
  dir: string,
  key: SigningKey | (() => SigningKey),
  instance: string,
  entries: readonly LogEntry[],
  now: Date,
  thenUnderLock?: () => void,
): Promise<{ lines: CheckpointLogLine[]; texts: string[]; file: string | null }> {
  if (entries.length === 0) return { lines: [], texts: [], file: null };
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  return withLogLock(dir, async () => {
    const signer = typeof key === 'function' ? key() : key;
    const tail = await logTail(dir);
    let { n, prev } = tail;
    const time = now.toISOString();
    const lines: CheckpointLogLine[] = [];
    const texts: string[] = [];
    for (const entry of entries) {
      n += 1;
      const line: CheckpointLogLine =
        entry.kind === 'checkpoint'
          ? signLine(signer, { v: 2, n, prev, instance, chain: entry.chain, seq: entry.seq, hash: entry.hash, time, key_id: signer.keyId } as Omit<Checkpoint, 'sig'>)
          : signLine(signer, {
              v: 2,
              n,
              prev,
              instance,
              kind: 'key_rotation',
              new_key_id: entry.newKey.keyId,
              new_public_key: rawPublicKey(entry.newKey.publicKey).toString('base64'),
              time,
              key_id: signer.keyId,
            } as Omit<KeyHandover, 'sig'>);
      const text = canonicalJson(line);
      lines.push(line);
      texts.push(text);
      prev = lineHash(text);
    }
    const file = path.join(dir, checkpointFileName(now));
    const handle = await fs.promises.open(file, 'a', 0o644);
    try {
      // A cut last line is left as it is (verify names it); the new lines start on a line of their own.
      const lead = tail.needsNewline === file ? '\n' : '';
      await handle.appendFile(`${lead}${texts.join('\n')}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (tail.needsNewline !== null && tail.needsNewline !== file) await fs.promises.appendFile(tail.needsNewline, '\n');
    thenUnderLock?.();
    return { lines, texts, file };
  });
}

/** Appends signed lines for the given heads to the instance's log. */
export async function writeCheckpoints(
  checkpointDir: string,
  key: SigningKey | (() => SigningKey),
  instance: string,
  heads: readonly { chain: string; seq: number; hash: string }[],
  now: Date,
): Promise<CheckpointResult & { texts: string[] }> {
  const { lines, texts, file } = await appendLogLines(
    instanceLogDir(checkpointDir, instance),
    key,
    instance,
    heads.map((h) => ({ kind: 'checkpoint' as const, ...h })),
    now,
  );
  return { checkpoints: lines as Checkpoint[], texts, file };
}

const HEX64 = /^[0-9a-f]{64}$/;
const KEY_ID = /^[0-9a-f]{16}$/;

/** A log line of the chained format, or null when the text is not one. */
export function parseLogLine(text: string): CheckpointLogLine | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  if (v['v'] !== 2) return null;
  if (typeof v['n'] !== 'number' || !Number.isSafeInteger(v['n']) || v['n'] < 1) return null;
  if (typeof v['prev'] !== 'string' || !HEX64.test(v['prev'])) return null;
  if (typeof v['instance'] !== 'string' || !INSTANCE_ID.test(v['instance'])) return null;
  if (typeof v['time'] !== 'string' || v['time'].length > 40) return null;
  if (typeof v['key_id'] !== 'string' || !KEY_ID.test(v['key_id'])) return null;
  if (typeof v['sig'] !== 'string' || v['sig'].length > 200) return null;
  const base = { v: 2 as const, n: v['n'], prev: v['prev'], instance: v['instance'], time: v['time'], key_id: v['key_id'], sig: v['sig'] };
  if (v['kind'] === 'key_rotation') {
    if (typeof v['new_key_id'] !== 'string' || !KEY_ID.test(v['new_key_id'])) return null;
    if (typeof v['new_public_key'] !== 'string' || v['new_public_key'].length > 64) return null;
    if (Object.keys(v).length !== 10) return null;
    return { ...base, kind: 'key_rotation', new_key_id: v['new_key_id'], new_public_key: v['new_public_key'] };
  }
  if (typeof v['chain'] !== 'string' || !isTenant(v['chain'])) return null;
  if (typeof v['seq'] !== 'number' || !Number.isSafeInteger(v['seq']) || v['seq'] < 1) return null;
  if (typeof v['hash'] !== 'string' || !HEX64.test(v['hash'])) return null;
  if (Object.keys(v).length !== 10) return null;
  return { ...base, chain: v['chain'], seq: v['seq'], hash: v['hash'] };
}

/** One physical line of a log, in file order. */
export interface RawLogLine {
  readonly source: string;
  readonly text: string;
  /** False for a last line without its newline: the log was cut there. */
  readonly complete: boolean;
}

/** Every line of an instance's log, in order (day files by name, lines by position). */
export async function readLogLines(dir: string): Promise<RawLogLine[]> {
  const out: RawLogLine[] = [];
  for (const name of await logFiles(dir)) {
    const text = await fs.promises.readFile(path.join(dir, name), 'utf8');
    const parts = text.split('\n');
    const last = parts.length - 1;
    parts.forEach((line, i) => {
      if (line === '') return;
      out.push({ source: `${name}:${i + 1}`, text: line, complete: i < last });
    });
  }
  return out;
}

export interface LogFailure {
  readonly line: number;
  readonly reason: CheckpointLogFailure;
  readonly detail: string;
}

export interface CheckedLog {
  readonly failure: LogFailure | null;
  /** Checkpoint lines whose signatures verify with a trusted key, with where they were read. */
  readonly checkpoints: ReadonlyArray<Checkpoint & { readonly source: string }>;
  /** Checkpoint lines whose signatures do not verify, with why. */
  readonly forged: ReadonlyArray<{ readonly line: Checkpoint & { readonly source: string }; readonly detail: string }>;
  readonly keyRotations: ReadonlyArray<{ readonly line: number; readonly from: string; readonly to: string; readonly time: string }>;
  /** Lines signed by a key after the line that handed it over (trusted, but see RetiredKeyUse). */
  readonly retiredKeyLines: readonly RetiredKeyUse[];
  /** The text of each numbered line that chained correctly. */
  readonly texts: ReadonlyMap<number, string>;
}

/**
 * Walks a log from line 1: each line must be the next number, chain to the text before it, name
 * this instance, and carry a signature of a trusted key. A key hand-over signed by a trusted key
 * makes the new key trusted for the lines after it. Pure: the same lines and keys, one answer.
 */
export function checkLog(raw: readonly RawLogLine[], instance: string, ring: KeyRing, verified?: Set<string>): CheckedLog {
  const keys = new Map(ring);
  const checkpoints: Array<Checkpoint & { source: string }> = [];
  const forged: Array<{ line: Checkpoint & { source: string }; detail: string }> = [];
  const keyRotations: Array<{ line: number; from: string; to: string; time: string }> = [];
  const retiredKeyLines: RetiredKeyUse[] = [];
  const retiredAt = new Map<string, number>();
  const texts = new Map<number, string>();
  let failure: LogFailure | null = null;
  const fail = (f: LogFailure) => {
    failure ??= f;
  };
  let expected = 1;
  let prev = ZERO_HASH;
  let previousSource = 'the start of the log';
  raw.forEach((entry, i) => {
    const parsed = parseLogLine(entry.text);
    if (parsed === null) {
      if (!entry.complete && i === raw.length - 1) {
        fail({ line: expected, reason: 'cut', detail: `line ${expected} (${entry.source}) was cut short: the log ends in the middle of a line` });
      } else {
        fail({ line: expected, reason: 'edited', detail: `line ${expected} (${entry.source}) is not a checkpoint line: it was edited or overwritten` });
      }
      expected += 1;
      return;
    }
    // Ed25519 verification is the cost of reading a long log; a text once verified stays verified.
    const known = verified?.has(entry.text) === true && keys.has(parsed.key_id);
    const signature = known ? ({ ok: true } as const) : checkLineSignature(parsed, keys);
    if (signature.ok && !known && verified !== undefined && verified.size < 1_000_000) verified.add(entry.text);
    const retired = signature.ok ? retiredAt.get(parsed.key_id) : undefined;
    if (retired !== undefined) retiredKeyLines.push({ line: parsed.n, keyId: parsed.key_id, retiredAt: retired });
    if ('chain' in parsed) {
      if (signature.ok) checkpoints.push({ ...parsed, source: entry.source });
      else forged.push({ line: { ...parsed, source: entry.source }, detail: `${entry.source}: ${signature.detail}` });
    } else if (signature.ok && retired === undefined) {
      // Only a key not yet handed over hands over: a retired key naming another successor (someone
      // who kept it) makes no key trusted, and the lines that key signs then fail as unsigned.
      const newKey = publicKeyFromRaw(parsed.new_public_key);
      if (newKey !== null && keyIdOf(rawPublicKey(newKey)) === parsed.new_key_id) {
        keys.set(parsed.new_key_id, newKey);
        keyRotations.push({ line: parsed.n, from: parsed.key_id, to: parsed.new_key_id, time: parsed.time });
        if (parsed.new_key_id !== parsed.key_id) retiredAt.set(parsed.key_id, parsed.n);
      } else {
        fail({ line: parsed.n, reason: 'edited', detail: `line ${parsed.n} (${entry.source}) hands over to a key that does not match its key id` });
      }
    }
    if (parsed.n < expected) {
      fail({ line: parsed.n, reason: 'reordered', detail: `line ${parsed.n} (${entry.source}) comes after line ${expected - 1}: lines were moved or repeated` });
    } else if (parsed.n > expected) {
      fail({
        line: expected,
        reason: 'missing',
        detail: `line${parsed.n - 1 > expected ? `s ${expected} to ${parsed.n - 1} are` : ` ${expected} is`} missing: ${entry.source} holds line ${parsed.n} right after ${previousSource}`,
      });
    } else if (!signature.ok) {
      fail({
        line: parsed.n,
        reason: keys.has(parsed.key_id) ? 'edited' : 'bad_signature',
        detail: keys.has(parsed.key_id) ? `line ${parsed.n} (${entry.source}): ${signature.detail}` : `line ${parsed.n} (${entry.source}): ${signature.detail}`,
      });
    } else if (parsed.prev !== prev) {
      fail(
        parsed.n === 1
          ? { line: 1, reason: 'edited', detail: `line 1 (${entry.source}) does not start the log: lines before it were removed` }
          : { line: parsed.n - 1, reason: 'edited', detail: `line ${parsed.n} (${entry.source}) was chained to a different line ${parsed.n - 1}: line ${parsed.n - 1} was replaced` },
      );
    } else if (parsed.instance !== instance) {
      fail({ line: parsed.n, reason: 'foreign_line', detail: `line ${parsed.n} (${entry.source}) signs instance ${parsed.instance}, not this log's ${instance}` });
    } else if (!entry.complete && i === raw.length - 1) {
      fail({ line: parsed.n, reason: 'cut', detail: `line ${parsed.n} (${entry.source}) has lost its newline: the log was cut after it` });
    }
    if (failure === null) texts.set(parsed.n, entry.text);
    expected = Math.max(expected, parsed.n + 1);
    prev = lineHash(entry.text);
    previousSource = `line ${parsed.n} (${entry.source})`;
  });
  return { failure, checkpoints, forged, keyRotations, retiredKeyLines, texts };
}

/**
 * Compares the local log with a witness copy: every line the witness holds must be in the local
 * log, word for word. Lines only the witness holds mean the local log lost them (its newest lines,
 * typically): exactly what the log's own chain cannot show.
 */
export function compareWithWitness(local: readonly RawLogLine[], witness: readonly RawLogLine[]): LogFailure | null {
  const localByNumber = new Map<number, string>();
  for (const entry of local) {
    const parsed = parseLogLine(entry.text);
    if (parsed !== null && !localByNumber.has(parsed.n)) localByNumber.set(parsed.n, entry.text);
  }
  let firstMissing: number | null = null;
  let lastMissing = 0;
  for (const entry of witness) {
    const parsed = parseLogLine(entry.text);
    if (parsed === null) continue;
    const mine = localByNumber.get(parsed.n);
    if (mine === undefined) {
      firstMissing = firstMissing === null ? parsed.n : Math.min(firstMissing, parsed.n);
      lastMissing = Math.max(lastMissing, parsed.n);
    } else if (mine !== entry.text) {
      return { line: parsed.n, reason: 'witness_mismatch', detail: `line ${parsed.n} differs from the witness copy (${entry.source}): the local line was replaced` };
    }
  }
  if (firstMissing === null) return null;
  return {
    line: firstMissing,
    reason: 'missing',
    detail: `the witness holds line${lastMissing > firstMissing ? `s ${firstMissing} to ${lastMissing}` : ` ${firstMissing}`}, which the local log lacks: they were deleted`,
  };
}

/** A checkpoint line of the first format (v 1: no number, no chaining, no instance). */
export interface LegacyCheckpoint extends Omit<Checkpoint, 'v' | 'n' | 'prev' | 'instance'> {
  readonly v: 1;
}

function asLegacyCheckpoint(value: unknown): LegacyCheckpoint | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
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

/** Reads first-format lines written directly in the checkpoint directory; unreadable lines become warnings. */
export async function readLegacyCheckpoints(dir: string): Promise<{ checkpoints: Array<LegacyCheckpoint & { source: string }>; warnings: string[] }> {
  const checkpoints: Array<LegacyCheckpoint & { source: string }> = [];
  const warnings: string[] = [];
  for (const entry of await readLogLines(dir)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(entry.text);
    } catch {
      warnings.push(`${entry.source}: not JSON; ignored`);
      continue;
    }
    const cp = asLegacyCheckpoint(parsed);
    if (cp === null) warnings.push(`${entry.source}: not a checkpoint line; ignored`);
    else checkpoints.push({ ...cp, source: entry.source });
  }
  return { checkpoints, warnings };
}
