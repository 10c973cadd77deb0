import type { Command } from 'commander';

// Placeholder registration; the command's implementation replaces this file.
export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('Ask the compliance gate about a device; exit 0 on allow')
    .action(() => {
      throw new Error('check is not available in this build yet');
    });
}
