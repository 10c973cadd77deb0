import type { Command } from 'commander';
import { registerAgents, registerAgentSim } from './agents.js';
import { registerChronicle } from './chronicle.js';
import { registerCheck } from './check.js';
import { registerDoctor } from './doctor.js';
import { registerKeys } from './keys.js';
import { registerMcp } from './mcp.js';
import { registerMigrate } from './migrate.js';
import { registerServe } from './serve.js';
import { registerSimulator } from './simulator.js';
import { registerSync } from './sync.js';

/** Each entry adds one command (and its subcommands) to the program, in the order --help lists them. */
export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerServe,
  registerMcp,
  registerSync,
  registerCheck,
  registerChronicle,
  registerSimulator,
  registerKeys,
  registerAgents,
  registerAgentSim,
  registerDoctor,
  registerMigrate,
];
