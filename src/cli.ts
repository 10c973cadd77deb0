#!/usr/bin/env node
/**
 * intune-connector: one binary for the server, the MCP stdio server, reviewers and administrators.
 * Each command lives in src/cli/<command>.ts; this file only wires them and maps failures to exit codes.
 */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { COMMANDS } from './cli/index.js';
import { EXIT, reportFatal } from './cli/shared.js';

const require = createRequire(import.meta.url);
const { version } = require('../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command('intune-connector')
    .description('Governed Microsoft Intune connector: device posture, compliance gate, MCP tools, Chronicle audit trail.')
    .version(version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of COMMANDS) register(program);
  return program;
}

async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; every usage error (unknown option, missing argument) exits 2.
      process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    process.exitCode = reportFatal(err);
  }
}

await main(process.argv);
