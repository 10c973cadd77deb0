/**
 * A real stack for MCP tests: the simulator over HTTPS, the runtime (real Chronicle on PostgreSQL
 * or PGlite, the real connector and Graph client with MSAL), and real SDK clients connected to it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { loadConfig, type Capability, type Env } from '../../src/config/index.js';
import type { ChronicleEvent } from '../../src/chronicle/types.js';
import { createLogger } from '../../src/log/index.js';
import { createMcpServer, mcpScope } from '../../src/mcp/server.js';
import { stdioActor } from '../../src/mcp/stdio.js';
import { DEFAULT_TENANT } from '../../src/common/ids.js';
import { openRuntime, type Runtime } from '../../src/runtime/index.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle, SimulatorOptions } from '../../src/simulator/types.js';
import { createPostgresDatabase, type TestDatabase } from '../helpers/db.js';
import { piiValues as piiValuesOf } from '../helpers/pii.js';

export type DbKind = 'postgres' | 'pglite';

/** Every fake PII value the simulator serves, to search outputs for (see test/helpers/pii.ts). */
export const piiValues = (simulator: SimulatorHandle): string[] => piiValuesOf(simulator.devices);
export { findPii } from '../helpers/pii.js';

export interface McpFixture {
  readonly simulator: SimulatorHandle;
  readonly runtime: Runtime;
  readonly dataDir: string;
  /** The environment that points `intune-connector` at this simulator and database (for child processes). */
  readonly env: Record<string, string>;
  readonly pii: readonly string[];
  /** A real SDK client on an in-memory transport to a server with this delegation scope. */
  connect(capabilities: readonly Capability[], clientName?: string): Promise<Client>;
  /** The tenant's CONNECTOR_INVOKED events, oldest first. */
  invocations(): Promise<ChronicleEvent[]>;
  close(): Promise<void>;
}

export async function startMcpFixture(options: {
  readonly kind: DbKind;
  readonly simulator?: SimulatorOptions;
  readonly env?: Env;
}): Promise<McpFixture> {
  const simulator = await startSimulator({ devices: 200, seed: 'mcp-tests', ...options.simulator });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-mcp-'));
  let database: TestDatabase | undefined;
  let runtime: Runtime | undefined;
  const clients: Client[] = [];
  try {
    if (options.kind === 'postgres') database = await createPostgresDatabase();
    const env: Record<string, string> = {
      ...simulator.env,
      INTUNE_DATA_DIR: dataDir,
      CHRONICLE_CHECKPOINT_INTERVAL: '0',
      INTUNE_GRAPH_MAX_RETRIES: '0',
      LOG_LEVEL: 'silent',
      ...(database?.url !== undefined ? { DATABASE_URL: database.url } : {}),
      ...(options.env as Record<string, string> | undefined),
    };
    const config = loadConfig(env);
    runtime = await openRuntime(config, { logger: createLogger({ level: 'silent' }) });
    const rt = runtime;
    return {
      simulator,
      runtime: rt,
      dataDir,
      env,
      pii: piiValues(simulator),
      async connect(capabilities, clientName = 'test-agent') {
        const server = createMcpServer({ connector: rt.connector, tenant: DEFAULT_TENANT, scope: mcpScope(capabilities), actorFor: stdioActor });
        const client = new Client({ name: clientName, version: '1.0.0' });
        const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
        await server.connect(serverSide);
        await client.connect(clientSide);
        clients.push(client);
        return client;
      },
      async invocations() {
        const events: ChronicleEvent[] = [];
        let cursor: string | null = null;
        do {
          const page: { events: ChronicleEvent[]; nextCursor: string | null } = await rt.chronicle.query({
            tenant: DEFAULT_TENANT,
            types: ['CONNECTOR_INVOKED'],
            limit: 1000,
            ...(cursor !== null ? { cursor } : {}),
          });
          events.push(...page.events);
          cursor = page.nextCursor;
        } while (cursor !== null);
        return events.sort((a, b) => a.seq - b.seq);
      },
      async close() {
        await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
        await rt.close();
        await database?.drop();
        await simulator.close();
        fs.rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await runtime?.close().catch(() => undefined);
    await database?.drop().catch(() => undefined);
    await simulator.close().catch(() => undefined);
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** Validates structuredContent against the output schema the server declared, as a client would. */
export function outputValidator(tools: readonly Tool[]): (tool: string, value: unknown) => string | null {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const validators = new Map(tools.filter((t) => t.outputSchema !== undefined).map((t) => [t.name, ajv.compile(t.outputSchema as object)]));
  return (tool, value) => {
    const validate = validators.get(tool);
    if (validate === undefined) return `${tool} declares no output schema`;
    return validate(value) ? null : ajv.errorsText(validate.errors);
  };
}

export function textOf(result: CallToolResult): string {
  return result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

export function toolNames(tools: readonly Tool[]): string[] {
  return tools.map((t) => t.name);
}
