/**
 * `intune-connector mcp`: the MCP server over stdio, for desktop agents that start it as a child
 * process. stdout is the protocol channel, so everything else (logs, the demo banner) goes to stderr.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { CAPABILITIES, type Capability } from '../config/index.js';
import { createLogger } from '../log/index.js';
import { startStdioServer } from '../mcp/stdio.js';
import { openRuntime } from '../runtime/index.js';
import { createAssetService, type AssetService } from '../assets/index.js';
import { DEFAULT_TENANT } from '../common/ids.js';
import { configFromEnv } from './shared.js';

export function parseCapabilities(raw: string): Capability[] {
  const words = raw
    .split(',')
    .map((w) => w.trim().toUpperCase())
    .filter((w) => w !== '');
  const unknown = words.filter((w) => !(CAPABILITIES as readonly string[]).includes(w));
  if (words.length === 0 || unknown.length > 0) {
    throw new InvalidArgumentError(
      `${unknown.length > 0 ? `unknown capability ${unknown.join(', ')}` : 'no capability given'}; use a comma list of ${CAPABILITIES.join(', ')}, e.g. READ,PROPOSE`,
    );
  }
  return [...new Set(words as Capability[])];
}

/** A stray console.log from any module would corrupt the JSON-RPC stream: send them all to stderr. */
function keepStdoutForProtocol(): void {
  const toStderr = (...args: unknown[]): void => console.error(...args);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
}

export function registerMcp(program: Command): void {
  program
    .command('mcp')
    .description('Run the MCP server over stdio for desktop agents (JSON-RPC on stdout, logs on stderr)')
    .option(
      '--capabilities <list>',
      'capabilities granted to the client, e.g. READ,PROPOSE to allow sync_device (default: INTUNE_MCP_CAPABILITIES, else READ)',
      parseCapabilities,
    )
    .action(async (options: { capabilities?: Capability[] }) => {
      keepStdoutForProtocol();
      const config = configFromEnv();
      const logger = createLogger({ level: config.logLevel, name: 'intune-connector-mcp' });
      // Stored assets answer find_asset and name the agents that see a device (read-only here: serve keeps them current).
      let assets: AssetService | undefined;
      const runtime = await openRuntime(config, { logger, assets: () => assets });
      assets = createAssetService({ db: runtime.db, chronicle: runtime.chronicle, logger });
      try {
        const server = await startStdioServer({
          connector: runtime.connector,
          tenant: DEFAULT_TENANT,
          capabilities: options.capabilities ?? config.mcp.defaultCapabilities,
          logger,
        });
        const stop = (): void => void server.close();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        await server.closed;
      } finally {
        await runtime.close();
        logger.info('MCP server stopped');
      }
    });
}
