/**
 * The one HTTPS stack both halves of the client use: Graph requests and MSAL's token requests go
 * through an undici Agent that trusts the system roots plus, when configured, INTUNE_CA_FILE (the
 * simulator's CA, or a TLS-inspecting proxy's). Node's global agent and global fetch are left
 * alone, so the rest of the process keeps its own trust settings.
 */
import fs from 'node:fs';
import tls from 'node:tls';
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';
import { Agent, fetch as undiciFetch } from 'undici';
import { ConfigError } from '../../config/index.js';
import { defined } from '../../common/values.js';

export interface Transport {
  readonly dispatcher: Agent;
  close(): Promise<void>;
}

/** Reads a PEM CA bundle, or stops with a message that names the variable and the fix. */
export function readCaFile(caFile: string): string {
  let pem: string;
  try {
    pem = fs.readFileSync(caFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([`INTUNE_CA_FILE names ${caFile}, which cannot be read (${code}); point it at a readable PEM CA bundle or unset it`]);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError([`INTUNE_CA_FILE names ${caFile}, which holds no PEM certificate (-----BEGIN CERTIFICATE-----); point it at the CA bundle`]);
  }
  return pem;
}

export function createTransport(options: { readonly caPem?: string; readonly connectTimeoutMs: number }): Transport {
  // Built once: handing `ca` to every connection would re-parse the whole root store each time.
  // The CA file is trusted in addition to the system roots, not instead: a proxy's CA must not
  // cut the client off from hosts the proxy passes through untouched.
  const secureContext =
    options.caPem !== undefined ? tls.createSecureContext({ ca: [...tls.rootCertificates, options.caPem] }) : undefined;
  const dispatcher = new Agent({
    connect: {
      timeout: options.connectTimeoutMs,
      ...defined({ secureContext }),
    },
    keepAliveTimeout: 10_000,
  });
  return {
    dispatcher,
    close: () => dispatcher.close(),
  };
}

/** Thrown to MSAL when it tries to reach a host other than the configured login host. */
export class ForeignAuthorityError extends Error {
  override readonly name = 'ForeignAuthorityError';
}

/**
 * MSAL's network module over the shared Agent. It only talks to the configured login origin:
 * with knownAuthorities and authorityMetadata set, MSAL has no reason to reach anywhere else,
 * and refusing here makes "no instance discovery calls to the internet" a guarantee rather than
 * a hope.
 */
export function createMsalNetworkModule(options: {
  readonly transport: Transport;
  readonly loginOrigin: string;
  readonly timeoutMs: number;
  readonly onTokenRequest?: () => void;
}): INetworkModule {
  const send = async <T>(method: 'GET' | 'POST', url: string, request: NetworkRequestOptions | undefined, timeoutMs: number): Promise<NetworkResponse<T>> => {
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      throw new ForeignAuthorityError('MSAL asked for an unparsable URL; refused.');
    }
    if (origin !== options.loginOrigin) {
      throw new ForeignAuthorityError(`MSAL tried to reach ${origin}, which is not the configured login host; refused.`);
    }
    if (method === 'POST') options.onTokenRequest?.();
    const response = await undiciFetch(url, {
      method,
      headers: request?.headers ?? {},
      ...(method === 'POST' ? { body: request?.body ?? '' } : {}),
      dispatcher: options.transport.dispatcher,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const headers: Record<string, string> = {};
    response.headers.forEach((value, key) => {
      headers[key] = value;
    });
    const text = await response.text();
    let body: T;
    try {
      body = JSON.parse(text) as T;
    } catch {
      // MSAL reads error fields from the body; an unreadable one becomes a generic server error.
      body = { error: 'invalid_response', error_description: 'The login host answered with a body that is not JSON.' } as T;
    }
    return { headers, body, status: response.status };
  };
  return {
    sendGetRequestAsync: <T>(url: string, request?: NetworkRequestOptions, timeout?: number) =>
      send<T>('GET', url, request, timeout ?? options.timeoutMs),
    sendPostRequestAsync: <T>(url: string, request?: NetworkRequestOptions) => send<T>('POST', url, request, options.timeoutMs),
  };
}
