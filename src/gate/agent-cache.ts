/**
 * The gate's short-lived memory of what enrolled agents measure on the machine of an Intune
 * record: one asset-identity read per (tenant, Intune device) per TTL instead of one per check.
 *
 * - Concurrent misses for one device share one read.
 * - `forget(tenant, agentId)` (a heartbeat that changed nothing but the time: the agent may have
 *   turned from stale to fresh) drops the devices that agent was read for, and every read still in
 *   flight for the tenant (it may have started before the heartbeat committed).
 * - `forget(tenant)` (an enrollment, revocation, posture change or sync re-match, any of which may
 *   move agents between machines) drops the tenant's entries.
 * - On another replica nothing is dropped: a heartbeat or revocation there takes effect here within
 *   the TTL (INTUNE_GATE_AGENT_CACHE_TTL, default 30 s).
 * - A read that fails is not kept: the next check reads again.
 */
import { LRUCache } from 'lru-cache';

/** What one read answers: every agent on the machine (fresh or stale, for forgetting) and what the caller keeps. */
export interface AgentRead<T> {
  readonly agentIds: readonly string[];
  readonly value: T;
}

export interface AgentCacheOptions<T> {
  /** The asset-identity read for one Intune device of one tenant. */
  readonly read: (tenant: string, intuneDeviceId: string) => Promise<AgentRead<T>>;
  /** How long an answer is reused (0: never, every check reads). */
  readonly ttlMs: number;
  /** Size bound in devices. */
  readonly maxEntries: number;
}

export interface AgentCache<T> {
  get(tenant: string, intuneDeviceId: string): Promise<T>;
  /** Drops what one agent's change can affect on this replica, or the whole tenant's entries. */
  forget(tenant: string, agentId?: string): void;
  /** Reads started (misses); tests count them. */
  readonly reads: number;
}

interface Entry<T> {
  readonly tenant: string;
  readonly answer: Promise<T>;
  /** The agents the read found; null while it is in flight. */
  agentIds: readonly string[] | null;
}

const keyOf = (tenant: string, id: string): string => `${tenant}\u0000${id.toLowerCase()}`;

export function createAgentCache<T>(options: AgentCacheOptions<T>): AgentCache<T> {
  let reads = 0;
  if (options.ttlMs <= 0) {
    return {
      get(tenant, intuneDeviceId) {
        reads += 1;
        return options.read(tenant, intuneDeviceId).then((r) => r.value);
      },
      forget: () => undefined,
      get reads() {
        return reads;
      },
    };
  }

  /** tenant + agent id -> the cache keys whose answer names that agent. */
  const byAgent = new Map<string, Set<string>>();
  const pending = new Set<string>();
  const unindex = (entry: Entry<T>, key: string): void => {
    for (const agentId of entry.agentIds ?? []) {
      const indexKey = keyOf(entry.tenant, agentId);
      const keys = byAgent.get(indexKey);
      keys?.delete(key);
      if (keys?.size === 0) byAgent.delete(indexKey);
    }
  };
  const lru = new LRUCache<string, Entry<T>>({
    max: Math.max(1, options.maxEntries),
    ttl: options.ttlMs,
    ttlAutopurge: false,
    dispose: (entry, key) => {
      pending.delete(key);
      unindex(entry, key);
    },
  });

  function get(tenant: string, intuneDeviceId: string): Promise<T> {
    const key = keyOf(tenant, intuneDeviceId);
    const hit = lru.get(key);
    if (hit !== undefined) return hit.answer;
    reads += 1;
    let entry: Entry<T>;
    const answer = options.read(tenant, intuneDeviceId).then(
      (found) => {
        // Forgotten (or replaced) while in flight: the answer goes to the checks that waited for it, and no further.
        if (lru.peek(key) === entry) {
          pending.delete(key);
          entry.agentIds = found.agentIds;
          for (const agentId of found.agentIds) {
            const indexKey = keyOf(tenant, agentId);
            const keys = byAgent.get(indexKey) ?? new Set<string>();
            keys.add(key);
            byAgent.set(indexKey, keys);
          }
        }
        return found.value;
      },
      (err: unknown) => {
        if (lru.peek(key) === entry) lru.delete(key);
        throw err;
      },
    );
    entry = { tenant, answer, agentIds: null };
    lru.set(key, entry);
    pending.add(key);
    return answer;
  }

  function forget(tenant: string, agentId?: string): void {
    const prefix = keyOf(tenant, '');
    if (agentId === undefined) {
      for (const key of [...lru.keys()]) if (key.startsWith(prefix)) lru.delete(key);
      return;
    }
    for (const key of [...(byAgent.get(keyOf(tenant, agentId)) ?? [])]) lru.delete(key);
    for (const key of [...pending]) if (key.startsWith(prefix)) lru.delete(key);
  }

  return {
    get,
    forget,
    get reads() {
      return reads;
    },
  };
}
