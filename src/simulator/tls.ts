/**
 * A CA generated at start and a server certificate it signs for 127.0.0.1, ::1 and localhost.
 * ECDSA P-256 keeps generation to a few milliseconds, so `serve` can start its demo tenant quickly.
 * @peculiar/x509 needs a Reflect metadata polyfill; it is loaded here, lazily, so importing the
 * simulator costs nothing until a simulator actually starts.
 */
import { webcrypto } from 'node:crypto';

export interface TlsMaterial {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

function pemOf(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

export async function loadX509(): Promise<typeof import('@peculiar/x509')> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  return x509;
}

function serialNumber(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive INTEGER
  return Buffer.from(bytes).toString('hex');
}

export async function createTlsMaterial(hostnames: readonly string[]): Promise<TlsMaterial> {
  const x509 = await loadX509();
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = new Date(Date.now() + 30 * 24 * 60 * 60 * 1000);
  const [caKeys, serverKeys] = await Promise.all([
    webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']),
    webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']),
  ]);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: 'CN=intune-connector simulator CA, O=intune-connector simulator',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const ips = ['127.0.0.1', '::1'];
  const names = [...new Set(['localhost', ...hostnames])];
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: 'CN=127.0.0.1',
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: serverKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...names.filter((n) => !/^[\d.:]+$/.test(n)).map((value) => ({ type: 'dns' as const, value })),
        ...[...new Set([...ips, ...names.filter((n) => /^[\d.:]+$/.test(n))])].map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
      await x509.SubjectKeyIdentifierExtension.create(serverKeys.publicKey),
    ],
  });
  const keyDer = await webcrypto.subtle.exportKey('pkcs8', serverKeys.privateKey);
  return { caPem: ca.toString('pem') + '\n', certPem: server.toString('pem') + '\n', keyPem: pemOf('PRIVATE KEY', keyDer) };
}
