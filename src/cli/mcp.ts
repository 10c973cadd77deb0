import type { Command } from 'commander';

// Placeholder registration; the command's implementation replaces this file.
export function registerMcp(program: Command): void {
  program
    .command('mcp')
    .description('Run the MCP server over stdio for desktop agents')
    .action(() => {
      throw new Error('mcp is not available in this build yet');
    });
}
