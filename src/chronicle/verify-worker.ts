/** A verify worker thread: checks ranges of rows it is handed (see verify-core.ts). */
import { parentPort } from 'node:worker_threads';
import { checkChunk, type ChunkTask, type PackedChunkTask } from './verify-core.js';

parentPort?.on('message', ({ id, task }: { id: number; task: ChunkTask | PackedChunkTask }) => {
  try {
    parentPort?.postMessage({ id, result: checkChunk(task) });
  } catch (err) {
    parentPort?.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
});
