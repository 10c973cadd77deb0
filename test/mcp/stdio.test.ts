/**
 * `intune-connector mcp` as desktop agents run it: the built CLI as a child process, pointed at a
 * simulator this test starts, spoken to by the SDK's stdio client, by raw JSON-RPC lines, and by
 * the published MCP Inspector CLI.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createChronicle } from '../../src/chronicle/index.js';
import type { ChronicleEvent } from '../../src/chronicle/types.js';
import { openDatabase } from '../../src/db/index.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle } from '../../src/simulator/types.js';
import { findPii, outputValidator, piiValues, textOf, toolNames } from './fixture.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = path.join(ROOT, 'dist', 'cli.js');
const INSPECTOR_BUILD = path.join(ROOT, 'node_modules', '@modelcontextprotocol', 'inspector-cli', 'build');
const INSPECTOR = path.join(INSPECTOR_BUILD, 'cli.js');
const READ_TOOLS = ['list_devices', 'get_device', 'get_device_compliance', 'find_asset'];

let simulator: SimulatorHandle;
let dataDir: string;
let env: Record<string, string>;

/** Only what the child needs: the simulator's variables, a data directory, PATH; no inherited configuration. */
function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '', HOME: os.tmpdir(), ...env, ...extra };
}

/** The CONNECTOR_INVOKED events of one client (each test names its client differently). */
async function invocations(actorId: string): Promise<ChronicleEvent[]> {
  // The child holds the embedded database while it runs; read it once the child has exited.
  const db = await openDatabase({ dataDir });
  try {
    const chronicle = await createChronicle({ db, checkpointIntervalMs: 0 });
    try {
      const { events } = await chronicle.query({ tenant: 'default', types: ['CONNECTOR_INVOKED'], actorId, limit: 1000 });
      return events.sort((a, b) => a.seq - b.seq);
    } finally {
      await chronicle.close();
    }
  } finally {
    await db.close();
  }
}

function run(command: string, args: readonly string[], options: { input?: string; env: Record<string, string>; cwd?: string }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env, cwd: options.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

beforeAll(async () => {
  // One data directory for every child (they run one after another): the embedded database is
  // initialised once, the slow part of a first start.
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-mcp-stdio-'));
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before these tests (npm test does)`);
  simulator = await startSimulator({ devices: 100, seed: 'mcp-stdio' });
  env = { ...simulator.env, INTUNE_DATA_DIR: dataDir, LOG_LEVEL: 'info', CHRONICLE_CHECKPOINT_INTERVAL: '0' };
});
afterAll(async () => {
  await simulator?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('intune-connector mcp (stdio)', () => {
  it('serves the SDK stdio client, honours --capabilities, and records the client as the actor', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'mcp', '--capabilities', 'READ,PROPOSE'],
      env: childEnv(),
      cwd: ROOT,
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const client = new Client({ name: 'stdio-test', version: '1.0.0' });
    await client.connect(transport);
    const { tools } = await client.listTools();
    expect(toolNames(tools)).toEqual([...READ_TOOLS, 'sync_device']);

    const device = simulator.devices.find((d) => typeof d['azureADDeviceId'] === 'string');
    const result = (await client.callTool({ name: 'get_device_compliance', arguments: { azure_ad_device_id: device?.['azureADDeviceId'] } })) as CallToolResult;
    expect(result.isError, textOf(result)).toBeFalsy();
    expect(outputValidator(tools)('get_device_compliance', result.structuredContent)).toBeNull();
    expect(findPii(JSON.stringify(result), piiValues(simulator))).toEqual([]);
    await client.close();

    // Logs went to stderr as JSON lines, and carry no PII either.
    expect(stderr).toMatch(/MCP server listening on stdio/);
    expect(findPii(stderr, piiValues(simulator))).toEqual([]);

    const events = await invocations('mcp-stdio:stdio-test');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      actor: { kind: 'agent', id: 'mcp-stdio:stdio-test' },
      data: { operation: 'get_compliance', decision: 'allowed', channel: 'mcp' },
    });
  });

  it('writes nothing but JSON-RPC to stdout, answers every request before it exits at the end of input', async () => {
    const lines = [
      { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
      { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'get_device', arguments: { device_id: 'not-a-guid' } } },
      { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'list_devices', arguments: { page_size: 5 } } },
      { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'remote_lock', arguments: { device_id: simulator.devices[0]?.['id'] } } },
    ];
    const input = `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;
    const { code, stdout, stderr } = await run(process.execPath, [CLI, 'mcp'], { input, env: childEnv() });
    expect(code, stderr).toBe(0);

    const out = stdout.split('\n').filter((l) => l !== '');
    const messages = out.map((line) => JSON.parse(line) as { jsonrpc: string; id?: number; result?: any; error?: unknown });
    expect(messages.every((m) => m.jsonrpc === '2.0')).toBe(true);
    const byId = new Map(messages.map((m) => [m.id, m]));
    expect([...byId.keys()].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(byId.get(1)?.result.serverInfo.name).toBe('intune-connector');
    expect(toolNames(byId.get(2)?.result.tools)).toEqual(READ_TOOLS);
    expect(byId.get(3)?.result).toMatchObject({ isError: true });
    expect(byId.get(4)?.result.structuredContent.devices).toHaveLength(5);
    expect(byId.get(5)?.result.content[0].text).toMatch(/disabled in Phase 1/);

    // stderr holds the logs: JSON lines from pino.
    const logLines = stderr.split('\n').filter((l) => l.startsWith('{'));
    expect(logLines.length).toBeGreaterThan(0);
    expect(findPii(stdout + stderr, piiValues(simulator))).toEqual([]);

    // The three calls ran concurrently, so Chronicle holds them in the order they finished.
    const events = await invocations('mcp-stdio:raw');
    expect(events.map((e) => `${e.data['operation']} ${e.data['decision']} ${e.data['reason']}`).sort()).toEqual([
      'get_device denied invalid_input',
      'list_devices allowed allowed',
      'remote_lock denied operation_disabled',
    ]);
  });

  it('refuses an unknown capability with a usage error before starting', async () => {
    const { code, stdout, stderr } = await run(process.execPath, [CLI, 'mcp', '--capabilities', 'READ,ADMIN'], {
      env: childEnv(),
    });
    expect(code).not.toBe(0);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/unknown capability ADMIN; use a comma list of READ, PROPOSE, MUTATE/);
  });

  it('is listed and called by the published MCP Inspector CLI', async () => {
    // inspector-cli 1.0.3 looks for its own package.json relative to the working directory, so it runs from its build folder.
    const inspector = { env: childEnv(), cwd: INSPECTOR_BUILD };
    const list = await run(process.execPath, [INSPECTOR, '--cli', process.execPath, CLI, 'mcp', '--method', 'tools/list'], inspector);
    expect(list.code, list.stderr).toBe(0);
    expect(toolNames((JSON.parse(list.stdout) as { tools: { name: string }[] }).tools as never)).toEqual(READ_TOOLS);

    const device = simulator.devices.find((d) => d['complianceState'] === 'compliant')?.['id'] as string;
    const call = await run(
      process.execPath,
      [INSPECTOR, '--cli', process.execPath, CLI, 'mcp', '--method', 'tools/call', '--tool-name', 'get_device_compliance', '--tool-arg', `device_id=${device}`],
      inspector,
    );
    expect(call.code, call.stderr).toBe(0);
    const result = JSON.parse(call.stdout) as CallToolResult;
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ device_id: device, compliance_state: 'compliant' });
    expect((await invocations('mcp-stdio:inspector-cli')).map((e) => e.data['operation'])).toEqual(['get_compliance']);
  });
});
