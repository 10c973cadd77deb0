import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { createSecretProvider, parseSecretRef, secretProviderFromConfig, SecretRefError } from '../../src/posture/index.js';

const refused = async (promise: Promise<unknown>): Promise<SecretRefError> => {
  const err = await promise.then(
    () => {
      throw new Error('expected the reference to be refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SecretRefError);
  return err as SecretRefError;
};

describe('secret references', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'posture-secrets-'));
    fs.writeFileSync(path.join(dir, 'contoso.secret'), 'file-secret-value-1\n', { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'empty.secret'), '\n');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('parses env: and file: references and normalises paths so .. cannot dodge a registration', () => {
    expect(parseSecretRef('env:CONTOSO_SECRET')).toEqual({ scheme: 'env', name: 'CONTOSO_SECRET', ref: 'env:CONTOSO_SECRET' });
    expect(parseSecretRef('file:/run/secrets/../secrets/x')).toEqual({ scheme: 'file', name: '/run/secrets/x', ref: 'file:/run/secrets/x' });
    expect(() => parseSecretRef('vault:kv/intune')).toThrow(expect.objectContaining({ code: 'secret_ref_scheme' }));
    expect(() => parseSecretRef('file:relative/path')).toThrow(expect.objectContaining({ code: 'secret_ref_invalid' }));
    expect(() => parseSecretRef('env:NOT-A-NAME')).toThrow(expect.objectContaining({ code: 'secret_ref_invalid' }));
    expect(() => parseSecretRef('my actual secret')).toThrow(expect.objectContaining({ code: 'secret_ref_invalid' }));
    expect(() => parseSecretRef(42)).toThrow(expect.objectContaining({ code: 'secret_ref_invalid' }));
  });

  it('resolves env: and file: references registered for intune in the tenant', async () => {
    const provider = createSecretProvider({ env: { CONTOSO_SECRET: 'env-secret-value-1' } });
    provider.register('env:CONTOSO_SECRET', { purpose: 'intune', tenants: ['contoso'] });
    provider.register(`file:${dir}/contoso.secret`, { purpose: 'intune', tenants: ['*'] });
    await expect(provider.resolve('env:CONTOSO_SECRET', 'intune', { tenant: 'contoso' })).resolves.toBe('env-secret-value-1');
    await expect(provider.resolve(`file:${dir}/contoso.secret`, 'intune', { tenant: 'anyone' })).resolves.toBe('file-secret-value-1');
    expect(provider.describe('env:CONTOSO_SECRET')).toEqual({ scheme: 'env', ref: 'env:CONTOSO_SECRET', purpose: 'intune', tenants: ['contoso'] });
  });

  it('refuses a reference registered for another purpose, naming that purpose but not the value', async () => {
    const provider = createSecretProvider({ env: { DATABASE_URL: 'postgres://user:db-password-1@db/x' } });
    provider.register('env:DATABASE_URL', { purpose: 'database', tenants: [] });
    const err = await refused(provider.resolve('env:DATABASE_URL', 'intune', { tenant: 'contoso' }));
    expect(err.code).toBe('secret_ref_wrong_purpose');
    expect(err.message).toContain('purpose database');
    expect(err.message).not.toContain('db-password-1');
    // Nor can a second registration quietly repurpose it.
    expect(() => provider.register('env:DATABASE_URL', { purpose: 'intune', tenants: ['*'] })).toThrow(expect.objectContaining({ code: 'secret_ref_wrong_purpose' }));
  });

  it("refuses unregistered references and another tenant's references alike", async () => {
    const provider = createSecretProvider({ env: { HOME_SECRET: 'x', FABRIKAM_SECRET: 'y' } });
    provider.register('env:FABRIKAM_SECRET', { purpose: 'intune', tenants: ['fabrikam'] });
    const unregistered = await refused(provider.resolve('env:HOME_SECRET', 'intune', { tenant: 'contoso' }));
    const otherTenant = await refused(provider.resolve('env:FABRIKAM_SECRET', 'intune', { tenant: 'contoso' }));
    expect(unregistered.code).toBe('secret_ref_not_registered');
    expect(otherTenant.code).toBe('secret_ref_not_registered');
    expect(otherTenant.message).not.toContain('fabrikam');
    expect((await refused(provider.resolve('vault:x', 'intune', { tenant: 'contoso' }))).code).toBe('secret_ref_scheme');
  });

  it('says so when a registered secret is missing or empty, without guessing at values', async () => {
    const provider = createSecretProvider({ env: {} });
    provider.register('env:UNSET_SECRET', { purpose: 'intune', tenants: ['*'] });
    provider.register(`file:${dir}/missing.secret`, { purpose: 'intune', tenants: ['*'] });
    provider.register(`file:${dir}/empty.secret`, { purpose: 'intune', tenants: ['*'] });
    expect((await refused(provider.resolve('env:UNSET_SECRET', 'intune'))).code).toBe('secret_unavailable');
    expect((await refused(provider.resolve(`file:${dir}/missing.secret`, 'intune'))).message).toMatch(/ENOENT/);
    expect((await refused(provider.resolve(`file:${dir}/empty.secret`, 'intune'))).code).toBe('secret_unavailable');
  });

  it('from config: ENTRA_* for tenant default, INTUNE_SECRET_REFS per tenant, the process secrets reserved', async () => {
    const env = {
      ENTRA_TENANT_ID: 'contoso.example',
      ENTRA_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
      ENTRA_CLIENT_SECRET: 'entra-secret-value-1',
      INTUNE_SECRET_REFS: `fabrikam=env:FABRIKAM_SECRET, *=file:${dir}/contoso.secret`,
      FABRIKAM_SECRET: 'fabrikam-secret-value-1',
      DATABASE_URL: 'postgres://u:p@h/d',
    };
    const config = loadConfig(env, { cwd: dir });
    const provider = secretProviderFromConfig(config, env);
    await expect(provider.resolve('env:ENTRA_CLIENT_SECRET', 'intune', { tenant: 'default' })).resolves.toBe('entra-secret-value-1');
    expect((await refused(provider.resolve('env:ENTRA_CLIENT_SECRET', 'intune', { tenant: 'fabrikam' }))).code).toBe('secret_ref_not_registered');
    await expect(provider.resolve('env:FABRIKAM_SECRET', 'intune', { tenant: 'fabrikam' })).resolves.toBe('fabrikam-secret-value-1');
    expect((await refused(provider.resolve('env:DATABASE_URL', 'intune', { tenant: 'default' }))).code).toBe('secret_ref_wrong_purpose');
    const signingKey = `file:${config.chronicle.signingKeyFile}`;
    expect((await refused(provider.resolve(signingKey, 'intune', { tenant: 'default' }))).message).toContain('purpose chronicle_signing');
  });

  it('refuses configuration that grants a process secret to Intune connections, or a grant without a tenant', () => {
    expect(() => secretProviderFromConfig(loadConfig({ INTUNE_SECRET_REFS: '*=env:DATABASE_URL' }), {})).toThrow(ConfigError);
    expect(() => loadConfig({ INTUNE_SECRET_REFS: 'env:CONTOSO_SECRET' })).toThrow(/INTUNE_SECRET_REFS has "env:CONTOSO_SECRET" without a tenant/);
    expect(() => loadConfig({ INTUNE_SECRET_REFS: 'contoso=vault:x' })).toThrow(/references are env:VARIABLE_NAME or file:\/absolute\/path/);
  });
});
