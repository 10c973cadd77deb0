/**
 * Witnesses: copies of the checkpoint log kept where the database administrator cannot write.
 *
 * - A witness directory (CHRONICLE_WITNESS_DIR: another volume or mount) receives every line the
 *   local log receives, in the same per-instance layout and day files, so `chronicle verify
 *   --witness DIR` can compare them line by line.
 * - A witness URL (CHRONICLE_WITNESS_URL, HTTPS) receives each batch of lines as
 *   `POST {"instance":"…","lines":["…",…]}` (the exact line texts, which carry their own
 *   signatures). Delivery runs in the background with retries and backoff and never blocks an
 *   append or a checkpoint; lines not yet delivered are the backlog /metrics shows.
 *
 * Batches are delivered in order per target: a later batch never overtakes one still being
 * retried, so a witness sees the log grow as it did.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { Logger } from '../log/index.js';
import { defined } from '../common/values.js';

export interface WitnessOptions {
  readonly dir?: string;
  readonly url?: string;
  /** PEM CA bundle to trust for the witness URL (besides the system's). */
  readonly ca?: string;
  readonly logger?: Logger;
  /** Backoff bounds for redelivery (defaults 1 s and 60 s). */
  readonly minRetryMs?: number;
  readonly maxRetryMs?: number;
  /** Per-request timeout (default 10 s). */
  readonly timeoutMs?: number;
}

export interface WitnessStats {
  /** Lines waiting for a witness (summed over targets). */
  readonly backlog: number;
  /** Delivery attempts that failed (each is retried). */
  readonly failures: number;
  /** Lines delivered (summed over targets). */
  readonly delivered: number;
}

interface Batch {
  readonly instance: string;
  readonly fileName: string;
  readonly texts: readonly string[];
}

interface Target {
  readonly name: string;
  readonly deliver: (batch: Batch) => Promise<void>;
  readonly queue: Batch[];
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  running: boolean;
}

export class Witnesses {
  private readonly targets: Target[] = [];
  private counters = { failures: 0, delivered: 0 };
  private closed = false;

  constructor(private readonly options: WitnessOptions) {
    if (options.dir !== undefined) {
      const dir = options.dir;
      this.targets.push(this.target(`directory ${dir}`, (batch) => appendToDir(dir, batch)));
    }
    if (options.url !== undefined) {
      const url = options.url;
      this.targets.push(this.target(`URL ${new URL(url).origin}`, (batch) => postLines(url, batch, options.ca, options.timeoutMs ?? 10_000)));
    }
  }

  get enabled(): boolean {
    return this.targets.length > 0;
  }

  private target(name: string, deliver: (batch: Batch) => Promise<void>): Target {
    return { name, deliver, queue: [], attempt: 0, timer: undefined, running: false };
  }

  /** Queues lines for every witness and starts delivery; returns at once. */
  send(instance: string, fileName: string, texts: readonly string[]): void {
    if (texts.length === 0 || this.closed) return;
    for (const t of this.targets) {
      t.queue.push({ instance, fileName, texts });
      if (t.timer === undefined) void this.pump(t);
    }
  }

  stats(): WitnessStats {
    let backlog = 0;
    for (const t of this.targets) for (const b of t.queue) backlog += b.texts.length;
    return { backlog, ...this.counters };
  }

  /** Tries once more to deliver everything queued (bounded by `timeoutMs`), then stops retrying. */
  async close(timeoutMs = 5_000): Promise<void> {
    this.closed = true;
    for (const t of this.targets) {
      if (t.timer !== undefined) clearTimeout(t.timer);
      t.timer = undefined;
    }
    const deadline = Date.now() + timeoutMs;
    for (const t of this.targets) {
      while (t.queue.length > 0 && Date.now() < deadline) {
        if (t.running) {
          await sleep(10);
          continue;
        }
        if (!(await this.deliverHead(t))) break;
      }
      if (t.queue.length > 0) {
        this.options.logger?.warn({ witness: t.name, lines: t.queue.reduce((n, b) => n + b.texts.length, 0) }, 'checkpoint lines were not delivered to a witness before shutdown');
      }
    }
  }

  private async deliverHead(t: Target): Promise<boolean> {
    const batch = t.queue[0];
    if (batch === undefined) return true;
    t.running = true;
    try {
      await t.deliver(batch);
      t.queue.shift();
      t.attempt = 0;
      this.counters.delivered += batch.texts.length;
      return true;
    } catch (err) {
      t.attempt += 1;
      this.counters.failures += 1;
      this.options.logger?.warn({ witness: t.name, attempt: t.attempt, err: { message: (err as Error).message } }, 'a checkpoint witness did not take the lines; will retry');
      return false;
    } finally {
      t.running = false;
    }
  }

  private async pump(t: Target): Promise<void> {
    if (t.running || this.closed) return;
    while (t.queue.length > 0 && !this.closed) {
      if (!(await this.deliverHead(t))) {
        const min = this.options.minRetryMs ?? 1_000;
        const max = this.options.maxRetryMs ?? 60_000;
        const delay = Math.min(max, min * 2 ** Math.min(t.attempt - 1, 16)) * (0.8 + Math.random() * 0.4);
        t.timer = setTimeout(() => {
          t.timer = undefined;
          void this.pump(t);
        }, delay);
        t.timer.unref();
        return;
      }
    }
  }
}

async function appendToDir(root: string, batch: Batch): Promise<void> {
  const dir = path.join(root, batch.instance);
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  const handle = await fs.promises.open(path.join(dir, batch.fileName), 'a', 0o644);
  try {
    await handle.appendFile(`${batch.texts.join('\n')}\n`, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function postLines(url: string, batch: Batch, ca: string | undefined, timeoutMs: number): Promise<void> {
  const body = JSON.stringify({ instance: batch.instance, lines: batch.texts });
  return new Promise<void>((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
        ...defined({ ca }),
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else reject(new Error(`the witness answered HTTP ${status}`));
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`the witness did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
