/**
 * Each tenant's agent CA: made on first use, its private key kept in a file under the CA directory
 * (INTUNE_AGENT_CA_DIR, default <data dir>/agents; mode 0600, like the Chronicle signing key) and
 * its certificate recorded in PostgreSQL so every replica trusts the same CAs. Replicas must share
 * the directory; a replica whose file disagrees with the database refuses to issue, with a message.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import { certFingerprint256, createCa, type CaMaterial } from './x509.js';

export interface TrustedCa {
  readonly tenant: string;
  readonly certPem: string;
  readonly fingerprint: string;
}

export interface CaStore {
  /** The tenant's CA (key and certificate), made on first use. */
  caFor(tenant: string): Promise<CaMaterial & { readonly fingerprint: string }>;
  /** The recorded CA certificate fingerprint of a tenant, or null when it has none. */
  fingerprintOf(tenant: string): Promise<string | null>;
  /** Every tenant's CA certificate: the trust list of the mTLS listener. */
  trusted(): Promise<TrustedCa[]>;
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g;

function splitPem(text: string): { keyPem?: string; certPem?: string } {
  const out: { keyPem?: string; certPem?: string } = {};
  for (const match of text.matchAll(PEM_BLOCK)) {
    if (match[1] === 'PRIVATE KEY') out.keyPem = match[0].endsWith('\n') ? match[0] : `${match[0]}\n`;
    if (match[1] === 'CERTIFICATE') out.certPem = match[0].endsWith('\n') ? match[0] : `${match[0]}\n`;
  }
  return out;
}

export function caFile(dir: string, tenant: string): string {
  return path.join(dir, `agent-ca-${tenant}.pem`);
}

/** Writes `content` to `file` only if it does not exist (of two writers, one wins); returns what the file holds. */
export function writeOnce(file: string, content: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  try {
    fs.writeFileSync(temporary, content, { mode: 0o600, flag: 'wx' });
    fs.linkSync(temporary, file);
    return content;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return fs.readFileSync(file, 'utf8');
  } finally {
    fs.rmSync(temporary, { force: true });
  }
}

export function createCaStore({ db, dir, logger, now = Date.now }: { db: Db; dir: string; logger: Logger; now?: () => number }): CaStore {
  const cas = new Map<string, Promise<CaMaterial & { fingerprint: string }>>();
  const fingerprints = new Map<string, string>();

  async function recorded(tenant: string): Promise<{ certPem: string; fingerprint: string } | null> {
    const { rows } = await db.query<{ certificate_pem: string; fingerprint_sha256: string }>(
      'SELECT certificate_pem, fingerprint_sha256 FROM agent_cas WHERE tenant = $1',
      [tenant],
    );
    const row = rows[0];
    return row === undefined ? null : { certPem: row.certificate_pem, fingerprint: row.fingerprint_sha256 };
  }

  async function load(tenant: string): Promise<CaMaterial & { fingerprint: string }> {
    const file = caFile(dir, tenant);
    let text: string;
    if (fs.existsSync(file)) {
      text = fs.readFileSync(file, 'utf8');
    } else {
      // Another replica may have made it a moment ago: its file is linked in before its row is written.
      if ((await recorded(tenant)) !== null && !fs.existsSync(file)) {
        throw new Error(
          `the agent CA of tenant ${tenant} is recorded in the database but its key file ${file} is missing: replicas must share INTUNE_AGENT_CA_DIR (restore the file from backup)`,
        );
      }
      if (fs.existsSync(file)) {
        text = fs.readFileSync(file, 'utf8');
      } else {
        const made = await createCa(tenant, new Date(now()));
        text = writeOnce(file, made.keyPem + made.certPem);
        logger.info({ tenant, file }, 'created the agent CA of a tenant');
      }
    }
    const { keyPem, certPem } = splitPem(text);
    if (keyPem === undefined || certPem === undefined) {
      throw new Error(`the agent CA file ${file} must hold a PRIVATE KEY and a CERTIFICATE in PEM; restore it from backup`);
    }
    const fingerprint = certFingerprint256(certPem);
    await db.query('INSERT INTO agent_cas (tenant, certificate_pem, fingerprint_sha256) VALUES ($1, $2, $3) ON CONFLICT (tenant) DO NOTHING', [
      tenant,
      certPem,
      fingerprint,
    ]);
    const stored = await recorded(tenant);
    if (stored?.fingerprint !== fingerprint) {
      throw new Error(
        `the agent CA file ${file} does not match the CA recorded for tenant ${tenant}: replicas must share INTUNE_AGENT_CA_DIR`,
      );
    }
    fingerprints.set(tenant, fingerprint);
    return { keyPem, certPem, fingerprint };
  }

  return {
    caFor(tenant) {
      let pending = cas.get(tenant);
      if (pending === undefined) {
        pending = load(tenant);
        cas.set(tenant, pending);
        pending.catch(() => cas.delete(tenant));
      }
      return pending;
    },
    async fingerprintOf(tenant) {
      const known = fingerprints.get(tenant);
      if (known !== undefined) return known;
      const stored = await recorded(tenant);
      // A CA never changes once recorded, so its fingerprint may be remembered for good.
      if (stored !== null) fingerprints.set(tenant, stored.fingerprint);
      return stored?.fingerprint ?? null;
    },
    async trusted() {
      const { rows } = await db.query<{ tenant: string; certificate_pem: string; fingerprint_sha256: string }>(
        'SELECT tenant, certificate_pem, fingerprint_sha256 FROM agent_cas ORDER BY tenant',
      );
      return rows.map((r) => ({ tenant: r.tenant, certPem: r.certificate_pem, fingerprint: r.fingerprint_sha256 }));
    },
  };
}
