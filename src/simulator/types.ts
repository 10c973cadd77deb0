/** The simulator's public surface, used by tests, benchmarks, `serve` (demo tenant) and the CLI. */
import type { GraphServiceAddress } from '../common/graph-service.js';

export interface SimulatorOptions {
  /** Loopback port; 0 (default) picks a free one. */
  readonly port?: number;
  readonly host?: string;
  /** Generated tenant size (default 200). Ignored with tenantFile (the CLI refuses both flags together). */
  readonly devices?: number;
  /** Seed of the deterministic generator (default 'intune-connector'). */
  readonly seed?: string;
  /** JSON file of managedDevice objects (Graph shape) to serve instead of generated ones. */
  readonly tenantFile?: string;
  /** Fault spec, see FaultSpec and parseFaultSpec. */
  readonly faults?: FaultSpec;
  /** Entra identities; generated defaults are fine for tests. */
  readonly tenantId?: string;
  readonly clientId?: string;
  readonly clientSecret?: string;
  /**
   * Roles granted to the client's tokens (default: DeviceManagementManagedDevices.Read.All,
   * .ReadWrite.All and .PrivilegedOperations.All). Device actions need PrivilegedOperations.All,
   * as Microsoft documents for syncDevice, remoteLock, retire and wipe.
   */
  readonly roles?: readonly string[];
  /** Access token lifetime in seconds (default 3600). */
  readonly tokenLifetimeSeconds?: number;
  /** Throttling windows; defaults are Intune's published limits. */
  readonly throttle?: {
    readonly requestsPer20s?: number;
    readonly writesPer20s?: number;
    /** Sliding window length in ms (default 20000); tests shorten it. */
    readonly windowMs?: number;
  };
  /**
   * Certificates registered on the app for client-assertion auth (PEM, `-----BEGIN CERTIFICATE-----`).
   * A token request signed by the matching private key is accepted like the client secret.
   */
  readonly clientCertificates?: readonly { readonly pem: string }[];
  /** Reference time the generated tenant's dates are relative to (default: start time). */
  readonly now?: Date | number;
  /** Where to write the CA certificate (default: a fresh temp directory). Removed on close. */
  readonly caFile?: string;
  /** Oldest entries of the request log are dropped beyond this many (default 100000). */
  readonly requestLogLimit?: number;
}

export interface FaultSpec {
  /** Fraction (0..1) of Graph requests answered 500/502. */
  readonly errorRate?: number;
  /** Fraction answered 503 with Retry-After. */
  readonly unavailableRate?: number;
  /** Retry-After of those 503s, in seconds; decimals are sent as given ("1.5"). Default 1. */
  readonly retryAfterSeconds?: number;
  /** Added latency per Graph request, in ms. */
  readonly latencyMs?: number;
  /** Fraction of connections destroyed before a response. */
  readonly resetRate?: number;
  /** Fraction of list pages truncated mid-JSON. */
  readonly truncateRate?: number;
  /** Fraction of list pages answered with syntactically broken JSON. */
  readonly malformedRate?: number;
  /** When true, nextLinks point at a foreign host. */
  readonly foreignNextLink?: boolean;
  /** Base URL of that foreign host (default https://graph.foreign.invalid). */
  readonly foreignNextLinkBase?: string;
  /** 429 Retry-After with one decimal place ("1.5") instead of whole seconds, as Graph sometimes sends. */
  readonly decimalRetryAfter?: boolean;
  /** Fraction of token requests answered 503 temporarily_unavailable (Graph faults never touch tokens). */
  readonly tokenErrorRate?: number;
  /**
   * The latency model of list pages: each list request waits a time drawn uniformly from
   * [minMs, maxMs] before its page is computed (e.g. 800-2500 for a page of 1000, as large tenants
   * see), whatever the page holds. Off by default; `latencyMs` still adds to every request.
   */
  readonly pageLatencyMs?: { readonly minMs: number; readonly maxMs: number };
  /** Devices that check in (lastSyncDateTime becomes now) each time a list page is served: a tenant alive during a sync. */
  readonly checkinsPerPage?: number;
  /** List requests with a $filter are answered 400, as a Graph that does not support the filter. */
  readonly refuseFilter?: boolean;
}

/** GET /_simulator/stats on the Graph host: Graph requests received since start or the last reset. */
export interface SimulatorStats {
  /** Graph requests (v1.0 and beta paths), throttled and failed ones included. */
  readonly total: number;
  /** By "METHOD /path-template", e.g. "GET /v1.0/deviceManagement/managedDevices/{id}". */
  readonly requests: Readonly<Record<string, number>>;
  /** Graph answers by HTTP status ("200", "429", ...); "0" for a connection reset. */
  readonly statuses: Readonly<Record<string, number>>;
  /** Token requests to the Entra endpoint (not Graph requests, counted apart). */
  readonly tokenRequests: number;
  /** Devices moved to "now" by the checkin fault or checkIn(). */
  readonly checkins: number;
}

export interface RecordedRequest {
  readonly method: string;
  /** Path and query as received, e.g. /v1.0/deviceManagement/managedDevices?$top=1000 */
  readonly url: string;
  readonly status: number;
  readonly time: string;
  /** Set for device actions: syncDevice, remoteLock, retire, wipe. */
  readonly action?: string;
  readonly deviceId?: string;
  /** token (Entra token endpoint), metadata (discovery, JWKS) or graph. */
  readonly kind?: 'token' | 'metadata' | 'graph';
  /** Whether the request carried an Authorization header (never its value). */
  readonly authorization?: boolean;
  /** The client-request-id header the caller sent, if any. */
  readonly clientRequestId?: string;
}

/** Claims of an access token minted directly by the test (see SimulatorHandle.mintToken). */
export interface MintTokenOptions {
  /** Seconds until expiry; negative for an already expired token (default: tokenLifetimeSeconds). */
  readonly expiresInSeconds?: number;
  /** Default: the Graph URL. */
  readonly audience?: string;
  /** Default: the configured roles. */
  readonly roles?: readonly string[];
  /** Default: the simulated tenant. */
  readonly tenantId?: string;
  /** Default: the simulated client id (another app has its own throttling budget). */
  readonly appId?: string;
  /** Sign with a key the simulator does not trust (a forged token). */
  readonly untrustedKey?: boolean;
}

export interface SimulatorHandle extends GraphServiceAddress {
  readonly caPem: string;
  /** The variables the connector needs to use this simulator, as `export NAME=value` lines print them. */
  readonly env: Readonly<Record<string, string>>;
  /** The devices served, raw Graph shape including PII (tests search outputs for these values). */
  readonly devices: readonly Readonly<Record<string, unknown>>[];
  /** Every request received, in order (token requests included). */
  requests(): readonly RecordedRequest[];
  clearRequests(): void;
  /** The counters GET /_simulator/stats answers; resetStats() (or DELETE /_simulator/stats) zeroes them. */
  stats(): SimulatorStats;
  resetStats(): void;
  /** Devices check in now: their lastSyncDateTime becomes the current time. Returns their ids. */
  checkIn(count: number): string[];
  setFaults(faults: FaultSpec): void;
  /** Replace or mutate a served device (tests: flip compliance state, move last sync). */
  updateDevice(id: string, patch: Readonly<Record<string, unknown>>): void;
  /** An access token as the token endpoint would issue it, with overrides for negative tests. */
  mintToken(options?: MintTokenOptions): Promise<string>;
  close(): Promise<void>;
}
