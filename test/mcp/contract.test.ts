/**
 * The tool contract: specs/mcp/tools.json against the code, and the rule that every hint a
 * client sees is derived from the operation's capability.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OPERATIONS } from '../../src/connector/operations.js';
import { annotationsFor } from '../../src/mcp/annotations.js';
import { buildToolsSnapshot, serializeSnapshot, SNAPSHOT_FILE } from '../../src/mcp/snapshot.js';
import { TOOLS } from '../../src/mcp/tools/index.js';

describe('MCP tool contract', () => {
  it('matches specs/mcp/tools.json (after an intended change: npm run update:mcp-snapshot)', async () => {
    const expected = serializeSnapshot(await buildToolsSnapshot());
    const actual = fs.existsSync(SNAPSHOT_FILE) ? fs.readFileSync(SNAPSHOT_FILE, 'utf8') : '(missing)';
    expect(actual, 'specs/mcp/tools.json differs from the tools in src/mcp/tools: review the change, then run `npm run update:mcp-snapshot`').toBe(expected);
  });

  it('lists READ tools by default and never remote_lock in Phase 1', async () => {
    const snapshot = await buildToolsSnapshot();
    expect(snapshot.default_capabilities).toEqual(['READ']);
    expect(snapshot.tools.filter((t) => t.listed_by_default).map((t) => t.name)).toEqual(['list_devices', 'get_device', 'get_device_compliance']);
    expect(Object.values(snapshot.listed_by_scope).some((names) => names.includes('remote_lock'))).toBe(false);
    expect(snapshot.listed_by_scope['READ,PROPOSE']).toContain('sync_device');
  });

  it('derives each tool’s capability from its connector operation, and its hints from the capability', async () => {
    for (const tool of TOOLS) {
      expect(tool.capability).toBe(OPERATIONS.find((op) => op.name === tool.operation)?.capability);
    }
    expect(annotationsFor('READ', 't')).toEqual({ title: 't', readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true });
    expect(annotationsFor('PROPOSE', 't')).toEqual({ title: 't', readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true });
    expect(annotationsFor('MUTATE', 't')).toEqual({ title: 't', readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true });
    const snapshot = await buildToolsSnapshot();
    for (const tool of snapshot.tools) expect(tool.annotations).toEqual(annotationsFor(tool.capability, tool.title as string));
  });

  it('describes every tool and every argument for a model', async () => {
    const snapshot = await buildToolsSnapshot();
    for (const tool of snapshot.tools) {
      expect(tool.description?.length ?? 0, tool.name).toBeGreaterThan(80);
      const properties = (tool.inputSchema.properties ?? {}) as Record<string, { description?: string }>;
      for (const [name, schema] of Object.entries(properties)) expect(schema.description, `${tool.name}.${name}`).toBeTruthy();
      expect(tool.outputSchema, tool.name).toBeDefined();
    }
  });
});
