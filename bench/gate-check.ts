/**
 * The gate's own work per decision, in one process: `gate.check` on a warm cache with the real
 * decision table, agent cache, failing-settings explanation, event validation and canonical JSON,
 * against an answering connector and a Chronicle writer that does everything an append does before
 * the database (validation, canonical body, chain hash). No HTTP, no PostgreSQL: what is left is
 * what the posture rules and the gate itself cost, measured as CPU time per check.
 *
 * Both policies of `bench:gate` (examples/accord-policy.yaml with posture rules, and
 * bench/policies/compliance-only.yaml without) run on the same device mix, alternating, several
 * rounds; medians are printed and written to bench/results/gate-check.json.
 *
 *   node --import tsx bench/gate-check.ts [--rounds 7] [--checks 20000]
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGate, buildGatePolicy, parsePolicyText, type ComplianceLookup } from '../src/gate/index.js';
import type { EndpointAgentReport } from '../src/gate/gate.js';
import type { DevicePosture } from '../src/connector/posture.js';
import { createChainHasher, GENESIS_HASH } from '../src/chronicle/canonical.js';
import { validateAppendInput } from '../src/chronicle/validate.js';
import { bodyAt, prepareEvent } from '../src/chronicle/envelope.js';
import type { AppendInput, AppendReceipt, ChronicleWriter } from '../src/chronicle/types.js';
import { median } from './lib.js';
import { samplePosture } from '../test/helpers/posture.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const ROUNDS = arg('--rounds', 7);
const CHECKS = arg('--checks', 20_000);
const NOW = Date.now();
const ACCORD = 'device-management';

/** A device mix like the demo tenant's: mostly compliant Macs and PCs, some on old macOS, every failing state. */
function devices(): Array<{ entra: string; record: DevicePosture; agents: EndpointAgentReport[]; settings: string[] }> {
  const out: Array<{ entra: string; record: DevicePosture; agents: EndpointAgentReport[]; settings: string[] }> = [];
  const states: DevicePosture['compliance_state'][] = ['compliant', 'compliant', 'compliant', 'compliant', 'compliant', 'noncompliant', 'conflict', 'error', 'unknown', 'inGracePeriod'];
  for (let i = 0; i < 100; i++) {
    const mac = i % 3 !== 2;
    const hex = i.toString(16).padStart(12, '0');
    const state = states[i % states.length] as DevicePosture['compliance_state'];
    const record = samplePosture({
      device_id: `6b7c1a52-3c4d-4e5f-8a9b-${hex}`,
      azure_ad_device_id: `0fa4e5e1-0000-4000-8000-${hex}`,
      os_family: mac ? 'macos' : 'windows',
      os_version: mac ? (i % 7 === 0 ? '13.6.1 (22G313)' : '14.5 (23F79)') : '10.0.22631.3593',
      compliance_state: state,
      grace_period_expires_at: state === 'inGracePeriod' ? new Date(NOW - 86_400_000).toISOString() : null,
      is_encrypted: i % 23 !== 0,
      enrolled_at: '2024-01-15T09:00:00Z',
      last_sync_at: new Date(NOW - (i % 17 === 0 ? 40 : 1) * 86_400_000).toISOString(),
      model: mac ? 'MacBook Pro' : 'Surface Laptop',
      manufacturer: mac ? 'Apple' : 'Microsoft',
    });
    const agents: EndpointAgentReport[] = mac ? [{ agent_id: `agt_${hex}`, confidence: 'agent', filevault: record.is_encrypted, os_version: (record.os_version ?? '').split(' ')[0] ?? null }] : [];
    const settings = state === 'compliant' ? [] : ['MacOSCompliancePolicy.StorageRequireEncryption', 'MacOSCompliancePolicy.FirewallEnabled'];
    out.push({ entra: record.azure_ad_device_id as string, record, agents, settings });
  }
  return out;
}

function chronicle(): ChronicleWriter {
  const hasher = createChainHasher();
  let seq = 0;
  let head = GENESIS_HASH;
  return {
    append(input: AppendInput): Promise<AppendReceipt> {
      const checked = validateAppendInput(input);
      if (!checked.ok) return Promise.reject(new Error(`${checked.field}: ${checked.message}`));
      const event = prepareEvent(input);
      seq += 1;
      const time = new Date().toISOString();
      head = hasher(head, bodyAt(event, seq, time));
      return Promise.resolve({ tenant: input.tenant, seq, hash: head, time });
    },
  };
}

function gateFor(policyFile: string, mix: ReturnType<typeof devices>) {
  const byEntra = new Map(mix.map((d) => [d.entra, d]));
  const byIntune = new Map(mix.map((d) => [d.record.device_id, d]));
  const policy = buildGatePolicy(
    { intuneEnabled: true, compliance: { requiredByDefault: false, strict: false, staleMaxMs: 600_000, maxCheckinAgeMs: 30 * 86_400_000 } },
    parsePolicyText(fs.readFileSync(path.join(ROOT, policyFile), 'utf8'), policyFile),
  );
  return createGate({
    policy,
    chronicle: chronicle(),
    connector: {
      lookupCompliance: async (_tenant, key) => {
        const found = byEntra.get((key as { azureADDeviceId: string }).azureADDeviceId);
        return { ok: true, records: found === undefined ? [] : [found.record], cacheHit: true, servedStale: false, fetchedAt: NOW, graphRequestId: 'req' } satisfies ComplianceLookup;
      },
      lookupFailingSettings: async (_tenant, id) => ({ ok: true, settings: byIntune.get(id)?.settings ?? [], cacheHit: true }),
    },
    endpointAgents: async (_tenant, ids) => ids.flatMap((id) => byIntune.get(id)?.agents ?? []),
  });
}

async function round(gate: ReturnType<typeof createGate>, mix: ReturnType<typeof devices>): Promise<number> {
  const started = process.cpuUsage();
  for (let i = 0; i < CHECKS; i++) {
    const device = mix[i % mix.length] as (typeof mix)[number];
    await gate.check({ accord: ACCORD, claims: { deviceid: device.entra }, tenant: 'default', actor: { kind: 'service', id: 'bench' }, channel: 'api', requestId: `req-${i}` });
  }
  const used = process.cpuUsage(started);
  return ((used.user + used.system) / CHECKS);
}

const mix = devices();
const policies = { rules: 'examples/accord-policy.yaml', none: 'bench/policies/compliance-only.yaml' } as const;
const gates = { rules: gateFor(policies.rules, mix), none: gateFor(policies.none, mix) };
const reasons: Record<string, Record<string, number>> = { rules: {}, none: {} };
for (const name of ['rules', 'none'] as const) {
  for (const d of mix) {
    const r = await gates[name].check({ accord: ACCORD, claims: { deviceid: d.entra } });
    reasons[name]![r.reason] = (reasons[name]![r.reason] ?? 0) + 1;
  }
}
process.stdout.write(`decisions per 100 checks: with rules ${JSON.stringify(reasons['rules'])}; without ${JSON.stringify(reasons['none'])}\n`);
// warm-up
for (const name of ['rules', 'none'] as const) await round(gates[name], mix);
const cpu: Record<'rules' | 'none', number[]> = { rules: [], none: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const name of r % 2 === 0 ? (['rules', 'none'] as const) : (['none', 'rules'] as const)) cpu[name].push(await round(gates[name], mix));
}
const m = { rules: median(cpu.rules), none: median(cpu.none) };
const out = path.join(HERE, 'results', 'gate-check.json');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(
  out,
  `${JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, checksPerRound: CHECKS, decisions: reasons, cpuMicrosPerCheck: { withRules: cpu.rules, withoutRules: cpu.none }, medianWithRules: m.rules, medianWithoutRules: m.none, rulesOverNone: m.rules / m.none }, null, 2)}\n`,
);
process.stdout.write(
  `CPU per check (µs, ${ROUNDS} rounds x ${CHECKS}): with rules ${m.rules.toFixed(1)} [${cpu.rules.map((x) => x.toFixed(1)).join(', ')}], ` +
    `without ${m.none.toFixed(1)} [${cpu.none.map((x) => x.toFixed(1)).join(', ')}]; rules/none ${(m.rules / m.none).toFixed(3)}\n`,
);
