/**
 * The deterministic tenant generator: N managedDevices from a seed, in Graph's shape, with a
 * realistic mix (platforms, ownership, every compliance state, stale check-ins, grace periods on
 * both sides of now, re-enrolled devices sharing an azureADDeviceId, devices without one).
 *
 * Dates are offsets from a reference time `now` (default: the moment of the call, whole seconds),
 * so a "stale" device stays stale however long after a release the demo runs. Same seed and same
 * `now` give byte-identical devices; same seed and another `now` give the same devices with every
 * date shifted by the difference.
 *
 * PII values are fake but distinctive (surnames like "Quillfeather", UPNs @contoso.example,
 * serials starting "FK", MACs starting "02", phone numbers in the 555-01xx range) so a test can
 * search any output for them and be sure a hit is a leak, not a coincidence.
 */
import { SimulatorError } from './errors.js';
import { NEVER, NO_GRACE_PERIOD, ODATA_TYPE } from './properties.js';
import { createRandom, type Random } from './random.js';

export interface GenerateOptions {
  /** Reference time (default: now). */
  readonly now?: Date | number | undefined;
}

type Platform = 'macOS' | 'Windows' | 'iOS' | 'Android';
type ComplianceState = 'unknown' | 'compliant' | 'noncompliant' | 'conflict' | 'error' | 'inGracePeriod' | 'configManager';

/** What a slot must be, so that every feature of the mix is present in tenants of FORCED_MIN_DEVICES or more. */
interface ForcedTraits {
  readonly platform?: Platform;
  readonly state?: ComplianceState;
  readonly grace?: 'past' | 'future';
  readonly stale?: boolean;
  readonly noAzureAD?: boolean;
  readonly ownership?: 'company' | 'personal';
  readonly reenrolled?: boolean;
}

const FORCED: readonly ForcedTraits[] = [
  { platform: 'macOS', state: 'compliant', ownership: 'company' },
  { platform: 'Windows', state: 'noncompliant' },
  { platform: 'iOS', state: 'conflict', ownership: 'personal' },
  { platform: 'Android', state: 'error' },
  { state: 'unknown' },
  { platform: 'Windows', state: 'configManager' },
  { state: 'inGracePeriod', grace: 'future' },
  { state: 'inGracePeriod', grace: 'past' },
  { state: 'compliant', stale: true },
  { state: 'compliant', noAzureAD: true, platform: 'Android', ownership: 'personal' },
  // Last, so the ghost record it creates in the next slot never lands on another forced slot.
  { state: 'compliant', reenrolled: true, platform: 'macOS' },
];
/** Twice the forced slots, so consecutive forced slots are at least two apart. */
export const FORCED_MIN_DEVICES = FORCED.length * 2;
export const MAX_GENERATED_DEVICES = 1_000_000;

const DAY_MS = 86_400_000;

/** A random span of minMinutes..maxMinutes, to the second (Intune's timestamps carry seconds). */
function spanMs(rng: Random, minMinutes: number, maxMinutes: number): number {
  return rng.int(minMinutes * 60, maxMinutes * 60) * 1000;
}

const FIRST_NAMES = [
  'Alex', 'Briony', 'Cassius', 'Delphine', 'Ezra', 'Florentyna', 'Gideon', 'Halcyon', 'Ignatius', 'Juniper',
  'Kestrel', 'Leopold', 'Marisol', 'Nikolai', 'Ottoline', 'Peregrine', 'Quintessa', 'Rafferty', 'Saoirse', 'Thaddeus',
  'Ulrika', 'Valentina', 'Wilhelmina', 'Xanthe', 'Yevgenia', 'Zebulon', 'Anouk', 'Bartholomew', 'Clementine', 'Dashiell',
] as const;
const LAST_NAMES = [
  'Quillfeather', 'Brackenridge', 'Thistlewood', 'Ambervale', 'Crowhurst', 'Dunmorrow', 'Elderglen', 'Fairweatherby',
  'Gallowmere', 'Hollowbrook', 'Ivorystone', 'Juniperhall', 'Kettlewick', 'Larkspurrow', 'Merriwether', 'Nettlefold',
  'Oakenshield', 'Pemberhollow', 'Quartermaine', 'Ravensworth', 'Saltonstall', 'Tanglewood', 'Umberleigh', 'Vantongeren',
  'Whitlock-Fenn', 'Yarborough', 'Zellweger-Ost', 'Ashcombe', 'Blackthorne', 'Cobblestone',
] as const;
const CATEGORIES = ['Engineering', 'Sales', 'Finance', 'Field Operations'] as const;
const CARRIERS = ['Contoso Mobile', 'Fabrikam Wireless', 'Northwind Cellular'] as const;
const AREA_CODES = ['206', '425', '312', '646', '737'] as const;

interface PlatformProfile {
  readonly weight: number;
  readonly companyShare: number;
  readonly models: readonly (readonly [manufacturer: string, model: string])[];
  readonly osVersions: readonly string[];
  readonly mdmTag: string;
}

const PLATFORMS: Readonly<Record<Platform, PlatformProfile>> = {
  macOS: {
    weight: 30,
    companyShare: 0.9,
    models: [['Apple', 'MacBook Pro'], ['Apple', 'MacBook Air'], ['Apple', 'iMac'], ['Apple', 'Mac mini'], ['Apple', 'Mac Studio']],
    osVersions: ['13.6.9', '14.6.1', '14.7.2', '15.1.1', '15.2', '15.3.1'],
    mdmTag: 'MacMDM',
  },
  Windows: {
    weight: 45,
    companyShare: 0.95,
    models: [
      ['Dell Inc.', 'Latitude 7440'],
      ['LENOVO', 'ThinkPad X1 Carbon Gen 11'],
      ['HP', 'HP EliteBook 840 G10'],
      ['Microsoft Corporation', 'Surface Laptop 5'],
      ['Dell Inc.', 'OptiPlex 7010'],
    ],
    osVersions: ['10.0.19045.5131', '10.0.22631.4460', '10.0.22631.4602', '10.0.26100.2454'],
    mdmTag: 'Windows',
  },
  iOS: {
    weight: 15,
    companyShare: 0.6,
    models: [['Apple', 'iPhone 13'], ['Apple', 'iPhone 14'], ['Apple', 'iPhone 15 Pro'], ['Apple', 'iPad Air (5th generation)']],
    osVersions: ['16.7.10', '17.6.1', '18.1.1', '18.2'],
    mdmTag: 'IPhone',
  },
  Android: {
    weight: 10,
    companyShare: 0.45,
    models: [['samsung', 'SM-S918B'], ['Google', 'Pixel 8'], ['motorola', 'moto g84 5G'], ['samsung', 'SM-A546B']],
    osVersions: ['12', '13', '14', '15'],
    mdmTag: 'AndroidForWork',
  },
};
const PLATFORM_WEIGHTS = (Object.keys(PLATFORMS) as Platform[]).map((p) => [p, PLATFORMS[p].weight] as const);

const STATE_WEIGHTS: readonly (readonly [ComplianceState, number])[] = [
  ['compliant', 68],
  ['noncompliant', 12],
  ['inGracePeriod', 6],
  ['unknown', 5],
  ['error', 3],
  ['conflict', 3],
  ['configManager', 3],
];

function isoSeconds(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

/** The format Intune uses in managedDeviceName: M/D/YYYY_h:mm AM (UTC here). */
function intuneNameDate(ms: number): string {
  const d = new Date(ms);
  const hours = d.getUTCHours();
  const h12 = hours % 12 === 0 ? 12 : hours % 12;
  const minutes = String(d.getUTCMinutes()).padStart(2, '0');
  return `${d.getUTCMonth() + 1}/${d.getUTCDate()}/${d.getUTCFullYear()}_${h12}:${minutes} ${hours < 12 ? 'AM' : 'PM'}`;
}

function luhnComplete(digits: string): string {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits + String((10 - (sum % 10)) % 10);
}

function digits(rng: Random, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += String(rng.int(0, 9));
  return out;
}

const SERIAL_ALPHABET = [...'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789'];
function serialFor(rng: Random, index: number): string {
  let prefix = '';
  for (let i = 0; i < 4; i++) prefix += rng.pick(SERIAL_ALPHABET);
  // The index makes serials unique however large the tenant; the random part makes them look real.
  return `FK${prefix}${index.toString(36).toUpperCase().padStart(6, '0')}`;
}

function macFor(rng: Random, index: number): string {
  // 02: locally administered, never a vendor's address.
  return `02${rng.hex(2)}${(index & 0xffffff).toString(16).padStart(6, '0')}${rng.hex(2)}`;
}

interface Person {
  readonly userId: string;
  readonly displayName: string;
  readonly first: string;
  readonly upn: string;
}

function personFor(rng: Random, index: number): Person {
  const first = rng.pick(FIRST_NAMES);
  const last = rng.pick(LAST_NAMES);
  const local = `${first}.${last}`.toLowerCase().replace(/[^a-z.]/g, '');
  return { userId: rng.guid(), displayName: `${first} ${last}`, first, upn: `${local}${index}@contoso.example` };
}

function healthAttestation(rng: Random, at: string): Record<string, unknown> {
  return {
    lastUpdateDateTime: at,
    contentNamespaceUrl: 'https://has.spserv.microsoft.com/DeviceHealthAttestation/v3',
    deviceHealthAttestationStatus: 'Completed',
    contentVersion: '3',
    issuedDateTime: at,
    attestationIdentityKey: null,
    resetCount: rng.int(0, 40),
    restartCount: rng.int(10, 400),
    dataExcutionPolicy: 'Enabled',
    bitLockerStatus: 'Enabled',
    bootManagerVersion: '10.0.22621.4249',
    codeIntegrityCheckVersion: '10.0.22621.4249',
    secureBoot: 'Enabled',
    bootDebugging: 'Disabled',
    operatingSystemKernelDebugging: 'Disabled',
    codeIntegrity: 'Enabled',
    testSigning: 'Disabled',
    safeMode: 'Disabled',
    windowsPE: 'Disabled',
    earlyLaunchAntiMalwareDriverProtection: 'Enabled',
    virtualSecureMode: 'Enabled',
    pcrHashAlgorithm: 'SHA256',
    bootAppSecurityVersion: '1',
    bootManagerSecurityVersion: '0',
    tpmVersion: '2.0',
    pcr0: rng.hex(64).toUpperCase(),
    secureBootConfigurationPolicyFingerPrint: null,
    codeIntegrityPolicy: rng.hex(64).toUpperCase(),
    bootRevisionListInfo: null,
    operatingSystemRevListInfo: null,
    healthStatusMismatchInfo: null,
    healthAttestationSupportedStatus: 'Supported',
  };
}

interface DeviceDraft {
  readonly platform: Platform;
  readonly person: Person | null;
  readonly ownership: 'company' | 'personal';
  readonly state: ComplianceState;
  readonly grace: 'past' | 'future' | null;
  readonly stale: boolean;
  readonly azureADDeviceId: string | null;
}

function buildDevice(rng: Random, index: number, draft: DeviceDraft, nowMs: number): Record<string, unknown> {
  const { platform, person, ownership, state } = draft;
  const profile = PLATFORMS[platform];
  const [manufacturer, model] = rng.pick(profile.models);
  const osVersion = rng.pick(profile.osVersions);
  const apple = platform === 'macOS' || platform === 'iOS';
  const mobile = platform === 'iOS' || platform === 'Android';
  const company = ownership === 'company';

  const lastSyncMs = draft.stale
    ? nowMs - spanMs(rng, 15 * 24 * 60, 120 * 24 * 60)
    : nowMs - spanMs(rng, 5, 3 * 24 * 60);
  const enrolledMs = lastSyncMs - spanMs(rng, 30 * 24 * 60, 900 * 24 * 60);
  let certExpiryMs = enrolledMs + 365 * DAY_MS;
  while (certExpiryMs < nowMs) certExpiryMs += 365 * DAY_MS;

  let graceExpiry = NO_GRACE_PERIOD;
  if (state === 'inGracePeriod') {
    graceExpiry = isoSeconds(
      draft.grace === 'past' ? nowMs - spanMs(rng, 60, 5 * 24 * 60) : nowMs + spanMs(rng, 60, 7 * 24 * 60),
    );
  }

  const first = person?.first ?? '';
  const upnLocal = person === null ? '' : person.upn.split('@')[0] ?? '';
  let deviceName: string;
  switch (platform) {
    case 'macOS':
      deviceName = person === null ? `CONTOSO-MAC-${rng.hex(6).toUpperCase()}` : `${person.displayName}'s ${model}`;
      break;
    case 'Windows':
      deviceName = `DESKTOP-${rng.hex(7).toUpperCase()}`;
      break;
    case 'iOS':
      deviceName = person === null ? `Shared ${model}` : `${first}'s ${model.startsWith('iPad') ? 'iPad' : 'iPhone'}`;
      break;
    case 'Android':
      deviceName = person === null ? `${model}_${rng.hex(4)}` : `${first}'s ${model}`;
      break;
  }

  let deviceEnrollmentType: string;
  let managementAgent = 'mdm';
  switch (platform) {
    case 'macOS':
      deviceEnrollmentType = company ? 'appleBulkWithUser' : 'userEnrollment';
      break;
    case 'iOS':
      deviceEnrollmentType = company ? rng.pick(['appleBulkWithUser', 'appleBulkWithoutUser']) : rng.pick(['userEnrollment', 'appleUserEnrollment']);
      break;
    case 'Windows':
      if (state === 'configManager') {
        deviceEnrollmentType = 'windowsCoManagement';
        managementAgent = 'configurationManagerClientMdm';
      } else {
        deviceEnrollmentType = company ? rng.pick(['windowsAzureADJoin', 'windowsAutoEnrollment', 'windowsBulkUserless']) : 'userEnrollment';
      }
      break;
    case 'Android':
      deviceEnrollmentType = company ? 'deviceEnrollmentManager' : 'userEnrollment';
      managementAgent = company ? 'googleCloudDevicePolicyController' : 'mdm';
      break;
  }

  const cellular = mobile && !(platform === 'iOS' && model.startsWith('iPad') && rng.chance(0.5));
  const imei = cellular ? luhnComplete(`35${digits(rng, 12)}`) : '';
  const meid = platform === 'iOS' && cellular ? imei.slice(0, 14) : '';
  const phoneNumber = cellular ? `+1${rng.pick(AREA_CODES)}55501${digits(rng, 2)}` : '';
  const iccid = cellular ? `8901${digits(rng, 15)}` : '';
  const udid = platform === 'iOS' ? rng.hex(40) : platform === 'macOS' ? `00008103-${rng.hex(16).toUpperCase()}` : '';
  const desktopish = platform === 'Windows' || model === 'iMac' || model === 'Mac mini' || model === 'Mac Studio';
  const memoryGiB = mobile ? rng.pick([4, 6, 8]) : rng.pick([8, 16, 16, 32, 64]);
  const storageGB = mobile ? rng.pick([128, 256, 512]) : rng.pick([256, 512, 512, 1024]);
  const totalStorage = storageGB * 965_595_136 + rng.int(0, 4_000_000);
  const compliantish = state === 'compliant' || state === 'inGracePeriod';
  const easActivated = mobile && rng.chance(0.2);
  const easDeviceId = easActivated ? rng.hex(32).toUpperCase() : '';
  const actionResults: Record<string, unknown>[] = [];
  if (rng.chance(0.05)) {
    const at = isoSeconds(lastSyncMs - spanMs(rng, 10, 600));
    actionResults.push({ actionName: 'syncDevice', actionState: 'done', startDateTime: at, lastUpdatedDateTime: at });
  }

  // Key order follows Graph's own serialisation (specs/graph/sample-managedDevice-macos.json).
  return {
    '@odata.type': ODATA_TYPE,
    id: '',
    userId: person?.userId ?? '',
    deviceName,
    managedDeviceOwnerType: ownership,
    deviceActionResults: actionResults,
    enrolledDateTime: isoSeconds(enrolledMs),
    lastSyncDateTime: isoSeconds(lastSyncMs),
    operatingSystem: platform,
    complianceState: state,
    jailBroken: platform === 'Windows' || platform === 'macOS' ? 'Unknown' : 'False',
    managementAgent,
    osVersion,
    easActivated,
    easDeviceId,
    easActivationDateTime: easActivated ? isoSeconds(enrolledMs + spanMs(rng, 1, 60)) : NEVER,
    azureADRegistered: draft.azureADDeviceId !== null,
    deviceEnrollmentType,
    activationLockBypassCode: apple && company ? `${rng.hex(4)}-${rng.hex(4)}-${rng.hex(4)}-${rng.hex(4)}-${rng.hex(4)}-${rng.hex(4)}`.toUpperCase() : null,
    emailAddress: person?.upn ?? '',
    azureADDeviceId: draft.azureADDeviceId,
    deviceRegistrationState: draft.azureADDeviceId !== null ? 'registered' : 'notRegistered',
    deviceCategoryDisplayName: rng.chance(0.3) ? rng.pick(CATEGORIES) : '',
    isSupervised: apple && company && deviceEnrollmentType.startsWith('appleBulk'),
    exchangeLastSuccessfulSyncDateTime: easActivated ? isoSeconds(lastSyncMs - spanMs(rng, 1, 120)) : NEVER,
    exchangeAccessState: easActivated ? 'allowed' : 'none',
    exchangeAccessStateReason: easActivated ? 'compliant' : 'none',
    remoteAssistanceSessionUrl: rng.chance(0.02) ? `https://remoteassist.contoso.example/session/${rng.hex(24)}` : '',
    remoteAssistanceSessionErrorDetails: '',
    isEncrypted: compliantish ? rng.chance(0.97) : rng.chance(0.5),
    userPrincipalName: person?.upn ?? '',
    model,
    manufacturer,
    imei,
    complianceGracePeriodExpirationDateTime: graceExpiry,
    serialNumber: serialFor(rng, index),
    phoneNumber,
    androidSecurityPatchLevel: platform === 'Android' ? rng.pick(['2024-09-01', '2024-11-01', '2025-01-01', '2025-03-01']) : '',
    userDisplayName: person?.displayName ?? '',
    configurationManagerClientEnabledFeatures:
      state === 'configManager'
        ? { inventory: true, modernApps: false, resourceAccess: false, deviceConfiguration: false, compliancePolicy: false, windowsUpdateForBusiness: false }
        : null,
    wiFiMacAddress: macFor(rng, index),
    deviceHealthAttestationState: platform === 'Windows' && rng.chance(0.3) ? healthAttestation(rng, isoSeconds(lastSyncMs)) : null,
    subscriberCarrier: cellular ? rng.pick(CARRIERS) : '',
    meid,
    totalStorageSpaceInBytes: totalStorage,
    freeStorageSpaceInBytes: Math.floor(totalStorage * (0.05 + rng.next() * 0.7)),
    managedDeviceName: `${upnLocal || 'userless'}_${profile.mdmTag}_${intuneNameDate(enrolledMs)}`,
    partnerReportedThreatState: rng.weighted([['unknown', 90], ['secured', 5], ['activated', 3], ['lowSeverity', 2]]),
    requireUserEnrollmentApproval: apple ? false : null,
    managementCertificateExpirationDate: isoSeconds(certExpiryMs),
    iccid,
    udid,
    notes: rng.chance(0.1) && person !== null ? `Loaner issued to ${person.displayName}; asset tag FK-${digits(rng, 5)}` : null,
    ethernetMacAddress: desktopish && rng.chance(0.8) ? macFor(rng, index + 0x800000) : null,
    physicalMemoryInBytes: memoryGiB * 1_073_741_824,
    enrollmentProfileName: company && apple ? (platform === 'macOS' ? 'Contoso Mac ADE' : 'Contoso iOS ADE') : '',
    managementState: rng.chance(0.01) ? 'retirePending' : 'managed',
  };
}

function nowMsOf(now: Date | number | undefined): number {
  const ms = now === undefined ? Date.now() : typeof now === 'number' ? now : now.getTime();
  if (!Number.isFinite(ms)) throw new SimulatorError('invalid_options', 'now must be a valid date or epoch milliseconds');
  return Math.floor(ms / 1000) * 1000;
}

export function generateTenant(count: number, seed: string, options: GenerateOptions = {}): Record<string, unknown>[] {
  if (!Number.isInteger(count) || count < 0 || count > MAX_GENERATED_DEVICES) {
    throw new SimulatorError('invalid_options', `devices is ${String(count)}; set it to a whole number from 0 to ${MAX_GENERATED_DEVICES}`);
  }
  if (typeof seed !== 'string') throw new SimulatorError('invalid_options', 'seed must be a string');
  const nowMs = nowMsOf(options.now);
  const rng = createRandom(`tenant:${seed}`);

  const forcedAt = new Map<number, ForcedTraits>();
  if (count >= FORCED_MIN_DEVICES) {
    FORCED.forEach((traits, k) => forcedAt.set(Math.floor((k * count) / FORCED.length), traits));
  }

  // Several devices per person, as in a real tenant (laptop plus phone).
  const people: Person[] = [];
  const devices: Record<string, unknown>[] = [];
  const ids = new Set<string>();
  const freshId = (): string => {
    let id = rng.guid();
    while (ids.has(id)) id = rng.guid();
    ids.add(id);
    return id;
  };

  for (let i = 0; i < count; i++) {
    const forced = forcedAt.get(i) ?? {};
    const platform = forced.platform ?? rng.weighted(PLATFORM_WEIGHTS);
    let state = forced.state ?? rng.weighted(STATE_WEIGHTS);
    if (state === 'configManager' && platform !== 'Windows') state = 'unknown';
    const ownership = forced.ownership ?? (rng.chance(PLATFORMS[platform].companyShare) ? 'company' : 'personal');
    const userless = forced.ownership === undefined && platform === 'Windows' && ownership === 'company' && rng.chance(0.03);
    let person: Person | null = null;
    if (!userless) {
      const existing = people.length > 0 && rng.chance(0.25) ? rng.pick(people) : undefined;
      person = existing ?? personFor(rng, people.length);
      if (existing === undefined) people.push(person);
    }
    const noAzureAD = forced.noAzureAD ?? (platform === 'Android' && ownership === 'personal' && rng.chance(0.35));
    const draft: DeviceDraft = {
      platform,
      person,
      ownership,
      state,
      grace: state === 'inGracePeriod' ? (forced.grace ?? (rng.chance(0.5) ? 'past' : 'future')) : null,
      stale: forced.stale ?? rng.chance(0.12),
      azureADDeviceId: noAzureAD ? null : rng.guid(),
    };
    const device = buildDevice(rng, i, draft, nowMs);
    device['id'] = freshId();
    devices.push(device);

    // Re-enrolment: the same hardware and Entra device enrolled again, leaving an older record
    // that stopped checking in. Both carry the same azureADDeviceId and serial.
    const reenrolled =
      draft.azureADDeviceId !== null && (forced.reenrolled ?? (!forcedAt.has(i + 1) && rng.chance(0.03))) && i + 1 < count;
    if (reenrolled) {
      const ghost = buildDevice(rng, i + 1, { ...draft, state: rng.pick(['noncompliant', 'unknown', 'compliant'] as const), grace: null, stale: true }, nowMs);
      ghost['id'] = freshId();
      ghost['serialNumber'] = device['serialNumber'];
      ghost['deviceName'] = device['deviceName'];
      ghost['model'] = device['model'];
      ghost['manufacturer'] = device['manufacturer'];
      // The old record stopped checking in shortly before the new enrolment.
      const ghostLastSyncMs = Date.parse(String(device['enrolledDateTime'])) - rng.int(1, 20) * DAY_MS;
      ghost['lastSyncDateTime'] = isoSeconds(ghostLastSyncMs);
      const ghostEnrolledMs = ghostLastSyncMs - rng.int(60, 400) * DAY_MS;
      ghost['enrolledDateTime'] = isoSeconds(ghostEnrolledMs);
      const [local, tag] = String(ghost['managedDeviceName']).split('_');
      ghost['managedDeviceName'] = `${String(local)}_${String(tag)}_${intuneNameDate(ghostEnrolledMs)}`;
      devices.push(ghost);
      i++;
    }
  }
  return devices;
}
