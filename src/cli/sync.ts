import type { Command } from 'commander';

// Placeholder registration; the command's implementation replaces this file.
export function registerSync(program: Command): void {
  program
    .command('sync')
    .description('Run one posture sync now and print its summary')
    .action(() => {
      throw new Error('sync is not available in this build yet');
    });
}
