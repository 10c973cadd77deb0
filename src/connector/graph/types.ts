/**
 * The Graph client's surface as the connector and the sync runtime use it. The implementation
 * (MSAL auth, @microsoft/microsoft-graph-client, retry policy, zod response schemas) lives beside
 * this file; everything above it depends on these types only.
 */

/** A managedDevice as parsed at the boundary: the 56 v1.0 properties (see schemas.ts). */
export type ManagedDevice = Readonly<Record<string, unknown>> & {
  readonly id: string;
  readonly azureADDeviceId: string | null;
  readonly complianceState: 'unknown' | 'compliant' | 'noncompliant' | 'conflict' | 'error' | 'inGracePeriod' | 'configManager';
  readonly complianceGracePeriodExpirationDateTime: string;
  readonly lastSyncDateTime: string;
  readonly operatingSystem: string | null;
};

/** Filters the connector uses; the client turns them into a safe $filter (values are validated, quotes escaped). */
export interface DeviceFilter {
  readonly id?: string;
  readonly azureADDeviceId?: string;
  readonly operatingSystem?: string;
  readonly complianceState?: ManagedDevice['complianceState'];
  readonly serialNumber?: string;
  readonly lastSyncAfter?: string;
  /** lastSyncDateTime ge: with lastSyncBefore (lt) it makes half-open ranges that partition the tenant. */
  readonly lastSyncOnOrAfter?: string;
  readonly lastSyncBefore?: string;
}

export interface ListDevicesRequest<T = ManagedDevice> {
  readonly filter?: DeviceFilter;
  /** Page size, 1..1000 (default 1000). */
  readonly top?: number;
  readonly select?: readonly string[];
  /** Resume from a nextLink returned by an earlier page (only ever followed to the configured Graph host). */
  readonly nextLink?: string;
  readonly signal?: AbortSignal;
  /**
   * Applied to each device as it is parsed, while the page is still arriving: what it returns is
   * all the page keeps of the device (the sync redacts here, so no raw device outlives its bytes).
   */
  readonly mapDevice?: (device: ManagedDevice) => T;
  /**
   * Called as each attempt's devices start to be mapped (a retried page starts over): a mapDevice
   * that writes somewhere of its own drops what an earlier attempt of the page wrote.
   */
  readonly onPageStart?: () => void;
}

export interface DevicePage<T = ManagedDevice> {
  readonly devices: readonly T[];
  readonly nextLink?: string;
  readonly requestId: string;
}

export interface GraphResult<T> {
  readonly value: T;
  /** Graph's request-id of the (last) HTTP exchange, for the audit record. */
  readonly requestId: string;
}

/**
 * One deviceCompliancePolicySettingState, as the connector keeps it: the setting's identifier and
 * its state. Graph's other fields (settingName, instanceDisplayName, errorDescription, userId,
 * userName, userEmail, userPrincipalName, sources, currentValue) are names, free text or personal
 * data, and are dropped when the response is parsed.
 */
export interface SettingState {
  /** e.g. "MacOSCompliancePolicy.StorageRequireEncryption"; null when Graph's value is not an identifier. */
  readonly setting: string | null;
  /** complianceStatus: unknown, notApplicable, compliant, remediated, nonCompliant, error, conflict, notAssigned. */
  readonly state: string;
}

export interface CompliancePolicyState {
  readonly id: string;
  readonly displayName: string | null;
  readonly state: string;
  readonly platformType: string | null;
  readonly settingCount: number;
  readonly version: number;
  readonly settingStates: readonly SettingState[];
}

export type DeviceAction = 'syncDevice' | 'remoteLock' | 'retire' | 'wipe';

/** Counters a sync run records. */
export interface GraphClientStats {
  readonly requests: number;
  readonly retries: number;
  readonly throttledWaits: number;
  readonly throttledWaitMs: number;
  /** All time spent waiting between attempts (throttling, backoff after failures). */
  readonly retryWaitMs?: number;
  /** Token requests sent to Entra (MSAL answers the rest from its cache). */
  readonly tokenRequests?: number;
  /** Property values Graph sent that did not fit the schema and were replaced by fail-closed defaults. */
  readonly coercedValues?: number;
}

/** What a pre-flight learns from one token and one small read (see GraphClient.probe). */
export interface GraphProbe {
  readonly token: {
    readonly acquiredMs: number;
    /** Application permissions (app roles) the token carries. */
    readonly roles: readonly string[];
    readonly issuedAt: string | null;
    readonly expiresAt: string | null;
  };
  readonly graph: {
    readonly latencyMs: number;
    readonly requestId: string;
    /** `@odata.count` of the tenant's managed devices, when Graph sent it. */
    readonly deviceCount: number | null;
    /** Graph's Date header: the clock to compare with. */
    readonly serverDate: string | null;
  };
}

export interface GraphClient {
  /** One page. */
  listDevicesPage<T>(request: ListDevicesRequest<T> & { readonly mapDevice: (device: ManagedDevice) => T }): Promise<DevicePage<T>>;
  listDevicesPage(request: ListDevicesRequest): Promise<DevicePage>;
  /** Every page, one in memory at a time. */
  listDevices<T>(request: Omit<ListDevicesRequest<T>, 'nextLink'> & { readonly mapDevice: (device: ManagedDevice) => T }): AsyncIterable<DevicePage<T>>;
  listDevices(request?: Omit<ListDevicesRequest, 'nextLink'>): AsyncIterable<DevicePage>;
  /** Throws GraphError with status 404 when no such device. */
  getDevice(id: string, options?: { readonly select?: readonly string[]; readonly signal?: AbortSignal }): Promise<GraphResult<ManagedDevice>>;
  /** Zero, one or several records (re-enrolment) for an Entra device id. */
  findDevicesByAzureADDeviceId(azureADDeviceId: string, options?: { readonly signal?: AbortSignal }): Promise<GraphResult<readonly ManagedDevice[]>>;
  getCompliancePolicyStates(id: string, options?: { readonly signal?: AbortSignal }): Promise<GraphResult<readonly CompliancePolicyState[]>>;
  /** POST; never retried after an ambiguous failure. Resolves on 204. */
  performDeviceAction(id: string, action: DeviceAction, options?: { readonly signal?: AbortSignal }): Promise<GraphResult<null>>;
  stats(): GraphClientStats;
  /**
   * Pre-flight: acquires a token (reading its roles and times, never returning it), then reads one
   * device id with $count. A failed token throws auth_failed; a failed read throws its GraphError
   * with `probeToken` set on it, so the roles are known even when Graph refuses.
   */
  probe(options?: { readonly signal?: AbortSignal }): Promise<GraphProbe>;
  /** Releases pooled connections; the client is not used afterwards. */
  close(): Promise<void>;
}
