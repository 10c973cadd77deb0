/**
 * The connection to Redis (REDIS_URL) and whether it answers. Every command goes through `run`,
 * bounded by REDIS_TIMEOUT_MS; a failure marks the link down (logged once per outage) and callers
 * get UNAVAILABLE, on which they do the work locally. While down, commands are not tried for a
 * short while (no 250 ms wait per lookup); the next one after that probes, and the first that
 * succeeds (or the client's reconnect) marks the link up again, logged once.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../../log/index.js';

export const UNAVAILABLE: unique symbol = Symbol('redis-unavailable');
export type Unavailable = typeof UNAVAILABLE;

export interface RedisLinkOptions {
  readonly url: string;
  /** Namespace of every key and channel of this deployment. */
  readonly keyPrefix: string;
  readonly timeoutMs: number;
  readonly logger: Logger | undefined;
  /** While down, how long commands are not tried before the next probe (default 1000 ms). */
  readonly probeIntervalMs?: number;
}

export interface RedisLinkStatus {
  readonly up: boolean;
  /** Since when it is up (or down), ISO 8601. */
  readonly since: string;
  /** Outages since start. */
  readonly outages: number;
  /** Operations done locally because Redis did not answer. */
  readonly fallbacks: number;
}

/** A short, safe name for a Redis failure (never the URL: it may carry a password). */
function failureCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) return code;
  const message = err instanceof Error ? err.message : '';
  if (/timed out/i.test(message)) return 'timeout';
  if (/writeable|closed|connection/i.test(message)) return 'not_connected';
  return 'error';
}

export class RedisLink {
  readonly command: Redis;
  readonly subscriber: Redis;
  readonly keyPrefix: string;
  readonly #logger: Logger | undefined;
  readonly #probeIntervalMs: number;
  #up = false;
  #since = Date.now();
  #outages = 0;
  #fallbacks = 0;
  #retryAt = 0;
  #closed = false;
  readonly #reconnectListeners: Array<() => void> = [];

  constructor(options: RedisLinkOptions) {
    this.keyPrefix = options.keyPrefix;
    this.#logger = options.logger;
    this.#probeIntervalMs = options.probeIntervalMs ?? 1_000;
    const common = {
      connectTimeout: Math.max(1_000, options.timeoutMs * 4),
      retryStrategy: (times: number) => Math.min(1_000, 50 * times),
      enableReadyCheck: true,
      lazyConnect: false,
    };
    // No offline queue: while disconnected a command fails at once and the caller works locally.
    this.command = new Redis(options.url, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: options.timeoutMs });
    this.subscriber = new Redis(options.url, { ...common, enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: true });
    this.command.on('error', (err: unknown) => this.#markDown(err));
    this.subscriber.on('error', () => undefined);
    this.command.on('ready', () => this.#markUp());
    let subscriberReady = false;
    this.subscriber.on('ready', () => {
      // Invalidations published while this replica could not hear them are lost: its listeners start over.
      if (subscriberReady) for (const listener of this.#reconnectListeners) listener();
      subscriberReady = true;
    });
  }

  /** Waits (bounded) for the first connection, so a replica that starts with Redis up starts shared. */
  async ready(waitMs: number): Promise<boolean> {
    if (this.#isReady()) return true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, waitMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.command.once('ready', done);
    });
    const ready = this.#isReady();
    if (!ready) this.#markDown(new Error('connection not ready'));
    return ready;
  }

  #isReady(): boolean {
    // ioredis narrows `status` after the first comparison; read it afresh.
    const status: string = this.command.status;
    return status === 'ready';
  }

  key(...parts: readonly string[]): string {
    return [this.keyPrefix, ...parts].join(':');
  }

  get up(): boolean {
    return this.#up;
  }

  /** The command's result, or UNAVAILABLE when Redis does not answer in time (the caller works locally). */
  async run<T>(op: (redis: Redis) => Promise<T>): Promise<T | Unavailable> {
    if (this.#closed || (!this.#up && Date.now() < this.#retryAt)) {
      this.#fallbacks += 1;
      return UNAVAILABLE;
    }
    try {
      const result = await op(this.command);
      this.#markUp();
      return result;
    } catch (err) {
      this.#markDown(err);
      this.#fallbacks += 1;
      return UNAVAILABLE;
    }
  }

  /** Called after the subscriber reconnects: messages sent meanwhile were missed. */
  onReconnect(listener: () => void): void {
    this.#reconnectListeners.push(listener);
  }

  status(): RedisLinkStatus {
    return { up: this.#up, since: new Date(this.#since).toISOString(), outages: this.#outages, fallbacks: this.#fallbacks };
  }

  #markUp(): void {
    this.#retryAt = 0;
    if (this.#up || this.#closed) return;
    const wasDown = this.#outages > 0;
    this.#up = true;
    this.#since = Date.now();
    if (wasDown) this.#logger?.info({ redis: 'up' }, 'Redis answers again: replicas share the compliance cache and the Graph budget');
  }

  #markDown(err: unknown): void {
    this.#retryAt = Date.now() + this.#probeIntervalMs;
    if ((!this.#up && this.#outages > 0) || this.#closed) return;
    this.#up = false;
    this.#outages += 1;
    this.#since = Date.now();
    this.#logger?.warn(
      { redis: 'down', code: failureCode(err) },
      'Redis does not answer: this replica uses its own compliance cache and Graph budget until it does (decisions still need Graph or a cached answer)',
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.command.disconnect();
    this.subscriber.disconnect();
    await Promise.resolve();
  }
}
