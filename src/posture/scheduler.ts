/**
 * Scheduled sync. Each connection carries next_sync_at in the database; a tick claims due
 * connections with one conditional UPDATE each (so of several replicas one claims a slot) and
 * starts their runs, which then take the connection's lease as any run does. The next slot is
 * the interval with ±10% jitter, so connections (and replicas) drift apart instead of syncing
 * in lockstep. Between ticks the scheduler sleeps until the earliest slot, but never longer than
 * maxSleepMs, so connections created on another replica are picked up.
 */
import type { Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import { claimScheduledSlot, dueConnections, earliestNextSync } from './store.js';

/** The interval with ±10% jitter; random() in [0, 1). */
export function jitteredIntervalMs(intervalMs: number, random: () => number): number {
  return Math.round(intervalMs * (0.9 + 0.2 * random()));
}

export interface SchedulerDeps {
  readonly db: Db;
  readonly logger: Logger;
  readonly now: () => number;
  readonly random: () => number;
  readonly intervalMs: number;
  readonly maxSleepMs: number;
  /** Starts the run of a claimed connection (does not wait for it to finish). */
  readonly startRun: (connection: { id: string; tenant: string }) => Promise<void>;
  /** Work to do on every tick before looking for due connections (refreshing Graph clients). */
  readonly beforeTick?: () => Promise<void>;
}

export interface Scheduler {
  start(): void;
  /** Stops ticking and waits for a tick in progress (not for the runs it started). */
  stop(): Promise<void>;
  /** Resolves once no tick is in progress (tests step fake time tick by tick with it). */
  whenIdle(): Promise<void>;
}

const MIN_SLEEP_MS = 50;

export function createScheduler(deps: SchedulerDeps): Scheduler {
  let running = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: Promise<void> | undefined;

  const schedule = (delayMs: number) => {
    timer = setTimeout(() => {
      timer = undefined;
      inFlight = tick().finally(() => {
        inFlight = undefined;
      });
    }, delayMs);
    timer.unref?.();
  };

  const tick = async (): Promise<void> => {
    let sleepMs = deps.maxSleepMs;
    try {
      await deps.beforeTick?.();
      const now = deps.now();
      const nowIso = new Date(now).toISOString();
      for (const connection of await dueConnections(deps.db, nowIso)) {
        if (!running) return;
        const next = new Date(now + jitteredIntervalMs(deps.intervalMs, deps.random)).toISOString();
        if (await claimScheduledSlot(deps.db, connection.id, nowIso, next)) await deps.startRun(connection);
      }
      const earliest = await earliestNextSync(deps.db);
      if (earliest !== null) sleepMs = Math.min(deps.maxSleepMs, Math.max(MIN_SLEEP_MS, earliest - deps.now()));
    } catch (err) {
      deps.logger.warn({ err }, 'scheduled sync tick failed; trying again later');
    }
    if (running) schedule(sleepMs);
  };

  return {
    start() {
      if (running || deps.intervalMs <= 0) return;
      running = true;
      schedule(0);
    },
    async stop() {
      running = false;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await inFlight;
    },
    async whenIdle() {
      while (inFlight !== undefined) await inFlight;
    },
  };
}
