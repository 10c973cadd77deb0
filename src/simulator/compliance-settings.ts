/**
 * deviceCompliancePolicyStates with their settingStates, generated per platform from the device's
 * own record, in Microsoft Graph v1.0's shape (specs/graph/deviceCompliancePolicyState.v1.json and
 * deviceCompliancePolicySettingState.v1.json). The settings follow Intune's compliance policies:
 * macOS storage encryption (FileVault), minimum and maximum OS version, firewall, Gatekeeper,
 * System Integrity Protection and password rules, and the Windows, iOS and Android equivalents.
 *
 * States agree with the device: a compliant device passes every setting; otherwise encryption and
 * the minimum OS version fail when the record says so, and a noncompliant device with neither
 * fails one other setting chosen from its id. The personal fields Graph fills in (userName,
 * userEmail, userPrincipalName, currentValue) carry the device's user and values, as Graph does,
 * so tests can check that none of them ever leaves the connector.
 */
import { createHash } from 'node:crypto';

type Device = Readonly<Record<string, unknown>>;

interface SettingSpec {
  /** Intune's setting identifier, `<PolicyClass>.<Setting>`. */
  readonly setting: string;
  readonly settingName: string;
  /** 'encryption' and 'minOs' follow the record; 'other' fails only to explain a noncompliant device. */
  readonly kind: 'encryption' | 'minOs' | 'other';
  readonly value: (device: Device) => string;
}

interface PolicySpec {
  readonly displayName: string;
  readonly settings: readonly SettingSpec[];
}

interface PlatformSpec {
  readonly platformType: string;
  readonly minimumOs: string;
  readonly policies: readonly PolicySpec[];
}

const osValue = (device: Device): string => String(device['osVersion'] ?? '');
const encryptedValue = (device: Device): string => String(device['isEncrypted'] === true);
const fixed =
  (value: string) =>
  (): string =>
    value;

/** One row of a platform table: the setting's name after its policy class, its label, its kind and its value. */
type SettingRow = readonly [name: string, settingName: string, kind: SettingSpec['kind'], value: SettingSpec['value']];

/** A platform's policies, each a display name and its rows; setting identifiers are `<policyClass>.<name>`. */
const platform = (platformType: string, minimumOs: string, policyClass: string, policies: Readonly<Record<string, readonly SettingRow[]>>): PlatformSpec => ({
  platformType,
  minimumOs,
  policies: Object.entries(policies).map(([displayName, rows]) => ({
    displayName,
    settings: rows.map(([name, settingName, kind, value]) => ({ setting: `${policyClass}.${name}`, settingName, kind, value })),
  })),
});

const PLATFORMS: Readonly<Record<string, PlatformSpec>> = {
  macOS: platform('macOS', '14.0', 'MacOSCompliancePolicy', {
    'macOS baseline compliance': [
      ['FirewallEnabled', 'Firewall', 'other', fixed('true')],
      ['GatekeeperAllowedAppSource', 'Allow apps downloaded from these locations', 'other', fixed('macAppStoreAndIdentifiedDevelopers')],
      ['SystemIntegrityProtectionEnabled', 'Require system integrity protection', 'other', fixed('true')],
      ['PasswordRequired', 'Require a password to unlock devices', 'other', fixed('true')],
      ['PasswordMinimumLength', 'Minimum password length', 'other', fixed('8')],
    ],
    'FileVault encryption required': [['StorageRequireEncryption', 'Encryption of data storage on device', 'encryption', encryptedValue]],
    'macOS minimum version': [
      ['OsMinimumVersion', 'Minimum OS version', 'minOs', osValue],
      ['OsMaximumVersion', 'Maximum OS version', 'other', osValue],
    ],
  }),
  Windows: platform('windows10AndLater', '10.0.22631', 'Windows10CompliancePolicy', {
    'Windows 10/11 compliance': [
      ['OsMinimumVersion', 'Minimum OS version', 'minOs', osValue],
      ['PasswordRequired', 'Require a password to unlock mobile devices', 'other', fixed('true')],
      ['ActiveFirewallRequired', 'Firewall', 'other', fixed('true')],
    ],
    'BitLocker and Secure Boot': [
      ['BitLockerEnabled', 'Require BitLocker', 'encryption', encryptedValue],
      ['SecureBootEnabled', 'Require Secure Boot to be enabled on the device', 'other', fixed('true')],
    ],
    'Defender real-time protection': [
      ['DefenderEnabled', 'Microsoft Defender Antimalware', 'other', fixed('true')],
      ['RtpEnabled', 'Real-time protection', 'other', fixed('true')],
    ],
  }),
  iOS: platform('iOS', '17.0', 'IosCompliancePolicy', {
    'iOS compliance': [
      ['OsMinimumVersion', 'Minimum OS version', 'minOs', osValue],
      ['SecurityBlockJailbrokenDevices', 'Jailbroken devices', 'other', fixed('false')],
    ],
    'iOS passcode policy': [
      ['PasscodeRequired', 'Require a password to unlock mobile devices', 'encryption', encryptedValue],
      ['PasscodeMinimumLength', 'Minimum password length', 'other', fixed('6')],
    ],
  }),
  Android: platform('androidForWork', '13', 'AndroidWorkProfileCompliancePolicy', {
    'Android work profile compliance': [
      ['StorageRequireEncryption', 'Encryption of data storage on device', 'encryption', encryptedValue],
      ['OsMinimumVersion', 'Minimum OS version', 'minOs', osValue],
      ['SecurityBlockJailbrokenDevices', 'Rooted devices', 'other', fixed('false')],
      ['PasswordRequired', 'Require a password to unlock mobile devices', 'other', fixed('true')],
    ],
    'Android minimum patch level': [['MinAndroidSecurityPatchLevel', 'Minimum security patch level', 'other', fixed('2024-01-01')]],
  }),
};

const DEFAULT_PLATFORM: PlatformSpec = platform('all', '0', 'DefaultDeviceCompliancePolicy', {
  'Default compliance policy': [['RequireDeviceCompliancePolicyAssigned', 'Has a compliance policy assigned', 'other', fixed('true')]],
});

/** deviceCompliancePolicyState's state for a policy with no failing setting, by the device's complianceState. */
const QUIET_STATE: Readonly<Record<string, string>> = {
  compliant: 'compliant',
  noncompliant: 'compliant',
  inGracePeriod: 'compliant',
  conflict: 'conflict',
  error: 'error',
  unknown: 'unknown',
  configManager: 'notApplicable',
};

const versionBelow = (version: string, minimum: string): boolean => {
  const read = (v: string): number[] | null => {
    const m = /^\s*(\d+(?:\.\d+)*)/.exec(v);
    return m?.[1] === undefined ? null : m[1].split('.').map(Number);
  };
  const a = read(version);
  const b = read(minimum);
  if (a === null || b === null) return false;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d < 0;
  }
  return false;
};

const guidFrom = (seed: string): string => {
  const hex = createHash('sha256').update(seed).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
};

/** The settings of `spec` that fail on `device`. */
function failingOf(device: Device, spec: PlatformSpec): Set<string> {
  const failing = new Set<string>();
  const state = String(device['complianceState']);
  if (state !== 'noncompliant' && state !== 'inGracePeriod') return failing;
  const all = spec.policies.flatMap((p) => p.settings);
  for (const s of all) {
    if (s.kind === 'encryption' && device['isEncrypted'] !== true) failing.add(s.setting);
    if (s.kind === 'minOs' && versionBelow(osValue(device), spec.minimumOs)) failing.add(s.setting);
  }
  if (failing.size === 0) {
    const others = all.filter((s) => s.kind === 'other');
    const pick = others[(createHash('sha256').update(String(device['id'])).digest()[0] ?? 0) % Math.max(1, others.length)];
    if (pick !== undefined) failing.add(pick.setting);
  }
  return failing;
}

/** The device's deviceCompliancePolicyStates, settingStates included, as Graph v1.0 returns them. */
export function generatePolicyStates(device: Device): Record<string, unknown>[] {
  const id = String(device['id']);
  const spec = PLATFORMS[String(device['operatingSystem'])] ?? DEFAULT_PLATFORM;
  const failing = failingOf(device, spec);
  const quiet = QUIET_STATE[String(device['complianceState'])] ?? 'unknown';
  const user = {
    userId: typeof device['userId'] === 'string' && device['userId'] !== '' ? device['userId'] : null,
    userName: typeof device['userDisplayName'] === 'string' && device['userDisplayName'] !== '' ? device['userDisplayName'] : null,
    userEmail: typeof device['emailAddress'] === 'string' && device['emailAddress'] !== '' ? device['emailAddress'] : null,
    userPrincipalName: typeof device['userPrincipalName'] === 'string' && device['userPrincipalName'] !== '' ? device['userPrincipalName'] : null,
  };
  return spec.policies.map((policy) => {
    const policyId = guidFrom(`${id}:${policy.displayName}`);
    const settingStates = policy.settings.map((s) => ({
      '@odata.type': 'microsoft.graph.deviceCompliancePolicySettingState',
      setting: s.setting,
      settingName: s.settingName,
      instanceDisplayName: null,
      state: failing.has(s.setting) ? 'nonCompliant' : quiet === 'notApplicable' ? 'notApplicable' : quiet === 'unknown' ? 'unknown' : 'compliant',
      errorCode: 0,
      errorDescription: null,
      ...user,
      sources: [{ '@odata.type': 'microsoft.graph.settingSource', id: policyId, displayName: policy.displayName, sourceType: 'deviceConfiguration' }],
      currentValue: s.value(device),
    }));
    const anyFailing = policy.settings.some((s) => failing.has(s.setting));
    return {
      '@odata.type': '#microsoft.graph.deviceCompliancePolicyState',
      id: policyId,
      settingStates,
      displayName: policy.displayName,
      version: 1 + ((createHash('sha256').update(policyId).digest()[0] ?? 0) % 5),
      platformType: spec.platformType,
      state: anyFailing ? 'nonCompliant' : quiet,
      settingCount: policy.settings.length,
    };
  });
}

/** complianceStatus and policyPlatformType, Graph v1.0's members (specs/graph/deviceCompliancePolicyState.v1.json). */
export const COMPLIANCE_STATUS = ['unknown', 'notApplicable', 'compliant', 'remediated', 'nonCompliant', 'error', 'conflict', 'notAssigned'] as const;
export const POLICY_PLATFORM_TYPES = ['android', 'androidForWork', 'iOS', 'macOS', 'windowsPhone81', 'windows81AndLater', 'windows10AndLater', 'all'] as const;

type Check = (value: unknown) => boolean;
const nullableString: Check = (v) => v === null || typeof v === 'string';
const int: Check = (v) => typeof v === 'number' && Number.isInteger(v);
const member =
  (values: readonly string[]): Check =>
  (v) =>
    typeof v === 'string' && values.includes(v);
const listOf =
  (check: Check): Check =>
  (v) =>
    v === null || (Array.isArray(v) && v.every(check));
const objectWith =
  (props: Readonly<Record<string, Check>>): Check =>
  (v) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && Object.entries(v).every(([k, x]) => k.startsWith('@odata.') || (props[k]?.(x) ?? false));

const SETTING_SOURCE: Check = objectWith({ id: nullableString, displayName: nullableString, sourceType: member(['deviceConfiguration', 'deviceIntent']) });

/** deviceCompliancePolicySettingState's 12 properties, in metadata order, with the check of each value. */
export const SETTING_STATE_PROPERTIES: Readonly<Record<string, Check>> = {
  setting: nullableString,
  settingName: nullableString,
  instanceDisplayName: nullableString,
  state: member(COMPLIANCE_STATUS),
  errorCode: int,
  errorDescription: nullableString,
  userId: nullableString,
  userName: nullableString,
  userEmail: nullableString,
  userPrincipalName: nullableString,
  sources: listOf(SETTING_SOURCE),
  currentValue: nullableString,
};

/** deviceCompliancePolicyState's 7 properties, in metadata order. */
export const POLICY_STATE_PROPERTIES: Readonly<Record<string, Check>> = {
  id: (v) => typeof v === 'string' && v !== '',
  settingStates: listOf(objectWith(SETTING_STATE_PROPERTIES)),
  displayName: nullableString,
  version: int,
  platformType: member(POLICY_PLATFORM_TYPES),
  state: member(COMPLIANCE_STATUS),
  settingCount: int,
};

/** Why `value` is not a deviceCompliancePolicyStates collection in Graph's shape, or undefined when it is. */
export function policyStatesProblem(value: unknown): string | undefined {
  if (!Array.isArray(value)) return 'must be an array of deviceCompliancePolicyState objects';
  for (const [i, item] of value.entries()) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return `[${i}] is not an object`;
    for (const [name, v] of Object.entries(item as Record<string, unknown>)) {
      if (name.startsWith('@odata.')) continue;
      const check = POLICY_STATE_PROPERTIES[name];
      if (check === undefined) return `[${i}].${name} is not a deviceCompliancePolicyState property`;
      if (!check(v)) {
        return name === 'settingStates'
          ? `[${i}].settingStates must be deviceCompliancePolicySettingState objects (${Object.keys(SETTING_STATE_PROPERTIES).join(', ')}) with valid values`
          : `[${i}].${name} has an invalid value`;
      }
    }
    if (typeof (item as { id?: unknown }).id !== 'string') return `[${i}].id is required`;
  }
  return undefined;
}
