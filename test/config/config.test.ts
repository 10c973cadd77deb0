import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_DOCS, ConfigError, EnvSchema, loadConfig } from '../../src/config/index.js';

const problemsOf = (env: Record<string, string>): readonly string[] => {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
};

describe('loadConfig', () => {
  it('gives working defaults with an empty environment: embedded database, demo tenant, permissive gate', () => {
    const config = loadConfig({}, { cwd: '/srv/app' });
    expect(config.intuneEnabled).toBe(true);
    expect(config.entra).toBeUndefined();
    expect(config.database).toEqual({ dataDir: '/srv/app/.data' });
    expect(config.compliance).toMatchObject({ requiredByDefault: false, strict: false, cacheTtlMs: 300_000 });
    expect(config.graph).toMatchObject({ cloud: 'public', loginUrl: 'https://login.microsoftonline.com', graphUrl: 'https://graph.microsoft.com' });
    expect(config.http).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(config.mcp.defaultCapabilities).toEqual(['READ']);
  });

  it('reads the connector guide variables by their exact names', () => {
    const config = loadConfig({
      INTUNE_ENABLED: 'true',
      ENTRA_TENANT_ID: 'contoso.onmicrosoft.com',
      ENTRA_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
      ENTRA_CLIENT_SECRET: 's3cret',
      INTUNE_COMPLIANCE_REQUIRED: 'true',
      INTUNE_COMPLIANCE_STRICT: 'TRUE',
      INTUNE_COMPLIANCE_CACHE_TTL: '0',
    });
    expect(config.entra).toEqual({
      tenantId: 'contoso.onmicrosoft.com',
      clientId: '11111111-2222-3333-4444-555555555555',
      clientSecret: 's3cret',
    });
    expect(config.compliance).toMatchObject({ requiredByDefault: true, strict: true, cacheTtlMs: 0 });
  });

  it('maps national clouds to their login and Graph hosts', () => {
    expect(loadConfig({ INTUNE_CLOUD: 'usgov-dod' }).graph).toMatchObject({
      loginUrl: 'https://login.microsoftonline.us',
      graphUrl: 'https://dod-graph.microsoft.us',
    });
    expect(loadConfig({ INTUNE_CLOUD: 'china' }).graph.graphUrl).toBe('https://microsoftgraph.chinacloudapi.cn');
  });

  it('returns a deeply frozen config', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.compliance)).toBe(true);
    expect(() => {
      (config.compliance as { strict: boolean }).strict = true;
    }).toThrow(TypeError);
  });

  it('reports every bad value at once, each naming the variable and the fix', () => {
    const problems = problemsOf({ INTUNE_COMPLIANCE_CACHE_TTL: 'five minutes', INTUNE_ENABLED: 'maybe', PORT: '70000', INTUNE_CLOUD: 'mars' });
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toMatch(/INTUNE_COMPLIANCE_CACHE_TTL is "five minutes"; set it to a whole number/);
    expect(problems.join('\n')).toMatch(/INTUNE_ENABLED is "maybe"; set it to true or false/);
    expect(problems.join('\n')).toMatch(/PORT is "70000"/);
    expect(problems.join('\n')).toMatch(/INTUNE_CLOUD is "mars"; set it to one of public, usgov, usgov-dod, china, custom/);
  });

  it("bounds the gate's agent cache TTL: 30 s by default, 0 to read agents on every check, nothing else outside 0 to 3600", () => {
    expect(loadConfig({}).compliance.agentCacheTtlMs).toBe(30_000);
    expect(loadConfig({ INTUNE_GATE_AGENT_CACHE_TTL: '0' }).compliance.agentCacheTtlMs).toBe(0);
    expect(loadConfig({ INTUNE_GATE_AGENT_CACHE_TTL: '5' }).compliance.agentCacheTtlMs).toBe(5_000);
    for (const bad of ['-1', '3601', '30s', '1.5']) {
      expect(problemsOf({ INTUNE_GATE_AGENT_CACHE_TTL: bad }).join('\n'), bad).toMatch(new RegExp(`INTUNE_GATE_AGENT_CACHE_TTL is "${bad.replace('.', '\\.')}"`));
    }
  });

  it('refuses contradictions with a message that says which variables and what to do', () => {
    expect(problemsOf({ ENTRA_TENANT_ID: 't', ENTRA_CLIENT_ID: 'c', ENTRA_CLIENT_SECRET: 's', ENTRA_CLIENT_CERT_FILE: '/k.pem' })).toEqual([
      'ENTRA_CLIENT_SECRET and ENTRA_CLIENT_CERT_FILE are mutually exclusive: set only one',
    ]);
    expect(problemsOf({ ENTRA_TENANT_ID: 'contoso.example' })[0]).toMatch(/also set ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET/);
    expect(problemsOf({ INTUNE_CLOUD: 'custom' })[0]).toMatch(/INTUNE_CLOUD=custom needs INTUNE_LOGIN_URL and INTUNE_GRAPH_URL/);
    expect(problemsOf({ INTUNE_GRAPH_URL: 'https://graph.example' })[0]).toMatch(/apply only with INTUNE_CLOUD=custom/);
    expect(problemsOf({ INTUNE_CLOUD: 'custom', INTUNE_LOGIN_URL: 'http://127.0.0.1:1', INTUNE_GRAPH_URL: 'https://x' })[0]).toMatch(
      /INTUNE_LOGIN_URL must be an https:\/\/ URL/,
    );
    expect(problemsOf({ DATABASE_URL: 'mysql://x' })[0]).toMatch(/DATABASE_URL must be a postgres/);
    expect(problemsOf({ REDIS_URL: 'http://127.0.0.1:6379' })[0]).toMatch(/REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(problemsOf({ REDIS_KEY_PREFIX: 'a b' })[0]).toMatch(/REDIS_KEY_PREFIX must be 1 to 64 letters/);
  });

  it('shares through Redis only with REDIS_URL, under a per-deployment prefix, and keeps Intune\'s budget by default', () => {
    expect(loadConfig({}).redis).toBeUndefined();
    expect(loadConfig({}).graphBudget).toEqual({ requests: 2000, writes: 200, windowMs: 20_000 });
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/2' }).redis).toEqual({ url: 'redis://127.0.0.1:6379/2', keyPrefix: 'intune-connector', timeoutMs: 1000 });
    expect(loadConfig({ REDIS_URL: 'rediss://r.example:6380', REDIS_KEY_PREFIX: 'prod-eu' }).redis?.keyPrefix).toBe('prod-eu');
    // Writes are part of the requests: never more of them than requests.
    expect(loadConfig({ INTUNE_GRAPH_BUDGET_REQUESTS: '50', INTUNE_GRAPH_BUDGET_WRITES: '200' }).graphBudget.writes).toBe(50);
  });

  it('never echoes a secret in an error message', () => {
    const problems = problemsOf({ ENTRA_CLIENT_SECRET: 'do-not-print-me', PORT: 'x' });
    expect(problems.join('\n')).not.toContain('do-not-print-me');
  });
});

describe('README configuration table', () => {
  it('documents every variable the config reads, and nothing else', () => {
    const readme = fs.readFileSync('README.md', 'utf8');
    const block = /<!-- section:config-table[^>]*-->\n([\s\S]*?)<!-- \/section:config-table -->/.exec(readme)?.[1] ?? '';
    const documented = [...block.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented).toEqual(Object.keys(CONFIG_DOCS));
    for (const [name, text] of Object.entries(CONFIG_DOCS)) expect(block).toContain(`| \`${name}\` | ${text.replace(/\|/g, '\\|')} |`);
  });

  it('takes each text from the schema, and every default a text states is the default the schema applies', () => {
    expect(Object.keys(CONFIG_DOCS)).toEqual(Object.keys(EnvSchema.shape));
    for (const [name, schema] of Object.entries(EnvSchema.shape)) {
      expect(schema.description, name).toBe(CONFIG_DOCS[name as keyof typeof CONFIG_DOCS]);
      expect(schema.description?.length ?? 0, `${name} has no .describe() text`).toBeGreaterThan(10);
      const stated = /\(default (\d+|true|false|READ)(?=[;:),])/.exec(schema.description ?? '')?.[1];
      if (stated !== undefined) expect(String(schema.parse(undefined)), name).toBe(stated);
    }
    // The texts that state a default (12, plus the sync concurrency, the agent certificate and token lifetimes, the Redis
    // timeout, the three Graph budget figures and the gate's agent cache TTL): a rewording that drops one is a change the test notices.
    expect(Object.values(CONFIG_DOCS).filter((text) => /\(default (\d+|true|false|READ)(?=[;:),])/.test(text))).toHaveLength(20);
  });
});

describe('loadConfig with hostile values', () => {
  it('refuses an INTUNE_GATE_JWKS_URL that is not an https URL with a ConfigError (it would crash the gate at start)', () => {
    for (const bad of ['not a url', 'https://exa mple.com/keys', 'ftp://login.example.com/keys', 'https://[::1/keys']) {
      expect(problemsOf({ INTUNE_GATE_JWKS_URL: bad }).join('\n')).toMatch(/INTUNE_GATE_JWKS_URL/);
    }
    expect(loadConfig({ INTUNE_GATE_JWKS_URL: 'https://login.example.com/common/discovery/v2.0/keys' }).gateJwt?.jwksUrl).toBe(
      'https://login.example.com/common/discovery/v2.0/keys',
    );
  });

  it('answers any value of any variable with a Config or a ConfigError, never another exception (property)', async () => {
    const fc = (await import('fast-check')).default;
    const names = Object.keys(CONFIG_DOCS);
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...names), fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constantFrom('https://', 'https://a b', 'https://[', 'custom', '1e3', '0x10', '-0', ' 8080 '))), (env) => {
        try {
          const config = loadConfig(env, { cwd: '/srv/app' });
          if (config.gateJwt !== undefined) new URL(config.gateJwt.jwksUrl);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
        }
      }),
      { numRuns: 500 },
    );
  });
});
