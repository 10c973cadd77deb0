/**
 * Every environment variable the product reads is read here, once, validated with zod into one
 * frozen, typed Config. Nothing else in src/ touches process.env: modules receive the Config (or
 * the slice they need) from whoever composes them.
 */
import path from 'node:path';
import { z } from 'zod';
import { isTenant } from '../common/ids.js';
import { defined } from '../common/values.js';

export const CLOUDS = ['public', 'usgov', 'usgov-dod', 'china', 'custom'] as const;
export type CloudName = (typeof CLOUDS)[number];

/** Login and Graph hosts of Microsoft's national clouds (DESIGN.md: Graph facts). */
export const CLOUD_ENDPOINTS: Readonly<Record<Exclude<CloudName, 'custom'>, { loginUrl: string; graphUrl: string }>> =
  Object.freeze({
    public: { loginUrl: 'https://login.microsoftonline.com', graphUrl: 'https://graph.microsoft.com' },
    usgov: { loginUrl: 'https://login.microsoftonline.us', graphUrl: 'https://graph.microsoft.us' },
    'usgov-dod': { loginUrl: 'https://login.microsoftonline.us', graphUrl: 'https://dod-graph.microsoft.us' },
    china: { loginUrl: 'https://login.chinacloudapi.cn', graphUrl: 'https://microsoftgraph.chinacloudapi.cn' },
  });

export const CAPABILITIES = ['READ', 'PROPOSE', 'MUTATE'] as const;
export type Capability = (typeof CAPABILITIES)[number];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    /** One line per problem, each naming the variable and the fix. */
    readonly problems: readonly string[],
  ) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Yes/no words accepted for a boolean variable, any case, surrounding blanks ignored. */
const envBoolean = z.stringbool({
  truthy: ['true', '1', 'yes', 'on'],
  falsy: ['false', '0', 'no', 'off'],
  case: 'insensitive',
  error: (issue) => `is "${String(issue.input)}"; set it to true or false`,
});

/** Unset or blank means `fallback`. */
const boolVar = (fallback: boolean) =>
  z.preprocess((raw) => (typeof raw === 'string' && raw.trim() !== '' ? raw.trim() : undefined), envBoolean.optional().default(fallback));

const intVar = (fallback: number, { min, max, unit }: { min: number; max: number; unit: string }) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return fallback;
      const value = Number(raw.trim());
      if (!Number.isInteger(value) || value < min || value > max) {
        ctx.addIssue({ code: 'custom', message: `is "${raw}"; set it to a whole number from ${min} to ${max} (${unit})` });
        return z.NEVER;
      }
      return value;
    });

const optionalString = z
  .string()
  .optional()
  .transform((raw) => (raw === undefined || raw.trim() === '' ? undefined : raw.trim()));

const httpsUrl = optionalString.refine((raw) => raw === undefined || /^https:\/\/[^\s/]+/.test(raw), {
  message: 'must be an https:// URL (msal-node and the Graph client refuse plain http)',
});

const capabilityList = (fallback: readonly Capability[]) =>
  z
    .string()
    .optional()
    .transform((raw, ctx): Capability[] => {
      if (raw === undefined || raw.trim() === '') return [...fallback];
      const words = raw
        .split(',')
        .map((w) => w.trim().toUpperCase())
        .filter((w) => w !== '');
      const unknown = words.filter((w) => !(CAPABILITIES as readonly string[]).includes(w));
      if (unknown.length > 0) {
        ctx.addIssue({ code: 'custom', message: `has unknown capability ${unknown.join(', ')}; use a comma list of ${CAPABILITIES.join(', ')}` });
        return z.NEVER;
      }
      return [...new Set(words as Capability[])];
    });

/**
 * INTUNE_SECRET_REFS: the secret references the operator lets Intune connections use, each bound
 * to a tenant (`TENANT=env:NAME`, `TENANT=file:/abs/path`, `*=…` for every tenant). Connections
 * can name only these (and the ENTRA_* bootstrap refs), so a tenant administrator cannot point a
 * connection at another secret of the process or the machine.
 */
export interface IntuneSecretRefGrant {
  /** A tenant id, or '*' for every tenant. */
  readonly tenant: string;
  /** `env:NAME` or `file:/absolute/path`. */
  readonly ref: string;
}

const secretRefList = z
  .string()
  .optional()
  .transform((raw, ctx): IntuneSecretRefGrant[] => {
    if (raw === undefined || raw.trim() === '') return [];
    const grants: IntuneSecretRefGrant[] = [];
    for (const entry of raw.split(',').map((e) => e.trim()).filter((e) => e !== '')) {
      const eq = entry.indexOf('=');
      const tenant = eq > 0 ? entry.slice(0, eq).trim() : '';
      const ref = eq > 0 ? entry.slice(eq + 1).trim() : entry;
      if (tenant !== '*' && !isTenant(tenant)) {
        ctx.addIssue({ code: 'custom', message: `has "${entry}" without a tenant; write it as TENANT=${ref} (or *=${ref} to allow every tenant)` });
      } else if (!/^env:[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(ref) && !/^file:\/\S{1,511}$/.test(ref)) {
        ctx.addIssue({ code: 'custom', message: `has "${entry}"; references are env:VARIABLE_NAME or file:/absolute/path` });
      } else {
        grants.push({ tenant, ref });
      }
    }
    return grants;
  });

function isHttpsUrl(raw: string): boolean {
  try {
    return new URL(raw).protocol === 'https:';
  } catch {
    return false;
  }
}

/** The raw environment, variable by variable, each with its documentation. Defaults live here and nowhere else. */
export const EnvSchema = z.object({
  INTUNE_ENABLED: boolVar(true).describe('Enable the Intune connector (default true).'),
  ENTRA_TENANT_ID: optionalString.describe('Entra tenant id (GUID or primary domain). With ENTRA_CLIENT_ID and a secret or certificate, the connector talks to that tenant; without, `serve` runs the simulated demo tenant.'),
  ENTRA_CLIENT_ID: optionalString.describe('Application (client) id of the app registration.'),
  ENTRA_CLIENT_SECRET: optionalString.describe('Client secret of the app registration (held in memory, never stored).'),
  ENTRA_CLIENT_CERT_FILE: optionalString.describe('PEM file with the certificate and private key for client-assertion auth (instead of a secret).'),
  INTUNE_CLOUD: z
    .string()
    .optional()
    .transform((raw, ctx): CloudName => {
      if (raw === undefined || raw.trim() === '') return 'public';
      const v = raw.trim().toLowerCase();
      if (!(CLOUDS as readonly string[]).includes(v)) {
        ctx.addIssue({ code: 'custom', message: `is "${raw}"; set it to one of ${CLOUDS.join(', ')}` });
        return z.NEVER;
      }
      return v as CloudName;
    }).describe('public (default), usgov, usgov-dod, china, or custom.'),
  INTUNE_LOGIN_URL: httpsUrl.describe('With INTUNE_CLOUD=custom: https base URL of the token endpoint host.'),
  INTUNE_GRAPH_URL: httpsUrl.describe('With INTUNE_CLOUD=custom: https base URL of the Graph host.'),
  INTUNE_CA_FILE: optionalString.describe('PEM CA bundle to trust for the login and Graph hosts (the simulator, or a TLS-inspecting proxy).'),
  INTUNE_GRAPH_TIMEOUT_MS: intVar(30_000, { min: 100, max: 600_000, unit: 'milliseconds' }).describe('Per-request Graph timeout in milliseconds (default 30000).'),
  INTUNE_GRAPH_MAX_RETRIES: intVar(4, { min: 0, max: 10, unit: 'retries' }).describe('Retries for throttled or unavailable Graph reads (default 4).'),
  INTUNE_COMPLIANCE_REQUIRED: boolVar(false).describe('Global default: accords require device compliance (default false).'),
  INTUNE_COMPLIANCE_STRICT: boolVar(false).describe('Strict mode: deny when the token carries no device id (default false, permissive).'),
  INTUNE_COMPLIANCE_CACHE_TTL: intVar(300, { min: 0, max: 86_400, unit: 'seconds' }).describe('Compliance cache TTL in seconds (default 300; 0 disables caching).'),
  INTUNE_COMPLIANCE_CACHE_MAX: intVar(50_000, { min: 1, max: 10_000_000, unit: 'entries' }).describe('Compliance cache size bound in entries (default 50000).'),
  INTUNE_COMPLIANCE_STALE_MAX: intVar(0, { min: 0, max: 604_800, unit: 'seconds' }).describe('Seconds past its TTL a cached answer may serve while Graph fails (default 0: never). Accords may only shorten it.'),
  INTUNE_COMPLIANCE_MAX_CHECKIN_AGE_DAYS: intVar(30, { min: 0, max: 3650, unit: 'days' }).describe(
    "Days since a device's last Intune check-in after which the gate denies it (stale_checkin); default 30, Intune's own compliance validity period. 0 means no limit, which weakens the gate.",
  ),
  INTUNE_GATE_AGENT_CACHE_TTL: intVar(30, { min: 0, max: 3_600, unit: 'seconds' }).describe(
    "Seconds the gate reuses an enrolled agent's measurements of a device (default 30; 0 reads them on every check). The longest a heartbeat or revocation handled by another replica takes to change this replica's decisions; on the replica that handles it, at once.",
  ),
  INTUNE_POLICY_FILE: optionalString.describe('Per-accord compliance policy file (YAML or JSON); see examples/accord-policy.yaml.'),
  INTUNE_MCP_CAPABILITIES: capabilityList(['READ']).describe('Capabilities MCP callers get when their key does not say (default READ; READ,PROPOSE allows sync_device).'),
  INTUNE_SYNC_INTERVAL: intVar(3_600, { min: 0, max: 604_800, unit: 'seconds' }).describe('Seconds between scheduled posture syncs per connection, with jitter (default 3600; 0 disables).'),
  INTUNE_SYNC_CONCURRENCY: intVar(16, { min: 1, max: 64, unit: 'requests' }).describe('Graph list requests a sync run keeps in flight over lastSyncDateTime ranges of the previous snapshot (default 16; 1: sequential paging only).'),
  INTUNE_SECRET_REFS: secretRefList.describe('Secret references Intune connections may use, each bound to a tenant: `TENANT=env:NAME` or `TENANT=file:/abs/path` (`*=` for every tenant), comma-separated.'),
  INTUNE_GATE_JWKS_URL: optionalString.refine((raw) => raw === undefined || isHttpsUrl(raw), {
    message: "must be the https:// URL of the token issuer's JWKS endpoint",
  }).describe('JWKS URL for verifying user bearer tokens sent to the gate instead of claims.'),
  INTUNE_GATE_JWT_ISSUER: optionalString.describe('Expected issuer of those tokens.'),
  INTUNE_GATE_JWT_AUDIENCE: optionalString.describe('Expected audience of those tokens.'),
  DATABASE_URL: optionalString.refine((raw) => raw === undefined || /^postgres(ql)?:\/\//.test(raw), {
    message: 'must be a postgres:// or postgresql:// URL; unset it to use the embedded database',
  }).describe('PostgreSQL URL. Unset: the embedded database (PGlite) under INTUNE_DATA_DIR.'),
  REDIS_URL: optionalString.refine((raw) => raw === undefined || /^rediss?:\/\/[^\s]+$/.test(raw), {
    message: 'must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0); unset it to keep the cache and Graph budget per process',
  }).describe('Redis URL (redis:// or rediss://). Set: replicas share the compliance cache, coalesce Graph lookups of one device, and keep one Graph budget per app per tenant. Unset: each process alone.'),
  REDIS_KEY_PREFIX: optionalString.refine((raw) => raw === undefined || /^[A-Za-z0-9._:-]{1,64}$/.test(raw), {
    message: 'must be 1 to 64 letters, digits, dots, colons, underscores or hyphens',
  }).describe('Namespace of this deployment\'s Redis keys and channels (default intune-connector); deployments sharing one Redis need different prefixes.'),
  REDIS_TIMEOUT_MS: intVar(1_000, { min: 10, max: 10_000, unit: 'milliseconds' }).describe('How long a Redis command may take before the replica answers from its own cache and budget (default 1000).'),
  INTUNE_GRAPH_BUDGET_REQUESTS: intVar(2_000, { min: 1, max: 100_000, unit: 'requests' }).describe('Graph requests per window per app per tenant the connector sends at most (default 2000, Intune\'s limit).'),
  INTUNE_GRAPH_BUDGET_WRITES: intVar(200, { min: 1, max: 100_000, unit: 'requests' }).describe('Of those, device actions (default 200, Intune\'s limit).'),
  INTUNE_GRAPH_BUDGET_WINDOW_MS: intVar(20_000, { min: 100, max: 3_600_000, unit: 'milliseconds' }).describe('The budget\'s sliding window in milliseconds (default 20000, Intune\'s).'),
  INTUNE_DATA_DIR: optionalString.describe('Data directory for the embedded database, keys and checkpoints (default ./.data).'),
  INTUNE_FINGERPRINT_KEY_FILE: optionalString.describe('Master key for serial-number fingerprints and list cursors (default: generated under the data directory). Replicas must share one file.'),
  CHRONICLE_SIGNING_KEY_FILE: optionalString.describe('Ed25519 private key (PEM) for checkpoint signatures (default: generated under the data directory).'),
  CHRONICLE_CHECKPOINT_DIR: optionalString.describe('Directory of the chained, signed checkpoint logs, outside the database, one subdirectory per Chronicle instance (default: under the data directory).'),
  CHRONICLE_CHECKPOINT_INTERVAL: intVar(60, { min: 0, max: 86_400, unit: 'seconds' }).describe('Seconds between checkpoints (default 60; 0 disables periodic checkpoints).'),
  CHRONICLE_WITNESS_DIR: optionalString.describe('A second directory (another volume or mount the database administrator cannot write) that receives a copy of every checkpoint line; compare with `chronicle verify --witness`.'),
  CHRONICLE_WITNESS_URL: optionalString.refine((raw) => raw === undefined || isHttpsUrl(raw), {
    message: 'must be the https:// URL of the witness webhook (checkpoint lines are sent there as JSON)',
  }).describe('HTTPS webhook that receives every checkpoint line as JSON (`{"instance","lines"}`), retried in the background; its backlog is in /metrics.'),
  CHRONICLE_WITNESS_CA_FILE: optionalString.describe('PEM CA bundle to trust for CHRONICLE_WITNESS_URL (besides the system CAs).'),
  // -1: unset (8443, or any free port when PORT is 0).
  INTUNE_AGENT_PORT: intVar(-1, { min: 0, max: 65_535, unit: 'port' }).describe('Port of the agent mTLS listener on HOST; unset: 8443, or any free port when PORT is 0; 0 for any free port.'),
  INTUNE_AGENT_CA_DIR: optionalString.describe('Directory of the per-tenant agent CA keys and the agent listener certificate (default: <data dir>/agents). Replicas must share it.'),
  INTUNE_AGENT_TLS_CERT_FILE: optionalString.describe('PEM certificate (chain) of the agent listener; unset: one is made on first start under INTUNE_AGENT_CA_DIR.'),
  INTUNE_AGENT_TLS_KEY_FILE: optionalString.describe('PEM private key of INTUNE_AGENT_TLS_CERT_FILE.'),
  INTUNE_AGENT_CERT_DAYS: intVar(30, { min: 1, max: 397, unit: 'days' }).describe('Lifetime of agent client certificates in days (default 30); agents renew before expiry.'),
  INTUNE_AGENT_TOKEN_TTL: intVar(3_600, { min: 60, max: 604_800, unit: 'seconds' }).describe('Default lifetime of an enrollment token in seconds (default 3600).'),
  HOST: optionalString.describe('Address `serve` listens on (default 127.0.0.1).'),
  PORT: intVar(8080, { min: 0, max: 65_535, unit: 'port' }).describe('Port `serve` listens on (default 8080).'),
  LOG_LEVEL: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
      if (raw === undefined || raw.trim() === '') return 'info' as const;
      const v = raw.trim().toLowerCase();
      if (!(levels as readonly string[]).includes(v)) {
        ctx.addIssue({ code: 'custom', message: `is "${raw}"; set it to one of ${levels.join(', ')}` });
        return z.NEVER;
      }
      return v as (typeof levels)[number];
    }).describe('fatal, error, warn, info (default), debug, trace or silent. Logs go to stderr.'),
});

export interface EntraCredentials {
  readonly tenantId: string;
  readonly clientId: string;
  /** Exactly one of these is set. The secret is held in memory only; it is never stored. */
  readonly clientSecret?: string;
  readonly clientCertFile?: string;
}

export interface Config {
  readonly intuneEnabled: boolean;
  /** Set when ENTRA_* name a real tenant; unset means the built-in simulated demo tenant. */
  readonly entra?: EntraCredentials;
  readonly graph: {
    readonly cloud: CloudName;
    readonly loginUrl: string;
    readonly graphUrl: string;
    readonly caFile?: string;
    readonly timeoutMs: number;
    readonly maxRetries: number;
  };
  readonly compliance: {
    readonly requiredByDefault: boolean;
    readonly strict: boolean;
    readonly cacheTtlMs: number;
    readonly cacheMaxEntries: number;
    /** How long past its TTL a cached answer may still be served while Graph fails (0: never). */
    readonly staleMaxMs: number;
    /** Default maximum check-in age (null: no limit); accords override it. */
    readonly maxCheckinAgeMs: number | null;
    /** How long the gate reuses one device's agent measurements (0: never). */
    readonly agentCacheTtlMs: number;
    readonly policyFile?: string;
  };
  readonly mcp: { readonly defaultCapabilities: readonly Capability[] };
  readonly sync: {
    readonly intervalMs: number;
    /** Graph list requests one sync run keeps in flight (1: sequential nextLink paging only). */
    readonly concurrency: number;
  };
  /** INTUNE_SECRET_REFS: references Intune connections may use, per tenant (absent: none beyond ENTRA_*). */
  readonly secretRefs?: readonly IntuneSecretRefGrant[];
  readonly gateJwt?: { readonly jwksUrl: string; readonly issuer?: string; readonly audience?: string };
  readonly database: { readonly url?: string; readonly dataDir: string };
  /** REDIS_URL: what replicas share (compliance cache, lookups in flight, the Graph budget); unset: each process alone. */
  readonly redis?: { readonly url: string; readonly keyPrefix: string; readonly timeoutMs: number };
  /** Intune's per-app budget the connector keeps (2000 requests, 200 writes per 20 s). */
  readonly graphBudget: { readonly requests: number; readonly writes: number; readonly windowMs: number };
  /** Master key of the per-tenant serial fingerprint (and cursor) keys; replicas must share it. */
  readonly fingerprintKeyFile: string;
  readonly chronicle: {
    readonly signingKeyFile: string;
    readonly checkpointDir: string;
    readonly checkpointIntervalMs: number;
    /** A second directory (another volume) that receives every checkpoint line. */
    readonly witnessDir?: string;
    /** An HTTPS webhook that receives every checkpoint line, in the background. */
    readonly witnessUrl?: string;
    readonly witnessCaFile?: string;
  };
  readonly http: { readonly host: string; readonly port: number };
  /** Endpoint agents (OP-061): the mTLS listener and the per-tenant agent CAs. */
  readonly agents: {
    /** Port of the mTLS listener on http.host (0: any free port). */
    readonly port: number;
    /** Directory of the tenant agent CA key files and the listener's made certificate; replicas share it. */
    readonly caDir: string;
    /** The listener's certificate and key (PEM files); unset: made on first start under caDir. */
    readonly tlsCertFile?: string;
    readonly tlsKeyFile?: string;
    readonly certValidityDays: number;
    readonly tokenTtlSeconds: number;
  };
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export type Env = Readonly<Record<string, string | undefined>>;

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/**
 * Builds the Config from an environment. Every problem is reported at once, each naming the
 * variable and what to set it to; contradictions between variables are reported the same way.
 */
export function loadConfig(env: Env, { cwd = process.cwd() }: { cwd?: string } = {}): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${String(issue.path[0])} ${issue.message}`));
  }
  const e = parsed.data;
  const problems: string[] = [];

  const entraSet = [e.ENTRA_TENANT_ID, e.ENTRA_CLIENT_ID, e.ENTRA_CLIENT_SECRET ?? e.ENTRA_CLIENT_CERT_FILE];
  let entra: EntraCredentials | undefined;
  if (e.ENTRA_CLIENT_SECRET !== undefined && e.ENTRA_CLIENT_CERT_FILE !== undefined) {
    problems.push('ENTRA_CLIENT_SECRET and ENTRA_CLIENT_CERT_FILE are mutually exclusive: set only one');
  } else if (entraSet.every((v) => v !== undefined)) {
    entra = {
      tenantId: e.ENTRA_TENANT_ID as string,
      clientId: e.ENTRA_CLIENT_ID as string,
      ...defined({ clientSecret: e.ENTRA_CLIENT_SECRET, clientCertFile: e.ENTRA_CLIENT_CERT_FILE }),
    };
  } else if (entraSet.some((v) => v !== undefined)) {
    const missing = [
      e.ENTRA_TENANT_ID === undefined ? 'ENTRA_TENANT_ID' : undefined,
      e.ENTRA_CLIENT_ID === undefined ? 'ENTRA_CLIENT_ID' : undefined,
      e.ENTRA_CLIENT_SECRET === undefined && e.ENTRA_CLIENT_CERT_FILE === undefined
        ? 'ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_CERT_FILE)'
        : undefined,
    ].filter((v) => v !== undefined);
    problems.push(
      `Entra credentials are incomplete: also set ${missing.join(' and ')}, or unset all ENTRA_* variables to run the simulated demo tenant`,
    );
  }
  if (e.ENTRA_TENANT_ID !== undefined && !/^[A-Za-z0-9.-]{1,253}$/.test(e.ENTRA_TENANT_ID)) {
    problems.push(`ENTRA_TENANT_ID is "${e.ENTRA_TENANT_ID}"; set it to the tenant's GUID or its primary domain`);
  }

  let loginUrl: string;
  let graphUrl: string;
  if (e.INTUNE_CLOUD === 'custom') {
    if (e.INTUNE_LOGIN_URL === undefined || e.INTUNE_GRAPH_URL === undefined) {
      problems.push('INTUNE_CLOUD=custom needs INTUNE_LOGIN_URL and INTUNE_GRAPH_URL (https URLs of the token endpoint host and the Graph host)');
    }
    loginUrl = e.INTUNE_LOGIN_URL ?? '';
    graphUrl = e.INTUNE_GRAPH_URL ?? '';
  } else {
    if (e.INTUNE_LOGIN_URL !== undefined || e.INTUNE_GRAPH_URL !== undefined) {
      problems.push(`INTUNE_LOGIN_URL and INTUNE_GRAPH_URL apply only with INTUNE_CLOUD=custom (INTUNE_CLOUD is ${e.INTUNE_CLOUD}): unset them or set INTUNE_CLOUD=custom`);
    }
    ({ loginUrl, graphUrl } = CLOUD_ENDPOINTS[e.INTUNE_CLOUD]);
  }

  if (e.INTUNE_GATE_JWKS_URL === undefined && (e.INTUNE_GATE_JWT_ISSUER !== undefined || e.INTUNE_GATE_JWT_AUDIENCE !== undefined)) {
    problems.push('INTUNE_GATE_JWT_ISSUER and INTUNE_GATE_JWT_AUDIENCE need INTUNE_GATE_JWKS_URL: set it, or unset them');
  }

  if ((e.INTUNE_AGENT_TLS_CERT_FILE === undefined) !== (e.INTUNE_AGENT_TLS_KEY_FILE === undefined)) {
    problems.push('INTUNE_AGENT_TLS_CERT_FILE and INTUNE_AGENT_TLS_KEY_FILE go together: set both (PEM files), or neither to have a certificate made at start');
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const dataDir = path.resolve(cwd, e.INTUNE_DATA_DIR ?? '.data');
  const resolved = (file: string | undefined): string | undefined => (file === undefined ? undefined : path.resolve(cwd, file));
  const config: Config = {
    intuneEnabled: e.INTUNE_ENABLED,
    ...defined({ entra }),
    graph: {
      cloud: e.INTUNE_CLOUD,
      loginUrl: loginUrl.replace(/\/+$/, ''),
      graphUrl: graphUrl.replace(/\/+$/, ''),
      ...defined({ caFile: resolved(e.INTUNE_CA_FILE) }),
      timeoutMs: e.INTUNE_GRAPH_TIMEOUT_MS,
      maxRetries: e.INTUNE_GRAPH_MAX_RETRIES,
    },
    compliance: {
      requiredByDefault: e.INTUNE_COMPLIANCE_REQUIRED,
      strict: e.INTUNE_COMPLIANCE_STRICT,
      cacheTtlMs: e.INTUNE_COMPLIANCE_CACHE_TTL * 1000,
      cacheMaxEntries: e.INTUNE_COMPLIANCE_CACHE_MAX,
      staleMaxMs: e.INTUNE_COMPLIANCE_STALE_MAX * 1000,
      maxCheckinAgeMs: e.INTUNE_COMPLIANCE_MAX_CHECKIN_AGE_DAYS === 0 ? null : e.INTUNE_COMPLIANCE_MAX_CHECKIN_AGE_DAYS * 86_400_000,
      agentCacheTtlMs: e.INTUNE_GATE_AGENT_CACHE_TTL * 1000,
      ...defined({ policyFile: resolved(e.INTUNE_POLICY_FILE) }),
    },
    mcp: { defaultCapabilities: e.INTUNE_MCP_CAPABILITIES },
    sync: { intervalMs: e.INTUNE_SYNC_INTERVAL * 1000, concurrency: e.INTUNE_SYNC_CONCURRENCY },
    ...(e.INTUNE_SECRET_REFS.length > 0 ? { secretRefs: e.INTUNE_SECRET_REFS } : {}),
    ...defined({
      gateJwt:
        e.INTUNE_GATE_JWKS_URL === undefined
          ? undefined
          : { jwksUrl: e.INTUNE_GATE_JWKS_URL, ...defined({ issuer: e.INTUNE_GATE_JWT_ISSUER, audience: e.INTUNE_GATE_JWT_AUDIENCE }) },
    }),
    database: {
      ...defined({ url: e.DATABASE_URL }),
      dataDir,
    },
    ...defined({
      redis: e.REDIS_URL === undefined ? undefined : { url: e.REDIS_URL, keyPrefix: e.REDIS_KEY_PREFIX ?? 'intune-connector', timeoutMs: e.REDIS_TIMEOUT_MS },
    }),
    graphBudget: { requests: e.INTUNE_GRAPH_BUDGET_REQUESTS, writes: Math.min(e.INTUNE_GRAPH_BUDGET_WRITES, e.INTUNE_GRAPH_BUDGET_REQUESTS), windowMs: e.INTUNE_GRAPH_BUDGET_WINDOW_MS },
    fingerprintKeyFile: path.resolve(cwd, e.INTUNE_FINGERPRINT_KEY_FILE ?? path.join(dataDir, 'fingerprint.key')),
    chronicle: {
      signingKeyFile: path.resolve(cwd, e.CHRONICLE_SIGNING_KEY_FILE ?? path.join(dataDir, 'chronicle', 'signing-key.pem')),
      checkpointDir: path.resolve(cwd, e.CHRONICLE_CHECKPOINT_DIR ?? path.join(dataDir, 'chronicle', 'checkpoints')),
      checkpointIntervalMs: e.CHRONICLE_CHECKPOINT_INTERVAL * 1000,
      ...defined({
        witnessDir: resolved(e.CHRONICLE_WITNESS_DIR),
        witnessUrl: e.CHRONICLE_WITNESS_URL,
        witnessCaFile: resolved(e.CHRONICLE_WITNESS_CA_FILE),
      }),
    },
    http: { host: e.HOST ?? '127.0.0.1', port: e.PORT },
    agents: {
      port: e.INTUNE_AGENT_PORT >= 0 ? e.INTUNE_AGENT_PORT : e.PORT === 0 ? 0 : 8443,
      caDir: path.resolve(cwd, e.INTUNE_AGENT_CA_DIR ?? path.join(dataDir, 'agents')),
      ...defined({ tlsCertFile: resolved(e.INTUNE_AGENT_TLS_CERT_FILE), tlsKeyFile: resolved(e.INTUNE_AGENT_TLS_KEY_FILE) }),
      certValidityDays: e.INTUNE_AGENT_CERT_DAYS,
      tokenTtlSeconds: e.INTUNE_AGENT_TOKEN_TTL,
    },
    logLevel: e.LOG_LEVEL,
  };
  return deepFreeze(config);
}

/**
 * The documented variables, for the README table and `--help`: each one's `.describe()` text on
 * EnvSchema, so a variable and its documentation are declared together (the config test fails on a
 * variable without one, and on a README table that differs from these texts).
 */
export const CONFIG_DOCS: Readonly<Record<keyof z.input<typeof EnvSchema>, string>> = Object.freeze(
  Object.fromEntries(Object.entries(EnvSchema.shape).map(([name, schema]) => [name, schema.description ?? ''])) as Record<
    keyof z.input<typeof EnvSchema>,
    string
  >,
);
