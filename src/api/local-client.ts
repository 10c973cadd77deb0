/**
 * The caller's half of the local channel to a running `serve` (the server's half is
 * ./local-channel.ts). `check` asks the server's gate to evaluate and record a decision, and
 * `doctor` asks for the server's pre-flight report, instead of opening the database, starting a
 * Graph client (or a second demo simulator) and taking a token themselves. The channel is a Unix
 * socket in the data directory, `serve.sock` (mode 0600: only the data directory's owner can
 * connect), one JSON line each way, one request per connection.
 *
 * This module loads nothing but Node built-ins: it runs before anything else a command needs.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import type { Capability, Config } from '../config/index.js';
import type { AccordPolicy, GateResult } from '../gate/types.js';
import type { PreflightReport } from '../posture/preflight.js';

export const SERVE_SOCKET_FILE = 'serve.sock';
/** sockaddr_un holds 108 bytes; longer paths cannot be bound or reached. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** A request is an accord policy and the claims: far below this. */
export const MAX_LOCAL_MESSAGE_BYTES = 64 * 1024;

export function serveSocketPath(dataDir: string): string {
  return path.join(path.resolve(dataDir), SERVE_SOCKET_FILE);
}

/**
 * What must be the same on both sides for the server's answer to be the one the caller would have
 * computed: the Graph it asks (when the caller names one) and the database it records in.
 * Credentials never travel: the database URL is sent as its SHA-256, the client secret not at all.
 */
export interface LocalIdentity {
  readonly intune_enabled: boolean;
  /** null: the caller has no ENTRA_* and takes the running deployment's Graph (real or demo). */
  readonly entra: { readonly tenant_id: string; readonly client_id: string; readonly login_url: string; readonly graph_url: string } | null;
  /** `embedded:<data dir>` or `postgres:<sha256 of DATABASE_URL>`. */
  readonly database: string;
}

export function localIdentity(config: Pick<Config, 'intuneEnabled' | 'entra' | 'graph' | 'database'>): LocalIdentity {
  return {
    intune_enabled: config.intuneEnabled,
    entra:
      config.entra === undefined
        ? null
        : { tenant_id: config.entra.tenantId, client_id: config.entra.clientId, login_url: config.graph.loginUrl, graph_url: config.graph.graphUrl },
    database:
      config.database.url !== undefined
        ? `postgres:${crypto.createHash('sha256').update(config.database.url).digest('hex')}`
        : `embedded:${path.resolve(config.database.dataDir)}`,
  };
}

/** Whether a caller of identity `caller` may be answered by a server of identity `server`. */
export function identitiesAgree(caller: LocalIdentity, server: LocalIdentity): boolean {
  if (caller.intune_enabled !== server.intune_enabled || caller.database !== server.database) return false;
  if (caller.entra === null) return true;
  return (
    server.entra !== null &&
    caller.entra.tenant_id === server.entra.tenant_id &&
    caller.entra.client_id === server.entra.client_id &&
    caller.entra.login_url === server.entra.login_url &&
    caller.entra.graph_url === server.entra.graph_url
  );
}

export interface LocalCheckRequest {
  readonly v: 1;
  readonly kind: 'check';
  readonly accord: string;
  readonly claims: Readonly<Record<string, unknown>>;
  readonly tenant: string;
  /** The caller's resolved policy for the accord: the caller's configuration decides, as if it evaluated alone. */
  readonly policy: AccordPolicy;
  readonly identity: LocalIdentity;
}

export interface LocalPreflightRequest {
  readonly v: 1;
  readonly kind: 'preflight';
  readonly tenant: string;
  readonly connection_id?: string;
  /** The caller's INTUNE_MCP_CAPABILITIES and CHRONICLE_CHECKPOINT_INTERVAL (ms): what it checks against. */
  readonly capabilities: readonly Capability[];
  readonly checkpoint_interval_ms: number;
  readonly identity: LocalIdentity;
}

export type LocalRequest = LocalCheckRequest | LocalPreflightRequest;

/** Error codes of the channel: the caller's mistake (exit 2), a disagreement (evaluate alone), or a failure. */
export type LocalErrorCode =
  | 'invalid_accord'
  | 'invalid_claims'
  | 'invalid_tenant'
  | 'invalid_connection'
  | 'invalid_request'
  | 'identity_mismatch'
  | 'not_found'
  | 'internal_error';

/** The codes that are the caller's own mistake in what it asked: a usage error (exit 2). */
export const LOCAL_USAGE_CODES: ReadonlySet<LocalErrorCode> = new Set(['invalid_accord', 'invalid_claims', 'invalid_tenant', 'invalid_connection']);

export type LocalError = { readonly error: { readonly code: LocalErrorCode; readonly message: string } };
export type LocalResponse<R> = { readonly result: R } | LocalError;
export type LocalCheckResponse = LocalResponse<GateResult>;
export type LocalPreflightResponse = LocalResponse<PreflightReport>;

/**
 * What asking gave: an answer, or `unreachable` when nobody listens (no server, a socket file left
 * by one that died, a path too long): then nothing was sent, and the caller evaluates alone.
 */
export type LocalOutcome<R> = { readonly kind: 'answered'; readonly response: LocalResponse<R> } | { readonly kind: 'unreachable' } | { readonly kind: 'failed'; readonly message: string };

const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'ENOTSOCK', 'EACCES', 'EPERM', 'ENOTDIR']);

export function askServer(dataDir: string, request: LocalCheckRequest, options?: { timeoutMs?: number }): Promise<LocalOutcome<GateResult>>;
export function askServer(dataDir: string, request: LocalPreflightRequest, options?: { timeoutMs?: number }): Promise<LocalOutcome<PreflightReport>>;
/** Asks the server listening on dataDir's socket, if any. */
export function askServer(dataDir: string, request: LocalRequest, { timeoutMs = 60_000 }: { timeoutMs?: number } = {}): Promise<LocalOutcome<unknown>> {
  const file = serveSocketPath(dataDir);
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH_BYTES) return Promise.resolve({ kind: 'unreachable' });
  return new Promise((resolve) => {
    let connected = false;
    let settled = false;
    let received = '';
    const socket = net.createConnection({ path: file });
    const settle = (outcome: LocalOutcome<unknown>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => settle({ kind: 'failed', message: `the running server did not answer on ${file} within ${Math.round(timeoutMs / 1000)} s` }), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.length > MAX_LOCAL_MESSAGE_BYTES * 4) {
        settle({ kind: 'failed', message: `the running server's answer on ${file} is too long` });
        return;
      }
      const end = received.indexOf('\n');
      if (end < 0) return;
      try {
        settle({ kind: 'answered', response: JSON.parse(received.slice(0, end)) as LocalResponse<unknown> });
      } catch {
        settle({ kind: 'failed', message: `the running server's answer on ${file} is not JSON` });
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && UNREACHABLE.has(err.code ?? '')) settle({ kind: 'unreachable' });
      else settle({ kind: 'failed', message: `the running server's socket ${file} failed: ${err.message}` });
    });
    socket.on('close', () => settle({ kind: 'failed', message: `the running server closed ${file} without an answer` }));
  });
}
