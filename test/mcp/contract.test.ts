/**
 * The tool contract: specs/mcp/tools.json against the code, and the rule that every hint a
 * client sees is derived from the operation's capability.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_DOCS } from '../../src/config/index.js';
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

describe('README MCP client configuration', () => {
  const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const block = readme.slice(readme.indexOf('<!-- section:mcp -->'), readme.indexOf('<!-- /section:mcp -->'));
  const snippets = [...block.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1] as string) as { mcpServers: Record<string, Record<string, unknown>> });

  it('gives a stdio configuration that starts `intune-connector mcp` with documented variables', () => {
    const stdio = snippets.map((s) => s.mcpServers['intune']).find((c) => c?.['command'] !== undefined);
    expect(stdio).toBeDefined();
    expect(stdio?.['command']).toBe('intune-connector');
    expect(stdio?.['args']).toEqual(['mcp']);
    for (const name of Object.keys(stdio?.['env'] as object)) expect(Object.keys(CONFIG_DOCS)).toContain(name);
  });

  it('gives an HTTP configuration with the /mcp URL and a bearer key header', () => {
    const http = snippets.map((s) => s.mcpServers['intune']).find((c) => c?.['url'] !== undefined);
    expect(new URL(http?.['url'] as string).pathname).toBe('/mcp');
    expect((http?.['headers'] as Record<string, string>)['Authorization']).toMatch(/^Bearer icn_/);
  });
});
