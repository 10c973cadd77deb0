/** Helpers for clients of the simulator: a certificate credential pair, and msal-node's authorityMetadata. */
import { X509Certificate, webcrypto } from 'node:crypto';
import { instanceDiscoveryDocument, openIdDocument } from './entra.js';
import { loadX509 } from './tls.js';
import type { SimulatorHandle } from './types.js';

export interface ClientCertificate {
  /** Register this on the simulator: `clientCertificates: [{ pem: certificatePem }]`. */
  readonly certificatePem: string;
  /** PKCS#8 PEM of the RSA key, for msal-node's clientCertificate.privateKey. */
  readonly privateKeyPem: string;
  /** SHA-1 and SHA-256 thumbprints in hex, as msal-node's clientCertificate takes them. */
  readonly thumbprint: string;
  readonly thumbprintSha256: string;
}

/** A self-signed RSA certificate and its key, like one uploaded to an app registration. */
export async function createClientCertificate(subject = 'CN=intune-connector simulated client'): Promise<ClientCertificate> {
  const x509 = await loadX509();
  const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex').replace(/^[89a-f]/, '1'),
    name: subject,
    notBefore: new Date(Date.now() - 60 * 60 * 1000),
    notAfter: new Date(Date.now() + 365 * 24 * 60 * 60 * 1000),
    keys,
    signingAlgorithm: algorithm,
  });
  const certificatePem = cert.toString('pem') + '\n';
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const privateKeyPem = `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  const parsed = new X509Certificate(certificatePem);
  return {
    certificatePem,
    privateKeyPem,
    thumbprint: parsed.fingerprint.replace(/:/g, ''),
    thumbprintSha256: parsed.fingerprint256.replace(/:/g, ''),
  };
}

/** msal-node's `authorityMetadata` for the simulator, so msal makes no discovery call at all. */
export function simulatorAuthorityMetadata(handle: Pick<SimulatorHandle, 'loginUrl' | 'tenantId'>): string {
  return JSON.stringify(openIdDocument(handle.loginUrl, handle.tenantId));
}

/**
 * msal-node's `cloudDiscoveryMetadata` for the simulator. msal-node sends instance discovery to
 * login.microsoftonline.com whatever the authority, so without `knownAuthorities` this is how it
 * learns the simulator's host without reaching the internet.
 */
export function simulatorCloudDiscoveryMetadata(handle: Pick<SimulatorHandle, 'loginUrl' | 'tenantId'>): string {
  return JSON.stringify(instanceDiscoveryDocument(handle.loginUrl, handle.tenantId));
}
