/**
 * Intune's per-app Graph budget shared by replicas: the same sliding logs as LocalGraphBudget, as
 * sorted sets in Redis, checked and counted in one Lua script on Redis's clock (so replicas agree
 * whatever their own clocks say). A Retry-After pause is a key every replica's script reads.
 * While Redis does not answer, this replica keeps to its local log, which it has kept current with
 * every request the shared budget admitted, and to its share of the budget: the budget divided by
 * the replicas last seen alive (each says so in Redis every few seconds). It never sends without a
 * slot of one or the other.
 */
import crypto from 'node:crypto';
import { LocalGraphBudget, budgetMarginMs, type BudgetLimits, type GraphBudget } from '../graph/budget.js';
import { WriteBudget, type DeviceWriteBudget, type TakeResult } from '../write-budget.js';
import { UNAVAILABLE, type RedisLink } from './link.js';

/** KEYS: requests log, writes log, pause. ARGV: request limit, write limit, window ms, write (1/0), member. Returns ms to wait (0: admitted). */
const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then return paused - now end
local window = tonumber(ARGV[3])
local wait = 0
local function check(key, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now, 1)
  end
end
check(KEYS[1], tonumber(ARGV[1]))
if ARGV[4] == '1' then check(KEYS[2], tonumber(ARGV[2])) end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], window)
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[2], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], window)
end
return 0
`;

/** KEYS: requests log, writes log. ARGV: window ms, write (1/0), member. The slot counts from now (if still in the log). */
const SENT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  redis.call('ZADD', KEYS[2], 'XX', now, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return 0
`;

/** KEYS: pause. ARGV: ms. Moves the pause later, never earlier. */
const PAUSE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = now + tonumber(ARGV[1])
if untilMs > tonumber(redis.call('GET', KEYS[1]) or '0') then redis.call('SET', KEYS[1], untilMs, 'PX', ARGV[1]) end
return 0
`;

/** KEYS: the tenant's device-action log. ARGV: capacity, window ms, member. Returns ms to wait (0: admitted and counted). */
const TAKE_WRITE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(tonumber(oldest[2]) + window - now, 1)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
`;

export interface BudgetStats {
  /** Times a Graph request had to wait for its slot. */
  readonly waits: number;
  /** Slots given by the local log because Redis did not answer. */
  readonly localReservations: number;
}

/** How often a replica says it is alive, and how long it counts as alive after. */
const HEARTBEAT_MS = 5_000;
const ALIVE_MS = 3 * HEARTBEAT_MS;

export class RedisGraphBudget implements GraphBudget {
  readonly #link: RedisLink;
  readonly #limits: BudgetLimits;
  readonly #windowMs: number;
  readonly #local: LocalGraphBudget;
  readonly #replicaId = crypto.randomUUID();
  readonly #heartbeat: NodeJS.Timeout;
  #replicas = 1;
  #waits = 0;
  #localReservations = 0;

  constructor(link: RedisLink, limits: BudgetLimits) {
    this.#link = link;
    this.#limits = limits;
    this.#windowMs = limits.windowMs + budgetMarginMs(limits.windowMs);
    this.#local = new LocalGraphBudget(limits, Date.now, () => this.#replicas);
    this.#heartbeat = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Says this replica is alive and counts the live ones (the share the local fallback keeps to). */
  async heartbeat(): Promise<void> {
    const key = this.#link.key('replicas');
    const now = Date.now();
    const counted = await this.#link.run((r) =>
      r.multi().zadd(key, now, this.#replicaId).zremrangebyscore(key, '-inf', now - ALIVE_MS).zcard(key).pexpire(key, ALIVE_MS).exec(),
    );
    if (counted === UNAVAILABLE || counted === null) return;
    const count = counted[2]?.[1];
    if (typeof count === 'number' && count >= 1) this.#replicas = count;
  }

  close(): void {
    clearInterval(this.#heartbeat);
  }

  /** Replicas last seen alive (1 until Redis said otherwise). */
  replicas(): number {
    return this.#replicas;
  }

  async reserve(key: string, write: boolean): Promise<{ readonly waitMs: number; readonly slot?: string }> {
    const keys = [this.#link.key('budget', key, 'requests'), this.#link.key('budget', key, 'writes'), this.#link.key('budget', key, 'pause')];
    const slot = crypto.randomUUID();
    const args = [this.#limits.requests, this.#limits.writes, this.#windowMs, write ? 1 : 0, slot];
    const shared = await this.#link.run((r) => r.eval(RESERVE, 3, ...keys, ...args));
    if (shared === UNAVAILABLE || typeof shared !== 'number') {
      this.#localReservations += 1;
      const local = this.#local.reserveNow(key, write);
      if (local.waitMs > 0) this.#waits += 1;
      return local;
    }
    if (shared > 0) {
      this.#waits += 1;
      return { waitMs: shared };
    }
    this.#local.record(key, write, slot);
    return { waitMs: 0, slot };
  }

  sent(key: string, slot: string, write: boolean): void {
    this.#local.sent(key, slot, write);
    const keys = [this.#link.key('budget', key, 'requests'), this.#link.key('budget', key, 'writes')];
    void this.#link.run((r) => r.eval(SENT, 2, ...keys, this.#windowMs, write ? 1 : 0, slot));
  }

  pause(key: string, retryAfterMs: number): void {
    this.#local.pause(key, retryAfterMs);
    void this.#link.run((r) => r.eval(PAUSE, 1, this.#link.key('budget', key, 'pause'), Math.max(1, Math.ceil(retryAfterMs))));
  }

  stats(): BudgetStats {
    return { waits: this.#waits, localReservations: this.#localReservations };
  }
}

/** The process-only budget with the same counters. */
export class CountingLocalBudget implements GraphBudget {
  readonly #local: LocalGraphBudget;
  #waits = 0;

  constructor(limits: BudgetLimits) {
    this.#local = new LocalGraphBudget(limits);
  }

  reserve(key: string, write: boolean): Promise<{ readonly waitMs: number; readonly slot?: string }> {
    const reservation = this.#local.reserveNow(key, write);
    if (reservation.waitMs > 0) this.#waits += 1;
    return Promise.resolve(reservation);
  }

  sent(key: string, slot: string, write: boolean): void {
    this.#local.sent(key, slot, write);
  }

  pause(key: string, retryAfterMs: number): void {
    this.#local.pause(key, retryAfterMs);
  }

  stats(): BudgetStats {
    return { waits: this.#waits, localReservations: 0 };
  }
}

/**
 * The connector's device-action budget shared by replicas: one sliding log per tenant in Redis,
 * checked and counted in one script on Redis's clock, so replicas together admit at most
 * `capacity` device actions per window. While Redis does not answer, this replica keeps to a local
 * bucket of its share (capacity divided by the replicas last seen alive): never more than its part.
 */
export class RedisWriteBudget implements DeviceWriteBudget {
  readonly #link: RedisLink;
  readonly #capacity: number;
  readonly #windowMs: number;
  readonly #local: WriteBudget;
  #localTakes = 0;

  constructor(link: RedisLink, options: { readonly capacity?: number; readonly windowMs?: number; readonly now: () => number; readonly replicas: () => number }) {
    this.#link = link;
    this.#capacity = Math.max(1, options.capacity ?? 200);
    this.#windowMs = Math.max(1, options.windowMs ?? 20_000);
    this.#local = new WriteBudget({ capacity: this.#capacity, windowMs: this.#windowMs, now: options.now, share: options.replicas });
  }

  async take(tenant: string): Promise<TakeResult> {
    const waitMs = await this.#link.run((r) => r.eval(TAKE_WRITE, 1, this.#link.key('writes', tenant), this.#capacity, this.#windowMs, crypto.randomUUID()));
    if (waitMs === UNAVAILABLE || typeof waitMs !== 'number') {
      this.#localTakes += 1;
      return this.#local.take(tenant);
    }
    return waitMs > 0 ? { ok: false, retryAfterMs: waitMs } : { ok: true };
  }

  /** Device actions admitted by the local fallback because Redis did not answer. */
  localTakes(): number {
    return this.#localTakes;
  }
}
