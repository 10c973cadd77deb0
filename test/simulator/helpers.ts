/** Real clients for the simulator tests: undici trusting the simulator's CA, and msal-node wired to it. */
import { ConfidentialClientApplication, type INetworkModule, type NetworkResponse } from '@azure/msal-node';
import { Agent, fetch } from 'undici';
import type { SimulatorHandle } from '../../src/simulator/index.js';

export interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** Parsed body, or undefined when it is not JSON. */
  readonly json: unknown;
}

const agents = new WeakMap<SimulatorHandle, Agent>();

export function agentFor(sim: Pick<SimulatorHandle, 'caPem'> & object): Agent {
  let agent = agents.get(sim as SimulatorHandle);
  if (agent === undefined) {
    agent = new Agent({ connect: { ca: sim.caPem } });
    agents.set(sim as SimulatorHandle, agent);
  }
  return agent;
}

export async function request(
  sim: SimulatorHandle,
  pathOrUrl: string,
  init: { method?: string; headers?: Record<string, string>; body?: string; token?: string } = {},
): Promise<RawResponse> {
  const url = pathOrUrl.startsWith('https://') ? pathOrUrl : `${sim.graphUrl}${pathOrUrl}`;
  const headers: Record<string, string> = { ...init.headers };
  if (init.token !== undefined) headers['authorization'] = `Bearer ${init.token}`;
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body !== undefined ? { body: init.body } : {}),
    dispatcher: agentFor(sim),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers as unknown as Headers, text, json };
}

/** msal-node 7 fetches with the global fetch; this network module uses undici with the simulator's CA instead. */
export function networkClientFor(sim: SimulatorHandle): INetworkModule {
  const dispatcher = agentFor(sim);
  const send = async <T>(url: string, method: 'GET' | 'POST', options?: { headers?: Record<string, string>; body?: string }): Promise<NetworkResponse<T>> => {
    const res = await fetch(url, { method, headers: options?.headers ?? {}, ...(method === 'POST' ? { body: options?.body ?? '' } : {}), dispatcher });
    const headers: Record<string, string> = {};
    res.headers.forEach((value, key) => {
      headers[key] = value;
    });
    return { status: res.status, headers, body: (await res.json()) as T };
  };
  return {
    sendGetRequestAsync: (url, options) => send(url, 'GET', options),
    sendPostRequestAsync: (url, options) => send(url, 'POST', options),
  };
}

export function msalFor(
  sim: SimulatorHandle,
  overrides: { clientId?: string; clientSecret?: string; tenantId?: string; clientCertificate?: { thumbprintSha256: string; privateKey: string; x5c?: string }; authorityMetadata?: string; knownAuthorities?: boolean } = {},
): ConfidentialClientApplication {
  const host = new URL(sim.loginUrl).host;
  const credential =
    overrides.clientCertificate !== undefined ? { clientCertificate: overrides.clientCertificate } : { clientSecret: overrides.clientSecret ?? sim.clientSecret };
  return new ConfidentialClientApplication({
    auth: {
      clientId: overrides.clientId ?? sim.clientId,
      authority: `${sim.loginUrl}/${overrides.tenantId ?? sim.tenantId}`,
      ...(overrides.knownAuthorities === false ? {} : { knownAuthorities: [host] }),
      ...(overrides.authorityMetadata !== undefined ? { authorityMetadata: overrides.authorityMetadata } : {}),
      ...credential,
    },
    system: { networkClient: networkClientFor(sim) },
  });
}

export async function acquireToken(sim: SimulatorHandle, overrides: Parameters<typeof msalFor>[1] = {}): Promise<string> {
  const result = await msalFor(sim, overrides).acquireTokenByClientCredential({ scopes: [`${sim.graphUrl}/.default`] });
  if (result === null) throw new Error('msal returned no token');
  return result.accessToken;
}
