/**
 * Accord policies: global defaults from the environment (INTUNE_COMPLIANCE_REQUIRED,
 * INTUNE_COMPLIANCE_STRICT, INTUNE_COMPLIANCE_STALE_MAX) and per-accord overrides from the policy
 * file (INTUNE_POLICY_FILE, YAML or JSON). Read and validated once, at start: a bad file stops
 * start-up with one line per problem naming the accord and the key, and a policy that contradicts
 * INTUNE_ENABLED=false is refused the same way.
 *
 * The file:
 *
 *   version: 1                      # optional; only 1 exists
 *   defaults:                       # optional; for every accord, listed or not
 *     max_checkin_age_days: 30      # number > 0, or null for no limit (default INTUNE_COMPLIANCE_MAX_CHECKIN_AGE_DAYS, 30)
 *     grace_period_counts: true     # inGracePeriod before expiry allows (default true)
 *     stale_max_seconds: 120        # ≤ INTUNE_COMPLIANCE_STALE_MAX (default: that value)
 *     decisions: { compliance_unknown: allow }   # flip rows of the decision table
 *     require_encryption: true      # posture rules (./rules.ts), each failing with its own reason
 *     min_os_version: { macos: "14.0", windows: "10.0.22631", ios: "17.0", android: "13" }
 *     allowed_ownership: [company]
 *     allowed_management_agents: [mdm]
 *     max_threat_state: lowSeverity
 *     require_supervised: true
 *   accords:
 *     device-management:            # accord name, ^[A-Za-z0-9._-]{1,128}$
 *       device_compliance_required: true          # default INTUNE_COMPLIANCE_REQUIRED
 *       strict: true                              # default INTUNE_COMPLIANCE_STRICT
 *       max_checkin_age_days: 7
 *       ...any key of `defaults`
 *
 * device_compliance_required and strict have global defaults in the environment only, so there is
 * one place to look for each; `defaults:` refuses them with a message saying so.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Yaml from 'yaml';
import { z } from 'zod';
import { ConfigError, type Config } from '../config/index.js';
import { MANAGEMENT_AGENTS, OWNERSHIPS } from '../connector/posture.js';
import { VERSION_PATTERN } from './rules.js';
import {
  ACCORD_NAME_PATTERN,
  DEFAULT_DECISIONS,
  GATE_REASONS,
  MIN_OS_PLATFORMS,
  NO_POSTURE_RULES,
  OVERRIDABLE_REASONS,
  THREAT_LEVELS,
  type AccordPolicy,
  type PostureRules,
  type GatePolicy,
  type OverridableReason,
  type Verdict,
} from './types.js';
import { defined } from '../common/values.js';

/** The slice of Config the policy depends on. */
export type PolicyConfig = Pick<Config, 'intuneEnabled'> & {
  readonly compliance: Pick<Config['compliance'], 'requiredByDefault' | 'strict' | 'staleMaxMs' | 'policyFile'> &
    Partial<Pick<Config['compliance'], 'maxCheckinAgeMs'>>;
};

/** Graph's managementAgent values, the ones allowed_management_agents may name. */

const MAX_POLICY_FILE_BYTES = 1024 * 1024;
const MS_PER_DAY = 86_400_000;
/** Intune's own compliance status validity period: the gate's default is not weaker. */
export const DEFAULT_MAX_CHECKIN_AGE_MS = 30 * MS_PER_DAY;

/** Why a row cannot be flipped, for the message that refuses it. */
const NOT_OVERRIDABLE: Readonly<Record<Exclude<(typeof GATE_REASONS)[number], OverridableReason>, string>> = {
  compliance_not_required: 'set device_compliance_required instead',
  device_id_missing: 'set strict: false (permissive) instead',
  device_id_missing_permissive: 'set strict: true instead',
  device_id_invalid: 'a malformed deviceid claim always denies',
  compliant: 'a compliant device always allows',
  in_grace_period: 'set grace_period_counts instead',
  audit_unavailable: 'a decision is never given without its audit record',
};

const verdictSchema = z.enum(['allow', 'deny'], { error: 'expected allow or deny' });

const decisionsSchema = z
  .record(z.string(), z.unknown(), { error: 'expected a mapping of decision-table reasons to allow or deny' })
  .superRefine((entries, ctx) => {
    for (const [reason, verdict] of Object.entries(entries)) {
      if ((OVERRIDABLE_REASONS as readonly string[]).includes(reason)) {
        if (!verdictSchema.safeParse(verdict).success) ctx.addIssue({ code: 'custom', path: [reason], message: 'expected allow or deny' });
      } else if (Object.hasOwn(NOT_OVERRIDABLE, reason)) {
        ctx.addIssue({ code: 'custom', path: [reason], message: `cannot be overridden: ${NOT_OVERRIDABLE[reason as keyof typeof NOT_OVERRIDABLE]}` });
      } else {
        ctx.addIssue({ code: 'custom', path: [reason], message: `is not a reason of the decision table; overridable: ${OVERRIDABLE_REASONS.join(', ')}` });
      }
    }
  })
  .transform((entries) => entries as Partial<Record<OverridableReason, Verdict>>);

const settingsShape = {
  max_checkin_age_days: z
    .number({ error: 'expected a number (days, greater than 0) or null for no limit' })
    .positive({ error: 'expected a number greater than 0 (days), or null for no limit' })
    .max(3650, { error: 'expected at most 3650 days' })
    .nullable()
    .optional(),
  grace_period_counts: z.boolean({ error: 'expected true or false' }).optional(),
  stale_max_seconds: z
    .number({ error: 'expected a number (whole seconds, 0 or more)' })
    .int({ error: 'expected a whole number of seconds' })
    .min(0, { error: 'expected 0 or more seconds' })
    .optional(),
  decisions: decisionsSchema.optional(),
  require_encryption: z.boolean({ error: 'expected true or false' }).optional(),
  min_os_version: z
    .strictObject(
      Object.fromEntries(
        MIN_OS_PLATFORMS.map((p) => [
          p,
          z
            .string({ error: 'expected a version in quotes, such as "14.0" (digits separated by dots)' })
            .regex(VERSION_PATTERN, { error: 'expected a version of digits separated by dots, such as "14.0" or "10.0.22631"' })
            .optional(),
        ]),
      ) as Record<(typeof MIN_OS_PLATFORMS)[number], z.ZodOptional<z.ZodString>>,
      { error: `expected a mapping of platforms (${MIN_OS_PLATFORMS.join(', ')}) to minimum versions` },
    )
    .optional(),
  allowed_ownership: z
    .array(z.enum(OWNERSHIPS, { error: `expected one of ${OWNERSHIPS.join(', ')}` }), { error: `expected a list of ${OWNERSHIPS.join(', ')}` })
    .min(1, { error: 'expected at least one ownership; remove the key to accept every device' })
    .optional(),
  allowed_management_agents: z
    .array(z.enum(MANAGEMENT_AGENTS as [string, ...string[]], { error: `expected one of Graph's managementAgent values: ${MANAGEMENT_AGENTS.join(', ')}` }), {
      error: 'expected a list of management agents',
    })
    .min(1, { error: 'expected at least one management agent; remove the key to accept every agent' })
    .optional(),
  max_threat_state: z.enum(THREAT_LEVELS, { error: `expected one of ${THREAT_LEVELS.join(', ')} (the highest accepted partner reading)` }).optional(),
  require_supervised: z.boolean({ error: 'expected true or false' }).optional(),
};

const defaultsSchema = z.strictObject(settingsShape, { error: 'expected a mapping of settings' });
const accordSchema = z.strictObject(
  {
    device_compliance_required: z.boolean({ error: 'expected true or false' }).optional(),
    strict: z.boolean({ error: 'expected true or false' }).optional(),
    ...settingsShape,
  },
  { error: 'expected a mapping of settings (device_compliance_required, strict, max_checkin_age_days, …)' },
);

const policyFileSchema = z.strictObject(
  {
    version: z.literal(1, { error: 'expected 1 (the only policy file version)' }).optional(),
    defaults: defaultsSchema.optional(),
    accords: z.record(
      z.string().regex(ACCORD_NAME_PATTERN, { error: 'is not a valid accord name: use 1 to 128 letters, digits, dots, underscores or hyphens' }),
      accordSchema,
      { error: 'expected a mapping of accord names to their settings' },
    )
      .optional(),
  },
  { error: 'expected a mapping with `accords:` (and optionally `defaults:` and `version: 1`)' },
);
export type PolicyFile = z.infer<typeof policyFileSchema>;

const ENV_ONLY: Readonly<Record<string, string>> = {
  device_compliance_required: 'the global default is INTUNE_COMPLIANCE_REQUIRED; set it there, or per accord under accords:',
  strict: 'the global default is INTUNE_COMPLIANCE_STRICT; set it there, or per accord under accords:',
};

/** "accords.device-management.max_checkin_age_days: expected a number …", one line per problem. */
function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  const at = (segments: readonly PropertyKey[]): string => segments.map(String).join('.');
  return issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => {
        const where = at([...issue.path, key]);
        const envOnly = issue.path.length === 1 && issue.path[0] === 'defaults' ? ENV_ONLY[key] : undefined;
        return `${where}: ${envOnly ?? 'unknown key'}`;
      });
    }
    const where = at(issue.path);
    // A bad record key (an accord name) carries its own message inside.
    const message = issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
    return [`${where === '' ? '(file)' : where}: ${message}`];
  });
}

/** Validates a parsed policy document. Problems are returned, not thrown, so callers report all at once. */
export function validatePolicyDocument(document: unknown): { ok: true; value: PolicyFile } | { ok: false; problems: string[] } {
  // Parsing a record assigns keys to a plain object, where "__proto__" sets the prototype instead:
  // such an accord would vanish silently and fall back to the defaults. Refuse it by name.
  const accords = typeof document === 'object' && document !== null ? (document as Record<string, unknown>)['accords'] : undefined;
  const protoProblem =
    typeof accords === 'object' && accords !== null && Object.hasOwn(accords, '__proto__')
      ? ['accords.__proto__: is not a usable accord name (it is the name of the JavaScript object prototype); rename the accord']
      : [];
  const parsed = policyFileSchema.safeParse(document ?? {});
  if (parsed.success && protoProblem.length === 0) return { ok: true, value: parsed.data };
  return { ok: false, problems: [...protoProblem, ...(parsed.success ? [] : describeIssues(parsed.error.issues))] };
}

type Settings = z.infer<typeof defaultsSchema>;

function applyRules(base: PostureRules, settings: Settings): PostureRules {
  return Object.freeze({
    requireEncryption: settings.require_encryption ?? base.requireEncryption,
    minOsVersion: Object.freeze({ ...base.minOsVersion, ...(settings.min_os_version as Partial<Record<string, string>> | undefined) }),
    allowedOwnership: settings.allowed_ownership !== undefined ? Object.freeze([...settings.allowed_ownership]) : base.allowedOwnership,
    allowedManagementAgents:
      settings.allowed_management_agents !== undefined ? Object.freeze([...settings.allowed_management_agents]) : base.allowedManagementAgents,
    maxThreatState: settings.max_threat_state ?? base.maxThreatState,
    requireSupervised: settings.require_supervised ?? base.requireSupervised,
  });
}

function applySettings(base: Omit<AccordPolicy, 'accord' | 'source'>, settings: Settings | undefined): Omit<AccordPolicy, 'accord' | 'source'> {
  if (settings === undefined) return base;
  const days = settings.max_checkin_age_days;
  return {
    ...base,
    ...defined({
      maxCheckinAgeMs: days === undefined || days === null ? days : Math.round(days * MS_PER_DAY),
      gracePeriodCounts: settings.grace_period_counts,
      staleMaxMs: settings.stale_max_seconds === undefined ? undefined : settings.stale_max_seconds * 1000,
    }),
    decisions: Object.freeze({ ...base.decisions, ...settings.decisions }),
    rules: applyRules(base.rules, settings),
  };
}

/**
 * Builds the policy from the configuration and an (already parsed) policy document. Throws
 * ConfigError listing every problem: invalid keys and values, stale windows longer than the
 * global one, and accords that require compliance while INTUNE_ENABLED=false.
 */
export function buildGatePolicy(config: PolicyConfig, document: unknown, file: string | null = null): GatePolicy {
  const label = file === null ? 'policy' : `INTUNE_POLICY_FILE ${file}`;
  const validated = validatePolicyDocument(document);
  if (!validated.ok) throw new ConfigError(validated.problems.map((p) => `${label}: ${p}`));
  const doc = validated.value;
  const problems: string[] = [];
  const globalStaleMaxMs = config.compliance.staleMaxMs;

  const checkStale = (where: string, settings: Settings | undefined): void => {
    const seconds = settings?.stale_max_seconds;
    if (seconds !== undefined && seconds * 1000 > globalStaleMaxMs) {
      problems.push(
        `${label}: ${where}.stale_max_seconds: ${seconds} is longer than INTUNE_COMPLIANCE_STALE_MAX (${globalStaleMaxMs / 1000} s); an accord may only shorten it: lower it, or raise INTUNE_COMPLIANCE_STALE_MAX`,
      );
    }
  };

  const defaults = applySettings(
    {
      required: config.compliance.requiredByDefault,
      mode: config.compliance.strict ? 'strict' : 'permissive',
      maxCheckinAgeMs: config.compliance.maxCheckinAgeMs === undefined ? DEFAULT_MAX_CHECKIN_AGE_MS : config.compliance.maxCheckinAgeMs,
      gracePeriodCounts: true,
      staleMaxMs: globalStaleMaxMs,
      decisions: DEFAULT_DECISIONS,
      rules: NO_POSTURE_RULES,
    },
    doc.defaults,
  );
  checkStale('defaults', doc.defaults);

  const accords = new Map<string, AccordPolicy>();
  for (const [accord, entry] of Object.entries(doc.accords ?? {})) {
    checkStale(`accords.${accord}`, entry);
    const settings = applySettings(defaults, entry);
    accords.set(
      accord,
      Object.freeze({
        ...settings,
        accord,
        ...defined({
          required: entry.device_compliance_required,
          mode: entry.strict === undefined ? undefined : entry.strict ? ('strict' as const) : ('permissive' as const),
        }),
        source: 'policy_file' as const,
      }),
    );
  }

  if (!config.intuneEnabled) {
    // A gate that must ask Intune while Intune is switched off could only ever deny: refuse to start.
    if (config.compliance.requiredByDefault) {
      const exempt = [...accords.values()].filter((a) => !a.required).map((a) => a.accord);
      problems.push(
        `INTUNE_ENABLED=false contradicts INTUNE_COMPLIANCE_REQUIRED=true: every accord${exempt.length > 0 ? ` except ${exempt.join(', ')}` : ''} would require a device check the disabled connector cannot make; set INTUNE_ENABLED=true or INTUNE_COMPLIANCE_REQUIRED=false`,
      );
    }
    for (const policy of accords.values()) {
      if (policy.required && !config.compliance.requiredByDefault) {
        problems.push(
          `INTUNE_ENABLED=false contradicts ${label}: accord "${policy.accord}" requires device compliance (accords.${policy.accord}.device_compliance_required); set INTUNE_ENABLED=true or set it to false`,
        );
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({ defaults: Object.freeze(defaults), accords, file });
}

/**
 * The YAML parser, loaded when a YAML policy is read: it is a large module, and most commands (and
 * a deployment with a JSON policy or none) never need it.
 */
function parseYaml(text: string, options: Yaml.ParseOptions & Yaml.DocumentOptions & Yaml.SchemaOptions & Yaml.ToJSOptions): unknown {
  const yaml = createRequire(import.meta.url)('yaml') as typeof Yaml;
  return yaml.parse(text, options) as unknown;
}

/** Parses policy text as YAML (.yaml, .yml) or JSON (.json), by the file's extension. */
export function parsePolicyText(text: string, file: string): unknown {
  const extension = path.extname(file).toLowerCase();
  try {
    if (extension === '.json') return JSON.parse(text) as unknown;
    if (extension === '.yaml' || extension === '.yml') {
      // core schema: no timestamps or other implicit types; duplicate keys (an accord listed twice) fail.
      return parseYaml(text, { schema: 'core', uniqueKeys: true, maxAliasCount: 50, prettyErrors: true }) as unknown;
    }
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0] ?? 'unreadable';
    throw new ConfigError([`INTUNE_POLICY_FILE ${file} is not valid ${extension === '.json' ? 'JSON' : 'YAML'}: ${reason}`]);
  }
  throw new ConfigError([`INTUNE_POLICY_FILE ${file} must end in .yaml, .yml or .json, so its format is known`]);
}

/**
 * The gate policy for a Config: the environment's defaults, overlaid with INTUNE_POLICY_FILE when
 * set. Reads the file once; call it at start. Throws ConfigError with every problem.
 */
/** The example policy shipped beside dist/ and src/ (examples/accord-policy.yaml). */
const EXAMPLE_POLICY_FILE = fileURLToPath(new URL('../../examples/accord-policy.yaml', import.meta.url));

/**
 * The policy file the demo tenant runs with: the example policy when the simulated tenant answers
 * (no ENTRA_*, Intune enabled) and no INTUNE_POLICY_FILE is set, so a newcomer sees real allow
 * and deny decisions from `serve` and `check` alike; undefined when their own configuration applies.
 */
export function demoPolicyFile(config: Pick<Config, 'entra' | 'intuneEnabled'> & { readonly compliance: Pick<Config['compliance'], 'policyFile'> }, demo: boolean): string | undefined {
  if (!demo || config.entra !== undefined || !config.intuneEnabled || config.compliance.policyFile !== undefined) return undefined;
  return fs.existsSync(EXAMPLE_POLICY_FILE) ? EXAMPLE_POLICY_FILE : undefined;
}

export function loadGatePolicy(config: PolicyConfig): GatePolicy {
  const file = config.compliance.policyFile;
  if (file === undefined) return buildGatePolicy(config, {}, null);
  let text: string;
  try {
    const size = fs.statSync(file).size;
    if (size > MAX_POLICY_FILE_BYTES) {
      throw new ConfigError([`INTUNE_POLICY_FILE ${file} is ${size} bytes; a policy file is at most ${MAX_POLICY_FILE_BYTES} bytes`]);
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([
      code === 'ENOENT'
        ? `INTUNE_POLICY_FILE ${file} does not exist: create it (see examples/accord-policy.yaml) or unset INTUNE_POLICY_FILE`
        : `INTUNE_POLICY_FILE ${file} cannot be read (${code ?? (err as Error).message}): check the path and its permissions`,
    ]);
  }
  return buildGatePolicy(config, parsePolicyText(text, file), file);
}

/** The policy of one accord: its entry in the file, or the defaults for accords the file does not name. */
export function resolveAccordPolicy(policy: GatePolicy, accord: string): AccordPolicy {
  return policy.accords.get(accord) ?? { ...policy.defaults, accord, source: 'defaults' };
}
