/**
 * The import graph of src/, read with the TypeScript compiler: every import, export-from,
 * `import type` and dynamic `import()` of a file, resolved the way tsc resolves it.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export interface ImportGraph {
  /** File (relative to the scanned folder, `/`-separated) -> the files of that folder it imports. */
  readonly edges: ReadonlyMap<string, ReadonlySet<string>>;
}

const ROOT = path.resolve(import.meta.dirname, '../..');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

function compilerOptions(): ts.CompilerOptions {
  const configPath = path.join(ROOT, 'tsconfig.json');
  const read = ts.readConfigFile(configPath, (file) => ts.sys.readFile(file));
  return ts.parseJsonConfigFileContent(read.config, ts.sys, ROOT).options;
}

/** Builds the graph of the .ts files under `srcDir` (default: the repository's src/), resolved with the repository's tsconfig. */
export function importGraph(srcDir = path.join(ROOT, 'src')): ImportGraph {
  const options = compilerOptions();
  const host = ts.createCompilerHost(options);
  const root = path.resolve(srcDir);
  const relative = (file: string): string => path.relative(root, file).split(path.sep).join('/');
  const files = sourceFiles(root);
  const edges = new Map<string, Set<string>>();
  for (const file of files) {
    const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    const targets = new Set<string>();
    for (const imported of info.importedFiles) {
      const resolved = ts.resolveModuleName(imported.fileName, file, options, host).resolvedModule;
      if (resolved === undefined || resolved.isExternalLibraryImport === true) continue;
      const target = path.resolve(resolved.resolvedFileName);
      if (target.startsWith(root + path.sep)) targets.add(relative(target));
    }
    edges.set(relative(file), targets);
  }
  return { edges };
}

/** Strongly connected components with more than one member, or a file importing itself (Tarjan). */
export function cycles(edges: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, next);
    low.set(node, next);
    next += 1;
    stack.push(node);
    onStack.add(node);
    for (const target of edges.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || edges.get(node)?.has(node) === true) found.push(component.sort());
    }
  };
  for (const node of [...edges.keys()].sort()) if (!index.has(node)) visit(node);
  return found;
}

/** The folder of a file: its first directory (`connector/graph` kept apart), or `.` for a file at the top. */
export function folderOf(file: string): string {
  const parts = file.split('/');
  if (parts.length === 1) return '.';
  if (parts[0] === 'connector' && parts[1] === 'graph' && parts.length > 2) return 'connector/graph';
  return parts[0]!;
}

/** The folder graph: an edge for every file import that crosses folders. */
export function folderGraph(edges: ReadonlyMap<string, ReadonlySet<string>>): Map<string, Set<string>> {
  const folders = new Map<string, Set<string>>();
  for (const [from, targets] of edges) {
    const source = folderOf(from);
    const set = folders.get(source) ?? new Set<string>();
    folders.set(source, set);
    for (const target of targets) if (folderOf(target) !== source) set.add(folderOf(target));
  }
  return folders;
}

/** Folder edges that the allow-list does not permit, as "from -> to"; a folder missing from the list is reported too. */
export function directionViolations(folders: ReadonlyMap<string, ReadonlySet<string>>, mayImport: Readonly<Record<string, readonly string[]>>): string[] {
  const violations: string[] = [];
  for (const [from, targets] of folders) {
    const allowed = mayImport[from];
    if (allowed === undefined) {
      violations.push(`${from} is not in the import-direction table`);
      continue;
    }
    if (allowed.includes('*')) continue;
    for (const to of targets) if (!allowed.includes(to)) violations.push(`${from} -> ${to}`);
  }
  return violations.sort();
}
