/**
 * The enrollment rule table: which platform, agent class and OS version may enroll. One table,
 * read by one pure function; the enroll route, the reference agent's docs and the tests all read
 * it. Phase 1 knows one row: macOS (platform darwin) endpoint agents on macOS 13 or later.
 */

export const PLATFORMS = ['darwin'] as const;
export type Platform = (typeof PLATFORMS)[number];
export const AGENT_CLASSES = ['endpoint'] as const;
export type AgentClass = (typeof AGENT_CLASSES)[number];
export const AGENT_OS_FAMILIES = ['macos'] as const;
export type AgentOsFamily = (typeof AGENT_OS_FAMILIES)[number];

export interface EnrollmentRule {
  readonly platform: Platform;
  readonly agentClasses: readonly AgentClass[];
  readonly osFamily: AgentOsFamily;
  /** The lowest major OS version accepted (macOS 13 Ventura for Phase 1). */
  readonly minOsMajor: number;
  /** What the OS is called in messages. */
  readonly osName: string;
}

export const ENROLLMENT_RULES: readonly EnrollmentRule[] = Object.freeze([
  Object.freeze({ platform: 'darwin', agentClasses: Object.freeze(['endpoint'] as const), osFamily: 'macos', minOsMajor: 13, osName: 'macOS' }),
]);

/** Dotted numeric versions only ("14", "14.5", "14.5.1"); the event schema uses the same pattern. */
export const OS_VERSION_PATTERN = /^[0-9]{1,4}(\.[0-9]{1,6}){0,3}$/;

export type EnrollmentDecision =
  | { readonly accept: true; readonly platform: Platform; readonly agentClass: AgentClass; readonly osFamily: AgentOsFamily }
  | {
      readonly accept: false;
      readonly code: 'platform_not_supported' | 'agent_class_not_allowed' | 'os_version_invalid' | 'os_version_unsupported';
      readonly field: 'platform' | 'agent_class' | 'os_version';
      readonly message: string;
    };

export interface EnrollmentClaim {
  readonly platform: string;
  readonly agentClass: string;
  readonly osVersion?: string | null | undefined;
}

/** Decides an enrollment from what the agent declares. No I/O, no clock. */
export function decideEnrollment(claim: EnrollmentClaim, rules: readonly EnrollmentRule[] = ENROLLMENT_RULES): EnrollmentDecision {
  const rule = rules.find((r) => r.platform === claim.platform);
  if (rule === undefined) {
    return {
      accept: false,
      code: 'platform_not_supported',
      field: 'platform',
      message: `platform "${claim.platform.slice(0, 32)}" cannot enroll; supported: ${rules.map((r) => r.platform).join(', ')}`,
    };
  }
  const agentClass = rule.agentClasses.find((c) => c === claim.agentClass);
  if (agentClass === undefined) {
    return {
      accept: false,
      code: 'agent_class_not_allowed',
      field: 'agent_class',
      message: `platform ${rule.platform} enrolls only with agent_class ${rule.agentClasses.join(' or ')}`,
    };
  }
  if (claim.osVersion !== undefined && claim.osVersion !== null) {
    if (!OS_VERSION_PATTERN.test(claim.osVersion)) {
      return { accept: false, code: 'os_version_invalid', field: 'os_version', message: 'os_version must be a dotted version such as 14.5' };
    }
    const major = Number(claim.osVersion.split('.')[0]);
    if (major < rule.minOsMajor) {
      return {
        accept: false,
        code: 'os_version_unsupported',
        field: 'os_version',
        message: `${rule.osName} ${claim.osVersion.slice(0, 32)} is not supported; ${rule.osName} ${rule.minOsMajor} or later is required`,
      };
    }
  }
  return { accept: true, platform: rule.platform, agentClass, osFamily: rule.osFamily };
}
