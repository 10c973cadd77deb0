/**
 * Per-tenant keys for serial-number fingerprints (and list cursors), derived with HKDF from one
 * master key file under the data directory. The file is created on first start (32 random bytes,
 * hex, mode 0600) and never stored in the database: someone who can read the database alone cannot
 * reverse a fingerprint by hashing candidate serials. Replicas that must agree on fingerprints and
 * cursors share the file (mount the same secret).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/index.js';

export const FINGERPRINT_KEY_FILE = 'fingerprint.key';
const MASTER_KEY_BYTES = 32;
const HKDF_SALT = 'intune-connector/serial-fingerprint/v1';

export class FingerprintKeyError extends Error {
  override readonly name = 'FingerprintKeyError';
}

/** Reads the master key, creating it (exclusively, 0600) when missing. */
export function loadOrCreateMasterKey(file: string, logger?: Logger): Buffer {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Written whole to a private temporary file, then linked into place: link fails if the file
  // exists, so of two processes starting together one creates the key and the other reads it,
  // and no reader ever sees a half-written file.
  const created = crypto.randomBytes(MASTER_KEY_BYTES);
  const temporary = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  try {
    fs.writeFileSync(temporary, `${created.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    fs.linkSync(temporary, file);
    logger?.info({ file }, 'created the serial fingerprint master key');
    return created;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new FingerprintKeyError(`could not create the fingerprint key file ${file}: ${(err as Error).message}; make the data directory writable`);
    }
  } finally {
    fs.rmSync(temporary, { force: true });
  }
  const text = fs.readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/i.test(text)) {
    throw new FingerprintKeyError(
      `the fingerprint key file ${file} is not 64 hex characters; restore it from backup (fingerprints made with another key will not match) or remove it to start a new key`,
    );
  }
  if (process.platform !== 'win32' && (fs.statSync(file).mode & 0o077) !== 0) {
    logger?.warn({ file }, 'the fingerprint key file is readable by other users; run chmod 600 on it');
  }
  return Buffer.from(text, 'hex');
}

/** One key per tenant: HKDF-SHA256(master, salt, info = tenant). */
export function deriveFingerprintKeys(masterKey: Buffer): (tenant: string) => Buffer {
  const keys = new Map<string, Buffer>();
  return (tenant: string) => {
    let key = keys.get(tenant);
    if (key === undefined) {
      key = Buffer.from(crypto.hkdfSync('sha256', masterKey, HKDF_SALT, `tenant:${tenant}`, 32));
      keys.set(tenant, key);
    }
    return key;
  };
}

/**
 * The helper the runtime uses: the master key file (`file`, else `<dataDir>/fingerprint.key`),
 * loaded or created, and the per-tenant derivation.
 */
export function fingerprintKeys(
  options: ({ file: string; dataDir?: string } | { dataDir: string; file?: string }) & { logger?: Logger },
): { readonly file: string; keyFor(tenant: string): Buffer } {
  const file = options.file ?? path.join(options.dataDir as string, FINGERPRINT_KEY_FILE);
  const keyFor = deriveFingerprintKeys(loadOrCreateMasterKey(file, options.logger));
  return { file, keyFor };
}
