import type { Command } from 'commander';

// Placeholder registration; the command's implementation replaces this file.
export function registerChronicle(program: Command): void {
  program
    .command('chronicle')
    .description('Verify, query and export the Chronicle audit trail')
    .action(() => {
      throw new Error('chronicle is not available in this build yet');
    });
}
