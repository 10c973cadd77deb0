/**
 * `intune-connector serve` (and `npm start`): the main job. Prints where everything is on stdout
 * (and the first admin key, once); logs go to stderr. SIGINT/SIGTERM shut down gracefully.
 */
import type { Command } from 'commander';
import { createLogger } from '../log/index.js';
import { describeServer, startServer } from '../api/server.js';
import { configFromEnv } from './shared.js';

/** A second signal while shutting down means "now": exit without waiting. */
function onShutdownSignals(shutdown: (signal: NodeJS.Signals) => void): () => void {
  let received = 0;
  const handler = (signal: NodeJS.Signals) => {
    received += 1;
    if (received > 1) process.exit(130);
    shutdown(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the server: REST API, gate, MCP over HTTP, Settings panel, scheduled sync')
    .option('--no-demo', 'without ENTRA_*, do not start the simulated demo tenant')
    .action(async (opts: { demo: boolean }) => {
      const config = configFromEnv();
      const logger = createLogger({ level: config.logLevel });
      const server = await startServer(config, { logger, env: process.env, demo: opts.demo });
      process.stdout.write(`${describeServer(server).join('\n')}\n`);

      await new Promise<void>((resolve) => {
        const detach = onShutdownSignals((signal) => {
          logger.info({ signal }, 'shutting down');
          server
            .close()
            .then(() => {
              process.stdout.write('intune-connector stopped\n');
              process.exitCode = 0;
            })
            .catch((err: unknown) => {
              logger.error({ err }, 'shutdown failed');
              process.exitCode = 1;
            })
            .finally(() => {
              detach();
              resolve();
            });
        });
      });
    });
}
