/**
 * The demo's agents: at `serve` start without configuration, a handful of simulated macOS agents
 * enroll through the reference agent (real tokens, CSRs, certificates and mTLS heartbeats), some
 * with the serials of demo Intune Macs, some for machines Intune does not know.
 */
import crypto from 'node:crypto';
import type { Actor } from '../chronicle/types.js';
import type { Logger } from '../log/index.js';
import { runSimulatedAgent } from './reference-agent.js';
import type { AgentService } from './types.js';
import { defined } from '../common/values.js';

export interface DemoMac {
  readonly serialNumber: string;
  readonly model?: string;
}

const DEMO_ACTOR: Actor = { kind: 'system', id: 'serve:demo-agents' };
const OS_VERSIONS = ['14.5', '15.1', '13.6.7', '14.7.1', '15.0.1'];

/** Enrolls `intuneMacs` (known to Intune) and `unknown` more Macs; returns their agent ids. */
export async function enrollDemoAgents(options: {
  agents: AgentService;
  tenant: string;
  mainUrl: string;
  agentUrl: string;
  serverCa?: string;
  intuneMacs: readonly DemoMac[];
  unknown: number;
  logger: Logger;
}): Promise<string[]> {
  const machines: DemoMac[] = [...options.intuneMacs];
  for (let i = 0; i < options.unknown; i += 1) {
    machines.push({ serialNumber: `DEMO${crypto.randomBytes(4).toString('hex').toUpperCase()}`, model: 'MacBookAir10,1' });
  }
  const ids: string[] = [];
  for (const [i, mac] of machines.entries()) {
    const { token } = await options.agents.createToken(options.tenant, { ttlSeconds: 300, name: 'demo agent' }, DEMO_ACTOR);
    const osVersion = OS_VERSIONS[i % OS_VERSIONS.length] as string;
    const run = await runSimulatedAgent({
      url: options.mainUrl,
      token,
      agentUrl: options.agentUrl,
      ...defined({ serverCa: options.serverCa }),
      enroll: {
        osVersion,
        serialNumber: mac.serialNumber,
        hardwareUuid: crypto.randomUUID().toUpperCase(),
        ...(mac.model !== undefined && /^[A-Za-z0-9 ,._()-]{1,64}$/.test(mac.model) ? { model: mac.model } : {}),
      },
      posture: { filevault: i % 4 !== 3, firewall: i % 3 !== 2, sip: true, gatekeeper: true },
      heartbeats: 1,
    });
    ids.push(run.agentId);
  }
  options.logger.info({ agents: ids.length, intune: options.intuneMacs.length }, 'DEMO: simulated macOS agents enrolled');
  return ids;
}
