/**
 * Graph's response shapes, parsed with zod at the client's boundary so nothing above it handles
 * `unknown`. The 56 managedDevice v1.0 properties follow Microsoft's published metadata
 * (specs/graph/managedDevice.v1.json; test/graph checks this table against it).
 *
 * Two kinds of surprise are treated differently:
 * - Structural ones make the whole page unusable and raise GraphError 'malformed_response': a body
 *   that is not a JSON object, `value` that is not an array, an item that is not an object or has
 *   no id. A page like that cannot be trusted to be complete.
 * - A surprising property value does not sink a page of 1,000 devices. Graph adds enum members
 *   over time: an unknown member becomes 'unknownFutureValue' where the enum has it (Graph's own
 *   convention for evolvable enums), else 'unknown'. A value of the wrong type becomes a
 *   fail-closed default: null where the property is nullable, false for booleans, 0 for numbers,
 *   and 0001-01-01T00:00:00Z ("never", Graph's own unset marker) for dates. "Never" is the safe
 *   reading: an unreadable check-in time looks stale and an unreadable grace-period expiry looks
 *   expired, so the gate denies rather than allows. Each such value is reported to `onCoerce`.
 */
import { z } from 'zod';
import { malformedError } from './errors.js';
import type { CompliancePolicyState, ManagedDevice } from './types.js';
import { isPlainObject, defined } from '../../common/values.js';

/** Graph's marker for a date that was never set; also the fail-closed reading of a bad date. */
export const NEVER_DATE = '0001-01-01T00:00:00Z';

type PropertyKind = 'string' | 'boolean' | 'int64' | 'datetime' | 'enum' | 'complex' | 'collection';

export interface PropertySpec {
  readonly kind: PropertyKind;
  readonly nullable: boolean;
  readonly enumValues?: readonly string[];
}

const str = (nullable: boolean): PropertySpec => ({ kind: 'string', nullable });
const bool = (nullable: boolean): PropertySpec => ({ kind: 'boolean', nullable });
const int64: PropertySpec = { kind: 'int64', nullable: false };
const date: PropertySpec = { kind: 'datetime', nullable: false };
const enumOf = (...enumValues: string[]): PropertySpec => ({ kind: 'enum', nullable: false, enumValues });
const complex: PropertySpec = { kind: 'complex', nullable: true };

export const COMPLIANCE_STATE_VALUES = ['unknown', 'compliant', 'noncompliant', 'conflict', 'error', 'inGracePeriod', 'configManager'] as const;

/** The 56 v1.0 managedDevice properties, in Microsoft's metadata order. */
export const MANAGED_DEVICE_PROPERTIES: Readonly<Record<string, PropertySpec>> = Object.freeze({
  id: str(false),
  activationLockBypassCode: str(true),
  androidSecurityPatchLevel: str(true),
  azureADDeviceId: str(true),
  azureADRegistered: bool(true),
  complianceGracePeriodExpirationDateTime: date,
  complianceState: enumOf(...COMPLIANCE_STATE_VALUES),
  configurationManagerClientEnabledFeatures: complex,
  deviceActionResults: { kind: 'collection', nullable: true },
  deviceCategoryDisplayName: str(true),
  deviceEnrollmentType: enumOf(
    'unknown', 'userEnrollment', 'deviceEnrollmentManager', 'appleBulkWithUser', 'appleBulkWithoutUser', 'windowsAzureADJoin',
    'windowsBulkUserless', 'windowsAutoEnrollment', 'windowsBulkAzureDomainJoin', 'windowsCoManagement',
    'windowsAzureADJoinUsingDeviceAuth', 'appleUserEnrollment', 'appleUserEnrollmentWithServiceAccount', 'unknownFutureValue',
  ),
  deviceHealthAttestationState: complex,
  deviceName: str(true),
  deviceRegistrationState: enumOf(
    'notRegistered', 'registered', 'revoked', 'keyConflict', 'approvalPending', 'certificateReset', 'notRegisteredPendingEnrollment', 'unknown',
  ),
  easActivated: bool(false),
  easActivationDateTime: date,
  easDeviceId: str(true),
  emailAddress: str(true),
  enrolledDateTime: date,
  enrollmentProfileName: str(true),
  ethernetMacAddress: str(true),
  exchangeAccessState: enumOf('none', 'unknown', 'allowed', 'blocked', 'quarantined'),
  exchangeAccessStateReason: enumOf(
    'none', 'unknown', 'exchangeGlobalRule', 'exchangeIndividualRule', 'exchangeDeviceRule', 'exchangeUpgrade', 'exchangeMailboxPolicy',
    'other', 'compliant', 'notCompliant', 'notEnrolled', 'unknownLocation', 'mfaRequired', 'azureADBlockDueToAccessPolicy',
    'compromisedPassword', 'deviceNotKnownWithManagedApp',
  ),
  exchangeLastSuccessfulSyncDateTime: date,
  freeStorageSpaceInBytes: int64,
  iccid: str(true),
  imei: str(true),
  isEncrypted: bool(false),
  isSupervised: bool(false),
  jailBroken: str(true),
  lastSyncDateTime: date,
  managedDeviceName: str(true),
  managedDeviceOwnerType: enumOf('unknown', 'company', 'personal', 'unknownFutureValue'),
  managementAgent: enumOf(
    'eas', 'mdm', 'easMdm', 'intuneClient', 'easIntuneClient', 'configurationManagerClient', 'configurationManagerClientMdm',
    'configurationManagerClientMdmEas', 'unknown', 'jamf', 'googleCloudDevicePolicyController', 'microsoft365ManagedMdm', 'msSense',
  ),
  managementCertificateExpirationDate: date,
  managementState: enumOf(
    'managed', 'retirePending', 'retireFailed', 'wipePending', 'wipeFailed', 'unhealthy', 'deletePending', 'retireIssued', 'wipeIssued',
    'wipeCanceled', 'retireCanceled', 'discovered', 'unknownFutureValue',
  ),
  manufacturer: str(true),
  meid: str(true),
  model: str(true),
  notes: str(true),
  operatingSystem: str(true),
  osVersion: str(true),
  partnerReportedThreatState: enumOf(
    'unknown', 'activated', 'deactivated', 'secured', 'lowSeverity', 'mediumSeverity', 'highSeverity', 'unresponsive', 'compromised', 'misconfigured',
  ),
  phoneNumber: str(true),
  physicalMemoryInBytes: int64,
  remoteAssistanceSessionErrorDetails: str(true),
  remoteAssistanceSessionUrl: str(true),
  requireUserEnrollmentApproval: bool(true),
  serialNumber: str(true),
  subscriberCarrier: str(true),
  totalStorageSpaceInBytes: int64,
  udid: str(true),
  userDisplayName: str(true),
  userId: str(true),
  userPrincipalName: str(true),
  wiFiMacAddress: str(true),
});

export const MANAGED_DEVICE_PROPERTY_NAMES: readonly string[] = Object.freeze(Object.keys(MANAGED_DEVICE_PROPERTIES));

/**
 * Properties every parsed device carries, whatever $select a caller asked for: ManagedDevice's
 * type promises them, and the gate and redaction read them.
 */
export const CORE_PROPERTIES = [
  'id',
  'azureADDeviceId',
  'complianceState',
  'complianceGracePeriodExpirationDateTime',
  'lastSyncDateTime',
  'operatingSystem',
] as const;

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

export type CoercionReason = 'unknown_enum' | 'invalid_value' | 'missing';
/** Told the property name (never its value) when a value was replaced. */
export type CoercionListener = (property: string, reason: CoercionReason) => void;

function fallbackFor(spec: PropertySpec): unknown {
  if (spec.kind === 'enum') {
    return spec.enumValues?.includes('unknownFutureValue') === true ? 'unknownFutureValue' : 'unknown';
  }
  if (spec.nullable) return null;
  switch (spec.kind) {
    case 'string':
      return '';
    case 'boolean':
      return false;
    case 'int64':
      return 0;
    case 'datetime':
      return NEVER_DATE;
    case 'complex':
    case 'collection':
      return null;
  }
}

function baseSchema(spec: PropertySpec): z.ZodType {
  let schema: z.ZodType;
  switch (spec.kind) {
    case 'string':
      schema = z.string();
      break;
    case 'boolean':
      schema = z.boolean();
      break;
    case 'int64':
      // IEEE754Compatible responses carry Int64 as a string of digits.
      schema = z.union([z.number().int(), z.string().regex(/^-?\d{1,19}$/).transform(Number)]);
      break;
    case 'datetime':
      schema = z.string().regex(ISO_DATE_TIME);
      break;
    case 'enum':
      schema = z.enum(spec.enumValues as [string, ...string[]]);
      break;
    case 'complex':
      schema = z.record(z.string(), z.unknown());
      break;
    case 'collection':
      schema = z.array(z.record(z.string(), z.unknown()));
      break;
  }
  return spec.nullable ? schema.nullable() : schema;
}

function propertySchema(name: string, spec: PropertySpec, onCoerce: CoercionListener | undefined): z.ZodType {
  const fallback = fallbackFor(spec);
  return baseSchema(spec).catch((ctx: { value: unknown }) => {
    const unknownEnum = spec.kind === 'enum' && typeof ctx.value === 'string';
    onCoerce?.(name, unknownEnum ? 'unknown_enum' : 'invalid_value');
    return fallback;
  });
}

/**
 * Builds the managedDevice schema. `onCoerce` hears about every replaced value (the client counts
 * them and logs the property name). Properties absent from the payload (not $select-ed) stay
 * absent, except the core ones, which get their fail-closed default; unknown properties are dropped.
 *
 * A device that needs no replacement (every property present fits its type, the core ones are
 * there) takes a fast path: the same properties without fallbacks, compiled by zod (`z.compile`)
 * into one generated function, whose answer is then the coercing schema's own (no catch or
 * default fires). Anything else goes to the coercing schema, which replaces and reports. The
 * runtime parse of 56 wrapped properties allocates about 10 KB per device; under a sync's load V8
 * pretenures those allocation sites, so each page's garbage lands in old space and waits for a full
 * collection (`compiled: false` gives the runtime parser alone, for tests that compare the two).
 */
export function createManagedDeviceSchema(onCoerce?: CoercionListener, { compiled = true }: { readonly compiled?: boolean } = {}): z.ZodType<ManagedDevice> {
  const core = new Set<string>(CORE_PROPERTIES);
  const shape: Record<string, z.ZodType> = {};
  const exactShape: Record<string, z.ZodType> = {};
  for (const [name, spec] of Object.entries(MANAGED_DEVICE_PROPERTIES)) {
    if (name === 'id') {
      shape[name] = z.string().min(1).max(200);
      exactShape[name] = shape[name];
    } else if (core.has(name)) {
      const fallback = fallbackFor(spec);
      shape[name] = propertySchema(name, spec, onCoerce)
        .optional()
        .transform((value) => {
          if (value !== undefined) return value;
          onCoerce?.(name, 'missing');
          return fallback;
        });
      exactShape[name] = baseSchema(spec);
    } else {
      shape[name] = propertySchema(name, spec, onCoerce).optional();
      exactShape[name] = baseSchema(spec).optional();
    }
  }
  const coercing = z.object(shape) as unknown as z.ZodType<ManagedDevice>;
  if (!compiled) return coercing;
  const exact = z.compile(z.object(exactShape) as unknown as z.ZodType<ManagedDevice>);
  return z.withParser(coercing, (input) => {
    const parsed = exact.safeParse(input);
    return parsed.success ? parsed.data : z.INVALID;
  });
}

/** The managedDevice schema without a coercion listener. */
export const ManagedDeviceSchema: z.ZodType<ManagedDevice> = createManagedDeviceSchema();

/** One page of a Graph collection; items are parsed one by one afterwards. */
export const CollectionPageSchema = z.object({
  '@odata.nextLink': z.string().min(1).optional(),
  value: z.array(z.unknown()),
});

/** complianceStatus, the state of a policy and of each of its settings on a device. */
export const COMPLIANCE_STATUS_VALUES = ['unknown', 'notApplicable', 'compliant', 'remediated', 'nonCompliant', 'error', 'conflict', 'notAssigned'] as const;

/** What a setting identifier looks like ("MacOSCompliancePolicy.StorageRequireEncryption"); anything else is not kept. */
export const SETTING_ID_PATTERN = /^[A-Za-z][A-Za-z0-9_.]{0,127}$/;

/**
 * deviceCompliancePolicySettingState reduced to its identifier and state: an allow-list, so user
 * names, e-mail addresses, UPNs, current values and Graph's free text never leave the parser.
 */
const SettingStateSchema = z
  .object({
    setting: z.string().regex(SETTING_ID_PATTERN).nullable().catch(null),
    state: z.enum(COMPLIANCE_STATUS_VALUES).catch('unknown'),
  })
  .transform((s) => ({ setting: s.setting ?? null, state: s.state }));

/** deviceCompliancePolicyState, as the connector reads it (settingStates reduced to identifiers and states). */
export const CompliancePolicyStateSchema: z.ZodType<CompliancePolicyState> = z.object({
  id: z.string().min(1),
  displayName: z.string().nullable().catch(null),
  state: z.string().catch('unknown'),
  platformType: z.string().nullable().catch(null),
  settingCount: z.number().int().catch(0),
  version: z.number().int().catch(0),
  settingStates: z
    .array(z.unknown())
    .nullable()
    .optional()
    .catch(null)
    .transform((items) => (items ?? []).flatMap((item) => (isPlainObject(item) ? [SettingStateSchema.parse(item)] : []))),
});

/** Graph's error body: {error:{code,message,innerError:{date,request-id,client-request-id}}}. */
export const GraphErrorBodySchema = z.object({
  error: z.object({
    code: z.string().optional(),
    message: z.string().optional(),
    innerError: z
      .object({
        'request-id': z.string().optional(),
        'client-request-id': z.string().optional(),
        date: z.string().optional(),
      })
      .partial()
      .optional(),
  }),
});

/**
 * Parses one page of a collection: the page's shape first, then each item. Structural problems
 * throw GraphError 'malformed_response' naming what was wrong (never the content).
 */
export function parseCollectionPage<T>(
  json: unknown,
  parseItem: (item: unknown, index: number) => T,
  details: { readonly requestId?: string; readonly status?: number } = {},
): { items: T[]; nextLink?: string } {
  const page = CollectionPageSchema.safeParse(json);
  if (!page.success) {
    const what =
      !isPlainObject(json)
        ? 'the body is not a JSON object'
        : Array.isArray((json as { value?: unknown }).value)
          ? 'its @odata.nextLink is not a string'
          : 'its `value` is missing or not an array';
    throw malformedError(what, details);
  }
  const items = page.data.value.map((item, index) => parseItem(item, index));
  const nextLink = page.data['@odata.nextLink'];
  return { items, ...defined({ nextLink }) };
}

/** Parses one managedDevice; a non-object or a device without a usable id is malformed. */
export function parseManagedDevice(
  schema: z.ZodType<ManagedDevice>,
  item: unknown,
  index: number | undefined,
  details: { readonly requestId?: string } = {},
): ManagedDevice {
  const where = index === undefined ? 'the device' : `the device at position ${index}`;
  if (!isPlainObject(item)) {
    throw malformedError(`${where} is not a JSON object`, details);
  }
  const parsed = schema.safeParse(item);
  if (!parsed.success) throw malformedError(`${where} has no usable id`, details);
  return parsed.data;
}
