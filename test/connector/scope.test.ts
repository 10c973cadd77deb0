import { describe, expect, it } from 'vitest';
import { OPERATION_NAMES, type DelegationScope, type OperationName } from '../../src/connector/contract.js';
import { OPERATIONS, findOperation } from '../../src/connector/operations.js';
import { PHASE1_POLICY, authorizeOperation, permittedOperations } from '../../src/connector/scope.js';

const scope = (over: Partial<DelegationScope> = {}): DelegationScope => ({ capabilities: ['READ'], ceremonyRequiredFor: [], ...over });
const op = (name: OperationName) => findOperation(name)!;

describe('operation descriptors', () => {
  it('declares all eight, in contract order, each with a capability from the capability model', () => {
    expect(OPERATIONS.map((d) => d.name)).toEqual([...OPERATION_NAMES]);
    expect(Object.fromEntries(OPERATIONS.map((d) => [d.name, d.capability]))).toEqual({
      list_devices: 'READ',
      get_device: 'READ',
      get_compliance: 'READ',
      find_asset: 'READ',
      sync_device: 'PROPOSE',
      remote_lock: 'MUTATE',
      retire_device: 'MUTATE',
      wipe_device: 'MUTATE',
    });
    for (const d of OPERATIONS) {
      expect(d.title.length).toBeGreaterThan(0);
      expect(d.description.length).toBeGreaterThan(20);
      // find_asset reads the stored assets: it names no Graph endpoint.
      expect(d.graph).toMatch(d.name === 'find_asset' ? /^none / : /^(GET|POST) /);
    }
  });
});

describe('authorizeOperation (Phase 1 policy)', () => {
  it('allows each READ operation to a READ scope and refuses it to a scope without READ', () => {
    for (const name of ['list_devices', 'get_device', 'get_compliance'] as const) {
      expect(authorizeOperation(op(name), scope(), PHASE1_POLICY)).toEqual({ allowed: true, ceremonyRequired: false });
      const denied = authorizeOperation(op(name), scope({ capabilities: ['PROPOSE'] }), PHASE1_POLICY);
      expect(denied).toMatchObject({ allowed: false, reason: 'capability_not_granted' });
    }
  });

  it('allows sync_device only with PROPOSE', () => {
    expect(authorizeOperation(op('sync_device'), scope(), PHASE1_POLICY)).toMatchObject({ allowed: false, reason: 'capability_not_granted' });
    expect(authorizeOperation(op('sync_device'), scope({ capabilities: ['READ', 'PROPOSE'] }), PHASE1_POLICY)).toMatchObject({ allowed: true });
  });

  it('disables every MUTATE operation whatever the scope grants, with a message that says Phase 1', () => {
    const everything = scope({ capabilities: ['READ', 'PROPOSE', 'MUTATE'], operations: [...OPERATION_NAMES] });
    for (const name of ['remote_lock', 'retire_device', 'wipe_device'] as const) {
      const result = authorizeOperation(op(name), everything, PHASE1_POLICY);
      expect(result).toMatchObject({ allowed: false, reason: 'operation_disabled' });
      expect(!result.allowed && result.message).toContain(`${name} is disabled in Phase 1: MUTATE operations are not enabled in this deployment`);
    }
  });

  it('checks Phase 1 before the capability: a READ-only caller of remote_lock hears it is disabled', () => {
    expect(authorizeOperation(op('remote_lock'), scope(), PHASE1_POLICY)).toMatchObject({ reason: 'operation_disabled' });
  });

  it('narrows by the scope operation list', () => {
    const narrow = scope({ operations: ['get_compliance'] });
    expect(authorizeOperation(op('get_compliance'), narrow, PHASE1_POLICY)).toMatchObject({ allowed: true });
    expect(authorizeOperation(op('list_devices'), narrow, PHASE1_POLICY)).toMatchObject({ allowed: false, reason: 'operation_not_granted' });
  });

  it('flags ceremony for operations the scope names, once a policy enables a mutation', () => {
    const policy = { enabledMutations: ['remote_lock'] as OperationName[] };
    const s = scope({ capabilities: ['MUTATE'], ceremonyRequiredFor: ['remote_lock'] });
    expect(authorizeOperation(op('remote_lock'), s, policy)).toEqual({ allowed: true, ceremonyRequired: true });
    expect(authorizeOperation(op('wipe_device'), s, policy)).toMatchObject({ allowed: false, reason: 'operation_disabled' });
  });
});

describe('permittedOperations', () => {
  it('lists READ tools for the default read-only scope', () => {
    expect(permittedOperations(OPERATIONS, scope(), PHASE1_POLICY).map((d) => d.name)).toEqual(['list_devices', 'get_device', 'get_compliance', 'find_asset']);
  });
  it('adds sync_device with PROPOSE and never lists MUTATE in Phase 1', () => {
    const all = scope({ capabilities: ['READ', 'PROPOSE', 'MUTATE'] });
    expect(permittedOperations(OPERATIONS, all, PHASE1_POLICY).map((d) => d.name)).toEqual(['list_devices', 'get_device', 'get_compliance', 'find_asset', 'sync_device']);
  });
});
