/**
 * X.509 for agents, with @peculiar/x509 over Node's WebCrypto: the per-tenant agent CA, CSR
 * checks (signature and key strength) and client certificates. Keys are ECDSA P-256 for the CA
 * (fast to make, small to send); agents bring their own key in the CSR.
 */
import crypto, { webcrypto } from 'node:crypto';

export type X509 = typeof import('@peculiar/x509');

let loaded: Promise<X509> | undefined;

/** The library, loaded on first use (it needs a Reflect metadata polyfill and a crypto provider). */
export function loadX509(): Promise<X509> {
  loaded ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    return x509;
  })();
  return loaded;
}

export const CA_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A refusal of a CSR the agent can fix; `code` is the API error code. */
export class CsrError extends Error {
  override readonly name = 'CsrError';
  constructor(
    readonly code: 'invalid_csr' | 'csr_signature_invalid' | 'weak_key',
    message: string,
  ) {
    super(message);
  }
}

export function pemOf(label: string, der: ArrayBuffer | Buffer): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

/** A positive 128-bit serial, as uppercase hex (how Node's TLS reports peer serials). */
export function newSerial(): string {
  const bytes = crypto.randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x10; // positive, and no leading zero byte to strip
  return bytes.toString('hex').toUpperCase();
}

export interface CaMaterial {
  readonly certPem: string;
  readonly keyPem: string;
}

export async function createCa(tenant: string, now: Date): Promise<CaMaterial> {
  const x509 = await loadX509();
  const keys = await webcrypto.subtle.generateKey(CA_ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name: [{ CN: [`intune-connector agent CA (${tenant})`] }, { O: [tenant] }],
    notBefore: new Date(now.getTime() - 60 * 60 * 1000),
    notAfter: new Date(now.getTime() + 10 * 365 * 24 * 60 * 60 * 1000),
    keys,
    signingAlgorithm: CA_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyDer = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: `${cert.toString('pem')}\n`, keyPem: pemOf('PRIVATE KEY', keyDer) };
}

export interface CheckedCsr {
  readonly publicKeyDer: Buffer;
  readonly keyType: string;
}

const CSR_PEM = /^\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n[A-Za-z0-9+/=\r\n]+-----END (NEW )?CERTIFICATE REQUEST-----\s*$/;

/**
 * Parses a PKCS#10 PEM, verifies its self-signature (proof the sender holds the key) and its key
 * strength: RSA of 2048 bits or more, EC on P-256 or P-384, or Ed25519.
 */
export async function checkCsr(pem: string): Promise<CheckedCsr> {
  if (!CSR_PEM.test(pem)) throw new CsrError('invalid_csr', 'csr must be one PKCS#10 certificate request in PEM (-----BEGIN CERTIFICATE REQUEST-----)');
  const x509 = await loadX509();
  let csr: InstanceType<X509['Pkcs10CertificateRequest']>;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem.trim());
  } catch {
    throw new CsrError('invalid_csr', 'csr is not a parseable PKCS#10 certificate request; make it with `openssl req -new`');
  }
  let publicKey: crypto.KeyObject;
  try {
    publicKey = crypto.createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch {
    throw new CsrError('invalid_csr', 'the public key in the csr cannot be read');
  }
  const type = publicKey.asymmetricKeyType;
  const details = publicKey.asymmetricKeyDetails ?? {};
  if (type === 'rsa') {
    if ((details.modulusLength ?? 0) < 2048) throw new CsrError('weak_key', `the csr's RSA key has ${details.modulusLength ?? 0} bits; use 2048 or more (or EC P-256)`);
  } else if (type === 'ec') {
    if (details.namedCurve !== 'prime256v1' && details.namedCurve !== 'secp384r1') {
      throw new CsrError('weak_key', 'the csr\'s EC key must be on P-256 or P-384');
    }
  } else if (type !== 'ed25519') {
    throw new CsrError('weak_key', 'the csr\'s key must be RSA (2048 bits or more), EC P-256/P-384 or Ed25519');
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw new CsrError('csr_signature_invalid', 'the csr signature does not verify: sign the request with the key it names');
  return { publicKeyDer: Buffer.from(csr.publicKey.rawData), keyType: type };
}

export interface IssueInput {
  readonly ca: CaMaterial;
  readonly csr: CheckedCsr;
  readonly agentId: string;
  readonly tenant: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface IssuedCertificate {
  readonly certPem: string;
  readonly serial: string;
  readonly notAfter: Date;
}

/** The URI SAN naming an agent: its tenant and id, read back from the certificate on every request. */
export const agentUri = (tenant: string, agentId: string): string => `urn:intune-connector:agent:${tenant}:${agentId}`;

export async function issueClientCertificate(input: IssueInput): Promise<IssuedCertificate> {
  const x509 = await loadX509();
  const caCert = new x509.X509Certificate(input.ca.certPem);
  const caKey = await webcrypto.subtle.importKey(
    'pkcs8',
    Buffer.from(input.ca.keyPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'),
    CA_ALGORITHM,
    false,
    ['sign'],
  );
  const serial = newSerial();
  const publicKey = new x509.PublicKey(input.csr.publicKeyDer);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: [{ CN: [input.agentId] }, { O: [input.tenant] }],
    issuer: caCert.subject,
    notBefore: input.notBefore,
    notAfter: input.notAfter,
    publicKey,
    signingKey: caKey,
    signingAlgorithm: CA_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: agentUri(input.tenant, input.agentId) }]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: `${cert.toString('pem')}\n`, serial, notAfter: input.notAfter };
}

/** SHA-256 fingerprint of a PEM certificate, as Node's TLS reports it (AA:BB:…). */
export function certFingerprint256(pem: string): string {
  return new crypto.X509Certificate(pem).fingerprint256;
}
