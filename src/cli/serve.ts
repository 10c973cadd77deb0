/**
 * `intune-connector serve` (and `npm start`): the main job. Prints where everything is on stdout
 * (and the first admin key, once); logs go to stderr. SIGINT/SIGTERM shut down gracefully; a
 * second signal exits at once.
 */
import type { Command } from 'commander';
import { createLogger } from '../log/index.js';
import { describeServer, startServer } from '../api/server.js';
import { configFromEnv } from './shared.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the server: REST API, gate, MCP over HTTP, Settings panel, scheduled sync')
    .option('--no-demo', 'without ENTRA_*, do not start the simulated demo tenant')
    .action(async (opts: { demo: boolean }) => {
      const config = configFromEnv();
      const logger = createLogger({ level: config.logLevel });

      // Listening from the start: a signal during start-up (database, initial sync) is honoured
      // as soon as the server is up, so nothing is left half-open.
      let signals = 0;
      let stopRequested: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => {
        stopRequested = resolve;
      });
      const onSignal = (signal: NodeJS.Signals) => {
        signals += 1;
        if (signals > 1) process.exit(130);
        logger.info({ signal }, 'shutting down');
        stopRequested();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);

      try {
        const server = await startServer(config, { logger, env: process.env, demo: opts.demo });
        if (signals === 0) process.stdout.write(`${describeServer(server).join('\n')}\n`);
        await stopped;
        await server.close();
        process.stdout.write('intune-connector stopped\n');
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
