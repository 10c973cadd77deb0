import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/config/index.js';
import { canonicalJson, createChronicle, type Checkpoint } from '../../src/chronicle/index.js';
import { createPGliteDatabase, type TestDatabase } from '../helpers/db.js';
import type { Db } from '../../src/db/index.js';
import { invoked, tempDir, uniqueTenant } from './helpers.js';

const CHECKPOINTS_MODULE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'chronicle', 'checkpoints.ts');

/** Every checkpoint line under the directory: each instance's log lives in a directory of its own. */
function checkpointLines(dir: string): Checkpoint[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((n) => /(^|\/)checkpoints-\d{4}-\d{2}-\d{2}\.jsonl$/.test(n))
    .flatMap((n) => fs.readFileSync(path.join(dir, n), 'utf8').split('\n'))
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Checkpoint);
}

describe('chronicle checkpoints and the signing key', () => {
  // One embedded database for the file (each case has its own chains, key and directory).
  let tdb: TestDatabase;
  let db: Db;
  let tmp: ReturnType<typeof tempDir>;
  let keyFile: string;
  let checkpointDir: string;
  let a: string;
  let b: string;
  /** This case's chains' checkpoint lines, as chain@seq with the chains named a and b. */
  const mine = () =>
    checkpointLines(checkpointDir)
      .filter((c) => c.chain === a || c.chain === b)
      .map((c) => `${c.chain === a ? 'a' : 'b'}@${c.seq}`);

  beforeAll(async () => {
    tdb = await createPGliteDatabase();
    db = await tdb.open();
  });
  afterAll(async () => tdb?.drop());
  beforeEach(() => {
    tmp = tempDir('checkpoints');
    keyFile = path.join(tmp.dir, 'keys', 'signing-key.pem');
    checkpointDir = path.join(tmp.dir, 'checkpoints');
    [a, b] = [uniqueTenant('a'), uniqueTenant('b')].sort() as [string, string];
  });
  afterEach(() => {
    vi.useRealTimers();
    tmp.remove();
  });

  it('generates an Ed25519 key (0600) on first start and keeps using it', async () => {
    const first = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir });
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(crypto.createPrivateKey(fs.readFileSync(keyFile)).asymmetricKeyType).toBe('ed25519');
    expect(first.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(fs.existsSync(path.join(checkpointDir, `chronicle-signing-key.${first.keyId}.pub.pem`))).toBe(true);
    await first.close();
    const second = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir });
    expect(second.keyId).toBe(first.keyId);
    await second.close();
  });

  it('settles on one key when several processes start at once', async () => {
    const script = `import('${CHECKPOINTS_MODULE}').then((m) => process.stdout.write(m.loadSigningKey(${JSON.stringify(keyFile)}, { create: true }).keyId))`;
    const ids = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<string>((resolve, reject) => {
            const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
            let out = '';
            let err = '';
            child.stdout.on('data', (c: Buffer) => (out += c.toString()));
            child.stderr.on('data', (c: Buffer) => (err += c.toString()));
            child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(err))));
          }),
      ),
    );
    expect(new Set(ids).size).toBe(1);
    const chronicle = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir });
    expect(chronicle.keyId).toBe(ids[0]);
    await chronicle.close();
    expect(fs.readdirSync(path.dirname(keyFile))).toEqual(['signing-key.pem']); // no temporary files left
  });

  it('refuses a key file that is not an Ed25519 private key, naming the variable', async () => {
        fs.mkdirSync(path.dirname(keyFile), { recursive: true });
    fs.writeFileSync(keyFile, crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const wrongType = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir }).catch((e: unknown) => e);
    expect(wrongType).toBeInstanceOf(ConfigError);
    expect((wrongType as Error).message).toMatch(/CHRONICLE_SIGNING_KEY_FILE .* holds a ec key; checkpoints are signed with Ed25519/);
    fs.writeFileSync(keyFile, 'not a key');
    await expect(createChronicle({ db, signingKeyFile: keyFile, checkpointDir })).rejects.toThrow(/CHRONICLE_SIGNING_KEY_FILE .* is not a PEM private key/);
  });

  it('refuses a checkpoint directory it cannot create, naming the variable', async () => {
    fs.writeFileSync(path.join(tmp.dir, 'a-file'), '');
    const err = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir: path.join(tmp.dir, 'a-file', 'checkpoints') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/CHRONICLE_CHECKPOINT_DIR .* is not a writable directory/);
  });

  it('does not make a key for a reader, and says what to set when asked to checkpoint without one', async () => {
    const reader = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir, createSigningKey: false });
    expect(reader.keyId).toBeNull();
    expect(fs.existsSync(keyFile)).toBe(false);
    await expect(reader.checkpoint()).rejects.toThrow(/set CHRONICLE_SIGNING_KEY_FILE and CHRONICLE_CHECKPOINT_DIR/);
    await reader.close();
  });

  it('writes signed lines that anyone can check with the public key beside them', async () => {
    const chronicle = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir });
    const first = await chronicle.append(invoked(a, 1));
    await chronicle.append(invoked(b, 1));
    const second = await chronicle.append(invoked(b, 2));
    const result = await chronicle.checkpoint();
    const instance = await chronicle.instanceId();
    expect(instance).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.file).toBe(path.join(checkpointDir, instance as string, `checkpoints-${new Date().toISOString().slice(0, 10)}.jsonl`));
    expect(result.checkpoints.filter((c) => c.chain === a || c.chain === b).map((c) => [c.chain, c.seq, c.hash])).toEqual([
      [a, 1, first.hash],
      [b, 2, second.hash],
    ]);
    const text = fs.readFileSync(result.file as string, 'utf8');
    const publicKey = crypto.createPublicKey(fs.readFileSync(path.join(checkpointDir, `chronicle-signing-key.${chronicle.keyId}.pub.pem`)));
    let prev = '0'.repeat(64);
    for (const [i, line] of text.trimEnd().split('\n').entries()) {
      const cp = JSON.parse(line) as Checkpoint;
      expect(canonicalJson(cp)).toBe(line);
      // Numbered, chained to the line before, naming the database it signs.
      expect(cp).toMatchObject({ v: 2, n: i + 1, prev, instance });
      prev = crypto.createHash('sha256').update(line).digest('hex');
      const { sig, ...signed } = cp;
      expect(crypto.verify(null, Buffer.from(canonicalJson(signed)), publicKey, Buffer.from(sig, 'base64'))).toBe(true);
      expect(crypto.verify(null, Buffer.from(canonicalJson({ ...signed, seq: signed.seq + 1 })), publicKey, Buffer.from(sig, 'base64'))).toBe(false);
    }
    await chronicle.close();
  });

  it('checkpoints periodically, only the chains whose head moved', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const chronicle = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir, checkpointIntervalMs: 60_000 });
    await chronicle.append(invoked(a, 1));
    await chronicle.append(invoked(b, 1));
    expect(mine()).toEqual([]);

    await vi.advanceTimersByTimeAsync(60_000);
    await vi.waitFor(() => expect(mine()).toEqual(['a@1', 'b@1']));

    await chronicle.append(invoked(b, 2));
    await vi.advanceTimersByTimeAsync(60_000);
    await vi.waitFor(() => expect(mine()).toEqual(['a@1', 'b@1', 'b@2']));

    await vi.advanceTimersByTimeAsync(60_000); // nothing moved: nothing written
    await chronicle.append(invoked(a, 2));
    await chronicle.close(); // stops the timer and signs what this instance wrote since
    expect(mine()).toEqual(['a@1', 'b@1', 'b@2', 'a@2']);
    expect((await chronicle.verify({ tenant: a })).chains[0]).toMatchObject({ ok: true, checkpointsChecked: 2 });
    expect((await chronicle.verify({ tenant: b })).chains[0]).toMatchObject({ ok: true, checkpointsChecked: 2 });
  });

  it('a reader that appended nothing signs nothing when it closes', async () => {
    const writer = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir });
    await writer.append(invoked(a, 1));
    await writer.close();
    const before = checkpointLines(checkpointDir).length;
    const reader = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir });
    expect((await reader.verify()).ok).toBe(true);
    await reader.close();
    expect(checkpointLines(checkpointDir)).toHaveLength(before);
    expect(before).toBeGreaterThan(0);
  });

  it('reports unreadable checkpoint lines as warnings without trusting or failing on them', async () => {
    const chronicle = await createChronicle({ db, signingKeyFile: keyFile, checkpointDir });
    await chronicle.append(invoked(a, 1));
    await chronicle.checkpoint();
    fs.appendFileSync(path.join(checkpointDir, 'checkpoints-2000-01-01.jsonl'), '{"v":1,"chain":"a","seq":\n[]\n');
    const report = await chronicle.verify({ tenant: a });
    expect(report.ok).toBe(true);
    expect(report.warnings).toEqual(['checkpoints-2000-01-01.jsonl:1: not JSON; ignored', 'checkpoints-2000-01-01.jsonl:2: not a checkpoint line; ignored']);
    await chronicle.close();
  });
});
