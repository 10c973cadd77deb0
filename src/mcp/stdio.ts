/**
 * MCP over stdio, for desktop agents that start `intune-connector mcp` as a child process. One
 * process is one session: the tenant and capabilities come from configuration, the actor from
 * the client's initialize handshake (`mcp-stdio:<clientInfo.name>`). stdout carries JSON-RPC and
 * nothing else; logs go to stderr.
 */
import type { Readable, Writable } from 'node:stream';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage, Implementation } from '@modelcontextprotocol/sdk/types.js';
import type { Capability } from '../connector/contract.js';
import type { Logger } from '../log/index.js';
import { createMcpServer, mcpScope, type McpActor } from './server.js';
import type { McpConnector } from './types.js';
import { defined } from '../common/values.js';

export interface StdioServerOptions {
  readonly connector: McpConnector;
  readonly tenant: string;
  readonly capabilities: readonly Capability[];
  readonly logger?: Logger;
  readonly stdin?: Readable;
  readonly stdout?: Writable;
  /** How long the end of input waits for calls still running before closing (default 30 s). */
  readonly drainTimeoutMs?: number;
}

export interface StdioServerHandle {
  /** Resolves once the server has closed: input ended and in-flight calls answered, or close() was called. */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

/** The client names itself in free text; only a bounded, plain form of it becomes the actor id. */
export function stdioActor(client: Implementation | undefined): McpActor {
  const name = (client?.name ?? '').replace(/[^A-Za-z0-9._@-]+/g, '_').slice(0, 64);
  return { kind: 'agent', id: `mcp-stdio:${name === '' ? 'unknown' : name}` };
}

/**
 * Counts requests still waiting for their response, so the end of input (a client that writes its
 * requests and closes stdin) does not cut off answers that are still being computed.
 */
class DrainingStdioTransport extends StdioServerTransport {
  private readonly pending = new Set<string | number>();
  private idle: (() => void) | undefined;

  track(): void {
    const deliver = this.onmessage;
    this.onmessage = (message: JSONRPCMessage) => {
      if ('method' in message && 'id' in message) this.pending.add(message.id);
      deliver?.(message);
    };
  }

  override async send(message: JSONRPCMessage): Promise<void> {
    await super.send(message);
    const id = 'method' in message ? undefined : (message as { id?: string | number | null }).id;
    if (id !== undefined && id !== null && this.pending.delete(id) && this.pending.size === 0) this.idle?.();
  }

  whenIdle(timeoutMs: number): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      this.idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

export async function startStdioServer(options: StdioServerOptions): Promise<StdioServerHandle> {
  const stdin = options.stdin ?? process.stdin;
  const stdout = options.stdout ?? process.stdout;
  const server = createMcpServer({
    connector: options.connector,
    tenant: options.tenant,
    scope: mcpScope(options.capabilities),
    actorFor: stdioActor,
    ...defined({ logger: options.logger }),
  });
  const transport = new DrainingStdioTransport(stdin, stdout);

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      stdin.off('end', onEnd);
      await server.close().catch((err: unknown) => options.logger?.warn({ err }, 'closing the MCP server failed'));
      resolveClosed();
    })());
  const onEnd = (): void => {
    void transport.whenIdle(options.drainTimeoutMs ?? 30_000).then(close);
  };

  // A parse error's text can quote the input, which is the client's to keep: log the fact only.
  transport.onerror = () => options.logger?.warn('stdin: a message that is not JSON-RPC was ignored, or the stream failed');
  await server.connect(transport);
  transport.track();
  stdin.on('end', onEnd);
  options.logger?.info({ tenant: options.tenant, capabilities: options.capabilities }, 'MCP server listening on stdio');
  return { closed, close };
}
