/**
 * `intune-connector agents token create | list | revoke`: endpoint agent administration, and
 * `intune-connector agent-sim`, the reference agent (key, CSR, enrollment, mTLS heartbeats).
 * A new token is printed alone on stdout, so `TOKEN=$(intune-connector agents token create)` works.
 */
import fs from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import type { Actor } from '../chronicle/types.js';
import type { Config } from '../config/index.js';
import { configFromEnv, withChronicle } from './shared.js';
import { guidArg, tenantArg } from './args.js';
import type { AgentService, AgentSummary } from '../agents/service.js';
import { defined } from '../common/values.js';

const CLI_ACTOR: Actor = { kind: 'human', id: 'cli:agents' };
const DEFAULT_TENANT = 'default';

async function withAgents<T>(config: Config, fn: (agents: AgentService) => Promise<T>): Promise<T> {
  const [{ createAgentService }, { createAssetService }, { fingerprintKeys }, { createLogger }] = await Promise.all([
    import('../agents/service.js'),
    import('../assets/index.js'),
    import('../runtime/fingerprint-keys.js'),
    import('../log/index.js'),
  ]);
  const logger = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel });
  const keys = fingerprintKeys({ file: config.fingerprintKeyFile, logger });
  return withChronicle(config, { createKey: true }, (chronicle, db) => {
    // A revocation re-matches the agent's asset here, as serve would: the machine's other sources stand without it at once.
    const assets = createAssetService({ db, chronicle, logger });
    return fn(
      createAgentService({
        db,
        chronicle,
        logger,
        caDir: config.agents.caDir,
        fingerprintKeyFor: keys.keyFor,
        certValidityDays: config.agents.certValidityDays,
        tokenTtlSeconds: config.agents.tokenTtlSeconds,
        onAgentChanged: (tenant, agentId) => assets.rematchAgent(tenant, agentId),
      }),
    );
  });
}

function table(records: readonly AgentSummary[]): string {
  const header = ['AGENT ID', 'PLATFORM', 'CLASS', 'OS', 'STATUS', 'LAST SEEN', 'CERT EXPIRES', 'SERIAL FINGERPRINT'];
  const rows = records.map((r) => [
    r.agent_id,
    r.platform,
    r.agent_class,
    r.os_version ?? '',
    r.status,
    r.last_seen_at ?? '',
    r.certificate_expires_at,
    r.serial_fingerprint === null ? '' : `${r.serial_fingerprint.slice(0, 24)}…`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ').trimEnd()).join('\n');
}

function positiveInt(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`use a whole number from 1 to ${max}`);
    return n;
  };
}

function nonNegativeInt(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > max) throw new InvalidArgumentError(`use a whole number from 0 to ${max}`);
    return n;
  };
}

export function registerAgents(program: Command): void {
  const agents = program
    .command('agents')
    .description('Endpoint agents: enrollment tokens, identity summaries, revocation')
    .addHelpText(
      'after',
      `
An agent enrolls with a one-time token (POST /api/v1/agents/enroll) and then speaks mTLS to the agent
listener (INTUNE_AGENT_PORT). These commands work while \`serve\` runs, on the embedded database too
(through the socket it shares in the data directory); POST /api/v1/agents/enrollment-tokens does the same.`,
    );

  const token = agents.command('token').description('One-time enrollment tokens');
  token
    .command('create')
    .description('Make a one-time enrollment token and print it alone on stdout (stored only as a hash)')
    .option('--tenant <tenant>', 'tenant the agent will belong to', DEFAULT_TENANT)
    .option('--ttl <seconds>', 'lifetime in seconds (default INTUNE_AGENT_TOKEN_TTL, 3600)', positiveInt(604_800))
    .option('--name <label>', 'a label recorded with the token')
    .action(async (opts: { tenant: string; ttl?: number; name?: string }) => {
      const config = configFromEnv();
      const { validateTenant } = await import('../auth/keys.js');
      validateTenant(opts.tenant);
      const created = await withAgents(config, (service) =>
        service.createToken(
          opts.tenant,
          { ...defined({ ttlSeconds: opts.ttl, name: opts.name }) },
          CLI_ACTOR,
        ),
      );
      process.stdout.write(`${created.token}\n`);
      process.stderr.write(`created enrollment token ${created.token_id} (tenant ${opts.tenant}), single use, expires ${created.expires_at}\n`);
    });

  agents
    .command('list')
    .description('List enrolled agents of a tenant (never serials or names)')
    .option('--tenant <tenant>', 'tenant', tenantArg, DEFAULT_TENANT)
    .option('--json', 'print JSON')
    .action(async (opts: { tenant: string; json?: boolean }) => {
      const config = configFromEnv();
      const records = await withAgents(config, (service) => service.list(opts.tenant));
      process.stdout.write(opts.json === true ? `${JSON.stringify(records, null, 2)}\n` : `${table(records)}\n`);
    });

  agents
    .command('revoke')
    .description('Revoke an agent by its id; its certificate is refused by every server from the next request')
    .argument('<agent-id>', 'the agent id (a GUID, as `agents list` shows it)', guidArg)
    .action(async (agentId: string) => {
      const config = configFromEnv();
      const record = await withAgents(config, (service) => service.revoke(undefined, agentId.trim(), CLI_ACTOR));
      if (record === null) {
        process.stderr.write(`error: no agent ${agentId.slice(0, 64)}; see \`intune-connector agents list\`\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`revoked agent ${record.agent_id} (tenant ${record.tenant})\n`);
    });
}

export function registerAgentSim(program: Command): void {
  program
    .command('agent-sim')
    .description('Reference agent: make a key and CSR, enroll with a token, heartbeat over mTLS')
    .requiredOption('--url <url>', 'base URL of the server (where POST /api/v1/agents/enroll is)')
    .requiredOption('--token <token>', 'one-time enrollment token (`agents token create`)')
    .option('--platform <platform>', 'platform to declare', 'darwin')
    .option('--class <class>', 'agent class to declare', 'endpoint')
    .option('--os-version <version>', 'OS version to declare and report', '14.5')
    .option('--serial <serial>', 'serial number to declare (sent once, fingerprinted by the server)')
    .option('--hardware-uuid <uuid>', 'hardware UUID to declare')
    .option('--model <model>', 'model identifier, e.g. Mac14,2')
    .option('--heartbeats <n>', 'heartbeats to send after enrolling', nonNegativeInt(10_000), 1)
    .option('--interval <seconds>', 'seconds between heartbeats', nonNegativeInt(86_400), 0)
    .option('--agent-url <url>', 'the agent (mTLS) listener; default: agent_url from the enrollment answer')
    .option('--server-ca <file>', 'PEM CA to trust for the agent listener; default: server_ca from the enrollment answer')
    .action(
      async (opts: {
        url: string;
        token: string;
        platform: string;
        class: string;
        osVersion: string;
        serial?: string;
        hardwareUuid?: string;
        model?: string;
        heartbeats: number;
        interval: number;
        agentUrl?: string;
        serverCa?: string;
      }) => {
        const { runSimulatedAgent } = await import('../agents/reference-agent.js');
        const run = await runSimulatedAgent({
          url: opts.url,
          token: opts.token,
          enroll: {
            platform: opts.platform,
            agentClass: opts.class,
            osVersion: opts.osVersion,
            ...defined({ serialNumber: opts.serial, hardwareUuid: opts.hardwareUuid, model: opts.model }),
          },
          posture: { filevault: true, firewall: true, sip: true, gatekeeper: true },
          heartbeats: opts.heartbeats,
          intervalMs: opts.interval * 1000,
          ...defined({ agentUrl: opts.agentUrl, serverCa: opts.serverCa === undefined ? undefined : fs.readFileSync(opts.serverCa, 'utf8') }),
        });
        process.stdout.write(`${run.agentId}\n`);
        process.stderr.write(`enrolled agent ${run.agentId}; ${run.heartbeats} heartbeat(s) accepted by ${run.agentUrl}\n`);
      },
    );
}
