/**
 * `intune-connector chronicle verify | query | export | checkpoint | rotate-key`: the reviewer's tools.
 *
 * Exit codes: 0 intact (or done), 1 tampering found (each broken chain printed as
 * `tenant T: seq N: reason: detail`), 2 bad arguments, 3 configuration error, 4 database
 * unavailable.
 */
import fs from 'node:fs';
import { once } from 'node:events';
import cliProgress from 'cli-progress';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DbError } from '../db/errors.js';
import { ChronicleError, EVENT_TYPES, reviewerQuery, type ReviewerFilter, type EventType, type VerifyReport } from '../chronicle/types.js';
import type { Config } from '../config/index.js';
import { configFromEnv, EXIT, withChronicle } from './shared.js';
import { DEFAULT_TENANT, GUID_EXAMPLE_RULE, isGuid, isTenant, TENANT_RULE } from '../common/ids.js';
import { parseTimeBound, TIME_BOUND_RULE } from '../common/time.js';
import { eventToJson, fullVerifyReportToJson } from '../chronicle/json.js';
import type { Queryable } from '../db/index.js';
import { defined } from '../common/values.js';
import type { VerifyProgress } from '../chronicle/verify.js';

/**
 * Progress of a long verify on stderr: nothing while it is short (a fast verify prints its report
 * alone); after `quietMs`, a bar on a terminal (cleared before the report), else one plain line
 * every `everyMs` (logs, CI).
 */
export function verifyProgressReporter(
  stream: NodeJS.WritableStream & { isTTY?: boolean },
  { now = Date.now, quietMs = 1_000, everyMs = 5_000 }: { now?: () => number; quietMs?: number; everyMs?: number } = {},
): { update(p: VerifyProgress): void; stop(): void } {
  const started = now();
  let bar: cliProgress.SingleBar | undefined;
  let tenant: string | undefined;
  let lastLine = started;
  const rate = (checked: number) => Math.round(checked / Math.max(0.001, (now() - started) / 1000));
  return {
    update: (p) => {
      const at = now();
      if (stream.isTTY === true) {
        if (bar === undefined) {
          if (at - started < quietMs) return;
          bar = new cliProgress.SingleBar(
            { stream, format: 'verify | {tenant} | {bar} {percentage}% | {value}/{total} events | {speed} events/s | eta {eta_formatted}', barsize: 20, hideCursor: true, clearOnComplete: true },
            cliProgress.Presets.shades_classic,
          );
          bar.start(p.total, p.checked, { tenant: p.tenant, speed: rate(p.checked) });
          tenant = p.tenant;
          return;
        }
        if (p.tenant !== tenant) bar.setTotal(p.total);
        tenant = p.tenant;
        bar.update(p.checked, { tenant: p.tenant, speed: rate(p.checked) });
        return;
      }
      if (at - lastLine < everyMs) return;
      lastLine = at;
      stream.write(`verify: tenant ${p.tenant}: ${p.checked} of ${p.total} events checked\n`);
    },
    stop: () => bar?.stop(),
  };
}

/** Runs a command body and turns Chronicle's and the database's failures into exit codes. */
async function run(body: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await body();
  } catch (err) {
    if (err instanceof ChronicleError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = err.code === 'invalid_query' ? EXIT.usage : err.code === 'unavailable' ? EXIT.unavailable : EXIT.failure;
      return;
    }
    if (err instanceof DbError && (err.code === 'db_unavailable' || err.code === 'db_locked')) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = EXIT.unavailable;
      return;
    }
    throw err; // ConfigError and the rest: cli.ts reports them (3 for configuration)
  }
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

export function formatVerifyReport(report: VerifyReport): string {
  const lines = [
    `chronicle verify: ${plural(report.chains.length, 'chain')}, ${plural(report.eventsChecked, 'event')} checked in ${(report.durationMs / 1000).toFixed(2)} s: ${report.ok ? 'intact' : 'TAMPERING FOUND'}`,
  ];
  if (report.instance.id !== null) lines.push(`instance ${report.instance.id}`);
  if (report.instance.replaced !== null) lines.push(`database replaced: ${report.instance.replaced.detail}`);
  const log = report.checkpointLog;
  if (log !== null) {
    const witness = log.witness !== null ? `, compared with the witness copy in ${log.witness.dir} (${plural(log.witness.lines, 'line')})` : '';
    const rotations = log.keyRotations.length > 0 ? `, ${plural(log.keyRotations.length, 'key hand-over')}` : '';
    lines.push(
      log.ok
        ? `checkpoint log ${log.dir}: intact (${plural(log.lines, 'line')}${rotations}${witness})`
        : `checkpoint log ${log.dir}: line ${log.firstBadLine}: ${log.reason}: ${log.detail}`,
    );
  }
  for (const chain of report.chains) {
    lines.push(
      chain.ok
        ? `tenant ${chain.tenant}: intact (${plural(chain.eventsChecked, 'event')}, head seq ${chain.headSeq}, ${plural(chain.checkpointsChecked, 'checkpoint')})`
        : `tenant ${chain.tenant}: ${chain.firstBadSeq !== null ? `seq ${chain.firstBadSeq}` : 'head'}: ${chain.reason}: ${chain.detail}`,
    );
  }
  const { newestCheckpointTime, uncoveredEvents } = report.exposure;
  lines.push(
    newestCheckpointTime !== null
      ? `exposure: newest checkpoint signed ${newestCheckpointTime}; ${plural(uncoveredEvents, 'event')} not covered by any checkpoint yet`
      : `exposure: no checkpoint yet; ${plural(uncoveredEvents, 'event')} not covered by any checkpoint yet`,
  );
  for (const other of report.instance.others) lines.push(`note: ${other.note}`);
  return `${lines.join('\n')}\n`;
}

function wholeNumber(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

function eventType(value: string, previous: EventType[] | undefined): EventType[] {
  if (!(EVENT_TYPES as readonly string[]).includes(value)) throw new InvalidArgumentError(`use one of ${EVENT_TYPES.join(', ')}`);
  return [...(previous ?? []), value as EventType];
}

function tenantName(value: string): string {
  if (!isTenant(value)) throw new InvalidArgumentError(`a tenant is ${TENANT_RULE}, e.g. default`);
  return value;
}

function deviceId(value: string): string {
  if (!isGuid(value)) throw new InvalidArgumentError(`give a device id (Intune or Entra), ${GUID_EXAMPLE_RULE}`);
  return value;
}

function timeBound(value: string): string {
  const date = parseTimeBound(value);
  if (date === null) throw new InvalidArgumentError(`give ${TIME_BOUND_RULE}`);
  return date.toISOString();
}

/**
 * A tenant the reviewer names must have a chain here: "intact" or "no events" about a tenant this
 * database has never recorded would read as an answer when it is a typo.
 */
async function requireChain(db: Queryable, tenant: string): Promise<void> {
  const { rows } = await db.query<{ tenant: string }>('SELECT tenant FROM chronicle_chain ORDER BY tenant');
  const tenants = rows.map((r) => r.tenant);
  if (tenants.includes(tenant)) return;
  const known = tenants.length === 0 ? 'no tenant has recorded an event yet' : `tenants with a chain here: ${tenants.slice(0, 20).join(', ')}`;
  throw new ChronicleError(`--tenant ${tenant}: no audit trail for this tenant in this database (${known})`, 'invalid_query', 'tenant');
}

async function write(out: NodeJS.WritableStream, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

type QueryOptions = ReviewerFilter & { tenant: string; limit: number; order: 'asc' | 'desc'; all?: boolean };

export function registerChronicle(program: Command): void {
  const chronicle = program
    .command('chronicle')
    .description('Verify, query and export the Chronicle audit trail; write a signed checkpoint')
    .addHelpText('after', '\nExit codes: 0 intact, 1 tampering found, 2 bad arguments, 3 configuration error, 4 database unavailable.')
    // Scripts read exit 1 as "tampering found": a mistyped option must not look like that.
    .exitOverride((err) => {
      throw err.exitCode === 0 ? err : new CommanderError(EXIT.usage, err.code, err.message);
    });

  chronicle
    .command('verify')
    .description('Recompute every chain (or one) and compare it with the signed checkpoints; exit 0 when intact, 1 naming the first bad seq')
    .option('--tenant <tenant>', 'verify only this tenant\'s chain', tenantName)
    .option('--witness <path>', 'compare the checkpoint log with a witness copy (a copy of the checkpoint directory, or of this instance\'s log)')
    .option('--json', 'print the full report as JSON')
    .action((options: { tenant?: string; witness?: string; json?: boolean }) =>
      run(async () => {
        const config = configFromEnv();
        if (options.witness !== undefined && !fs.existsSync(options.witness)) {
          throw new ChronicleError(`--witness ${options.witness}: no such directory; give the path of the witness copy of the checkpoint directory`, 'invalid_query', 'witness');
        }
        const report = await withChronicle(config, { createKey: false }, async (c, db) => {
          if (options.tenant !== undefined) await requireChain(db, options.tenant);
          const progress = verifyProgressReporter(process.stderr);
          try {
            return await c.verify({
              ...defined({ tenant: options.tenant, witnessDir: options.witness }),
              onProgress: progress.update,
            });
          } finally {
            progress.stop();
          }
        });
        await write(process.stdout, options.json === true ? `${JSON.stringify(fullVerifyReportToJson(report), null, 2)}\n` : formatVerifyReport(report));
        for (const warning of report.warnings) process.stderr.write(`warning: checkpoint ${warning}\n`);
        return report.ok ? EXIT.ok : EXIT.failure;
      }),
    );

  chronicle
    .command('query')
    .description('Print events of one tenant as JSON lines, oldest first; filters combine with AND')
    .option('--tenant <tenant>', 'the tenant (chain)', tenantName, DEFAULT_TENANT)
    .option('--type <type>', `event type (repeatable): ${EVENT_TYPES.join(', ')}`, eventType)
    .option('--actor <id>', 'actor id')
    .option('--device <id>', 'a device id (Intune or Entra, a GUID) named in the event', deviceId)
    .addOption(new Option('--decision <decision>', 'allow or deny').choices(['allow', 'deny']))
    .option('--from <time>', 'events at or after this time: a date (2025-01-31, midnight UTC) or a date-time with a zone (2025-01-31T08:00:00Z)', timeBound)
    .option('--to <time>', 'events before this time, in the same forms as --from', timeBound)
    .option('--limit <n>', 'events per page (1-1000)', wholeNumber('--limit', 1, 1000), 100)
    .option('--cursor <cursor>', 'continue after a previous page')
    .addOption(new Option('--order <order>', 'asc (oldest first) or desc').choices(['asc', 'desc']).default('asc'))
    .option('--all', 'follow cursors to the end instead of printing one page')
    .action((options: QueryOptions) =>
      run(async () => {
        const config = configFromEnv();
        return withChronicle(config, { createKey: false }, async (c, db) => {
          await requireChain(db, options.tenant);
          let cursor = options.cursor;
          let printed = 0;
          for (;;) {
            const page = await c.query(reviewerQuery(options.tenant, { ...options, ...defined({ cursor }) }));
            await write(process.stdout, page.events.map((e) => `${JSON.stringify(eventToJson(e))}\n`).join(''));
            printed += page.events.length;
            if (page.nextCursor === null) break;
            if (options.all !== true) {
              process.stderr.write(`more events: run again with --cursor ${page.nextCursor}\n`);
              break;
            }
            cursor = page.nextCursor;
          }
          if (printed === 0) process.stderr.write('no events match\n');
          return EXIT.ok;
        });
      }),
    );

  chronicle
    .command('export')
    .description('Write events as JSONL that an outside script re-verifies with SHA-256 alone (see README)')
    .addOption(new Option('--format <format>', 'output format').choices(['jsonl']).makeOptionMandatory())
    .option('--tenant <tenant>', 'one tenant (default: every chain)', tenantName)
    .option('--from-seq <n>', 'start at this seq', wholeNumber('--from-seq', 1, Number.MAX_SAFE_INTEGER))
    .option('--out <file>', 'write to this file instead of stdout')
    .action((options: { format: 'jsonl'; tenant?: string; fromSeq?: number; out?: string }) =>
      run(async () => {
        const config = configFromEnv();
        const out = options.out !== undefined ? fs.createWriteStream(options.out, { flags: 'w', mode: 0o640 }) : process.stdout;
        const { events } = await withChronicle(config, { createKey: false }, async (c, db) => {
          if (options.tenant !== undefined) await requireChain(db, options.tenant);
          return c.export(
            {
              format: options.format,
              ...defined({ tenant: options.tenant, fromSeq: options.fromSeq }),
            },
            out,
          );
        });
        if (out !== process.stdout) {
          const file = out as fs.WriteStream;
          await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())));
        }
        process.stderr.write(`exported ${events} events${options.out !== undefined ? ` to ${options.out}` : ''}\n`);
        return EXIT.ok;
      }),
    );

  chronicle
    .command('rotate-key')
    .description('Make a new checkpoint signing key; the hand-over is signed by the old key into the log and the old public key is archived')
    .action(() =>
      run(async () => {
        const config = configFromEnv();
        const rotation = await withChronicle(config, { createKey: false }, (c) => c.rotateKey());
        process.stdout.write(
          `rotated the signing key: ${rotation.oldKeyId} -> ${rotation.newKeyId} (hand-over at checkpoint log line ${rotation.line}; old public key archived at ${rotation.archivedPublicKey})\n` +
            'servers reading this key file sign with the new key from their next checkpoint; give servers with a copy of their own the new file (verify warns about lines signed with the old key after the hand-over)\n',
        );
        return EXIT.ok;
      }),
    );

  chronicle
    .command('checkpoint')
    .description('Write a signed checkpoint of every chain head now (outside the database)')
    .action(() =>
      run(async () => {
        const config = configFromEnv();
        const result = await withChronicle(config, { createKey: true }, (c) => c.checkpoint());
        if (result.file === null) {
          process.stdout.write('no chains yet: nothing to checkpoint\n');
        } else {
          for (const cp of result.checkpoints) process.stdout.write(`tenant ${cp.chain}: seq ${cp.seq} ${cp.hash} (key ${cp.key_id})\n`);
          process.stdout.write(`wrote ${plural(result.checkpoints.length, 'checkpoint')} to ${result.file}\n`);
        }
        return EXIT.ok;
      }),
    );
}
