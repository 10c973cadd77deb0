/**
 * The Graph + Entra tenant simulator: HTTPS on loopback with a CA generated at start, Entra's
 * v2.0 token endpoint, Graph v1.0 deviceManagement/managedDevices, Intune's throttling, faults on
 * demand, and a deterministic tenant generator. Tests, benchmarks, `serve` (the labelled demo
 * tenant when no Entra credentials are configured) and `intune-connector simulator` use it.
 *
 * Using it from msal-node (7.x) — what the Graph client needs to do:
 *
 *   const sim = await startSimulator({ devices: 500 });
 *   const host = new URL(sim.loginUrl).host;                    // "127.0.0.1:PORT"
 *   const agent = new undici.Agent({ connect: { ca: sim.caPem } });
 *   const networkClient: INetworkModule = {                      // msal-node 7 uses global fetch and
 *     async sendGetRequestAsync(url, options) {                  // has no CA option of its own, so
 *       const r = await undici.fetch(url, { headers: options?.headers, dispatcher: agent });
 *       return { status: r.status, headers: Object.fromEntries(r.headers), body: await r.json() };
 *     },
 *     async sendPostRequestAsync(url, options) {                 // a custom INetworkModule trusts the CA
 *       const r = await undici.fetch(url, { method: 'POST', headers: options?.headers, body: options?.body, dispatcher: agent });
 *       return { status: r.status, headers: Object.fromEntries(r.headers), body: await r.json() };
 *     },
 *   };
 *   const app = new ConfidentialClientApplication({
 *     auth: {
 *       clientId: sim.clientId,
 *       clientSecret: sim.clientSecret,                          // or clientCertificate, see below
 *       authority: `${sim.loginUrl}/${sim.tenantId}`,
 *       knownAuthorities: [host],                                // no instance discovery
 *     },
 *     system: { networkClient },
 *   });
 *   await app.acquireTokenByClientCredential({ scopes: [`${sim.graphUrl}/.default`] });
 *
 * With knownAuthorities msal-node fetches `{authority}/v2.0/.well-known/openid-configuration`
 * once; pass `authorityMetadata: simulatorAuthorityMetadata(sim)` to skip that call too.
 * Without knownAuthorities, msal-node asks login.microsoftonline.com for instance discovery
 * (whatever the authority's host): pass `cloudDiscoveryMetadata: simulatorCloudDiscoveryMetadata(sim)`
 * instead. The simulator also answers `/common/discovery/instance` itself, for clients that ask
 * the authority's host. Discovery calls show in `requests()` with kind 'metadata'; token
 * requests have kind 'token' and Graph requests kind 'graph'.
 *
 * Certificate credentials: register the certificate with `clientCertificates: [{ pem }]` and give
 * msal-node `clientCertificate: { thumbprintSha256, privateKey, x5c }`; the simulator verifies
 * the assertion's signature against the registered certificate and its aud (the token
 * endpoint), iss and sub (the client id) and exp. `createClientCertificate()` makes a pair.
 *
 * Trusting the CA elsewhere: undici `new Agent({ connect: { ca: sim.caPem } })`, node:https
 * `{ ca: sim.caPem }`, or NODE_EXTRA_CA_CERTS=sim.caFile for a child process.
 *
 * Dates in the generated tenant are relative to the simulator's start (or `now`), so a stale
 * device stays stale: see generator.ts.
 */
export { startSimulator, exportLine, DEFAULT_DEVICES, DEFAULT_SEED } from './server.js';
export { generateTenant, FORCED_MIN_DEVICES, type GenerateOptions } from './generator.js';
export { parseFaultSpec, FAULT_SPEC_HELP } from './faults.js';
export { SimulatorError, type SimulatorErrorCode } from './errors.js';
export { loadTenantFile, devicesFromJson } from './tenant-file.js';
export { compileFilter, FilterError } from './filter.js';
export { createClientCertificate, simulatorAuthorityMetadata, simulatorCloudDiscoveryMetadata, type ClientCertificate } from './credentials.js';
export { MANAGED_DEVICE_PROPERTIES, LIST_DEFAULTS, NO_GRACE_PERIOD, type PropertySpec } from './properties.js';
export { DEFAULT_ROLES, ROLE_READ, ROLE_READ_WRITE, ROLE_PRIVILEGED } from './entra.js';
export type { FaultSpec, MintTokenOptions, RecordedRequest, SimulatorHandle, SimulatorOptions, SimulatorStats } from './types.js';
