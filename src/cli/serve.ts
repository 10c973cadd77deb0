import type { Command } from 'commander';

// Placeholder registration; the command's implementation replaces this file.
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the server: REST API, gate, MCP over HTTP, Settings panel, scheduled sync')
    .action(() => {
      throw new Error('serve is not available in this build yet');
    });
}
