/** Every MCP tool, in the order tools/list shows them. Adding a tool is one module and one line here. */
import { getDeviceComplianceDescriptor } from './get-device-compliance.js';
import { getDeviceDescriptor } from './get-device.js';
import { findAssetDescriptor } from './find-asset.js';
import { listDevicesDescriptor } from './list-devices.js';
import { remoteLockDescriptor } from './remote-lock.js';
import { syncDeviceDescriptor } from './sync-device.js';
import { z } from 'zod';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { ListToolsRequestSchema, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { annotationsFor } from '../annotations.js';
import { portableSchema } from '../portable.js';
import { eraseTool, type McpTool } from './types.js';

export const TOOLS: readonly McpTool[] = Object.freeze([
  eraseTool(listDevicesDescriptor),
  eraseTool(getDeviceDescriptor),
  eraseTool(getDeviceComplianceDescriptor),
  eraseTool(findAssetDescriptor),
  eraseTool(syncDeviceDescriptor),
  eraseTool(remoteLockDescriptor),
]);

const BY_NAME: ReadonlyMap<string, McpTool> = new Map(TOOLS.map((t) => [t.name, t]));

export function findTool(name: string): McpTool | undefined {
  return BY_NAME.get(name);
}

/**
 * A tool as tools/list sends it: JSON Schemas generated from the connector's zod schemas (draft-7,
 * the input as a caller writes it, the output as the connector returns it; nullable fields as
 * anyOf, never a type array, see ../portable.ts) and annotations derived from the capability.
 */
export function toolDefinition(tool: McpTool): Tool {
  return {
    name: tool.name,
    title: tool.title,
    description: tool.description,
    inputSchema: portableSchema(z.toJSONSchema(tool.input, { target: 'draft-7', io: 'input' })) as Tool['inputSchema'],
    outputSchema: portableSchema(z.toJSONSchema(tool.output, { target: 'draft-7', io: 'output' })) as NonNullable<Tool['outputSchema']>,
    annotations: annotationsFor(tool.capability, tool.title),
    // Every call is a plain request/response; none runs as an MCP task.
    execution: { taskSupport: 'forbidden' },
  };
}

/** Answers tools/list on `server` with `tools`; the definitions are built once, a session lists the same tools throughout. */
export function serveToolList(server: McpServer, tools: readonly McpTool[]): void {
  const definitions = tools.map(toolDefinition);
  server.server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: definitions }));
}

export { TOOL_NAMES, type McpTool, type ToolName } from './types.js';
