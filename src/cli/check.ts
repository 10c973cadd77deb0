/**
 * `intune-connector check`: asks the compliance gate about one device, as the authorize endpoint
 * would, and prints the GateResult as JSON. The decision is recorded in Chronicle like any other
 * (channel cli). Exit 0 on allow, 1 on deny, 2 for a usage mistake, 3 for bad configuration, 4 when
 * the database is unavailable.
 *
 * Beside a running `serve` of the same data directory (and Graph), the server's gate decides and
 * records over serve.sock (api/local-channel.ts); otherwise this process opens the runtime itself.
 * Either way this process's configuration decides the policy.
 */
import { CommanderError, type Command } from 'commander';
import { loadConfig, type Config } from '../config/index.js';
import { demoPolicyFile, loadGatePolicy, resolveAccordPolicy } from '../gate/policy.js';
import { ACCORD_NAME_PATTERN, type AccordPolicy, type GatePolicy, type GateResult } from '../gate/types.js';
import { askServer, localIdentity, LOCAL_USAGE_CODES } from '../api/local-client.js';
import { EXIT, UsageError } from './exit.js';
import { DEFAULT_TENANT, isTenant } from '../common/ids.js';

interface CheckOptions {
  readonly deviceId?: string;
  readonly claims?: string;
  readonly accord: string;
  readonly tenant: string;
}

/** The claims to evaluate: --claims as given, or a token carrying --device-id as its deviceid claim. */
function claimsFrom(options: CheckOptions): Readonly<Record<string, unknown>> {
  if (options.deviceId !== undefined && options.claims !== undefined) throw new UsageError('give --device-id or --claims, not both');
  if (options.claims !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(options.claims);
    } catch {
      throw new UsageError('--claims must be a JSON object, e.g. --claims \'{"deviceid":"<Entra device id>"}\'');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new UsageError('--claims must be a JSON object, e.g. --claims \'{"deviceid":"<Entra device id>"}\'');
    }
    return parsed as Record<string, unknown>;
  }
  return options.deviceId !== undefined ? { deviceid: options.deviceId } : {};
}

/** Names are checked before anything starts, so a typo costs no start-up and leaves no record. */
function checkNames(options: CheckOptions): void {
  if (!ACCORD_NAME_PATTERN.test(options.accord)) throw new UsageError('--accord must be 1 to 128 letters, digits, dots, underscores or hyphens (the accord template name)');
  if (!isTenant(options.tenant)) throw new UsageError('--tenant must be 1 to 64 letters, digits, dots, underscores or hyphens');
}

/** Prints the decision and returns its exit code: 0 allow, 1 deny. */
function report(result: GateResult): number {
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  return result.decision === 'allow' ? EXIT.ok : EXIT.failure;
}

/**
 * Beside a running `serve` of this data directory: its gate decides and records (see
 * api/local-channel.ts). Undefined when no server answers or it uses another Graph or database, so
 * nothing was evaluated and this process evaluates alone.
 */
async function checkBesideServer(config: Config, request: { accord: string; claims: Readonly<Record<string, unknown>>; tenant: string }, policy: AccordPolicy): Promise<number | undefined> {
  const outcome = await askServer(config.database.dataDir, { v: 1, kind: 'check', ...request, policy, identity: localIdentity(config) });
  if (outcome.kind === 'unreachable') return undefined;
  if (outcome.kind === 'failed') {
    // The request may have been evaluated and recorded: evaluating again would record it twice.
    process.stderr.write(`error: ${outcome.message}\n`);
    return EXIT.failure;
  }
  const { response } = outcome;
  if ('result' in response) return report(response.result);
  if (response.error.code === 'identity_mismatch') return undefined;
  process.stderr.write(`error: ${response.error.message}\n`);
  return LOCAL_USAGE_CODES.has(response.error.code) ? EXIT.usage : EXIT.failure;
}

/** No server to ask: open the runtime (database, Chronicle, Graph client) and evaluate here. */
async function checkAlone(config: Config, request: { accord: string; claims: Readonly<Record<string, unknown>>; tenant: string }, policy: GatePolicy): Promise<number> {
  const [{ openRuntime }, { GateInputError, createGate }] = await Promise.all([import('../runtime/index.js'), import('../gate/gate.js')]);
  const runtime = await openRuntime(config);
  try {
    const gate = createGate({ connector: runtime.connector, chronicle: runtime.chronicle, policy, logger: runtime.logger, channel: 'cli' });
    try {
      return report(await gate.check({ ...request, actor: { kind: 'human', id: 'cli' } }));
    } catch (err) {
      if (err instanceof GateInputError) {
        process.stderr.write(`error: ${err.message}\n`);
        return EXIT.usage;
      }
      throw err;
    }
  } finally {
    await runtime.close();
  }
}

async function runCheck(options: CheckOptions): Promise<number> {
  let claims: Readonly<Record<string, unknown>>;
  try {
    checkNames(options);
    claims = claimsFrom(options);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return EXIT.usage;
  }
  const config = loadConfig(process.env);
  // Before anything is opened: a bad policy file is a configuration error (exit 3). The demo tenant
  // answers with the example policy, as `serve` does.
  const demoPolicy = demoPolicyFile(config, true);
  const policy = loadGatePolicy(demoPolicy === undefined ? config : { ...config, compliance: { ...config.compliance, policyFile: demoPolicy } });
  const accordPolicy = resolveAccordPolicy(policy, options.accord);
  if (!accordPolicy.required) {
    process.stderr.write(
      `note: accord "${options.accord}" does not require a compliant device (INTUNE_COMPLIANCE_REQUIRED and INTUNE_POLICY_FILE), so the device is not checked; name an accord that requires it with --accord\n`,
    );
  }
  const request = { accord: options.accord, claims, tenant: options.tenant };
  return (await checkBesideServer(config, request, accordPolicy)) ?? (await checkAlone(config, request, policy));
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('Ask the compliance gate about a device, as the authorize endpoint would; prints the decision as JSON, exit 0 on allow, 1 on deny')
    .option('--device-id <id>', "the Entra device id (what the token's deviceid claim carries)")
    .option('--claims <json>', 'the token claims as a JSON object, instead of --device-id')
    .option('--accord <name>', 'the accord template being issued', 'default')
    .option('--tenant <tenant>', 'the tenant (Chronicle chain) to check and record in', DEFAULT_TENANT)
    .addHelpText(
      'after',
      '\nExit codes: 0 allow, 1 deny, 2 usage, 3 configuration, 4 database unavailable.\n' +
        'Without ENTRA_* the built-in demo tenant answers. Example:\n' +
        '  INTUNE_POLICY_FILE=examples/accord-policy.yaml intune-connector check --accord device-management --device-id 0fa4e5e1-0000-4000-8000-00000000c001\n',
    )
    // Usage mistakes exit 2, as documented, rather than commander's 1.
    .exitOverride((err) => {
      if (err.exitCode === 1 && err.code.startsWith('commander.')) throw new CommanderError(EXIT.usage, err.code, err.message);
      throw err;
    })
    .action(async (options: CheckOptions) => {
      process.exitCode = await runCheck(options);
    });
}
