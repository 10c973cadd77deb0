/**
 * The tool contract: specs/mcp/tools.json against the code, and the rule that every hint a
 * client sees is derived from the operation's capability.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_DOCS } from '../../src/config/index.js';
import { OPERATIONS } from '../../src/connector/operations.js';
import { annotationsFor } from '../../src/mcp/annotations.js';
import { buildToolsSnapshot, listAllTools, serializeSnapshot, SNAPSHOT_FILE } from '../../src/mcp/snapshot.js';
import { portableSchema } from '../../src/mcp/portable.js';
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
    expect(snapshot.tools.filter((t) => t.listed_by_default).map((t) => t.name)).toEqual(['list_devices', 'get_device', 'get_device_compliance', 'find_asset']);
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

/**
 * What the MCP Inspector's strict portability check flags, as a list of JSON pointers: a `type`
 * that is not one JSON type name (a type array is the usual case: zod writes nullable fields so),
 * and a schema keyword value of the wrong kind.
 */
function portabilityProblems(schema: unknown, at = '#'): string[] {
  if (Array.isArray(schema)) return schema.flatMap((s, i) => portabilityProblems(s, `${at}/${i}`));
  if (schema === null || typeof schema !== 'object') return [];
  const problems: string[] = [];
  const node = schema as Record<string, unknown>;
  const JSON_TYPES = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'null'];
  if ('type' in node && !(typeof node['type'] === 'string' && JSON_TYPES.includes(node['type']))) problems.push(`${at}/type: ${JSON.stringify(node['type'])}`);
  for (const key of ['anyOf', 'oneOf', 'allOf']) if (key in node && !Array.isArray(node[key])) problems.push(`${at}/${key}: not a list`);
  for (const [key, value] of Object.entries(node)) {
    if (key === 'enum' || key === 'const' || key === 'default' || key === 'examples') continue;
    problems.push(...portabilityProblems(value, `${at}/${key}`));
  }
  return problems;
}

describe('MCP schemas every client takes', () => {
  it('uses no type arrays (or other non-portable types) in any input or output schema, as tools/list sends them', async () => {
    const tools = await listAllTools();
    expect(tools.length).toBe(TOOLS.length);
    const problems = tools.flatMap((t) => [
      ...portabilityProblems(t.inputSchema, `${t.name}/inputSchema`),
      ...portabilityProblems(t.outputSchema, `${t.name}/outputSchema`),
    ]);
    expect(problems).toEqual([]);
    // Nullable fields are still nullable: the rewrite kept their meaning.
    const listed = tools.find((t) => t.name === 'list_devices');
    const device = (listed?.outputSchema?.properties?.['devices'] as { items: { properties: Record<string, unknown> } }).items.properties;
    expect(device['azure_ad_device_id']).toMatchObject({ anyOf: [{ type: 'string' }, { type: 'null' }] });
  });

  it('finds the problems it looks for (a check that cannot fail is no check)', () => {
    expect(portabilityProblems({ type: 'object', properties: { a: { type: ['string', 'null'] }, b: { anyOf: [{ type: 'strin' }] } } })).toEqual([
      '#/properties/a/type: ["string","null"]',
      '#/properties/b/anyOf/0/type: "strin"',
    ]);
  });

  it('rewrites a type array into anyOf, keeping words on the field and constraints with their type', () => {
    expect(portableSchema({ description: 'd', type: ['string', 'null'], format: 'date-time', enum: ['a', null] })).toEqual({
      description: 'd',
      anyOf: [{ type: 'string', format: 'date-time', enum: ['a'] }, { type: 'null' }],
    });
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
