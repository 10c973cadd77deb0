/** The simulator's public surface, used by tests, benchmarks, `serve` (demo tenant) and the CLI. */

export interface SimulatorOptions {
  /** Loopback port; 0 (default) picks a free one. */
  readonly port?: number;
  readonly host?: string;
  /** Generated tenant size (default 200). Ignored with tenantFile. */
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
  /** Roles granted to the client's tokens (default: Read.All and ReadWrite.All). */
  readonly roles?: readonly string[];
  /** Access token lifetime in seconds (default 3600). */
  readonly tokenLifetimeSeconds?: number;
  /** Throttling windows; defaults are Intune's published limits. */
  readonly throttle?: { readonly requestsPer20s?: number; readonly writesPer20s?: number };
}

export interface FaultSpec {
  /** Fraction (0..1) of Graph requests answered 500/502. */
  readonly errorRate?: number;
  /** Fraction answered 503 with Retry-After. */
  readonly unavailableRate?: number;
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
}

export interface SimulatorHandle {
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** https://127.0.0.1:PORT : token endpoint host (POST {loginUrl}/{tenant}/oauth2/v2.0/token). */
  readonly loginUrl: string;
  /** https://127.0.0.1:PORT : Graph host (GET {graphUrl}/v1.0/deviceManagement/managedDevices). */
  readonly graphUrl: string;
  /** PEM file of the CA that signed the simulator's server certificate. */
  readonly caFile: string;
  readonly caPem: string;
  /** The variables the connector needs to use this simulator, as `export NAME=value` lines print them. */
  readonly env: Readonly<Record<string, string>>;
  /** The devices served, raw Graph shape including PII (tests search outputs for these values). */
  readonly devices: readonly Readonly<Record<string, unknown>>[];
  /** Every request received, in order (token requests included). */
  requests(): readonly RecordedRequest[];
  clearRequests(): void;
  setFaults(faults: FaultSpec): void;
  /** Replace or mutate a served device (tests: flip compliance state, move last sync). */
  updateDevice(id: string, patch: Readonly<Record<string, unknown>>): void;
  close(): Promise<void>;
}
