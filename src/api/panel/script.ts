/**
 * The panel's browser script, written in TypeScript in client/panel.ts and compiled by its own
 * tsconfig (lib DOM) as part of `npm run build`, to client/panel.js beside this module in dist/.
 * Run from source (tests, tsx), there is no compiled file beside this module, so the same source
 * is transpiled once at start.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';

export function loadPanelScript(name: 'panel' | 'assets-panel' = 'panel'): string {
  const built = new URL(`./client/${name}.js`, import.meta.url);
  if (fs.existsSync(built)) return fs.readFileSync(built, 'utf8');
  const source = new URL(`./client/${name}.ts`, import.meta.url);
  if (!fs.existsSync(source)) {
    throw new Error(`the Settings panel script is missing: neither ${built.pathname} nor ${source.pathname} exists; run npm run build`);
  }
  // typescript is a development dependency: only a source checkout gets here, and it has it.
  const ts = createRequire(import.meta.url)('typescript') as typeof import('typescript');
  return ts.transpileModule(fs.readFileSync(source, 'utf8'), {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 },
  }).outputText;
}
