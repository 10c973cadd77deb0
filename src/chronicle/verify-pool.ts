/**
 * Worker threads for verify: hashing and parsing are most of its cost, so long chains are checked
 * in parallel, range by range, while the main thread keeps fetching. A pool that cannot start (or
 * a worker that dies) is not an error: the range is checked on the main thread instead.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ChunkResult } from './verify-core.js';
import { checkAnyChunk, type AnyChunkTask } from './verify-copy.js';
import type { ReadResult, ReadTask } from './verify-read.js';

function spawnWorker(): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const script = new URL(fromSource ? './verify-worker.ts' : './verify-worker.js', import.meta.url);
  if (!fromSource) return new Worker(script);
  // Running from source (tests and benchmarks under tsx): the worker registers tsx before it loads
  // the TypeScript module. tsx is a development dependency, present whenever the source is run.
  const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve('tsx/package.json').replace(/package\.json$/, 'dist/esm/api/index.mjs')).href;
  const bootstrap = `import { register } from ${JSON.stringify(tsxApi)}; register(); await import(${JSON.stringify(script.href)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`));
}

interface Slot {
  readonly worker: Worker;
  busy: number;
}

export class VerifyPool {
  private readonly slots: Slot[] = [];
  /** Calls in flight: what answers each, and what stands in when its worker cannot. */
  private readonly waiting = new Map<number, { resolve: (r: unknown) => void; fallback: () => unknown; slot: Slot }>();
  private nextId = 0;
  private closed = false;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      let worker: Worker;
      try {
        worker = spawnWorker();
      } catch {
        break;
      }
      worker.unref();
      const slot: Slot = { worker, busy: 0 };
      worker.on('message', (message: { id: number; result?: unknown; error?: string; closed?: true }) => {
        const entry = this.waiting.get(message.id);
        if (entry === undefined) return;
        this.waiting.delete(message.id);
        entry.slot.busy--;
        entry.resolve(message.result ?? (message.closed === true ? undefined : entry.fallback()));
      });
      // A worker that fails to start or dies: its calls are answered here instead.
      const retire = () => {
        const index = this.slots.indexOf(slot);
        if (index >= 0) this.slots.splice(index, 1);
        for (const [id, entry] of this.waiting) {
          if (entry.slot !== slot) continue;
          this.waiting.delete(id);
          entry.resolve(entry.fallback());
        }
      };
      worker.on('error', retire);
      worker.on('exit', retire);
      this.slots.push(slot);
    }
  }

  get size(): number {
    return this.slots.length;
  }

  /** Checks a range on the least busy worker (here, when there is none). */
  run(task: AnyChunkTask): Promise<ChunkResult> {
    // Copied bytes over shared memory are read in place; others move to the worker (no copy), and
    // a worker that dies with them leaves an empty buffer here, which checks as unreadable and is
    // read again the ordinary way.
    const transfer = 'copy' in task && task.copy.buffer instanceof ArrayBuffer ? [task.copy.buffer] : [];
    return this.call({ task }, () => checkAnyChunk(task), transfer);
  }

  /** Has the least busy worker read and check a range over its own connection (read: false when none could). */
  read(task: ReadTask): Promise<ReadResult> {
    return this.call<ReadResult>({ read: task }, () => ({ read: false, reason: 'no verify worker is running' }));
  }

  private call<T>(message: object, fallback: () => T, transfer: ArrayBuffer[] = [], to?: Slot): Promise<T> {
    const slot = to ?? this.slots.reduce<Slot | undefined>((best, s) => (best === undefined || s.busy < best.busy ? s : best), undefined);
    if (slot === undefined || this.closed) return Promise.resolve(fallback());
    const id = this.nextId++;
    slot.busy++;
    return new Promise<T>((resolve) => {
      this.waiting.set(id, { resolve: resolve as (r: unknown) => void, fallback, slot });
      slot.worker.postMessage({ id, ...message }, transfer);
    });
  }

  async close(): Promise<void> {
    // Workers end their connections first (a server sees a client leave, not a socket cut), but a
    // worker that does not answer within a second is stopped anyway.
    const ended = this.slots.map((slot) =>
      Promise.race([this.call<undefined>({ close: true }, () => undefined, [], slot), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]),
    );
    this.closed = true;
    await Promise.all(ended);
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }
}
