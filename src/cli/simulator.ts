/**
 * `intune-connector simulator`: the Graph + Entra tenant simulator as a standalone process. Its
 * first stdout lines are `export NAME=value` for each variable the connector needs, so another
 * shell can `eval` them; everything else goes to stderr. Runs until SIGINT or SIGTERM, then
 * closes the listener and removes the CA file.
 */
import { type Command, Option } from 'commander';
import { DEFAULT_ROLES, SimulatorError, exportLine, parseFaultSpec, startSimulator, FAULT_SPEC_HELP } from '../simulator/index.js';
import type { SimulatorOptions } from '../simulator/index.js';
import { EXIT } from './exit.js';
import { defined } from '../common/values.js';

interface SimulatorCliOptions {
  readonly port?: string;
  readonly host?: string;
  readonly devices?: string;
  readonly seed?: string;
  readonly tenantFile?: string;
  readonly faults?: string;
  readonly caFile?: string;
  readonly roles?: string;
}

/** --roles: comma-separated application permissions, each a known one or none at all (''). */
function roleList(raw: string): string[] {
  const roles = raw.split(',').map((r) => r.trim()).filter((r) => r !== '');
  const unknown = roles.filter((r) => !DEFAULT_ROLES.includes(r));
  if (unknown.length > 0) {
    throw new SimulatorError('invalid_options', `--roles has ${unknown.join(', ')}; use any of ${DEFAULT_ROLES.join(', ')}, comma-separated, or "" for a token without roles`);
  }
  return roles;
}

function wholeNumber(raw: string, flag: string, max: number): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value > max) {
    throw new SimulatorError('invalid_options', `${flag} is "${raw}"; set it to a whole number from 0 to ${max}`);
  }
  return value;
}

/** Turns the flags into SimulatorOptions; throws SimulatorError naming the flag to fix. */
export function simulatorOptionsFromFlags(flags: SimulatorCliOptions): SimulatorOptions {
  return {
    ...defined({
      port: flags.port === undefined ? undefined : wholeNumber(flags.port, '--port', 65_535),
      host: flags.host,
      devices: flags.devices === undefined ? undefined : wholeNumber(flags.devices, '--devices', 1_000_000),
      seed: flags.seed,
      tenantFile: flags.tenantFile,
      faults: flags.faults === undefined ? undefined : parseFaultSpec(flags.faults),
      caFile: flags.caFile,
      roles: flags.roles === undefined ? undefined : roleList(flags.roles),
    }),
  };
}

async function runSimulator(flags: SimulatorCliOptions): Promise<void> {
  let options: SimulatorOptions;
  try {
    options = simulatorOptionsFromFlags(flags);
    if (options.devices !== undefined && options.tenantFile !== undefined) {
      throw new SimulatorError('invalid_options', '--devices and --tenant-file are mutually exclusive: the tenant file decides the devices');
    }
  } catch (err) {
    if (err instanceof SimulatorError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    throw err;
  }

  let sim: Awaited<ReturnType<typeof startSimulator>>;
  try {
    sim = await startSimulator(options);
  } catch (err) {
    if (err instanceof SimulatorError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = err.code === 'invalid_options' || err.code === 'invalid_fault_spec' ? EXIT.usage : EXIT.failure;
      return;
    }
    throw err;
  }

  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stdout.write(`${Object.entries(sim.env).map(([name, value]) => exportLine(name, value)).join('\n')}\n`);
  const source = options.tenantFile !== undefined ? `from ${options.tenantFile}` : `generated from seed "${options.seed ?? 'intune-connector'}"`;
  process.stderr.write(
    `# Simulated Intune tenant: ${sim.devices.length} devices ${source}, Entra and Graph at ${sim.graphUrl}\n` +
      `# The lines above configure the connector (eval them in another shell). Ctrl-C stops the simulator.\n`,
  );

  const signal = await stopped;
  await sim.close();
  process.stderr.write(`# ${signal}: simulator stopped, CA file removed\n`);
  process.exitCode = EXIT.ok;
}

export function registerSimulator(program: Command): void {
  program
    .command('simulator')
    .description('Run the Graph and Entra tenant simulator over HTTPS on loopback (prints the export lines the connector needs first)')
    .option('--port <n>', 'port to listen on (0 picks a free one)', '0')
    .addOption(new Option('--host <host>', 'loopback address to listen on').choices(['127.0.0.1', 'localhost', '::1']))
    .option('--devices <n>', 'size of the generated tenant (default 200)')
    .option('--seed <seed>', 'seed of the deterministic tenant generator (default "intune-connector")')
    .option('--tenant-file <file>', 'serve these devices instead: a JSON array of managedDevice objects, or a Graph page { "value": [...] }')
    .option('--faults <spec>', `inject faults, e.g. error=0.1,unavailable=0.05,retry-after=2,latency=50 (${FAULT_SPEC_HELP})`)
    .option('--ca-file <path>', 'where to write the CA certificate (default: a temp directory); removed on exit')
    .option('--roles <list>', `application permissions in issued tokens, comma-separated (default all: ${DEFAULT_ROLES.join(',')}); leave some out to see a missing permission`)
    .action(runSimulator);
}
