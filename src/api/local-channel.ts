/**
 * The server's half of the local channel (the caller's half, and the protocol, are in
 * ./local-client.ts). `serve` listens on `<data dir>/serve.sock` (mode 0600) and answers two
 * requests with its own parts:
 *  - `check`: a decision of the server's own gate (its warm token, compliance cache, endpoint
 *    agents and its cache of their measurements, Chronicle writer), recorded by the server exactly
 *    as for the HTTP gate, with channel `cli` and actor human `cli`. The caller sends its own
 *    resolved accord policy, so its configuration decides as if it had evaluated alone.
 *  - `preflight`: the report of `doctor`, made against the Graph the server uses (the demo
 *    simulator built into it, too), like POST …/connections/{id}/test.
 * A caller whose Graph or database is not the server's is told so (`identity_mismatch`) and works
 * alone, as before.
 *
 * Only the owner of the data directory can connect (the socket is 0600, like the embedded
 * database's), and that user could run the command alone anyway: the channel grants nothing new.
 */
import fs from 'node:fs';
import net from 'node:net';
import { z } from 'zod';
import type { Logger } from '../log/index.js';
import { CAPABILITIES } from '../config/index.js';
import { GateInputError, type Gate } from '../gate/gate.js';
import { AccordPolicySchema, type AccordPolicy, type GatePolicy } from '../gate/types.js';
import type { PreflightReport } from '../posture/preflight.js';
import { PostureInputError, PostureNotFoundError } from '../posture/errors.js';
import type { Capability } from '../connector/contract.js';
import {
  identitiesAgree,
  MAX_LOCAL_MESSAGE_BYTES,
  MAX_SOCKET_PATH_BYTES,
  serveSocketPath,
  type LocalCheckRequest,
  type LocalErrorCode,
  type LocalIdentity,
  type LocalPreflightRequest,
  type LocalResponse,
} from './local-client.js';
import { defined } from '../common/values.js';

const IdentitySchema = z.strictObject({
  intune_enabled: z.boolean(),
  entra: z.strictObject({ tenant_id: z.string(), client_id: z.string(), login_url: z.string(), graph_url: z.string() }).nullable(),
  database: z.string(),
});

const CheckRequestSchema = z.strictObject({
  v: z.literal(1),
  kind: z.literal('check'),
  accord: z.string(),
  claims: z.record(z.string(), z.unknown()),
  tenant: z.string(),
  policy: AccordPolicySchema, // the caller's loadGatePolicy resolved it
  identity: IdentitySchema,
});

const PreflightRequestSchema = z.strictObject({
  v: z.literal(1),
  kind: z.literal('preflight'),
  tenant: z.string(),
  connection_id: z.string().optional(),
  capabilities: z.array(z.enum(CAPABILITIES)),
  checkpoint_interval_ms: z.number().int().min(0),
  identity: IdentitySchema,
});

const RequestSchema = z.discriminatedUnion('kind', [CheckRequestSchema, PreflightRequestSchema]);

/** The one-accord policy a gate evaluates a local request with. */
export function singleAccordPolicy(policy: AccordPolicy): GatePolicy {
  const { accord: _accord, source: _source, ...defaults } = policy;
  return { defaults, accords: new Map([[policy.accord, policy]]), file: null };
}

export interface LocalChannelOptions {
  readonly dataDir: string;
  /** This server's identity (localIdentity(config)). */
  readonly identity: LocalIdentity;
  /**
   * The server's gate. A check decides by the caller's policy through `withPolicy`, with the
   * server's agent cache, so it decides as the HTTP gate does and sees the same agent changes.
   */
  readonly gate: Pick<Gate, 'withPolicy'>;
  /** The pre-flight of a tenant's connection with the server's parts (runPreflight). */
  preflight(request: { tenant: string; connectionId?: string; capabilities: readonly Capability[]; checkpointIntervalMs: number }): Promise<PreflightReport>;
  readonly logger: Logger;
}

export interface LocalChannel {
  readonly path: string;
  close(): Promise<void>;
}

function errorResponse(code: LocalErrorCode, message: string): LocalResponse<never> {
  return { error: { code, message } };
}

async function answerCheck(request: LocalCheckRequest, options: LocalChannelOptions): Promise<LocalResponse<unknown>> {
  if (request.policy.accord !== request.accord) return errorResponse('invalid_request', 'the policy sent is not the accord asked about');
  try {
    const result = await options.gate.withPolicy(singleAccordPolicy(request.policy)).check({
      accord: request.accord,
      claims: request.claims,
      tenant: request.tenant,
      actor: { kind: 'human', id: 'cli' },
      channel: 'cli',
    });
    return { result };
  } catch (err) {
    if (err instanceof GateInputError) return errorResponse(err.code, err.message);
    throw err;
  }
}

async function answerPreflight(request: LocalPreflightRequest, options: LocalChannelOptions): Promise<LocalResponse<unknown>> {
  try {
    const result = await options.preflight({
      tenant: request.tenant,
      ...defined({ connectionId: request.connection_id }),
      capabilities: request.capabilities,
      checkpointIntervalMs: request.checkpoint_interval_ms,
    });
    return { result };
  } catch (err) {
    if (err instanceof PostureInputError) return errorResponse('invalid_connection', err.message);
    if (err instanceof PostureNotFoundError) return errorResponse('not_found', err.message);
    throw err;
  }
}

async function answer(line: string, options: LocalChannelOptions): Promise<LocalResponse<unknown>> {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return errorResponse('invalid_request', 'the request is not JSON');
  }
  const parsed = RequestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return errorResponse('invalid_request', `the request is not understood (${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}); is the CLI the same version as the server?`);
  }
  const request = parsed.data as LocalCheckRequest | LocalPreflightRequest;
  if (!identitiesAgree(request.identity, options.identity)) {
    return errorResponse('identity_mismatch', 'the running server uses another Graph tenant or database than this command');
  }
  try {
    return request.kind === 'check' ? await answerCheck(request, options) : await answerPreflight(request, options);
  } catch (err) {
    options.logger.error({ err, kind: request.kind }, 'a local request failed');
    return errorResponse('internal_error', 'the server could not answer; see its log');
  }
}

/** True when something answers on the socket file (another server of this data directory). */
function inUse(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createConnection({ path: file });
    probe.on('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
  });
}

function listen(server: net.Server, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Listens on `<dataDir>/serve.sock`. Undefined (logged) when the path is too long for a Unix socket
 * or another live server of the directory already listens (replicas sharing one data directory on
 * PostgreSQL): `check` and `doctor` then work alone, as before.
 */
export async function serveLocalChannel(options: LocalChannelOptions): Promise<LocalChannel | undefined> {
  const file = serveSocketPath(options.dataDir);
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH_BYTES) {
    options.logger.warn({ socket: file }, 'the data directory path is too long for a Unix socket: `check` and `doctor` work alone while this server runs; use a shorter INTUNE_DATA_DIR');
    return undefined;
  }
  const connections = new Set<net.Socket>();
  const inFlight = new Set<Promise<void>>();
  const server = net.createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.on('error', () => undefined);
    socket.setEncoding('utf8');
    let received = '';
    let answered = false;
    socket.on('data', (chunk: string) => {
      if (answered) return;
      received += chunk;
      const end = received.indexOf('\n');
      if (end < 0 && received.length <= MAX_LOCAL_MESSAGE_BYTES) return;
      answered = true;
      const work = (end < 0 ? Promise.resolve(errorResponse('invalid_request', `the request is longer than ${MAX_LOCAL_MESSAGE_BYTES / 1024} KiB`)) : answer(received.slice(0, end), options))
        .then((response) => {
          socket.end(`${JSON.stringify(response)}\n`);
        })
        .finally(() => inFlight.delete(work));
      inFlight.add(work);
    });
  });

  fs.mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  try {
    await listen(server, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    if (await inUse(file)) {
      options.logger.info({ socket: file }, 'another server of this data directory answers `check` and `doctor` on its socket');
      return undefined;
    }
    // Left by a server that died: nobody answers on it.
    fs.rmSync(file, { force: true });
    await listen(server, file);
  }
  fs.chmodSync(file, 0o600);

  let closing: Promise<void> | undefined;
  return {
    path: file,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        // Requests already read are answered (their decisions are being recorded); idle connections go.
        await Promise.allSettled([...inFlight]);
        for (const socket of connections) socket.destroy();
        await stopped;
        fs.rmSync(file, { force: true });
      })();
      return closing;
    },
  };
}
