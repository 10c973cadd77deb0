/**
 * The seven operations: one descriptor each, with the zod schemas of its input and output. The
 * schemas are the single declaration hosts build on (the MCP tool schemas are generated from them),
 * and the descriptor's `capability` is the one field governance derives from.
 *
 * Inputs are strict (an unknown key is an error, not silently ignored) and every id is a GUID
 * before anything goes near an OData expression or a URL.
 */
import { z } from 'zod';
import type { Capability, OperationDescriptor, OperationName } from './contract.js';
import { COMPLIANCE_STATES, DevicePostureSchema, OS_FAMILIES, OWNERSHIPS } from './posture.js';
import { GUID_PATTERN } from '../common/ids.js';
import { parseTimeBound, TIME_BOUND_MAX_LENGTH, TIME_BOUND_PATTERN, TIME_BOUND_RULE } from '../common/time.js';
import { EndpointAgentSchema, FindAssetInputSchema, FindAssetOutputSchema } from './assets.js';

const guid = (what: string) =>
  z
    .string({ error: `must be a string: the ${what} (a GUID like 0fa4e5e1-0000-4000-8000-00000000a001)` })
    .regex(GUID_PATTERN, { error: `must be a GUID like 0fa4e5e1-0000-4000-8000-00000000a001 (the ${what})` })
    .describe(`The ${what} (GUID).`);

/**
 * A time bound in the forms the CLI and the REST API accept (src/common/time.ts: a date alone is
 * midnight UTC), with the same words when it is not one; passed on as one ISO instant.
 */
const timeBound = (what: string) =>
  z
    .string({ error: `must be ${TIME_BOUND_RULE}` })
    .max(TIME_BOUND_MAX_LENGTH, { error: `must be ${TIME_BOUND_RULE}` })
    .regex(TIME_BOUND_PATTERN, { error: `must be ${TIME_BOUND_RULE}` })
    .refine((v) => parseTimeBound(v) !== null, { error: `must be ${TIME_BOUND_RULE}` })
    .transform((v) => (parseTimeBound(v) as Date).toISOString())
    .describe(`${what}: ${TIME_BOUND_RULE}.`);

export const LIST_PAGE_SIZE_MAX = 100;
export const LIST_PAGE_SIZE_DEFAULT = 25;
/** Cursors are a few hundred characters; anything far longer is not one of ours. */
export const CURSOR_MAX_LENGTH = 4096;

// ---------------------------------------------------------------------------------------------
// list_devices

export const ListDevicesInputSchema = z
  .object({
    os_family: z.enum(OS_FAMILIES).optional().describe('Only devices of this OS family.'),
    compliance_state: z.enum(COMPLIANCE_STATES).optional().describe('Only devices in this Intune compliance state.'),
    ownership: z.enum(OWNERSHIPS).optional().describe('Only company-owned or personal devices.'),
    last_sync_before: timeBound('Only devices whose last check-in is before this time').optional(),
    last_sync_after: timeBound('Only devices whose last check-in is after this time').optional(),
    page_size: z
      .number({ error: `must be a whole number from 1 to ${LIST_PAGE_SIZE_MAX}` })
      .int({ error: `must be a whole number from 1 to ${LIST_PAGE_SIZE_MAX}` })
      .min(1, { error: `must be a whole number from 1 to ${LIST_PAGE_SIZE_MAX}` })
      .max(LIST_PAGE_SIZE_MAX, { error: `must be at most ${LIST_PAGE_SIZE_MAX}; page with next_cursor for more` })
      .default(LIST_PAGE_SIZE_DEFAULT)
      .describe(`Devices per page, 1..${LIST_PAGE_SIZE_MAX} (default ${LIST_PAGE_SIZE_DEFAULT}).`),
    cursor: z
      .string({ error: 'must be the next_cursor string of a previous page' })
      .min(1, { error: 'must be the next_cursor string of a previous page' })
      .max(CURSOR_MAX_LENGTH, { error: 'is not a cursor this connector issued; start again without cursor' })
      .optional()
      .describe('next_cursor from the previous page, with the same filters; omit for the first page.'),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (value.last_sync_after !== undefined && value.last_sync_before !== undefined && Date.parse(value.last_sync_after) >= Date.parse(value.last_sync_before)) {
      ctx.addIssue({ code: 'custom', path: ['last_sync_after'], message: 'must be earlier than last_sync_before' });
    }
  });

export const ListDevicesOutputSchema = z
  .object({
    devices: z.array(DevicePostureSchema),
    next_cursor: z.string().nullable().describe('Pass as cursor (with the same filters) for the next page; null on the last page.'),
  })
  .strict();

// ---------------------------------------------------------------------------------------------
// get_device

export const GetDeviceInputSchema = z.object({ device_id: guid('Intune managed device id') }).strict();
export const GetDeviceOutputSchema = z
  .object({
    device: DevicePostureSchema,
    endpoint_agents: z.array(EndpointAgentSchema).describe('Enrolled agents that see the same machine, and what they report; empty when none does.'),
  })
  .strict();

// ---------------------------------------------------------------------------------------------
// get_compliance

export const GetComplianceInputSchema = z
  .object({
    device_id: guid('Intune managed device id').optional(),
    azure_ad_device_id: guid('Entra device id (the deviceid claim of a user token)').optional(),
    include_policies: z
      .boolean({ error: 'must be true or false' })
      .optional()
      .describe('Also list the compliance policies evaluated on the device and the identifiers of their failing settings (one extra Graph call, cached like compliance).'),
  })
  .strict()
  .superRefine((value, ctx) => {
    const given = (value.device_id !== undefined ? 1 : 0) + (value.azure_ad_device_id !== undefined ? 1 : 0);
    if (given !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: [value.device_id !== undefined ? 'azure_ad_device_id' : 'device_id'],
        message:
          given === 0
            ? 'give exactly one of device_id (Intune id) or azure_ad_device_id (Entra device id)'
            : 'give only one of device_id or azure_ad_device_id, not both',
      });
    }
  });

export const CompliancePolicySchema = z
  .object({
    id: z.string(),
    display_name: z.string().optional(),
    state: z.string(),
    platform_type: z.string().nullable(),
    setting_count: z.number().int(),
    failing_settings: z
      .array(z.string())
      .describe('Identifiers of the settings Intune reports as failing (nonCompliant, error, conflict), e.g. MacOSCompliancePolicy.StorageRequireEncryption.'),
  })
  .strict();

export const GetComplianceOutputSchema = z
  .object({
    compliance_state: z.enum(COMPLIANCE_STATES).describe('State of the most recently synced record.'),
    grace_period_expires_at: z.string().nullable(),
    last_sync_at: z.string().nullable(),
    device_id: z.string().describe('Intune id of the most recently synced record.'),
    azure_ad_device_id: z.string().nullable(),
    record_count: z.number().int().describe('How many Intune records match (re-enrolment leaves several).'),
    devices: z.array(DevicePostureSchema).describe('Every matching record, most recently synced first.'),
    policies: z.array(CompliancePolicySchema).optional(),
    cache: z.object({ hit: z.boolean(), stale: z.boolean() }).strict(),
    endpoint_agents: z.array(EndpointAgentSchema).describe('Enrolled agents that see the same machine, and what they report; empty when none does.'),
  })
  .strict();

// ---------------------------------------------------------------------------------------------
// sync_device (PROPOSE)

export const SyncDeviceInputSchema = z.object({ device_id: guid('Intune managed device id') }).strict();
export const SyncDeviceOutputSchema = z
  .object({
    status: z
      .enum(['requested', 'recently_requested'])
      .describe('requested: Intune was asked now. recently_requested: it was asked within the cooldown, so it was not asked again.'),
    requested_at: z.string().describe('When Intune was (last) asked to sync this device.'),
    next_allowed_at: z.string().describe('From when a new request will reach Intune.'),
  })
  .strict();

// ---------------------------------------------------------------------------------------------
// remote_lock, retire_device, wipe_device (MUTATE)

export const DeviceActionInputSchema = z
  .object({
    device_id: guid('Intune managed device id'),
    reason: z
      .string({ error: 'must be a string' })
      .max(500, { error: 'must be at most 500 characters' })
      .optional()
      .describe('Why, for the human approving the ceremony. Never stored in the audit trail.'),
  })
  .strict();
export const DeviceActionOutputSchema = z
  .object({
    status: z.literal('requested'),
    requested_at: z.string(),
  })
  .strict();

// ---------------------------------------------------------------------------------------------

export const OPERATION_SCHEMAS = {
  list_devices: { input: ListDevicesInputSchema, output: ListDevicesOutputSchema },
  get_device: { input: GetDeviceInputSchema, output: GetDeviceOutputSchema },
  get_compliance: { input: GetComplianceInputSchema, output: GetComplianceOutputSchema },
  find_asset: { input: FindAssetInputSchema, output: FindAssetOutputSchema },
  sync_device: { input: SyncDeviceInputSchema, output: SyncDeviceOutputSchema },
  remote_lock: { input: DeviceActionInputSchema, output: DeviceActionOutputSchema },
  retire_device: { input: DeviceActionInputSchema, output: DeviceActionOutputSchema },
  wipe_device: { input: DeviceActionInputSchema, output: DeviceActionOutputSchema },
} as const satisfies Record<OperationName, { input: z.ZodType; output: z.ZodType }>;

export type OperationInput<N extends OperationName> = z.output<(typeof OPERATION_SCHEMAS)[N]['input']>;
export type OperationOutput<N extends OperationName> = z.output<(typeof OPERATION_SCHEMAS)[N]['output']>;
export type ListDevicesInput = OperationInput<'list_devices'>;
export type ListDevicesOutput = OperationOutput<'list_devices'>;
export type GetDeviceOutput = OperationOutput<'get_device'>;
export type GetComplianceInput = OperationInput<'get_compliance'>;
export type GetComplianceOutput = OperationOutput<'get_compliance'>;
export type SyncDeviceOutput = OperationOutput<'sync_device'>;
export type DeviceActionOutput = OperationOutput<'remote_lock'>;

type Descriptor<N extends OperationName> = OperationDescriptor<(typeof OPERATION_SCHEMAS)[N]['input'], (typeof OPERATION_SCHEMAS)[N]['output']> & {
  readonly name: N;
};

function describeOperation<N extends OperationName>(
  name: N,
  capability: Capability,
  title: string,
  description: string,
  graph: string,
): Descriptor<N> {
  return Object.freeze({ name, capability, title, description, graph, ...OPERATION_SCHEMAS[name] }) as unknown as Descriptor<N>;
}

/** All eight, in OPERATION_NAMES order. */
export const OPERATIONS = Object.freeze([
  describeOperation(
    'list_devices',
    'READ',
    'List managed devices',
    'Lists Intune managed devices as redacted postures (ids, OS, compliance and management facts; no names, users or serial numbers), ' +
      'filtered by OS family, compliance state, ownership or last check-in, a page at a time. Pass next_cursor back as cursor with the same ' +
      'filters for the next page. Pages filtered by ownership or by an OS family Graph cannot filter (ios, android, other) may hold fewer ' +
      'devices than page_size, even none, while next_cursor is not null; keep paging until it is null.',
    'GET /deviceManagement/managedDevices',
  ),
  describeOperation(
    'get_device',
    'READ',
    'Get one managed device',
    'Returns the redacted posture of one Intune managed device by its Intune id (device_id). Fails with not_found when Intune has no such device.',
    'GET /deviceManagement/managedDevices/{id}',
  ),
  describeOperation(
    'get_compliance',
    'READ',
    'Check device compliance',
    'Answers whether a device is compliant: its Intune compliance state, grace-period end and last check-in, looked up by Intune id ' +
      '(device_id) or by Entra device id (azure_ad_device_id, the deviceid claim of a user token). Several Intune records can match one ' +
      'Entra device after re-enrolment: the most recently synced one decides and all are listed. Answers come from a short-lived cache; ' +
      'cache.hit and cache.stale say how fresh the answer is. Fails with not_found when no managed device matches.',
    'GET /deviceManagement/managedDevices?$filter=azureADDeviceId eq {id} | GET /deviceManagement/managedDevices/{id}',
  ),
  describeOperation(
    'find_asset',
    'READ',
    'Find an asset by serial fingerprint',
    'Finds the asset (one physical machine) whose sources report a serial fingerprint: its Intune records and enrolled agents, every ' +
      'attribute of the merged posture with its source (intune | agent) and confidence (mdm | agent | stale), the disagreements between ' +
      'sources, and any conflict (two machines claiming one serial). Answers from the stored assets, without a Graph call.',
    'none (stored assets)',
  ),
  describeOperation(
    'sync_device',
    'PROPOSE',
    'Ask Intune to sync a device',
    'Asks Intune to tell the device to check in now, so its compliance state is re-evaluated soon. Does not change the device. A device ' +
      'asked within the last few minutes is not asked again: the answer is recently_requested with the time a new request is allowed.',
    'POST /deviceManagement/managedDevices/{id}/syncDevice',
  ),
  describeOperation(
    'remote_lock',
    'MUTATE',
    'Remote lock a device',
    'Locks the device remotely. Disabled in Phase 1: the call is refused and recorded, and never reaches Intune.',
    'POST /deviceManagement/managedDevices/{id}/remoteLock',
  ),
  describeOperation(
    'retire_device',
    'MUTATE',
    'Retire a device from management',
    'Removes company data and management from the device. Disabled in Phase 1: the call is refused and recorded, and never reaches Intune.',
    'POST /deviceManagement/managedDevices/{id}/retire',
  ),
  describeOperation(
    'wipe_device',
    'MUTATE',
    'Factory reset a device',
    'Erases the device. Disabled in Phase 1: the call is refused and recorded, and never reaches Intune.',
    'POST /deviceManagement/managedDevices/{id}/wipe',
  ),
] as const);

const BY_NAME: ReadonlyMap<string, OperationDescriptor> = new Map(OPERATIONS.map((d) => [d.name, d as OperationDescriptor]));

export function findOperation(name: unknown): OperationDescriptor | undefined {
  return typeof name === 'string' ? BY_NAME.get(name) : undefined;
}

/** The Graph action a device-action operation performs. */
export const DEVICE_ACTIONS = {
  sync_device: 'syncDevice',
  remote_lock: 'remoteLock',
  retire_device: 'retire',
  wipe_device: 'wipe',
} as const;
