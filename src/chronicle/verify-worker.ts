/** A verify worker thread: checks ranges of rows it is handed (see verify-core.ts, verify-copy.ts). */
import { parentPort } from 'node:worker_threads';
import { checkAnyChunk, type AnyChunkTask } from './verify-copy.js';

parentPort?.on('message', ({ id, task }: { id: number; task: AnyChunkTask }) => {
  try {
    parentPort?.postMessage({ id, result: checkAnyChunk(task) });
  } catch (err) {
    parentPort?.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
});
