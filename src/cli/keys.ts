import type { Command } from 'commander';

// Placeholder registration; the command's implementation replaces this file.
export function registerKeys(program: Command): void {
  program
    .command('keys')
    .description('Create, list and revoke API keys')
    .action(() => {
      throw new Error('keys is not available in this build yet');
    });
}
