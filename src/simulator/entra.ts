/**
 * The simulated Entra tenant: the v2.0 token endpoint (client credentials with a client secret or
 * a certificate-signed client assertion), the discovery documents msal-node may ask for, a JWKS,
 * and the access tokens Graph accepts (RS256, signed by a key generated at start).
 *
 * Errors follow Entra's body, `{error, error_description, error_codes, timestamp, trace_id,
 * correlation_id, error_uri}`, with the AADSTS codes Entra uses for each mistake, so a client's
 * handling of a wrong secret or tenant can be tested without a real tenant.
 */
import { X509Certificate, createHash, randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT, compactVerify, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, errors as joseErrors } from 'jose';
import type { JWK } from 'jose';
import { SimulatorError } from './errors.js';
import { BodyTooLargeError, readBody, send, type Exchange } from './http.js';
import type { MintTokenOptions } from './types.js';
import { defined } from '../common/values.js';

export const ROLE_READ = 'DeviceManagementManagedDevices.Read.All';
export const ROLE_READ_WRITE = 'DeviceManagementManagedDevices.ReadWrite.All';
export const ROLE_PRIVILEGED = 'DeviceManagementManagedDevices.PrivilegedOperations.All';
export const DEFAULT_ROLES: readonly string[] = Object.freeze([ROLE_READ, ROLE_READ_WRITE, ROLE_PRIVILEGED]);

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
type VerifyKey = Awaited<ReturnType<typeof generateKeyPair>>['publicKey'];

interface RegisteredCertificate {
  readonly publicKey: KeyObject;
  readonly x5t: string;
  readonly x5tS256: string;
}

export interface EntraSettings {
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly roles: readonly string[];
  readonly tokenLifetimeSeconds: number;
  readonly clientCertificatePems: readonly string[];
}

export interface AccessTokenClaims {
  readonly aud: string;
  readonly iss: string;
  readonly tid: string;
  readonly appid: string;
  readonly roles: readonly string[];
  readonly exp: number;
  readonly nbf: number;
}

export type TokenCheck =
  | { readonly ok: true; readonly claims: AccessTokenClaims }
  | { readonly ok: false; readonly message: string };

export interface MintOptions extends MintTokenOptions {
  /** 1: client secret, 2: certificate (Entra's appidacr). */
  readonly appidacr?: '1' | '2';
}

/** The tenant's OpenID configuration as Entra shapes it, every endpoint pointing back at `baseUrl`. */
export function openIdDocument(baseUrl: string, tenantId: string): Record<string, unknown> {
  const host = new URL(baseUrl).host;
  const t = tenantId;
  return {
    token_endpoint: `${baseUrl}/${t}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${baseUrl}/${t}/discovery/v2.0/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer: `${baseUrl}/${t}/v2.0`,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${baseUrl}/oidc/userinfo`,
    authorization_endpoint: `${baseUrl}/${t}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${baseUrl}/${t}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${baseUrl}/${t}/oauth2/v2.0/logout`,
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'tid', 'ver', 'at_hash', 'c_hash'],
    kerberos_endpoint: `${baseUrl}/${t}/kerberos`,
    tenant_region_scope: 'NA',
    cloud_instance_name: host,
    cloud_graph_host_name: host,
    msgraph_host: host,
    rbac_url: baseUrl,
  };
}

/** Entra's instance discovery answer, naming the simulator's host as its only alias. */
export function instanceDiscoveryDocument(baseUrl: string, tenantId: string): Record<string, unknown> {
  const host = new URL(baseUrl).host;
  return {
    tenant_discovery_endpoint: `${baseUrl}/${tenantId}/v2.0/.well-known/openid-configuration`,
    'api-version': '1.1',
    metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
  };
}

function base64url(buf: Buffer): string {
  return buf.toString('base64url');
}

function parseCertificate(pem: string, index: number): RegisteredCertificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    throw new SimulatorError('invalid_options', `clientCertificates[${index}] is not a PEM certificate; pass { pem: '-----BEGIN CERTIFICATE-----...' }`);
  }
  return {
    publicKey: cert.publicKey,
    x5t: base64url(createHash('sha1').update(cert.raw).digest()),
    x5tS256: base64url(createHash('sha256').update(cert.raw).digest()),
  };
}

/** Entra's timestamp format in error bodies: "2025-06-02 08:15:42Z". */
function entraTimestamp(): string {
  return new Date().toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

export class EntraTenant {
  private signingKey!: SigningKey;
  private verifyKey!: VerifyKey;
  private jwk!: JWK;
  private untrusted: Promise<SigningKey> | undefined;
  private readonly kid = base64url(createHash('sha256').update(randomUUID()).digest()).slice(0, 27);
  private readonly certificates: readonly RegisteredCertificate[];
  private readonly verified = new Map<string, AccessTokenClaims>();
  private baseUrl = '';

  private constructor(private readonly settings: EntraSettings) {
    this.certificates = settings.clientCertificatePems.map(parseCertificate);
  }

  static async create(settings: EntraSettings): Promise<EntraTenant> {
    const tenant = new EntraTenant(settings);
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    tenant.signingKey = privateKey;
    tenant.verifyKey = publicKey;
    tenant.jwk = { ...(await exportJWK(publicKey)), kid: tenant.kid, use: 'sig', alg: 'RS256', kty: 'RSA' };
    return tenant;
  }

  /** Set once the server listens: every URL in documents and tokens points back at it. */
  setBaseUrl(baseUrl: string): void {
    this.baseUrl = baseUrl;
  }

  get tokenEndpoint(): string {
    return `${this.baseUrl}/${this.settings.tenantId}/oauth2/v2.0/token`;
  }

  get issuer(): string {
    return `https://sts.windows.net/${this.settings.tenantId}/`;
  }

  // ---- discovery -------------------------------------------------------------------------

  /** GET /{tenant}/v2.0/.well-known/openid-configuration */
  openIdConfiguration(ex: Exchange, tenant: string): void {
    if (!this.isTenant(tenant)) return this.tenantNotFound(ex, tenant, 'invalid_tenant');
    this.sendJson(ex, 200, openIdDocument(this.baseUrl, this.settings.tenantId));
  }

  /** GET /common/discovery/instance?api-version=1.1&authorization_endpoint=... */
  instanceDiscovery(ex: Exchange): void {
    let tenant = this.settings.tenantId;
    const endpoint = ex.url.searchParams.get('authorization_endpoint');
    if (endpoint !== null) {
      try {
        const first = new URL(endpoint).pathname.split('/').filter((s) => s !== '')[0];
        if (first !== undefined) tenant = first;
      } catch {
        // An unparsable endpoint falls back to the simulated tenant, as the document is the same.
      }
    }
    this.sendJson(ex, 200, instanceDiscoveryDocument(this.baseUrl, tenant));
  }

  /** GET /{tenant}/discovery/v2.0/keys */
  jwks(ex: Exchange): void {
    this.sendJson(ex, 200, { keys: [this.jwk] });
  }

  // ---- token endpoint --------------------------------------------------------------------

  /** POST /{tenant}/oauth2/v2.0/token */
  async token(ex: Exchange, tenant: string): Promise<void> {
    let raw: string;
    try {
      raw = await readBody(ex.req);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return this.error(ex, 413, 'invalid_request', 900144, 'The request body is too large.');
      throw err;
    }
    if (!this.isTenant(tenant)) return this.tenantNotFound(ex, tenant, 'invalid_request');
    const contentType = (ex.req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (contentType !== 'application/x-www-form-urlencoded') {
      return this.error(ex, 400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'. Send the form as application/x-www-form-urlencoded.");
    }
    const form = new URLSearchParams(raw);
    const grantType = form.get('grant_type');
    if (grantType === null || grantType === '') {
      return this.error(ex, 400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
    }
    if (grantType !== 'client_credentials') {
      return this.error(ex, 400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType}'.`);
    }

    // client_secret_basic: Entra accepts the client id and secret in an Authorization header too.
    let clientId = form.get('client_id');
    let clientSecret = form.get('client_secret');
    const basic = /^Basic\s+(.+)$/i.exec(ex.req.headers.authorization ?? '');
    if (basic?.[1] !== undefined) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        // Broken percent-encoding is taken as written: it then names no known client or secret.
        const decode = (part: string): string => {
          try {
            return decodeURIComponent(part);
          } catch {
            return part;
          }
        };
        clientId ??= decode(decoded.slice(0, colon));
        clientSecret ??= decode(decoded.slice(colon + 1));
      }
    }
    if (clientId === null || clientId === '') {
      return this.error(ex, 400, 'invalid_request', 900144, "The request body must contain the following parameter: 'client_id'.");
    }
    if (clientId.toLowerCase() !== this.settings.clientId.toLowerCase()) {
      return this.error(
        ex,
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${this.settings.tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      );
    }

    const assertion = form.get('client_assertion');
    const assertionType = form.get('client_assertion_type');
    let appidacr: '1' | '2';
    if (assertion !== null && clientSecret !== null) {
      return this.error(ex, 400, 'invalid_request', 90014, 'Send either client_secret or client_assertion, not both.');
    }
    if (assertion !== null) {
      if (assertionType !== CLIENT_ASSERTION_TYPE) {
        return this.error(ex, 400, 'invalid_request', 900144, `The request body must contain the following parameter: 'client_assertion_type' with the value '${CLIENT_ASSERTION_TYPE}'.`);
      }
      const problem = await this.checkAssertion(assertion, clientId);
      if (problem !== undefined) return this.error(ex, problem.status, 'invalid_client', problem.code, problem.message);
      appidacr = '2';
    } else if (clientSecret !== null) {
      if (clientSecret !== this.settings.clientSecret) {
        return this.error(
          ex,
          401,
          'invalid_client',
          7000215,
          `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${this.settings.clientId}'.`,
        );
      }
      appidacr = '1';
    } else {
      return this.error(ex, 401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    }

    const scope = form.get('scope');
    if (scope === null || scope.trim() === '') {
      return this.error(ex, 400, 'invalid_request', 900144, "The request body must contain the following parameter: 'scope'.");
    }
    const scopes = scope.trim().split(/\s+/);
    if (scopes.length !== 1) {
      return this.error(ex, 400, 'invalid_scope', 70011, `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid. Client credential flows take exactly one scope, {resource}/.default.`);
    }
    const single = scopes[0] ?? '';
    if (!single.endsWith('/.default')) {
      return this.error(
        ex,
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${single} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
    }
    const resource = single.slice(0, -'/.default'.length).replace(/\/+$/, '');
    const graphResources = [this.baseUrl, '00000003-0000-0000-c000-000000000000'];
    if (!graphResources.includes(resource)) {
      return this.error(
        ex,
        400,
        'invalid_resource',
        500011,
        `The resource principal named ${resource} was not found in the tenant named ${this.settings.tenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant. Use ${this.baseUrl}/.default.`,
      );
    }

    const accessToken = await this.mint({ appidacr });
    const lifetime = this.settings.tokenLifetimeSeconds;
    send(ex, 200, JSON.stringify({ token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken }), this.headers(ex));
  }

  private async checkAssertion(assertion: string, clientId: string): Promise<{ status: number; code: number; message: string } | undefined> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(assertion);
    } catch {
      return { status: 400, code: 50027, message: 'JWT token is invalid or malformed.' };
    }
    const thumbprint = header['x5t#S256'] ?? header.x5t;
    const candidates =
      typeof thumbprint === 'string'
        ? this.certificates.filter((c) => c.x5tS256 === thumbprint || c.x5t === thumbprint)
        : this.certificates;
    if (candidates.length === 0) {
      return {
        status: 401,
        code: 700027,
        message: `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${typeof thumbprint === 'string' ? thumbprint : 'none'}'] Register the certificate on the app registration.`,
      };
    }
    let lastProblem: { status: number; code: number; message: string } | undefined;
    for (const cert of candidates) {
      try {
        await jwtVerify(assertion, cert.publicKey, {
          algorithms: ['RS256', 'PS256', 'ES256'],
          audience: [this.tokenEndpoint, `${this.baseUrl}/${this.settings.tenantId}/v2.0`],
          issuer: clientId,
          subject: clientId,
          requiredClaims: ['exp', 'aud', 'iss', 'sub'],
          clockTolerance: 300,
        });
        return undefined;
      } catch (err) {
        if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
          lastProblem = { status: 401, code: 700027, message: 'Client assertion failed signature validation.' };
        } else if (err instanceof joseErrors.JWTExpired) {
          return { status: 401, code: 700024, message: 'Client assertion is not within its valid time range. Create a new assertion with a current exp.' };
        } else if (err instanceof joseErrors.JWTClaimValidationFailed) {
          if (err.claim === 'aud') return { status: 401, code: 700212, message: `Client assertion audience claim does not match the token endpoint. Set aud to ${this.tokenEndpoint}.` };
          if (err.claim === 'iss' || err.claim === 'sub') return { status: 401, code: 700021, message: "Client assertion application identifier doesn't match 'client_id' parameter." };
          if (err.claim === 'nbf') return { status: 401, code: 700024, message: 'Client assertion is not within its valid time range.' };
          return { status: 400, code: 50027, message: `JWT token is invalid or malformed: the ${err.claim} claim is missing or invalid.` };
        } else {
          return { status: 400, code: 50027, message: 'JWT token is invalid or malformed.' };
        }
      }
    }
    return lastProblem;
  }

  // ---- tokens Graph accepts --------------------------------------------------------------

  async mint(options: MintOptions = {}): Promise<string> {
    const nowSeconds = Math.floor(Date.now() / 1000);
    const lifetime = options.expiresInSeconds ?? this.settings.tokenLifetimeSeconds;
    const tenantId = options.tenantId ?? this.settings.tenantId;
    const key = options.untrustedKey === true ? await this.untrustedKey() : this.signingKey;
    const oid = this.servicePrincipalId();
    return new SignJWT({
      aud: options.audience ?? new URL(this.baseUrl).origin,
      iss: `https://sts.windows.net/${tenantId}/`,
      idp: `https://sts.windows.net/${tenantId}/`,
      app_displayname: 'intune-connector (simulated)',
      appid: options.appId ?? this.settings.clientId,
      appidacr: options.appidacr ?? '1',
      idtyp: 'app',
      oid,
      rh: `0.${base64url(createHash('sha256').update(tenantId).digest()).slice(0, 40)}.`,
      roles: [...(options.roles ?? this.settings.roles)],
      sub: oid,
      tenant_region_scope: 'NA',
      tid: tenantId,
      uti: base64url(createHash('sha256').update(randomUUID()).digest()).slice(0, 22),
      ver: '1.0',
      wids: ['0997a1d0-0d1d-4acb-b408-d5ca73121e90'],
      xms_tcdt: nowSeconds - 86_400 * 400,
    })
      .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: this.kid, x5t: this.kid })
      .setIssuedAt(nowSeconds - 300)
      .setNotBefore(nowSeconds - 300)
      .setExpirationTime(nowSeconds + lifetime)
      .sign(key);
  }

  /**
   * Checks a Graph request's bearer token. Signature verification is cached per token string;
   * lifetime, audience and issuer are checked on every request, so an expiring token is noticed.
   */
  async checkAccessToken(authorization: string | undefined): Promise<TokenCheck> {
    if (authorization === undefined || authorization.trim() === '') return { ok: false, message: 'Access token is empty.' };
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    const token = match?.[1];
    if (token === undefined) return { ok: false, message: 'Access token is empty.' };
    if (token.split('.').length !== 3) return { ok: false, message: 'IDX14100: JWT is not well formed, there are no dots (.). The token needs to be in JWS or JWE Compact Serialization Format.' };
    let claims = this.verified.get(token);
    if (claims === undefined) {
      let payload: Record<string, unknown>;
      try {
        const { payload: bytes } = await compactVerify(token, this.verifyKey, { algorithms: ['RS256'] });
        payload = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
      } catch (err) {
        if (err instanceof joseErrors.JWSSignatureVerificationFailed) return { ok: false, message: 'Access token validation failure. Signature validation failed.' };
        return { ok: false, message: 'Access token validation failure. The token is malformed.' };
      }
      const roles = Array.isArray(payload['roles']) ? payload['roles'].filter((r): r is string => typeof r === 'string') : [];
      claims = {
        aud: typeof payload['aud'] === 'string' ? payload['aud'] : '',
        iss: typeof payload['iss'] === 'string' ? payload['iss'] : '',
        tid: typeof payload['tid'] === 'string' ? payload['tid'] : '',
        appid: typeof payload['appid'] === 'string' ? payload['appid'] : '',
        roles,
        exp: typeof payload['exp'] === 'number' ? payload['exp'] : 0,
        nbf: typeof payload['nbf'] === 'number' ? payload['nbf'] : 0,
      };
      if (this.verified.size >= 1024) this.verified.clear();
      this.verified.set(token, claims);
    }
    const nowSeconds = Date.now() / 1000;
    if (claims.exp <= nowSeconds) return { ok: false, message: 'Lifetime validation failed, the token is expired.' };
    if (claims.nbf > nowSeconds) return { ok: false, message: 'Lifetime validation failed, the token is not yet valid.' };
    const origin = new URL(this.baseUrl).origin;
    if (claims.aud !== origin && claims.aud !== `${origin}/` && claims.aud !== '00000003-0000-0000-c000-000000000000') {
      return { ok: false, message: 'Access token validation failure. Invalid audience.' };
    }
    if (claims.iss !== this.issuer || claims.tid !== this.settings.tenantId) return { ok: false, message: 'Access token validation failure. Invalid issuer.' };
    return { ok: true, claims };
  }

  // ---- helpers ---------------------------------------------------------------------------

  private untrustedKey(): Promise<SigningKey> {
    this.untrusted ??= generateKeyPair('RS256').then((pair) => pair.privateKey);
    return this.untrusted;
  }

  private servicePrincipalId(): string {
    const h = createHash('sha256').update(`sp:${this.settings.tenantId}:${this.settings.clientId}`).digest('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }

  private isTenant(tenant: string): boolean {
    return tenant.toLowerCase() === this.settings.tenantId.toLowerCase();
  }

  private tenantNotFound(ex: Exchange, tenant: string, error: string): void {
    this.error(
      ex,
      400,
      error,
      90002,
      `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
    );
  }

  private headers(ex: Exchange): Record<string, string> {
    return {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store, no-cache',
      pragma: 'no-cache',
      'x-ms-request-id': ex.requestId,
      ...defined({ 'client-request-id': ex.clientRequestId }),
    };
  }

  private sendJson(ex: Exchange, status: number, body: unknown): void {
    send(ex, status, JSON.stringify(body), this.headers(ex));
  }

  /** Entra's error body; the description carries the AADSTS code and the trace ids, as Entra's does. */
  error(ex: Exchange, status: number, error: string, code: number, description: string): void {
    const timestamp = entraTimestamp();
    const correlationId = ex.clientRequestId ?? randomUUID();
    this.sendJson(ex, status, {
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${ex.requestId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: ex.requestId,
      correlation_id: correlationId,
      error_uri: `${this.baseUrl}/error?code=${code}`,
    });
  }
}
