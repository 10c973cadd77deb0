/**
 * One MCP server per session (stdio: per process; HTTP: per request), bound to one tenant, one
 * actor and one delegation scope. It lists only the tools the scope permits now (the connector's
 * permittedOperations, Phase 1 applied) and sends every tools/call, listed or not, through
 * connector.invoke, so each one is checked and reaches Chronicle as CONNECTOR_INVOKED.
 *
 * Why tools/list and tools/call are answered here and not by McpServer.registerTool: in SDK 1.32
 * McpServer answers a call to an unregistered tool itself (no audit), validates arguments a second
 * time before its callback, and turns every thrown error into a tool result carrying the raw
 * message. Here one dispatcher (./dispatch.ts) sends each call to connector.invoke, which validates
 * once; an internal failure is JSON-RPC -32603 with a reference id. tools/list sends the tool
 * modules' descriptors (./tools/index.ts), with JSON Schemas generated from the connector's zod
 * schemas.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import {
  ErrorCode,
  InitializeRequestSchema,
  McpError,
  type CallToolRequest,
  type Implementation,
  type InitializeRequest,
  type InitializeResult,
} from '@modelcontextprotocol/sdk/types.js';
import type { Capability, DelegationScope, InvocationContext, OperationName } from '../connector/contract.js';
import type { Logger } from '../log/index.js';
import { dispatchToolCall, type DispatchDeps } from './dispatch.js';
import { serveToolList, TOOLS } from './tools/index.js';
import type { McpConnector } from './types.js';

const require = createRequire(import.meta.url);
const { version } = require('../../package.json') as { version: string };

export const SERVER_NAME = 'intune-connector';

export const SERVER_INSTRUCTIONS =
  'Read-mostly access to Microsoft Intune device posture for one tenant. Devices are identified by their Intune id ' +
  '(device_id, a GUID) or their Entra device id (azure_ad_device_id, the deviceid claim of a user token). Use ' +
  'get_device_compliance to answer "is this device compliant?", list_devices to browse (page with next_cursor), ' +
  'get_device for one device\'s posture. Results are redacted: no names, users or serial numbers. Every call is recorded ' +
  'in an audit trail. Tools you are not permitted to use are not listed.';

/** MUTATE operations need a human ceremony; an MCP call has no way to carry one. */
const MCP_CEREMONY_REQUIRED_FOR: readonly OperationName[] = Object.freeze(['remote_lock', 'retire_device', 'wipe_device']);

/** The delegation scope of an MCP session holding these capabilities. */
export function mcpScope(capabilities: readonly Capability[]): DelegationScope {
  return Object.freeze({ capabilities: Object.freeze([...capabilities]), ceremonyRequiredFor: MCP_CEREMONY_REQUIRED_FOR });
}

export type McpActor = InvocationContext['actor'];

export interface McpSessionOptions {
  readonly connector: McpConnector;
  readonly tenant: string;
  readonly scope: DelegationScope;
  /**
   * The actor recorded for each call. It receives the client's initialize clientInfo, which stdio
   * uses as the agent's identity (HTTP takes the key's identity instead).
   */
  readonly actorFor: (client: Implementation | undefined) => McpActor;
  readonly logger?: Logger;
}

/**
 * The SDK parses a request against the handler's schema before anything else, and a failure there
 * leaves as -32603. With this envelope that parse cannot fail, so a malformed tools/call reaches
 * Server's own CallToolRequestSchema check and is answered -32602 (invalid params), as it should.
 */
const ToolsCallEnvelopeSchema = z.object({ method: z.literal('tools/call'), params: z.unknown().optional() });

/**
 * The same for initialize: the SDK's own parse failure leaves as -32603 carrying the whole zod
 * issue list. Parsed here instead, a bad initialize is -32602 with one sentence naming the fields.
 */
const InitializeEnvelopeSchema = z.object({ method: z.literal('initialize'), params: z.unknown().optional() });

/** "params.clientInfo: required; params.protocolVersion: required" — what a client must fix, without the schema. */
export function describeInvalidParams(method: string, error: z.ZodError): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const issue of error.issues) {
    const where = issue.path.length > 0 ? issue.path.map(String).join('.') : 'params';
    const what = issue.code === 'invalid_type' && /received undefined/i.test(issue.message) ? 'required' : issue.message.toLowerCase();
    const part = `${where} ${what === 'required' ? 'is required' : `is invalid (${what})`}`;
    if (!seen.has(part) && parts.length < 5) {
      seen.add(part);
      parts.push(part);
    }
  }
  return `Invalid ${method} request: ${parts.join('; ')}.`;
}

const INITIALIZE_HINT = ' Send {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "…", "version": "…"}}.';

/** Stands in for a tool name the server does not have, so no free text reaches the connector or the audit trail. */
const UNKNOWN_TOOL_OPERATION = 'unknown';
const TOOL_NAME_ECHO_MAX = 64;

export function createMcpServer(options: McpSessionOptions): McpServer {
  const { connector, tenant, scope, logger } = options;
  const permitted = new Set(connector.permittedOperations(scope).map((d) => d.name));
  const listed = TOOLS.filter((t) => permitted.has(t.operation));
  const dispatch: DispatchDeps = { connector, listedNames: listed.map((t) => t.name), logger };

  const server = new McpServer(
    { name: SERVER_NAME, version },
    { capabilities: { tools: { listChanged: false } }, instructions: SERVER_INSTRUCTIONS },
  );
  serveToolList(server, listed);
  server.server.setRequestHandler(ToolsCallEnvelopeSchema, (request, extra) => {
    // Server validated it against CallToolRequestSchema before this runs (-32602 when malformed).
    const { params } = request as CallToolRequest;
    const context: InvocationContext = {
      tenant,
      actor: options.actorFor(server.server.getClientVersion()),
      scope,
      requestId: randomUUID(),
      channel: 'mcp',
      signal: extra.signal,
    };
    return dispatchToolCall(dispatch, params.name, params.arguments, context);
  });
  const initialize = (server.server as unknown as { _oninitialize(request: InitializeRequest): Promise<InitializeResult> })._oninitialize.bind(server.server);
  server.server.setRequestHandler(InitializeEnvelopeSchema, (request) => {
    const parsed = InitializeRequestSchema.safeParse(request);
    if (!parsed.success) throw new McpError(ErrorCode.InvalidParams, describeInvalidParams('initialize', parsed.error) + INITIALIZE_HINT);
    return initialize(parsed.data);
  });
  return server;
}
