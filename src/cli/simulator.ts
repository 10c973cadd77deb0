import type { Command } from 'commander';

// Placeholder registration; the command's implementation replaces this file.
export function registerSimulator(program: Command): void {
  program
    .command('simulator')
    .description('Run the Graph and Entra tenant simulator over HTTPS')
    .action(() => {
      throw new Error('simulator is not available in this build yet');
    });
}
