/** The enrollment rule table, row by row: pure, no I/O. */
import { describe, expect, it } from 'vitest';
import { decideEnrollment } from '../../src/agents/rules.js';

describe('enrollment rule table', () => {
  it.each([
    // platform, agent_class, os_version, accepted or the refusal code
    ['darwin', 'endpoint', '14.5', 'accept'],
    ['darwin', 'endpoint', '13', 'accept'],
    ['darwin', 'endpoint', '13.0', 'accept'],
    ['darwin', 'endpoint', '15.1.1', 'accept'],
    ['darwin', 'endpoint', '26.0', 'accept'],
    ['darwin', 'endpoint', undefined, 'accept'],
    ['darwin', 'endpoint', '12.7.6', 'os_version_unsupported'],
    ['darwin', 'endpoint', '10.15', 'os_version_unsupported'],
    ['darwin', 'endpoint', '14.x', 'os_version_invalid'],
    ['darwin', 'endpoint', '', 'os_version_invalid'],
    ['darwin', 'server', '14.5', 'agent_class_not_allowed'],
    ['darwin', 'mobile', '14.5', 'agent_class_not_allowed'],
    ['darwin', 'Endpoint', '14.5', 'agent_class_not_allowed'],
    ['linux', 'endpoint', '14.5', 'platform_not_supported'],
    ['windows', 'endpoint', '11', 'platform_not_supported'],
    ['ios', 'endpoint', '17.0', 'platform_not_supported'],
    ['Darwin', 'endpoint', '14.5', 'platform_not_supported'],
    ['linux', 'server', '12', 'platform_not_supported'],
  ] as const)('%s / %s / %s -> %s', (platform, agentClass, osVersion, expected) => {
    const decision = decideEnrollment({ platform, agentClass, osVersion });
    if (expected === 'accept') {
      expect(decision).toEqual({ accept: true, platform: 'darwin', agentClass: 'endpoint', osFamily: 'macos' });
    } else {
      expect(decision.accept).toBe(false);
      if (!decision.accept) {
        expect(decision.code).toBe(expected);
        expect(decision.message.length).toBeGreaterThan(20);
      }
    }
  });

  it('names the minimum macOS version in its refusal', () => {
    const decision = decideEnrollment({ platform: 'darwin', agentClass: 'endpoint', osVersion: '12.6' });
    expect(decision).toMatchObject({ accept: false, field: 'os_version', message: expect.stringContaining('macOS 13 or later') });
  });
});
