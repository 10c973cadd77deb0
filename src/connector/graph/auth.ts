/**
 * App-only tokens from Microsoft Entra (client credentials) through MSAL, with a client secret or
 * a certificate (client assertion). MSAL caches the token in memory and renews it before expiry;
 * this module adds what MSAL leaves to its host:
 * - authority metadata and cloud discovery metadata built from the configured login URL, so MSAL
 *   never makes discovery calls (national clouds and the simulator work the same way);
 * - one in-flight acquisition shared by concurrent callers, so a burst at start-up asks Entra once;
 * - Entra's refusals turned into GraphError 'auth_failed' with a sentence naming what to check,
 *   never Entra's error description (it carries trace ids and tenant details) nor the credential.
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type { Configuration, INetworkModule, ServerError } from '@azure/msal-node';
import { ConfigError } from '../../config/index.js';
import type { Logger } from '../../log/index.js';
import { GraphError, abortedError, safeCode } from './errors.js';
import { ForeignAuthorityError } from './transport.js';
import { defined } from '../../common/values.js';

/**
 * msal-node, loaded on first use from its CommonJS build: that is one file, where its ESM build is
 * hundreds and takes twice as long to load, and a command that never asks for a token (verify,
 * keys) never loads it at all. Only this module uses MSAL, so its classes are one copy throughout.
 */
type Msal = typeof import('@azure/msal-node');
let msal: Msal | undefined;
function loadMsal(): Msal {
  msal ??= createRequire(import.meta.url)('@azure/msal-node') as Msal;
  return msal;
}

export type ClientCredential = { readonly clientSecret: string } | { readonly certificatePem: string; readonly privateKeyPem: string };

export interface TokenSource {
  /** A bearer token for Graph; cached and renewed by MSAL. */
  getToken(signal?: AbortSignal): Promise<string>;
}

/**
 * What Entra's numbered errors mean for the operator. AADSTS numbers are stable identifiers;
 * the sentence says which setting to check.
 */
const AADSTS_HINTS: Readonly<Record<string, string>> = Object.freeze({
  '7000215': 'the client secret is wrong: check ENTRA_CLIENT_SECRET (use the secret value, not its id)',
  '7000222': 'the client secret has expired: create a new one on the app registration and update ENTRA_CLIENT_SECRET',
  '700016': 'no application with this client id exists in the tenant: check ENTRA_CLIENT_ID and ENTRA_TENANT_ID, and that the app is consented in this tenant',
  '90002': 'the tenant was not found: check ENTRA_TENANT_ID (and INTUNE_CLOUD: a US Gov or China tenant is not in the public cloud)',
  '900023': 'the tenant id is not valid: check ENTRA_TENANT_ID',
  '1002012': 'the requested scope is not valid: check INTUNE_GRAPH_URL (the scope is {graph URL}/.default)',
  '70011': 'the requested scope is not valid: check INTUNE_GRAPH_URL (the scope is {graph URL}/.default)',
  '700027': 'the certificate assertion was rejected: check that ENTRA_CLIENT_CERT_FILE holds the certificate registered on the app and its private key',
  '700024': 'the certificate assertion is outside its validity window: check the clock of this machine',
  '7000274': 'the certificate registered on the app registration has expired: upload a new one and update ENTRA_CLIENT_CERT_FILE',
  '500011': 'the Graph resource is not known to this tenant: check INTUNE_GRAPH_URL (and INTUNE_CLOUD) and that the app has admin consent',
  '53003': 'a Conditional Access policy blocked the app: ask the tenant administrator to exempt this workload identity',
});

const ERROR_CODE_HINTS: Readonly<Record<string, string>> = Object.freeze({
  invalid_client: 'check ENTRA_CLIENT_ID and the client secret or certificate',
  unauthorized_client: 'check ENTRA_CLIENT_ID: the application is not known in this tenant',
  invalid_request: 'check ENTRA_TENANT_ID and INTUNE_CLOUD',
  invalid_scope: 'check INTUNE_GRAPH_URL (the scope is {graph URL}/.default)',
  invalid_resource: 'check INTUNE_GRAPH_URL and INTUNE_CLOUD',
});

/**
 * Token errors Entra documents as temporary: the OAuth codes for a passing outage, and AADSTS
 * numbers Microsoft lists as transient ("A transient error has occurred. Please try again"). These
 * and any 5xx are retried with backoff and end as 'unavailable' (graph_unavailable), never as a
 * credential error: the connection's settings are not at fault.
 */
const TRANSIENT_ERROR_CODES: ReadonlySet<string> = new Set(['temporarily_unavailable', 'server_error']);
const TRANSIENT_AADSTS: ReadonlySet<string> = new Set(['90033', '90006', '90040', '50196', '900439', '500121']);

export function isTransientAuthError(err: ServerError): boolean {
  const number = err.errorNo !== undefined ? String(err.errorNo) : undefined;
  // MSAL replays a refusal it is still holding back for as the bare AADSTS numbers ("90033").
  const replayed = String(err.errorCode ?? '').split(' ');
  return (
    (err.status !== undefined && err.status >= 500) ||
    TRANSIENT_ERROR_CODES.has(String(err.errorCode)) ||
    (number !== undefined && TRANSIENT_AADSTS.has(number)) ||
    replayed.some((code) => TRANSIENT_AADSTS.has(code))
  );
}

/** Turns whatever MSAL threw into an auth_failed GraphError whose message is safe to show. */
export function authErrorFrom(err: unknown): GraphError {
  if (err instanceof GraphError) return err;
  const { AuthError, ServerError: MsalServerError } = loadMsal();
  if (err instanceof MsalServerError) {
    const code = safeCode(err.errorCode, 'server_error');
    const number = err.errorNo !== undefined && /^\d{1,9}$/.test(String(err.errorNo)) ? String(err.errorNo) : undefined;
    const hint = (number !== undefined ? AADSTS_HINTS[number] : undefined) ?? ERROR_CODE_HINTS[code] ?? 'check the ENTRA_* settings of this connection';
    const label = number !== undefined ? `${code}, AADSTS${number}` : code;
    if (isTransientAuthError(err)) {
      const replayed = number === undefined && /^\d{1,9}$/.test(code) ? `AADSTS${code}` : undefined;
      return new GraphError('unavailable', `Microsoft Entra is temporarily unavailable (${replayed ?? label}); retry later.`, {
        ...defined({ status: err.status }),
        graphCode: replayed ?? (number !== undefined ? `AADSTS${number}` : code),
      });
    }
    return new GraphError('auth_failed', `Microsoft Entra refused the token request (${label}): ${hint}.`, {
      ...defined({ status: err.status }),
      graphCode: number !== undefined ? `AADSTS${number}` : code,
    });
  }
  const cause = err instanceof Error ? (err as { cause?: unknown }).cause : undefined;
  if (err instanceof ForeignAuthorityError || cause instanceof ForeignAuthorityError) {
    return new GraphError(
      'auth_failed',
      'MSAL tried to reach a host other than the configured login host and was refused: check INTUNE_CLOUD and INTUNE_LOGIN_URL.',
      { graphCode: 'foreign_authority' },
    );
  }
  if (err instanceof AuthError) {
    const code = safeCode(err.errorCode, 'client_error');
    if (code === 'network_error' || code === 'endpoints_resolution_error' || code === 'request_cannot_be_made') {
      return new GraphError(
        'auth_failed',
        `The login host could not be reached (${code}): check INTUNE_CLOUD / INTUNE_LOGIN_URL, network access to it, and INTUNE_CA_FILE if a proxy or the simulator presents its own certificate.`,
        { graphCode: code },
      );
    }
    return new GraphError('auth_failed', `MSAL could not acquire a token (${code}): check the ENTRA_* settings of this connection.`, { graphCode: code });
  }
  return new GraphError('auth_failed', 'MSAL could not acquire a token: check the ENTRA_* settings and the login host.', { graphCode: 'auth_failed' });
}

interface CertificateCredential {
  readonly thumbprintSha256: string;
  readonly privateKey: string;
  readonly x5c: string;
}

/** Reads the certificate and key MSAL signs its client assertion with (x5c lets Entra do SN+I). */
export function certificateCredential(certificatePem: string, privateKeyPem: string): CertificateCredential {
  const certs = certificatePem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  const leaf = certs?.[0];
  if (leaf === undefined) {
    throw new ConfigError(['the client certificate holds no PEM certificate (-----BEGIN CERTIFICATE-----); put the certificate and its private key in ENTRA_CLIENT_CERT_FILE']);
  }
  let thumbprintSha256: string;
  try {
    thumbprintSha256 = new crypto.X509Certificate(leaf).fingerprint256.replaceAll(':', '').toLowerCase();
  } catch {
    throw new ConfigError(['the client certificate in ENTRA_CLIENT_CERT_FILE cannot be parsed; export it again as PEM']);
  }
  let privateKey: string;
  try {
    // MSAL wants PKCS#8; accept PKCS#1 and SEC1 keys too and convert them.
    privateKey = crypto.createPrivateKey(privateKeyPem).export({ format: 'pem', type: 'pkcs8' }).toString();
  } catch {
    throw new ConfigError([
      'the private key in ENTRA_CLIENT_CERT_FILE cannot be read: it must be an unencrypted PEM key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----) beside the certificate',
    ]);
  }
  return { thumbprintSha256, privateKey, x5c: certs!.join('\n') };
}

/** Splits one PEM file (ENTRA_CLIENT_CERT_FILE) into certificate chain and private key. */
export function splitCertificateFile(pem: string): { certificatePem: string; privateKeyPem: string } {
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const key = pem.match(/-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/);
  if (certs.length === 0 || key === null) {
    throw new ConfigError([
      'ENTRA_CLIENT_CERT_FILE must hold both the certificate (-----BEGIN CERTIFICATE-----) and its unencrypted private key (-----BEGIN PRIVATE KEY-----) in PEM',
    ]);
  }
  return { certificatePem: certs.join('\n'), privateKeyPem: key[0] };
}

/** Authority metadata as Entra's OpenID configuration would give it, for MSAL's config. */
export function authorityMetadataFor(loginUrl: string, tenantId: string): string {
  const authority = `${loginUrl}/${tenantId}`;
  return JSON.stringify({
    token_endpoint: `${authority}/oauth2/v2.0/token`,
    authorization_endpoint: `${authority}/oauth2/v2.0/authorize`,
    end_session_endpoint: `${authority}/oauth2/v2.0/logout`,
    jwks_uri: `${authority}/discovery/v2.0/keys`,
    issuer: `${authority}/v2.0`,
  });
}

export function cloudDiscoveryMetadataFor(loginUrl: string, tenantId: string): string {
  const host = new URL(loginUrl).host;
  return JSON.stringify({
    tenant_discovery_endpoint: `${loginUrl}/${tenantId}/v2.0/.well-known/openid-configuration`,
    'api-version': '1.1',
    metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
  });
}

export function createTokenSource(options: {
  readonly tenantId: string;
  readonly clientId: string;
  readonly credential: ClientCredential;
  readonly loginUrl: string;
  readonly graphUrl: string;
  readonly networkClient: INetworkModule;
  readonly logger?: Logger;
  /** Retries of a token request Entra refused as temporary (default 3), with exponential backoff and full jitter. */
  readonly transientRetries?: number;
  /** First backoff ceiling of those retries (default 500 ms; each retry doubles it, up to 8 s). */
  readonly transientBaseDelayMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}): TokenSource {
  const { tenantId, clientId, credential, loginUrl, graphUrl, logger } = options;
  const transientRetries = options.transientRetries ?? 3;
  const baseDelayMs = options.transientBaseDelayMs ?? 500;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  const loginHost = new URL(loginUrl).host;
  const configuration: Configuration = {
    auth: {
      clientId,
      authority: `${loginUrl}/${tenantId}`,
      knownAuthorities: [loginHost],
      authorityMetadata: authorityMetadataFor(loginUrl, tenantId),
      cloudDiscoveryMetadata: cloudDiscoveryMetadataFor(loginUrl, tenantId),
      ...('clientSecret' in credential
        ? { clientSecret: credential.clientSecret }
        : { clientCertificate: certificateCredential(credential.certificatePem, credential.privateKeyPem) }),
    },
    system: {
      networkClient: options.networkClient,
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: loadMsal().LogLevel.Warning,
        // MSAL's own lines can carry correlation ids and endpoint URLs, never secrets (PII logging is off).
        loggerCallback: (level, message) => {
          if (level <= loadMsal().LogLevel.Warning) logger?.debug({ msal: message.slice(0, 500) }, 'msal');
        },
      },
    },
  };
  const app = new (loadMsal().ConfidentialClientApplication)(configuration);
  const scopes = [`${graphUrl}/.default`];
  let inFlight: Promise<string> | undefined;

  const acquire = async (): Promise<string> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await acquireOnce();
      } catch (err) {
        if (!(err instanceof GraphError) || err.kind !== 'unavailable' || attempt > transientRetries) throw err;
        // MSAL would refuse the retry itself for up to a minute after a 5xx; this backoff decides instead.
        // Nothing of value is lost: a token request went out, so no cached token was usable.
        app.clearCache();
        const delayMs = Math.floor(random() * Math.min(8_000, baseDelayMs * 2 ** (attempt - 1)));
        logger?.info({ attempt, delayMs, graphCode: err.graphCode }, 'Entra refused the token request as temporary; retrying');
        await sleep(delayMs);
      }
    }
  };

  const acquireOnce = async (): Promise<string> => {
    try {
      const result = await app.acquireTokenByClientCredential({ scopes });
      if (result === null || typeof result.accessToken !== 'string' || result.accessToken === '') {
        throw new GraphError('auth_failed', 'Microsoft Entra returned no access token: check the ENTRA_* settings of this connection.', {
          graphCode: 'no_token',
        });
      }
      return result.accessToken;
    } catch (err) {
      const failure = authErrorFrom(err);
      logger?.warn({ kind: failure.kind, graphCode: failure.graphCode, status: failure.status }, 'token acquisition failed');
      throw failure;
    }
  };

  return {
    getToken(signal?: AbortSignal): Promise<string> {
      if (signal?.aborted === true) return Promise.reject(abortedError());
      if (inFlight === undefined) {
        inFlight = acquire().finally(() => {
          inFlight = undefined;
        });
      }
      const shared = inFlight;
      if (signal === undefined) return shared;
      // A caller that gives up does not cancel the shared acquisition other callers wait on.
      return new Promise<string>((resolve, reject) => {
        const onAbort = (): void => reject(abortedError());
        signal.addEventListener('abort', onAbort, { once: true });
        shared.then(
          (token) => {
            signal.removeEventListener('abort', onAbort);
            resolve(token);
          },
          (err: unknown) => {
            signal.removeEventListener('abort', onAbort);
            reject(err);
          },
        );
      });
    },
  };
}
