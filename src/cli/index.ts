import type { Command } from 'commander';

/**
 * The commands, in the order --help lists them. Each module is imported only when its command
 * runs (or its own --help is asked for), so a command loads what it uses and nothing else:
 * `--version` and the top-level `--help` load none of them.
 */
export interface CommandEntry {
  /** The command names the module registers. */
  readonly names: readonly string[];
  /** One line per name for the top-level --help (the module's own description says more). */
  readonly summaries: readonly string[];
  load(): Promise<(program: Command) => void>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { names: ['serve'], summaries: ['Run the server: REST API, gate, MCP over HTTP, Settings panel, scheduled sync'], load: async () => (await import('./serve.js')).registerServe },
  { names: ['mcp'], summaries: ['Run the MCP server over stdio for desktop agents'], load: async () => (await import('./mcp.js')).registerMcp },
  { names: ['sync'], summaries: ['Run one posture sync now'], load: async () => (await import('./sync.js')).registerSync },
  { names: ['check'], summaries: ['Ask the compliance gate about a device, as the authorize endpoint would'], load: async () => (await import('./check.js')).registerCheck },
  { names: ['chronicle'], summaries: ['Verify, query, export and checkpoint the audit trail'], load: async () => (await import('./chronicle.js')).registerChronicle },
  { names: ['simulator'], summaries: ['Run the Graph and Entra tenant simulator over HTTPS on loopback'], load: async () => (await import('./simulator.js')).registerSimulator },
  { names: ['keys'], summaries: ['Create, list and revoke API keys'], load: async () => (await import('./keys.js')).registerKeys },
  {
    names: ['agents', 'agent-sim'],
    summaries: ['Enrollment tokens and enrolled endpoint agents', 'The reference agent: enroll and send heartbeats over mTLS'],
    load: async () => {
      const { registerAgents, registerAgentSim } = await import('./agents.js');
      return (program) => {
        registerAgents(program);
        registerAgentSim(program);
      };
    },
  },
  { names: ['doctor'], summaries: ["Pre-flight a connection: token, permissions, Graph, devices, clock, database, Chronicle"], load: async () => (await import('./doctor.js')).registerDoctor },
  { names: ['migrate'], summaries: ['Apply pending database migrations'], load: async () => (await import('./migrate.js')).registerMigrate },
];
