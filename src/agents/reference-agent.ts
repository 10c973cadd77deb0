/**
 * The reference agent: what a macOS endpoint agent does, in TypeScript, for tests, the demo and
 * integrators (`intune-connector agent-sim`). It makes a key pair (kept in memory), a PKCS#10 CSR,
 * enrolls with a one-time token, then heartbeats over mTLS with the certificate it was given.
 * It is not the standalone agent: it reports the posture it is told to report.
 */
import https from 'node:https';
import { webcrypto } from 'node:crypto';
import { loadX509, pemOf } from './x509.js';
import type { HeartbeatInput, IssuedIdentity } from './types.js';
import { defined } from '../common/values.js';

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface AgentKey {
  readonly keyPem: string;
  readonly csrPem: string;
}

/** A fresh P-256 key and a CSR for it. */
export async function makeKeyAndCsr(commonName = 'intune-connector reference agent'): Promise<AgentKey> {
  const x509 = await loadX509();
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName.replace(/[,=+<>#;"\\]/g, ' ')}`,
    keys,
    signingAlgorithm: KEY_ALGORITHM,
  });
  return { keyPem: pemOf('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), csrPem: csr.toString('pem') };
}

export interface EnrollRequest {
  readonly platform?: string;
  readonly agentClass?: string;
  readonly osVersion?: string;
  readonly osBuild?: string;
  readonly serialNumber?: string;
  readonly hardwareUuid?: string;
  readonly model?: string;
}

export interface Enrollment extends IssuedIdentity {
  readonly keyPem: string;
  readonly agent_url?: string;
  readonly server_ca?: string;
}

export class AgentRequestError extends Error {
  override readonly name = 'AgentRequestError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function failure(res: Response): Promise<AgentRequestError> {
  const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
  return new AgentRequestError(res.status, body.error?.code ?? 'http_error', `${res.status} ${body.error?.code ?? ''}: ${body.error?.message ?? res.statusText}`);
}

/** POST /api/v1/agents/enroll on the main listener. */
export async function enroll(baseUrl: string, token: string, request: EnrollRequest = {}): Promise<Enrollment> {
  const key = await makeKeyAndCsr();
  const body = {
    token,
    csr: key.csrPem,
    platform: request.platform ?? 'darwin',
    agent_class: request.agentClass ?? 'endpoint',
    ...defined({ os_version: request.osVersion, os_build: request.osBuild, serial_number: request.serialNumber, hardware_uuid: request.hardwareUuid, model: request.model }),
  };
  const res = await fetch(`${baseUrl.replace(/\/+$/, '')}/api/v1/agents/enroll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw await failure(res);
  return { ...((await res.json()) as Omit<Enrollment, 'keyPem'>), keyPem: key.keyPem };
}

export interface MtlsIdentity {
  readonly certificate: string;
  readonly keyPem: string;
  /** The CA to trust for the listener's certificate (`server_ca` of the enrollment answer). */
  readonly serverCa?: string;
}

export interface MtlsResponse {
  readonly status: number;
  readonly body: any;
}

/** One JSON request over mTLS (a fresh connection each time, so revocation is seen at once). */
export function mtlsRequest(agentUrl: string, urlPath: string, identity: MtlsIdentity, body: unknown): Promise<MtlsResponse> {
  const url = new URL(urlPath, agentUrl);
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'POST',
        cert: identity.certificate,
        key: identity.keyPem,
        ...defined({ ca: identity.serverCa }),
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            parsed = text;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('the agent listener did not answer in 15 s')));
    req.on('error', reject);
    req.end(payload);
  });
}

export interface ReportedPosture {
  readonly osVersion: string;
  readonly osBuild?: string;
  readonly filevault?: boolean | 'unknown';
  readonly firewall?: boolean | 'unknown';
  readonly sip?: boolean | 'unknown';
  readonly gatekeeper?: boolean | 'unknown';
  readonly uptimeSeconds?: number;
}

export const REFERENCE_AGENT_VERSION = '0.1.0-sim';

export function heartbeatBody(posture: ReportedPosture, time = new Date()): HeartbeatInput {
  return {
    os_version: posture.osVersion,
    ...defined({ os_build: posture.osBuild, uptime_seconds: posture.uptimeSeconds }),
    filevault: posture.filevault ?? 'unknown',
    firewall: posture.firewall ?? 'unknown',
    sip: posture.sip ?? 'unknown',
    gatekeeper: posture.gatekeeper ?? 'unknown',
    agent_version: REFERENCE_AGENT_VERSION,
    time: time.toISOString(),
  };
}

/** POST /api/v1/agents/heartbeat over mTLS; throws AgentRequestError on anything but 200. */
export async function heartbeat(agentUrl: string, identity: MtlsIdentity, posture: ReportedPosture): Promise<any> {
  const res = await mtlsRequest(agentUrl, '/api/v1/agents/heartbeat', identity, heartbeatBody(posture));
  if (res.status !== 200) throw new AgentRequestError(res.status, res.body?.error?.code ?? 'http_error', `${res.status} ${res.body?.error?.code ?? ''}: ${res.body?.error?.message ?? ''}`);
  return res.body;
}

/** POST /api/v1/agents/renew over mTLS with a new key; returns the new identity. */
export async function renew(agentUrl: string, identity: MtlsIdentity): Promise<IssuedIdentity & { keyPem: string }> {
  const key = await makeKeyAndCsr();
  const res = await mtlsRequest(agentUrl, '/api/v1/agents/renew', identity, { csr: key.csrPem });
  if (res.status !== 200) throw new AgentRequestError(res.status, res.body?.error?.code ?? 'http_error', `${res.status} ${res.body?.error?.code ?? ''}: ${res.body?.error?.message ?? ''}`);
  return { ...(res.body as IssuedIdentity), keyPem: key.keyPem };
}

export interface SimulatedAgentRun {
  readonly agentId: string;
  readonly agentUrl: string;
  readonly heartbeats: number;
  readonly enrollment: Enrollment;
}

/** Enrolls, then sends `heartbeats` heartbeats (`intervalMs` apart). */
export async function runSimulatedAgent(options: {
  url: string;
  token: string;
  enroll?: EnrollRequest;
  posture?: Partial<ReportedPosture>;
  heartbeats?: number;
  intervalMs?: number;
  agentUrl?: string;
  serverCa?: string;
}): Promise<SimulatedAgentRun> {
  const enrollment = await enroll(options.url, options.token, options.enroll);
  const agentUrl = options.agentUrl ?? enrollment.agent_url;
  const count = options.heartbeats ?? 1;
  if (count > 0 && agentUrl === undefined) throw new Error('the enrollment answer names no agent listener; pass --agent-url');
  const identity: MtlsIdentity = {
    certificate: enrollment.certificate,
    keyPem: enrollment.keyPem,
    ...defined({ serverCa: options.serverCa ?? enrollment.server_ca }),
  };
  const posture: ReportedPosture = { osVersion: options.enroll?.osVersion ?? '14.5', ...options.posture };
  for (let i = 0; i < count; i += 1) {
    if (i > 0 && (options.intervalMs ?? 0) > 0) await new Promise((r) => setTimeout(r, options.intervalMs));
    await heartbeat(agentUrl as string, identity, { ...posture, uptimeSeconds: posture.uptimeSeconds ?? 3600 + i * 60 });
  }
  return { agentId: enrollment.agent_id, agentUrl: agentUrl ?? '', heartbeats: count, enrollment };
}
