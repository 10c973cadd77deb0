/**
 * The tool contract as a file: specs/mcp/tools.json holds every tool as tools/list sends it
 * (name, title, description, input and output JSON Schemas, annotations), its capability, and
 * which scopes list it in Phase 1. test/mcp checks the code against it, so a change to a schema
 * or a description is a reviewed diff of that file.
 *
 * Update after an intended change: `npm run update:mcp-snapshot`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { loadConfig } from '../config/index.js';
import type { Capability } from '../connector/contract.js';
import { OPERATIONS } from '../connector/operations.js';
import { permittedOperations, PHASE1_POLICY } from '../connector/scope.js';
import { mcpScope, SERVER_NAME } from './server.js';
import { serveToolList, TOOLS } from './tools/index.js';

export const SNAPSHOT_FILE = fileURLToPath(new URL('../../specs/mcp/tools.json', import.meta.url));

const SCOPES: readonly (readonly Capability[])[] = [['READ'], ['READ', 'PROPOSE'], ['READ', 'PROPOSE', 'MUTATE']];

export interface ToolsSnapshot {
  readonly $comment: string;
  readonly server: string;
  /** INTUNE_MCP_CAPABILITIES when unset: what a caller gets unless configuration or its key grants more. */
  readonly default_capabilities: readonly Capability[];
  /** Tool names each scope lists, Phase 1 policy applied. */
  readonly listed_by_scope: Readonly<Record<string, readonly string[]>>;
  readonly tools: readonly (Tool & { readonly capability: Capability; readonly listed_by_default: boolean })[];
}

/** Every tool exactly as the SDK lists it, read through a real client. */
export async function listAllTools(): Promise<Tool[]> {
  const server = new McpServer({ name: SERVER_NAME, version: '0.0.0' }, { capabilities: { tools: { listChanged: false } } });
  serveToolList(server, TOOLS);
  const client = new Client({ name: 'snapshot', version: '0.0.0' });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  await client.connect(clientSide);
  try {
    return (await client.listTools()).tools;
  } finally {
    await client.close();
    await server.close();
  }
}

export async function buildToolsSnapshot(): Promise<ToolsSnapshot> {
  const defaults = loadConfig({}).mcp.defaultCapabilities;
  const listedFor = (capabilities: readonly Capability[]): string[] => {
    const permitted = new Set(permittedOperations(OPERATIONS, mcpScope(capabilities), PHASE1_POLICY).map((d) => d.name));
    return TOOLS.filter((t) => permitted.has(t.operation)).map((t) => t.name);
  };
  const listedByDefault = new Set(listedFor(defaults));
  const listed = await listAllTools();
  return {
    $comment: 'Generated from src/mcp/tools by `npm run update:mcp-snapshot`; test/mcp fails when the code drifts from it.',
    server: SERVER_NAME,
    default_capabilities: defaults,
    listed_by_scope: Object.fromEntries(SCOPES.map((caps) => [caps.join(','), listedFor(caps)])),
    tools: listed.map((tool) => {
      const own = TOOLS.find((t) => t.name === tool.name);
      if (own === undefined) throw new Error(`the server listed ${tool.name}, which src/mcp/tools does not define`);
      return { ...tool, capability: own.capability, listed_by_default: listedByDefault.has(tool.name) };
    }),
  };
}

export function serializeSnapshot(snapshot: ToolsSnapshot): string {
  return `${JSON.stringify(snapshot, null, 2)}\n`;
}

export async function writeToolsSnapshot(file = SNAPSHOT_FILE): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, serializeSnapshot(await buildToolsSnapshot()));
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await writeToolsSnapshot();
  process.stdout.write(`wrote ${path.relative(process.cwd(), SNAPSHOT_FILE)}\n`);
}
