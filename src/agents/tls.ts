/**
 * The agent listener's own certificate: from INTUNE_AGENT_TLS_CERT_FILE / _KEY_FILE, or made on
 * first start (a small CA and a server certificate it signs) and kept under the CA directory, so
 * it survives restarts and replicas sharing the directory present the same one. Agents learn the
 * made CA from the enrollment answer (`server_ca`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { webcrypto } from 'node:crypto';
import { writeOnce } from './ca.js';
import { CA_ALGORITHM, loadX509, newSerial, pemOf } from './x509.js';

export interface ListenerTls {
  readonly certPem: string;
  readonly keyPem: string;
  /** The CA agents should trust for this listener, when it was made here; undefined for configured files. */
  readonly caPem?: string;
}

export const LISTENER_TLS_FILE = 'agent-listener-tls.json';

async function makeListenerTls(hostnames: readonly string[]): Promise<Required<ListenerTls>> {
  const x509 = await loadX509();
  const now = Date.now();
  const notBefore = new Date(now - 60 * 60 * 1000);
  const [caKeys, keys] = await Promise.all([
    webcrypto.subtle.generateKey(CA_ALGORITHM, true, ['sign', 'verify']),
    webcrypto.subtle.generateKey(CA_ALGORITHM, true, ['sign', 'verify']),
  ]);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name: 'CN=intune-connector agent listener CA',
    notBefore,
    notAfter: new Date(now + 10 * 365 * 24 * 60 * 60 * 1000),
    keys: caKeys,
    signingAlgorithm: CA_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const isIp = (n: string) => /^[\d.]+$/.test(n) || n.includes(':');
  const names = [...new Set(['localhost', os.hostname(), ...hostnames])].filter((n) => n !== '' && n !== '0.0.0.0' && n !== '::');
  const ips = [...new Set(['127.0.0.1', '::1', ...names.filter(isIp)])];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: 'CN=intune-connector agent listener',
    issuer: ca.subject,
    notBefore,
    notAfter: new Date(now + 5 * 365 * 24 * 60 * 60 * 1000),
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: CA_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...names.filter((n) => !isIp(n)).map((value) => ({ type: 'dns' as const, value })),
        ...ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return {
    caPem: `${ca.toString('pem')}\n`,
    certPem: `${cert.toString('pem')}\n`,
    keyPem: pemOf('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)),
  };
}

export async function listenerTls(options: { certFile?: string; keyFile?: string; dir: string; hostnames: readonly string[] }): Promise<ListenerTls> {
  if (options.certFile !== undefined && options.keyFile !== undefined) {
    return { certPem: fs.readFileSync(options.certFile, 'utf8'), keyPem: fs.readFileSync(options.keyFile, 'utf8') };
  }
  const file = path.join(options.dir, LISTENER_TLS_FILE);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as Required<ListenerTls>;
  const made = await makeListenerTls(options.hostnames);
  return JSON.parse(writeOnce(file, `${JSON.stringify(made)}\n`)) as Required<ListenerTls>;
}
