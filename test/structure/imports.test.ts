/**
 * The import graph of src/ has no cycles (between files or folders, type-only imports included) and
 * its folders import one way, as docs/DESIGN-NOTES.md draws it:
 *   cli/api/mcp -> gate/posture/assets/agents -> connector -> graph;
 *   api/mcp/gate/agents -> auth; everything -> chronicle -> db.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cycles, directionViolations, folderGraph, importGraph } from './graph.js';

/** Which folders each folder of src/ may import. common, config and log are leaves every layer may use. */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  // The library entry point re-exports every layer.
  '.': ['*'],
  cli: ['api', 'mcp', 'gate', 'posture', 'assets', 'agents', 'runtime', 'simulator', 'auth', 'connector', 'connector/graph', 'chronicle', 'db', 'config', 'log', 'common'],
  api: ['mcp', 'gate', 'posture', 'assets', 'agents', 'runtime', 'auth', 'connector', 'connector/graph', 'chronicle', 'db', 'config', 'log', 'common'],
  mcp: ['gate', 'posture', 'assets', 'agents', 'auth', 'connector', 'chronicle', 'db', 'config', 'log', 'common'],
  // Process wiring for cli and api: the database, Chronicle, the built-in simulator.
  runtime: ['posture', 'connector', 'connector/graph', 'simulator', 'chronicle', 'db', 'config', 'log', 'common'],
  gate: ['assets', 'auth', 'connector', 'chronicle', 'db', 'config', 'log', 'common'],
  agents: ['assets', 'auth', 'connector', 'chronicle', 'db', 'config', 'log', 'common'],
  posture: ['connector', 'connector/graph', 'chronicle', 'db', 'config', 'log', 'common'],
  assets: ['connector', 'chronicle', 'db', 'config', 'log', 'common'],
  auth: ['chronicle', 'db', 'config', 'log', 'common'],
  connector: ['connector/graph', 'chronicle', 'db', 'config', 'log', 'common'],
  'connector/graph': ['config', 'log', 'common'],
  chronicle: ['db', 'config', 'log', 'common'],
  db: ['common'],
  config: ['common'],
  log: ['common'],
  // Shared identifiers and value helpers: a leaf.
  common: [],
  // The Graph simulator stands alone: the product reaches it only over HTTPS.
  simulator: ['common'],
};

describe('src/ imports', () => {
  const graph = importGraph();

  it('reads the whole tree, type-only imports included', () => {
    expect(graph.edges.size).toBeGreaterThan(100);
    // api/app.ts registers the gate and /mcp routes; db/migrate.ts names Db by a type-only import.
    expect(graph.edges.get('api/app.ts')).toContain('gate/http.ts');
    expect(graph.edges.get('db/migrate.ts')).toContain('db/types.ts');
  });

  it('has no cycle between files', () => {
    expect(cycles(graph.edges)).toEqual([]);
  });

  it('has no cycle between folders', () => {
    expect(cycles(folderGraph(graph.edges))).toEqual([]);
  });

  it('imports one way between folders', () => {
    expect(directionViolations(folderGraph(graph.edges), MAY_IMPORT)).toEqual([]);
  });
});

describe('the import checks', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'icn-imports-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (files: Record<string, string>): string => {
    const root = fs.mkdtempSync(path.join(dir, 'src-'));
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
      fs.writeFileSync(path.join(root, name), text);
    }
    return root;
  };

  it('find a cycle made only of type imports and re-exports', () => {
    const root = write({
      'a/x.ts': "import type { Y } from '../b/y.js';\nexport interface X { y: Y }\n",
      'b/y.ts': "export type { X as Y } from '../a/x.js';\n",
    });
    expect(cycles(importGraph(root).edges)).toEqual([['a/x.ts', 'b/y.ts']]);
  });

  it('find a cycle through a dynamic import', () => {
    const root = write({
      'a/x.ts': "export const load = () => import('./y.js');\n",
      'a/y.ts': "import { load } from './x.js';\nexport const again = load;\n",
    });
    expect(cycles(importGraph(root).edges)).toEqual([['a/x.ts', 'a/y.ts']]);
  });

  it('find a cycle between folders that no two files form', () => {
    const root = write({
      'a/x.ts': "import { z } from '../b/z.js';\nexport const x = z;\n",
      'b/y.ts': "import type { W } from '../a/w.js';\nexport type Y = W;\n",
      'b/z.ts': 'export const z = 1;\n',
      'a/w.ts': 'export type W = number;\n',
    });
    const graph = importGraph(root);
    expect(cycles(graph.edges)).toEqual([]);
    expect(cycles(folderGraph(graph.edges))).toEqual([['a', 'b']]);
  });

  it('report an import against the direction and a folder the table does not name', () => {
    const root = write({
      'db/x.ts': "import type { C } from '../chronicle/c.js';\nexport type X = C;\n",
      'chronicle/c.ts': 'export type C = string;\n',
      'extra/e.ts': "import type { C } from '../chronicle/c.js';\nexport type E = C;\n",
    });
    expect(directionViolations(folderGraph(importGraph(root).edges), MAY_IMPORT)).toEqual(['db -> chronicle', 'extra is not in the import-direction table']);
  });
});
