#!/usr/bin/env node
/**
 * intune-connector: one binary for the server, the MCP stdio server, reviewers and administrators.
 * Each command lives in src/cli/<command>.ts and is imported only when it runs; this file only
 * wires them and maps failures to exit codes. `--version` answers before anything is loaded.
 */
import { createRequire } from 'node:module';
import type { Command } from 'commander';

const require = createRequire(import.meta.url);
const { version } = require('../package.json') as { version: string };

/**
 * The program for these arguments: the named command's module when there is one, else a line
 * per command (for --help, and so an unknown command is refused with the list).
 */
export async function buildProgram(args: readonly string[] = []): Promise<Command> {
  const [{ Command: CommandClass }, { COMMANDS }] = await Promise.all([import('commander'), import('./cli/index.js')]);
  const program = new CommandClass('intune-connector')
    .description('Governed Microsoft Intune connector: device posture, compliance gate, MCP tools, Chronicle audit trail.')
    .version(version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  // The program has no options of its own besides --version and --help: the first word is the command.
  const words = args.filter((arg) => !arg.startsWith('-'));
  const name = words[0] === 'help' ? words[1] : words[0];
  const entry = COMMANDS.find((c) => name !== undefined && c.names.includes(name));
  if (entry !== undefined) {
    (await entry.load())(program);
  } else {
    for (const c of COMMANDS) c.names.forEach((n, i) => program.command(n).summary(c.summaries[i] ?? ''));
  }
  return program;
}

async function main(argv: readonly string[]): Promise<void> {
  const args = argv.slice(2);
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    process.stdout.write(`${version}\n`);
    return;
  }
  // Imported here, not at the top: a static import is loaded before any line runs, --version included.
  const { EXIT, reportFatal } = await import('./cli/exit.js');
  try {
    const program = await buildProgram(args);
    await program.parseAsync(argv as string[]);
  } catch (err) {
    if (err instanceof Error && err.name === 'CommanderError') {
      // --help and --version exit 0; every usage error (unknown option, missing argument) exits 2.
      process.exitCode = (err as Error & { exitCode: number }).exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    process.exitCode = reportFatal(err);
  }
}

await main(process.argv);
