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
  private readonly waiting = new Map<number, { resolve: (r: ChunkResult) => void; task: AnyChunkTask; slot: Slot }>();
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
      worker.on('message', (message: { id: number; result?: ChunkResult; error?: string }) => {
        const entry = this.waiting.get(message.id);
        if (entry === undefined) return;
        this.waiting.delete(message.id);
        entry.slot.busy--;
        entry.resolve(message.result ?? checkAnyChunk(entry.task));
      });
      // A worker that fails to start or dies: its ranges are checked here instead.
      const retire = () => {
        const index = this.slots.indexOf(slot);
        if (index >= 0) this.slots.splice(index, 1);
        for (const [id, entry] of this.waiting) {
          if (entry.slot !== slot) continue;
          this.waiting.delete(id);
          entry.resolve(checkAnyChunk(entry.task));
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

  run(task: AnyChunkTask): Promise<ChunkResult> {
    const slot = this.slots.reduce<Slot | undefined>((best, s) => (best === undefined || s.busy < best.busy ? s : best), undefined);
    if (slot === undefined || this.closed) return Promise.resolve(checkAnyChunk(task));
    const id = this.nextId++;
    slot.busy++;
    return new Promise<ChunkResult>((resolve) => {
      this.waiting.set(id, { resolve, task, slot });
      // Copied bytes over shared memory are read in place; others move to the worker (no copy), and
      // a worker that dies with them leaves an empty buffer here, which checks as unreadable and is
      // read again the ordinary way.
      slot.worker.postMessage({ id, task }, 'copy' in task && task.copy.buffer instanceof ArrayBuffer ? [task.copy.buffer] : []);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }
}
