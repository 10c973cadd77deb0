/**
 * The 56 v1.0 managedDevice properties in the order Graph serialises them, with their EDM types,
 * nullability, enum members and PII flag, taken from Microsoft's published metadata (the copy in
 * specs/graph/managedDevice.v1.json; test/simulator checks the two agree). Embedded rather than
 * read from disk so the simulator works from an installed package.
 */

export type PropertyType =
  | 'Edm.String'
  | 'Edm.Boolean'
  | 'Edm.Int64'
  | 'Edm.DateTimeOffset'
  | 'enum'
  | 'complex'
  | 'collection';

export interface PropertySpec {
  readonly name: string;
  /** Kind used for validation; edmType keeps the metadata's own name. */
  readonly type: PropertyType;
  readonly edmType: string;
  readonly nullable: boolean;
  readonly pii: boolean;
  readonly enumValues?: readonly string[];
}

export const MANAGED_DEVICE_PROPERTIES: readonly PropertySpec[] = Object.freeze([
  { name: 'id', type: 'Edm.String', edmType: 'Edm.String', nullable: false, pii: false },
  { name: 'userId', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'deviceName', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'managedDeviceOwnerType', type: 'enum', edmType: 'graph.managedDeviceOwnerType', nullable: false, pii: false,
    enumValues: ['unknown', 'company', 'personal', 'unknownFutureValue'] },
  { name: 'deviceActionResults', type: 'collection', edmType: 'Collection(graph.deviceActionResult)', nullable: true, pii: false },
  { name: 'enrolledDateTime', type: 'Edm.DateTimeOffset', edmType: 'Edm.DateTimeOffset', nullable: false, pii: false },
  { name: 'lastSyncDateTime', type: 'Edm.DateTimeOffset', edmType: 'Edm.DateTimeOffset', nullable: false, pii: false },
  { name: 'operatingSystem', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: false },
  { name: 'complianceState', type: 'enum', edmType: 'graph.complianceState', nullable: false, pii: false,
    enumValues: ['unknown', 'compliant', 'noncompliant', 'conflict', 'error', 'inGracePeriod', 'configManager'] },
  { name: 'jailBroken', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: false },
  { name: 'managementAgent', type: 'enum', edmType: 'graph.managementAgentType', nullable: false, pii: false,
    enumValues: ['eas', 'mdm', 'easMdm', 'intuneClient', 'easIntuneClient', 'configurationManagerClient', 'configurationManagerClientMdm', 'configurationManagerClientMdmEas', 'unknown', 'jamf', 'googleCloudDevicePolicyController', 'microsoft365ManagedMdm', 'msSense'] },
  { name: 'osVersion', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: false },
  { name: 'easActivated', type: 'Edm.Boolean', edmType: 'Edm.Boolean', nullable: false, pii: false },
  { name: 'easDeviceId', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'easActivationDateTime', type: 'Edm.DateTimeOffset', edmType: 'Edm.DateTimeOffset', nullable: false, pii: false },
  { name: 'azureADRegistered', type: 'Edm.Boolean', edmType: 'Edm.Boolean', nullable: true, pii: false },
  { name: 'deviceEnrollmentType', type: 'enum', edmType: 'graph.deviceEnrollmentType', nullable: false, pii: false,
    enumValues: ['unknown', 'userEnrollment', 'deviceEnrollmentManager', 'appleBulkWithUser', 'appleBulkWithoutUser', 'windowsAzureADJoin', 'windowsBulkUserless', 'windowsAutoEnrollment', 'windowsBulkAzureDomainJoin', 'windowsCoManagement', 'windowsAzureADJoinUsingDeviceAuth', 'appleUserEnrollment', 'appleUserEnrollmentWithServiceAccount', 'unknownFutureValue'] },
  { name: 'activationLockBypassCode', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'emailAddress', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'azureADDeviceId', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'deviceRegistrationState', type: 'enum', edmType: 'graph.deviceRegistrationState', nullable: false, pii: false,
    enumValues: ['notRegistered', 'registered', 'revoked', 'keyConflict', 'approvalPending', 'certificateReset', 'notRegisteredPendingEnrollment', 'unknown'] },
  { name: 'deviceCategoryDisplayName', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: false },
  { name: 'isSupervised', type: 'Edm.Boolean', edmType: 'Edm.Boolean', nullable: false, pii: false },
  { name: 'exchangeLastSuccessfulSyncDateTime', type: 'Edm.DateTimeOffset', edmType: 'Edm.DateTimeOffset', nullable: false, pii: false },
  { name: 'exchangeAccessState', type: 'enum', edmType: 'graph.deviceManagementExchangeAccessState', nullable: false, pii: false,
    enumValues: ['none', 'unknown', 'allowed', 'blocked', 'quarantined'] },
  { name: 'exchangeAccessStateReason', type: 'enum', edmType: 'graph.deviceManagementExchangeAccessStateReason', nullable: false, pii: false,
    enumValues: ['none', 'unknown', 'exchangeGlobalRule', 'exchangeIndividualRule', 'exchangeDeviceRule', 'exchangeUpgrade', 'exchangeMailboxPolicy', 'other', 'compliant', 'notCompliant', 'notEnrolled', 'unknownLocation', 'mfaRequired', 'azureADBlockDueToAccessPolicy', 'compromisedPassword', 'deviceNotKnownWithManagedApp'] },
  { name: 'remoteAssistanceSessionUrl', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'remoteAssistanceSessionErrorDetails', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: false },
  { name: 'isEncrypted', type: 'Edm.Boolean', edmType: 'Edm.Boolean', nullable: false, pii: false },
  { name: 'userPrincipalName', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'model', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: false },
  { name: 'manufacturer', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: false },
  { name: 'imei', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'complianceGracePeriodExpirationDateTime', type: 'Edm.DateTimeOffset', edmType: 'Edm.DateTimeOffset', nullable: false, pii: false },
  { name: 'serialNumber', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'phoneNumber', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'androidSecurityPatchLevel', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: false },
  { name: 'userDisplayName', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'configurationManagerClientEnabledFeatures', type: 'complex', edmType: 'graph.configurationManagerClientEnabledFeatures', nullable: true, pii: false },
  { name: 'wiFiMacAddress', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'deviceHealthAttestationState', type: 'complex', edmType: 'graph.deviceHealthAttestationState', nullable: true, pii: false },
  { name: 'subscriberCarrier', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'meid', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'totalStorageSpaceInBytes', type: 'Edm.Int64', edmType: 'Edm.Int64', nullable: false, pii: false },
  { name: 'freeStorageSpaceInBytes', type: 'Edm.Int64', edmType: 'Edm.Int64', nullable: false, pii: false },
  { name: 'managedDeviceName', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'partnerReportedThreatState', type: 'enum', edmType: 'graph.managedDevicePartnerReportedHealthState', nullable: false, pii: false,
    enumValues: ['unknown', 'activated', 'deactivated', 'secured', 'lowSeverity', 'mediumSeverity', 'highSeverity', 'unresponsive', 'compromised', 'misconfigured'] },
  { name: 'requireUserEnrollmentApproval', type: 'Edm.Boolean', edmType: 'Edm.Boolean', nullable: true, pii: false },
  { name: 'managementCertificateExpirationDate', type: 'Edm.DateTimeOffset', edmType: 'Edm.DateTimeOffset', nullable: false, pii: false },
  { name: 'iccid', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'udid', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'notes', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'ethernetMacAddress', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: true },
  { name: 'physicalMemoryInBytes', type: 'Edm.Int64', edmType: 'Edm.Int64', nullable: false, pii: false },
  { name: 'enrollmentProfileName', type: 'Edm.String', edmType: 'Edm.String', nullable: true, pii: false },
  { name: 'managementState', type: 'enum', edmType: 'graph.managementState', nullable: false, pii: false,
    enumValues: ['managed', 'retirePending', 'retireFailed', 'wipePending', 'wipeFailed', 'unhealthy', 'deletePending', 'retireIssued', 'wipeIssued', 'wipeCanceled', 'retireCanceled', 'discovered', 'unknownFutureValue'] },
]);

export const PROPERTY_BY_NAME: ReadonlyMap<string, PropertySpec> = new Map(MANAGED_DEVICE_PROPERTIES.map((p) => [p.name, p]));

export const ODATA_TYPE = '#microsoft.graph.managedDevice';

/** Sentinel Graph reports for "no grace period" and for "never" on non-nullable dates (observed, not documented). */
export const NO_GRACE_PERIOD = '9999-12-31T23:59:59Z';
export const NEVER = '0001-01-01T00:00:00Z';

/**
 * Properties a LIST answers with their default, whatever the device holds; only GET by id shows
 * the real value (managedDevice.v1.json notes: "Non-Default property ... GET call needs to be made").
 */
export const LIST_DEFAULTS: Readonly<Record<string, unknown>> = Object.freeze({
  activationLockBypassCode: null,
  ethernetMacAddress: null,
  iccid: '',
  udid: '',
  notes: null,
  physicalMemoryInBytes: 0,
  remoteAssistanceSessionUrl: '',
});

const DATE_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$/;

export function isDateTimeOffset(value: unknown): value is string {
  return typeof value === 'string' && DATE_TIME_PATTERN.test(value) && !Number.isNaN(Date.parse(value));
}

/** The value Graph reports for a property nobody set. */
export function graphDefault(spec: PropertySpec): unknown {
  switch (spec.type) {
    case 'Edm.String':
      return spec.nullable ? null : '';
    case 'Edm.Boolean':
      return spec.nullable ? null : false;
    case 'Edm.Int64':
      return 0;
    case 'Edm.DateTimeOffset':
      return spec.name === 'complianceGracePeriodExpirationDateTime' ? NO_GRACE_PERIOD : NEVER;
    case 'enum':
      // managementAgent lists 'eas' first, but Graph documents its default as unknown.
      if (spec.name === 'managementAgent') return 'unknown';
      return spec.enumValues?.[0] ?? null;
    case 'complex':
      return null;
    case 'collection':
      return [];
  }
}

/** Why `value` is not a valid value of the property, or undefined when it is. */
export function propertyProblem(spec: PropertySpec, value: unknown): string | undefined {
  if (value === null) return spec.nullable ? undefined : 'is null but the property is not nullable';
  switch (spec.type) {
    case 'Edm.String':
      return typeof value === 'string' ? undefined : `must be a string (${spec.edmType})`;
    case 'Edm.Boolean':
      return typeof value === 'boolean' ? undefined : 'must be true or false (Edm.Boolean)';
    case 'Edm.Int64':
      return typeof value === 'number' && Number.isSafeInteger(value) ? undefined : 'must be a whole number (Edm.Int64)';
    case 'Edm.DateTimeOffset':
      return isDateTimeOffset(value) ? undefined : 'must be an ISO 8601 date-time with a zone, e.g. 2025-06-02T08:15:42Z (Edm.DateTimeOffset)';
    case 'enum':
      return typeof value === 'string' && (spec.enumValues ?? []).includes(value)
        ? undefined
        : `must be one of ${(spec.enumValues ?? []).join(', ')}`;
    case 'complex':
      return typeof value === 'object' && !Array.isArray(value) ? undefined : `must be an object or null (${spec.edmType})`;
    case 'collection':
      return Array.isArray(value) ? undefined : `must be an array or null (${spec.edmType})`;
  }
}
