/**
 * MCP over Streamable HTTP at /mcp, as a Fastify plugin (`serve` registers it).
 *
 * Stateless: every POST builds a fresh server and transport for the key that sent it, answers
 * with plain JSON (no SSE), and forgets it. Nothing lives between requests, so any replica can
 * answer any request and a revoked key stops working at its next request. The cost is a few
 * object allocations per request; the tools are short request/response calls that need no
 * server-initiated messages, so GET (the SSE stream) and DELETE (session end) answer 405.
 *
 * Identity comes from the bearer key: its tenant, its capabilities (added to the configured
 * default, READ unless INTUNE_MCP_CAPABILITIES says more) and its actor id, recorded with every
 * call. Only agent and admin keys may call.
 */
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, sendError } from '../auth/errors.js';
import { MCP_WWW_AUTHENTICATE, PERMISSIONS, requirePermission } from '../auth/permissions.js';
import type { Authenticator, Principal, Role } from '../auth/types.js';
import type { Capability } from '../connector/contract.js';
import type { Logger } from '../log/index.js';
import { createMcpServer, mcpScope } from './server.js';
import type { McpConnector } from './types.js';
import { defined } from '../common/values.js';

export interface McpRoutesOptions {
  readonly connector: McpConnector;
  readonly authenticator: Authenticator;
  readonly logger?: Logger;
  /**
   * Capabilities every MCP caller holds (Config.mcp.defaultCapabilities; default READ). A key's own
   * capabilities add to them: PROPOSE comes from configuration or from the key.
   */
  readonly defaultCapabilities?: readonly Capability[];
  /** Route path (default /mcp). */
  readonly path?: string;
}

export const MCP_ROLES: readonly Role[] = PERMISSIONS['mcp:call'];
export { MCP_WWW_AUTHENTICATE };

/** The principal behind a request, or undefined after answering 401/403/503 itself. */
async function authenticate(request: FastifyRequest, reply: FastifyReply, authenticator: Authenticator): Promise<Principal | undefined> {
  try {
    return await requirePermission(authenticator, request, 'mcp:call');
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    sendError(reply, err);
    return undefined;
  }
}

export async function mcpRoutes(app: FastifyInstance, options: McpRoutesOptions): Promise<void> {
  const { connector, authenticator, logger } = options;
  const path = options.path ?? '/mcp';
  const baseCapabilities: readonly Capability[] = options.defaultCapabilities ?? ['READ'];

  app.post(path, async (request, reply) => {
    const principal = await authenticate(request, reply, authenticator);
    if (principal === undefined) return reply;

    const capabilities = [...new Set([...baseCapabilities, ...principal.capabilities])];
    const server = createMcpServer({
      connector,
      tenant: principal.tenant,
      scope: mcpScope(capabilities),
      actorFor: () => ({ kind: 'agent', id: principal.actorId }),
      ...defined({ logger }),
    });
    const transport = new StreamableHTTPServerTransport({ enableJsonResponse: true });
    reply.hijack();
    reply.raw.on('close', () => {
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(request.raw, reply.raw, request.body);
    } catch (err) {
      logger?.error({ err, reqId: request.id }, 'MCP request failed');
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { 'content-type': 'application/json' });
        reply.raw.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32603, message: `Internal error. Reference ${request.id}.` } }));
      }
    }
    return reply;
  });

  const notAllowed = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    if ((await authenticate(request, reply, authenticator)) === undefined) return reply;
    return sendError(
      reply,
      new ApiError(405, 'method_not_allowed', 'this MCP endpoint is stateless: send JSON-RPC requests with POST (no SSE stream, no sessions)', {}, { allow: 'POST' }),
    );
  };
  app.get(path, notAllowed);
  app.delete(path, notAllowed);
}
