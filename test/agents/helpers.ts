/**
 * Helpers for agent tests: CSRs made the ways agents (and attackers) make them, and JSON requests
 * over mTLS that answer in the shape of the API tests' responses, so the OpenAPI checker reads both.
 */
import crypto, { webcrypto } from 'node:crypto';
import https from 'node:https';
import { loadX509, pemOf } from '../../src/agents/x509.js';
import type { TestResponse } from '../api/helpers.js';

export interface ClientIdentity {
  readonly cert: string;
  readonly key: string;
}

/** A CSR for a fresh key of the given algorithm, with its private key. */
export async function csrFor(
  algorithm: { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384' } | { name: 'RSASSA-PKCS1-v1_5'; modulusLength: number } | { name: 'Ed25519' },
): Promise<{ csrPem: string; keyPem: string }> {
  const x509 = await loadX509();
  const params =
    algorithm.name === 'ECDSA'
      ? { ...algorithm, hash: algorithm.namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' }
      : algorithm.name === 'RSASSA-PKCS1-v1_5'
        ? { ...algorithm, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
        : algorithm;
  const keys = (await webcrypto.subtle.generateKey(params as any, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=test agent', keys, signingAlgorithm: params as any });
  return { csrPem: csr.toString('pem'), keyPem: pemOf('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

/** The CSR with one bit of its signature flipped: well-formed, but the signature does not verify. */
export function tamperSignature(csrPem: string): string {
  const der = Buffer.from(csrPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
  der[der.length - 3] = (der[der.length - 3] as number) ^ 0x01;
  return pemOf('CERTIFICATE REQUEST', der);
}

/** A CA that is not the tenant's, and a client certificate from it naming an agent and tenant. */
export async function foreignClientCertificate(agentId: string, tenant: string): Promise<ClientIdentity> {
  const x509 = await loadX509();
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const [caKeys, keys] = await Promise.all([webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']), webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])]);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=intune-connector agent CA (${tenant}), O=${tenant}`,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 86400_000),
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: crypto.randomBytes(8).toString('hex'),
    subject: `CN=${agentId}, O=${tenant}`,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 86400_000),
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: alg,
    extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
  });
  return { cert: cert.toString('pem'), key: pemOf('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

/** One request to the agent listener; rejects when TLS refuses the connection. */
export function mtls(
  agentUrl: string,
  method: string,
  urlPath: string,
  init: { identity?: ClientIdentity; serverCa: string; body?: unknown; rawBody?: string; headers?: Record<string, string> },
): Promise<TestResponse> {
  const payload = init.rawBody ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined);
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL(urlPath, agentUrl),
      {
        method,
        ca: init.serverCa,
        ...(init.identity !== undefined ? { cert: init.identity.cert, key: init.identity.key } : {}),
        agent: false,
        headers: {
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}),
          ...init.headers,
        },
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            body = undefined;
          }
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) if (typeof value === 'string') headers.set(name, value);
          resolve({ status: res.statusCode ?? 0, headers, text, body });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}
