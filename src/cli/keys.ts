/**
 * `intune-connector keys create | list | revoke`: API keys for the HTTP surfaces. A new key is
 * printed alone on stdout (so `KEY=$(intune-connector keys create …)` works) and never again.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ROLES } from '../auth/types.js';
import { createKeyStore, parseCapabilities, validateKeyInput, type ApiKeyRecord, type KeyStore } from '../auth/keys.js';
import type { Actor } from '../chronicle/types.js';
import type { Config } from '../config/index.js';
import { configFromEnv, withChronicle } from './shared.js';
import { keyIdArg, tenantArg } from './args.js';
import { DEFAULT_TENANT } from '../common/ids.js';
import { defined } from '../common/values.js';

const CLI_ACTOR: Actor = { kind: 'human', id: 'cli:keys' };

async function withKeyStore<T>(config: Config, fn: (keys: KeyStore) => Promise<T>): Promise<T> {
  return withChronicle(config, { createKey: true }, (chronicle, db) => fn(createKeyStore({ db, chronicle })));
}

function table(records: readonly ApiKeyRecord[]): string {
  const header = ['KEY ID', 'TENANT', 'ROLE', 'CAPABILITIES', 'NAME', 'CREATED', 'REVOKED'];
  const rows = records.map((r) => [r.key_id, r.tenant, r.role, r.capabilities.join(','), r.name ?? '', r.created_at, r.revoked_at ?? '']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ').trimEnd()).join('\n');
}

function roleOption(value: string): string {
  if (!(ROLES as readonly string[]).includes(value)) throw new InvalidArgumentError(`use one of ${ROLES.join(', ')}`);
  return value;
}

function scopeOption(value: string): string[] {
  try {
    return parseCapabilities(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description('Create, list and revoke API keys (bound to a tenant and a role)')
    .addHelpText(
      'after',
      `
Roles: admin (everything in its tenant), reader (read connections, runs, devices; the Settings panel),
gate (the compliance gate endpoint), auditor (Chronicle read and verify), agent (MCP at /mcp).
These commands work while \`serve\` runs, on the embedded database too (through the socket it shares
in the data directory); POST /api/v1/keys with an admin key does the same.`,
    );

  keys
    .command('create')
    .description('Create a key and print it alone on stdout (it is shown once and stored only as a hash)')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`, roleOption)
    .option('--tenant <tenant>', 'tenant the key is bound to', tenantArg, DEFAULT_TENANT)
    .option('--scope <capabilities>', 'capabilities of an agent or admin key, e.g. READ,PROPOSE (default READ)', scopeOption)
    .option('--name <label>', 'a label to recognise the key by in `keys list`')
    .action(async (opts: { role: string; tenant: string; scope?: string[]; name?: string }) => {
      const config = configFromEnv();
      const input = {
        tenant: opts.tenant,
        role: opts.role,
        ...defined({ capabilities: opts.scope, name: opts.name }),
      };
      // Refuse a bad request before opening the database (seconds with the embedded one).
      validateKeyInput(input);
      const created = await withKeyStore(config, (store) => store.create(input, CLI_ACTOR));
      process.stdout.write(`${created.key}\n`);
      process.stderr.write(
        `created key ${created.record.key_id} (tenant ${created.record.tenant}, role ${created.record.role}, ` +
          `capabilities ${created.record.capabilities.join(',')}); store it now, it is not shown again\n`,
      );
    });

  keys
    .command('list')
    .description('List keys (never their secrets)')
    .option('--tenant <tenant>', 'only this tenant', tenantArg)
    .option('--all', 'include revoked keys')
    .option('--json', 'print JSON')
    .action(async (opts: { tenant?: string; all?: boolean; json?: boolean }) => {
      const config = configFromEnv();
      const records = await withKeyStore(config, (store) =>
        store.list({ ...defined({ tenant: opts.tenant }), includeRevoked: opts.all === true }),
      );
      process.stdout.write(opts.json === true ? `${JSON.stringify(records, null, 2)}\n` : `${table(records)}\n`);
    });

  keys
    .command('revoke')
    .description('Revoke a key by its id (as `keys list` shows it); every server stops accepting it within 5 s')
    .argument('<key-id>', 'the key id (16 hex characters)', keyIdArg)
    .action(async (keyId: string) => {
      const config = configFromEnv();
      const record = await withKeyStore(config, (store) => store.revoke(keyId.trim().toLowerCase(), CLI_ACTOR));
      if (record === null) {
        process.stderr.write(`error: no key ${keyId}; see \`intune-connector keys list --all\`\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`revoked key ${record.key_id} (tenant ${record.tenant}, role ${record.role}) at ${record.revoked_at}\n`);
    });
}
