/**
 * `intune-connector serve` (and `npm start`): the main job. Prints where everything is on stdout
 * (and the first admin key, once); logs go to stderr. SIGINT/SIGTERM shut down gracefully; a
 * second signal exits at once. Run by a package manager (`npm start` execs it, so npm's signal
 * reaches this process), or with --exit-with-parent, it also shuts down when its parent process
 * goes away, so a killed `npm start` never leaves the port and the data directory held.
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
    .option('--exit-with-parent', 'shut down when the parent process exits (default when run by npm start)')
    .action(async (opts: { demo: boolean; exitWithParent?: boolean }) => {
      const config = configFromEnv();
      const logger = createLogger({ level: config.logLevel });

      // Listening from the start: a signal during start-up (database, initial sync) is honoured
      // as soon as the server is up, so nothing is left half-open.
      let signals = 0;
      let stopRequested: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => {
        stopRequested = resolve;
      });
      const onSignal = (reason: string) => {
        signals += 1;
        if (signals > 1) process.exit(130);
        logger.info({ reason }, 'shutting down');
        stopRequested();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const watch = opts.exitWithParent === true || runByPackageManager(process.env) ? watchParent(() => {
        // The parent's end of stdout may be gone with it: a failed write must not crash the shutdown.
        process.stdout.on('error', () => undefined);
        onSignal('parent process exited');
      }) : undefined;

      try {
        const server = await startServer(config, { logger, env: process.env, demo: opts.demo });
        if (signals === 0) process.stdout.write(`${describeServer(server).join('\n')}\n`);
        await stopped;
        await server.close();
        process.stdout.write('intune-connector stopped\n');
      } finally {
        if (watch !== undefined) clearInterval(watch);
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

const PARENT_CHECK_MS = 500;

/** npm, pnpm and yarn set npm_lifecycle_event for the scripts they run. */
function runByPackageManager(env: NodeJS.ProcessEnv): boolean {
  return (env['npm_lifecycle_event'] ?? '') !== '';
}

/**
 * Calls onGone once when this process is re-parented (its parent exited, even by SIGKILL). The
 * timer is unref'd: it never keeps the process alive by itself.
 */
function watchParent(onGone: () => void): NodeJS.Timeout {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone();
  }, PARENT_CHECK_MS);
  timer.unref();
  return timer;
}
