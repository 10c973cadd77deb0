/**
 * Property test of tools/call through a real SDK client (in-memory transport) against the real
 * runtime on PGlite and the simulator: whatever the tool name and arguments, the answer is a tool
 * result (never a protocol error), exactly one CONNECTOR_INVOKED is recorded per call, and no PII
 * value of the simulated tenant is in the answer.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { findPii, startMcpFixture, type McpFixture } from './fixture.js';

describe('MCP tools/call with arbitrary names and arguments (property)', () => {
  let fx: McpFixture;
  beforeAll(async () => {
    fx = await startMcpFixture({ kind: 'pglite', simulator: { devices: 20, seed: 'mcp-property' } });
  });
  afterAll(async () => {
    await fx?.close();
  });

  it('answers a tool result, records one CONNECTOR_INVOKED per call, and never answers PII', async () => {
    const client = await fx.connect(['READ', 'PROPOSE', 'MUTATE'], 'prop\uD800agent');
    const ids = fx.simulator.devices.map((d) => String(d['id']));
    const entra = fx.simulator.devices.map((d) => String(d['azureADDeviceId']));
    const id = fc.oneof(fc.constantFrom(...ids), fc.constantFrom(...entra), fc.uuid(), fc.string({ unit: 'binary', maxLength: 50 }), fc.jsonValue());
    const name = fc.oneof(
      fc.constantFrom('list_devices', 'get_device', 'get_device_compliance', 'sync_device', 'remote_lock', 'wipe_device', 'get_compliance', 'retire_device', '__proto__', 'constructor'),
      fc.string({ unit: 'binary', maxLength: 80 }),
    );
    const args = fc.oneof(
      fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
      fc.record({ device_id: id, azure_ad_device_id: id, include_policies: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }),
      fc.record({ page_size: fc.jsonValue({ maxDepth: 1 }), cursor: fc.jsonValue({ maxDepth: 1 }), os_family: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }),
    );
    await fc.assert(
      fc.asyncProperty(name, args, async (toolName, toolArgs) => {
        const before = (await fx.invocations()).length;
        const result = (await client.callTool({ name: toolName, arguments: toolArgs })) as CallToolResult;
        expect(Array.isArray(result.content)).toBe(true);
        expect(findPii(JSON.stringify(result), fx.pii)).toEqual([]);
        expect((await fx.invocations()).length - before).toBe(1);
      }),
      { numRuns: 100 },
    );
  }, 120_000);
});
