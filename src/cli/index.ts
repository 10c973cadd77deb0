import type { Command } from 'commander';
import { registerMigrate } from './migrate.js';

/** Each entry adds one command (and its subcommands) to the program. */
export const COMMANDS: ReadonlyArray<(program: Command) => void> = [registerMigrate];
