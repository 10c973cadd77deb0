/**
 * SecretProvider: connection secrets are references (`env:NAME`, `file:/absolute/path`), resolved
 * when a run needs them and held in memory only.
 *
 * A reference resolves only when it is registered for the asked purpose and the caller's tenant.
 * Registrations come from whoever controls the process environment (the operator), never from the
 * API: INTUNE_SECRET_REFS grants references to tenants for purpose `intune`, the ENTRA_* bootstrap
 * registers its own for tenant 'default', and the process's other secrets (DATABASE_URL, the
 * Chronicle signing key, the fingerprint master key) are registered for their own purposes so that
 * naming one of them in a connection is refused by name. A tenant administrator can therefore only
 * pick among the secrets the operator set aside for that tenant's Intune connections.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, type Config, type Env } from '../config/index.js';
import { SecretRefError } from './errors.js';
import type { SecretProvider, SecretPurpose, SecretRefDescription, SecretRegistration } from './types.js';
import { DEFAULT_TENANT } from '../common/ids.js';

/** The process-local reference under which the demo simulator's secret is supplied (never written anywhere). */
export const DEMO_SECRET_REF = 'env:INTUNE_DEMO_CLIENT_SECRET';

const MAX_REF_LENGTH = 520;
const MAX_SECRET_FILE_BYTES = 64 * 1024;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export interface ParsedSecretRef {
  readonly scheme: 'env' | 'file';
  /** Variable name, or the absolute, normalised path. */
  readonly name: string;
  /** The normalised reference, as registered and stored. */
  readonly ref: string;
}

/** Validates a reference's syntax and normalises it (file paths resolved, so `..` cannot dodge a registration). */
export function parseSecretRef(ref: unknown): ParsedSecretRef {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > MAX_REF_LENGTH || /[\s\p{Cc}]/u.test(ref)) {
    throw new SecretRefError(
      'secret_ref_invalid',
      `a secret reference is env:VARIABLE_NAME or file:/absolute/path (at most ${MAX_REF_LENGTH} characters, no spaces)`,
    );
  }
  const colon = ref.indexOf(':');
  const scheme = colon > 0 ? ref.slice(0, colon) : '';
  const rest = colon > 0 ? ref.slice(colon + 1) : '';
  if (scheme === 'env') {
    if (!ENV_NAME.test(rest)) {
      throw new SecretRefError('secret_ref_invalid', `env: references name an environment variable (letters, digits, _), e.g. env:CONTOSO_INTUNE_SECRET`);
    }
    return { scheme, name: rest, ref: `env:${rest}` };
  }
  if (scheme === 'file') {
    if (!path.isAbsolute(rest)) {
      throw new SecretRefError('secret_ref_invalid', `file: references need an absolute path, e.g. file:/run/secrets/contoso-intune`);
    }
    const name = path.resolve(rest);
    return { scheme, name, ref: `file:${name}` };
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]{0,31}$/.test(scheme)) {
    throw new SecretRefError('secret_ref_scheme', `unknown secret reference scheme "${scheme}": use env:VARIABLE_NAME or file:/absolute/path`);
  }
  throw new SecretRefError('secret_ref_invalid', 'a secret reference is env:VARIABLE_NAME or file:/absolute/path');
}

interface Entry {
  readonly purpose: SecretPurpose;
  readonly tenants: Set<string>;
  value?: string;
}

export interface SecretProviderOptions {
  /** The environment env: references read (the composition passes process.env). */
  readonly env: Env;
}

export function createSecretProvider({ env }: SecretProviderOptions): SecretProvider {
  const registry = new Map<string, Entry>();

  const describe = (ref: string): SecretRefDescription => {
    const parsed = parseSecretRef(ref);
    const entry = registry.get(parsed.ref);
    return { scheme: parsed.scheme, ref: parsed.ref, purpose: entry?.purpose ?? null, tenants: entry === undefined ? [] : [...entry.tenants] };
  };

  return {
    describe,

    register(ref: string, registration: SecretRegistration): void {
      const parsed = parseSecretRef(ref);
      const existing = registry.get(parsed.ref);
      if (existing !== undefined && existing.purpose !== registration.purpose) {
        throw new SecretRefError(
          'secret_ref_wrong_purpose',
          `${parsed.ref} is registered for purpose ${existing.purpose}; it cannot also serve ${registration.purpose}`,
        );
      }
      const entry = existing ?? { purpose: registration.purpose, tenants: new Set<string>() };
      for (const tenant of registration.tenants) entry.tenants.add(tenant);
      if (registration.value !== undefined) entry.value = registration.value;
      registry.set(parsed.ref, entry);
    },

    async resolve(ref: string, purpose: 'intune', options: { readonly tenant?: string } = {}): Promise<string> {
      const parsed = parseSecretRef(ref);
      const entry = registry.get(parsed.ref);
      if (entry !== undefined && entry.purpose !== purpose) {
        throw new SecretRefError(
          'secret_ref_wrong_purpose',
          `${parsed.ref} is registered for purpose ${entry.purpose}, not ${purpose}: use a reference the operator set aside for Intune connections`,
        );
      }
      const tenantAllowed = entry !== undefined && (entry.tenants.has('*') || (options.tenant !== undefined && entry.tenants.has(options.tenant)));
      if (entry === undefined || !tenantAllowed) {
        // Same answer for "registered for another tenant" and "not registered": a tenant learns nothing of others.
        throw new SecretRefError(
          'secret_ref_not_registered',
          `${parsed.ref} is not registered for Intune connections of this tenant: the operator grants references with INTUNE_SECRET_REFS (e.g. ${options.tenant ?? 'TENANT'}=${parsed.ref})`,
        );
      }
      if (entry.value !== undefined) return entry.value;
      if (parsed.scheme === 'env') {
        const value = env[parsed.name];
        if (value === undefined || value.trim() === '') {
          throw new SecretRefError('secret_unavailable', `environment variable ${parsed.name} (${parsed.ref}) is not set in this process`);
        }
        return value.trim();
      }
      let text: string;
      try {
        const stat = await fs.stat(parsed.name);
        if (!stat.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOTFILE' });
        if (stat.size > MAX_SECRET_FILE_BYTES) throw Object.assign(new Error('too large'), { code: 'EFBIG' });
        text = await fs.readFile(parsed.name, 'utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'error';
        throw new SecretRefError('secret_unavailable', `${parsed.ref} cannot be read (${code}): check the file exists, is readable by this process and is under 64 KiB`);
      }
      const value = text.trim();
      if (value === '') throw new SecretRefError('secret_unavailable', `${parsed.ref} is empty`);
      return value;
    },
  };
}

/**
 * The provider the runtime uses: the process's own secrets registered for their purposes first,
 * then INTUNE_SECRET_REFS and the ENTRA_* bootstrap references for `intune`. A grant that names one
 * of the process's own secrets is a configuration error.
 */
export function secretProviderFromConfig(config: Config, env: Env): SecretProvider {
  const provider = createSecretProvider({ env });
  provider.register('env:DATABASE_URL', { purpose: 'database', tenants: [] });
  provider.register(`file:${path.resolve(config.chronicle.signingKeyFile)}`, { purpose: 'chronicle_signing', tenants: [] });
  provider.register(`file:${path.resolve(config.fingerprintKeyFile)}`, { purpose: 'fingerprint', tenants: [] });

  const problems: string[] = [];
  const grant = (ref: string, tenant: string, source: string) => {
    try {
      provider.register(ref, { purpose: 'intune', tenants: [tenant] });
    } catch (err) {
      problems.push(`${source} names ${ref}, which is ${(err as Error).message.replace(/^.* is registered for purpose (\S+);.*$/, 'the process secret for $1')}: name a secret set aside for Intune`);
    }
  };
  if (config.entra?.clientSecret !== undefined) grant('env:ENTRA_CLIENT_SECRET', DEFAULT_TENANT, 'ENTRA_CLIENT_SECRET');
  if (config.entra?.clientCertFile !== undefined) grant(`file:${path.resolve(config.entra.clientCertFile)}`, DEFAULT_TENANT, 'ENTRA_CLIENT_CERT_FILE');
  for (const { tenant, ref } of config.secretRefs ?? []) grant(ref, tenant, 'INTUNE_SECRET_REFS');
  if (problems.length > 0) throw new ConfigError(problems);
  return provider;
}
