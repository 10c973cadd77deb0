/**
 * What a failing Intune compliance setting means for the person who must fix it. Only setting
 * identifiers (deviceCompliancePolicySettingState.setting) and the redacted record are read; no
 * text from Graph is ever shown. Pure.
 */
import type { DevicePosture } from '../connector/posture.js';

const OS_NAMES: Readonly<Partial<Record<DevicePosture['os_family'], string>>> = { macos: 'macOS', windows: 'Windows', ios: 'iOS', android: 'Android' };

/** By the part after the policy class: "MacOSCompliancePolicy.StorageRequireEncryption" → StorageRequireEncryption. */
const PHRASES: Readonly<Record<string, (device: DevicePosture | null) => string>> = {
  StorageRequireEncryption: (d) => (d?.os_family === 'macos' ? 'FileVault is off' : 'storage encryption is off'),
  BitLockerEnabled: () => 'BitLocker is off',
  OsMinimumVersion: (d) => {
    const os = d === null ? undefined : OS_NAMES[d.os_family];
    return d?.os_version !== null && d?.os_version !== undefined && os !== undefined
      ? `${os} ${d.os_version.split(' ')[0] ?? ''} is below the minimum version required: update it`
      : 'the OS version is below the minimum version required: update it';
  },
  OsMaximumVersion: () => 'the OS version is above the maximum version allowed',
  FirewallEnabled: () => 'the firewall is off',
  ActiveFirewallRequired: () => 'the firewall is off',
  GatekeeperAllowedAppSource: () => 'Gatekeeper allows apps from unidentified developers',
  SystemIntegrityProtectionEnabled: () => 'System Integrity Protection is off',
  PasswordRequired: () => 'no password is set',
  PasscodeRequired: () => 'no passcode is set',
  PasswordMinimumLength: () => 'the password is shorter than required',
  PasscodeMinimumLength: () => 'the passcode is shorter than required',
  SecureBootEnabled: () => 'Secure Boot is off',
  DefenderEnabled: () => 'Microsoft Defender Antimalware is off',
  RtpEnabled: () => 'real-time protection is off',
  SecurityBlockJailbrokenDevices: (d) => (d?.os_family === 'android' ? 'the device is rooted' : 'the device is jailbroken'),
  MinAndroidSecurityPatchLevel: () => 'the Android security patch level is older than required',
};

/** "FileVault is off", or for a setting without a phrase: "setting MacOSCompliancePolicy.X fails". */
export function describeSetting(setting: string, device: DevicePosture | null): string {
  const name = setting.slice(setting.lastIndexOf('.') + 1);
  const phrase = Object.hasOwn(PHRASES, name) ? PHRASES[name] : undefined;
  return phrase !== undefined ? phrase(device) : `setting ${setting} fails`;
}

/** The failing settings as one clause: "FileVault is off; the firewall is off". */
export function describeSettings(settings: readonly string[], device: DevicePosture | null): string {
  return [...new Set(settings.map((s) => describeSetting(s, device)))].join('; ');
}
