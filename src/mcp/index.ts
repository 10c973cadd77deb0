/** The MCP surface: per-session servers over the connector, stdio and Streamable HTTP transports, and the tool contract. */
export { createMcpServer, mcpScope, SERVER_NAME, SERVER_INSTRUCTIONS, type McpActor, type McpSessionOptions } from './server.js';
export { mcpRoutes, MCP_ROLES, MCP_WWW_AUTHENTICATE, type McpRoutesOptions } from './http.js';
export { startStdioServer, stdioActor, type StdioServerHandle, type StdioServerOptions } from './stdio.js';
export { annotationsFor } from './annotations.js';
export { explainRefusal, META_KEY as MCP_RESULT_META_KEY } from './results.js';
export { TOOLS, TOOL_NAMES, findTool, serveToolList, toolDefinition, type McpTool, type ToolName } from './tools/index.js';
export { dispatchToolCall, type DispatchDeps } from './dispatch.js';
export type { McpConnector } from './types.js';
