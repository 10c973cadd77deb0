/** Every MCP tool, in the order tools/list shows them. Adding a tool is one module and one line here. */
import { getDeviceComplianceDescriptor, handleGetDeviceCompliance } from './get-device-compliance.js';
import { getDeviceDescriptor, handleGetDevice } from './get-device.js';
import { handleListDevices, listDevicesDescriptor } from './list-devices.js';
import { handleRemoteLock, remoteLockDescriptor } from './remote-lock.js';
import { handleSyncDevice, syncDeviceDescriptor } from './sync-device.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { annotationsFor } from '../annotations.js';
import { eraseTool, type McpTool } from './types.js';

export const TOOLS: readonly McpTool[] = Object.freeze([
  eraseTool(listDevicesDescriptor, handleListDevices),
  eraseTool(getDeviceDescriptor, handleGetDevice),
  eraseTool(getDeviceComplianceDescriptor, handleGetDeviceCompliance),
  eraseTool(syncDeviceDescriptor, handleSyncDevice),
  eraseTool(remoteLockDescriptor, handleRemoteLock),
]);

const BY_NAME: ReadonlyMap<string, McpTool> = new Map(TOOLS.map((t) => [t.name, t]));

export function findTool(name: string): McpTool | undefined {
  return BY_NAME.get(name);
}

/**
 * Registers `tools` on a server: their schemas, annotations (derived from the capability) and a
 * callback into `call`, the server's one dispatch path for every tools/call.
 */
export function registerTools(
  server: McpServer,
  tools: readonly McpTool[],
  call: (name: string, args: Record<string, unknown> | undefined) => Promise<CallToolResult>,
): void {
  for (const tool of tools) {
    server.registerTool(
      tool.name,
      {
        title: tool.title,
        description: tool.description,
        inputSchema: tool.input,
        outputSchema: tool.output,
        annotations: annotationsFor(tool.capability, tool.title),
      },
      (args: Record<string, unknown>) => call(tool.name, args),
    );
  }
}

export { TOOL_NAMES, type McpTool, type ToolContext, type ToolName } from './types.js';
