/**
 * MCP over Streamable HTTP: the Fastify plugin with the real key store, and `serve` itself,
 * through the SDK's StreamableHTTPClientTransport.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createKeyStore, type KeyStore } from '../../src/auth/keys.js';
import { startServer, type RunningServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { MCP_WWW_AUTHENTICATE, mcpRoutes } from '../../src/mcp/http.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { createPostgresDatabase, pgAvailable, type TestDatabase } from '../helpers/db.js';
import { findPii, outputValidator, piiValues, startMcpFixture, textOf, toolNames, type DbKind, type McpFixture } from './fixture.js';

const READ_TOOLS = ['list_devices', 'get_device', 'get_device_compliance', 'find_asset'];

async function httpClient(url: string, key: string, name = 'http-agent'): Promise<Client> {
  const client = new Client({ name, version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
  return client;
}

// The transport is what is under test here; both databases are covered by tools.test.ts, so this
// file takes the quicker one to open.
const kind: DbKind = pgAvailable() ? 'postgres' : 'pglite';

describe(`MCP over Streamable HTTP, Fastify plugin [${kind}]`, () => {
  let fx: McpFixture;
  let app: FastifyInstance;
  let keys: KeyStore;
  let url: string;
  const key: Record<'read' | 'propose' | 'reader' | 'other', string> = { read: '', propose: '', reader: '', other: '' };
  const clients: Client[] = [];
  const connect = async (k: string, name?: string) => {
    const client = await httpClient(url, k, name);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    fx = await startMcpFixture({ kind });
    keys = createKeyStore({ db: fx.runtime.db, chronicle: fx.runtime.chronicle });
    const admin = { kind: 'human', id: 'test-admin' } as const;
    key.read = (await keys.create({ tenant: 'default', role: 'agent', name: 'read agent' }, admin)).key;
    key.propose = (await keys.create({ tenant: 'default', role: 'agent', capabilities: ['READ', 'PROPOSE'] }, admin)).key;
    key.reader = (await keys.create({ tenant: 'default', role: 'reader' }, admin)).key;
    key.other = (await keys.create({ tenant: 'other-tenant', role: 'agent' }, admin)).key;
    app = Fastify();
    await app.register(mcpRoutes, { connector: fx.runtime.connector, authenticator: keys, logger: fx.runtime.logger });
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/mcp`;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await app?.close();
    await fx?.close();
  });

  const initialize = (headers: Record<string, string>) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      }),
    });

  it('answers 401 with a Bearer challenge and a JSON body without a key, or with an unknown one', async () => {
    for (const headers of [{}, { authorization: 'Bearer icn_nope_nope' }, { authorization: 'Basic dXNlcjpwYXNz' }]) {
      const response = await initialize(headers);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe(MCP_WWW_AUTHENTICATE);
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('unauthorized');
      expect(body.error.message).toMatch(/keys create --role agent/);
    }
    expect(MCP_WWW_AUTHENTICATE).toBe('Bearer realm="intune-connector", error="invalid_token"');
  });

  it('answers 403 to a key whose role may not use MCP, and 405 to GET and DELETE', async () => {
    const forbidden = await initialize({ authorization: `Bearer ${key.reader}` });
    expect(forbidden.status).toBe(403);
    expect(((await forbidden.json()) as { error: { code: string } }).error.code).toBe('forbidden');

    for (const method of ['GET', 'DELETE']) {
      const response = await fetch(url, { method, headers: { authorization: `Bearer ${key.read}`, accept: 'text/event-stream' } });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('POST');
    }
  });

  it('lists tools by the key’s delegation scope', async () => {
    expect(toolNames((await (await connect(key.read)).listTools()).tools)).toEqual(READ_TOOLS);
    expect(toolNames((await (await connect(key.propose)).listTools()).tools)).toEqual([...READ_TOOLS, 'sync_device']);
  });

  it('runs a tool for the key’s tenant and records the key’s actor with channel mcp', async () => {
    const client = await connect(key.propose);
    const { tools } = await client.listTools();
    const device = fx.simulator.devices.find((d) => d['complianceState'] === 'noncompliant');
    const before = (await fx.invocations()).length;
    const result = (await client.callTool({ name: 'get_device_compliance', arguments: { device_id: device?.['id'] } })) as CallToolResult;
    expect(result.isError, textOf(result)).toBeFalsy();
    expect(outputValidator(tools)('get_device_compliance', result.structuredContent)).toBeNull();
    expect((result.structuredContent as { compliance_state: string }).compliance_state).toBe('noncompliant');
    expect(findPii(JSON.stringify(result), fx.pii)).toEqual([]);

    const principal = await keys.authenticate(key.propose);
    const events = (await fx.invocations()).slice(before);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      tenant: 'default',
      actor: { kind: 'agent', id: principal?.actorId },
      data: { operation: 'get_compliance', decision: 'allowed', channel: 'mcp' },
    });
  });

  it('refuses remote_lock and bad arguments as tool errors over HTTP too', async () => {
    const client = await connect(key.propose);
    const lock = (await client.callTool({ name: 'remote_lock', arguments: { device_id: randomUUID() } })) as CallToolResult;
    expect(lock.isError).toBe(true);
    expect(textOf(lock)).toMatch(/disabled in Phase 1/);
    const bad = (await client.callTool({ name: 'list_devices', arguments: { page_size: 'lots' } })) as CallToolResult;
    expect(bad.isError).toBe(true);
    expect(textOf(bad)).toMatch(/Invalid arguments for list_devices: page_size/);
  });

  it('keeps a key inside its own tenant', async () => {
    const client = await connect(key.other);
    const device = fx.simulator.devices[0]?.['id'] as string;
    const beforeDefault = (await fx.invocations()).length;
    const result = (await client.callTool({ name: 'get_device', arguments: { device_id: device } })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/not connected for this tenant/);
    expect((await fx.invocations()).length).toBe(beforeDefault);
    const theirs = await fx.runtime.chronicle.query({ tenant: 'other-tenant', types: ['CONNECTOR_INVOKED'] });
    expect(theirs.events.map((e) => e.data)).toMatchObject([{ operation: 'get_device', decision: 'denied', reason: 'intune_disabled' }]);
  });
});

describe(`MCP over Streamable HTTP in serve [${kind}]`, () => {
  let server: RunningServer;
  let simulator: SimulatorHandle;
  let dataDir: string;
  let database: TestDatabase | undefined;
  const clients: Client[] = [];

  beforeAll(async () => {
    simulator = await startSimulator({ devices: 50, seed: 'mcp-serve' });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-mcp-serve-'));
    if (kind === 'postgres') database = await createPostgresDatabase();
    const env = {
      ...simulator.env,
      INTUNE_DATA_DIR: dataDir,
      ...(database?.url !== undefined ? { DATABASE_URL: database.url } : {}),
      PORT: '0',
      INTUNE_SYNC_INTERVAL: '0',
      CHRONICLE_CHECKPOINT_INTERVAL: '0',
      LOG_LEVEL: 'silent',
    };
    server = await startServer(loadConfig(env), { env, logger: createLogger({ level: 'silent' }), initialSync: 'off', scheduler: false });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await server?.close();
    await database?.drop();
    await simulator?.close();
    if (dataDir !== undefined) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves the tools at /mcp to the bootstrap admin key', async () => {
    expect(server.adminKey).toBeDefined();
    const client = await httpClient(`${server.url}/mcp`, server.adminKey as string, 'serve-agent');
    clients.push(client);
    expect(toolNames((await client.listTools()).tools)).toEqual(READ_TOOLS);
    const device = simulator.devices[0]?.['id'] as string;
    const result = (await client.callTool({ name: 'get_device', arguments: { device_id: device } })) as CallToolResult;
    expect(result.isError, textOf(result)).toBeFalsy();
    expect((result.structuredContent as { device: { device_id: string } }).device.device_id).toBe(device);
    expect(findPii(JSON.stringify(result), piiValues(simulator))).toEqual([]);
  });
});
