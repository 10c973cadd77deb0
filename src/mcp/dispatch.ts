/**
 * The one dispatcher for tools/call: every call, listed or not, a tool or not, goes to
 * connector.invoke, which validates the arguments (once, against the schemas tools/list shows),
 * checks the scope and appends CONNECTOR_INVOKED. The tool module only turns a success into text.
 *
 * An internal failure (Chronicle unavailable, a bug) is JSON-RPC -32603 with a reference id and no
 * internals; the details go to the log.
 */
import { ErrorCode, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { InvocationContext } from '../connector/contract.js';
import type { Logger } from '../log/index.js';
import { refusalResult, successResult } from './results.js';
import { findTool } from './tools/index.js';
import type { McpConnector } from './types.js';

/** Stands in for a tool name the server does not have, so no free text reaches the connector or the audit trail. */
const UNKNOWN_TOOL_OPERATION = 'unknown';

export interface DispatchDeps {
  readonly connector: Pick<McpConnector, 'invoke'>;
  /** The tools this session lists, offered instead of an unknown one. */
  readonly listedNames: readonly string[];
  readonly logger?: Logger | undefined;
}

export async function dispatchToolCall(
  deps: DispatchDeps,
  name: string,
  args: Record<string, unknown> | undefined,
  context: InvocationContext,
): Promise<CallToolResult> {
  const tool = findTool(name);
  try {
    // Not a tool at all: the connector refuses an unknown operation, and the caller's arguments are not passed on.
    const outcome = await deps.connector.invoke(tool?.operation ?? UNKNOWN_TOOL_OPERATION, tool !== undefined ? (args ?? {}) : {}, context);
    if (outcome.ok) {
      // The connector is the authority: a call it carried out is reported as done, listed or not.
      return successResult(outcome.value, tool !== undefined ? tool.summarize(outcome.value) : 'Done.', outcome.audit.seq);
    }
    return refusalResult(outcome, {
      // An unknown name is not repeated in the answer, the log or the audit trail.
      tool: tool?.name ?? 'unknown tool',
      capability: tool?.capability ?? null,
      granted: context.scope.capabilities,
      listed: deps.listedNames,
    });
  } catch (err) {
    deps.logger?.error({ err, requestId: context.requestId, tenant: context.tenant, tool: tool?.name ?? 'unknown' }, 'MCP tool call failed');
    throw new McpError(ErrorCode.InternalError, `Internal error: the call could not be completed. Reference ${context.requestId}.`);
  }
}
