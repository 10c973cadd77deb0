/**
 * A verify worker thread: checks ranges of rows it is handed (see verify-core.ts, verify-copy.ts),
 * or reads ranges itself over a connection of its own and checks them (verify-read.ts).
 */
import { parentPort } from 'node:worker_threads';
import { checkAnyChunk, type AnyChunkTask } from './verify-copy.js';
import { RangeReader, type ReadTask } from './verify-read.js';

const reader = new RangeReader();

type Message = { id: number; task: AnyChunkTask } | { id: number; read: ReadTask } | { id: number; close: true };

parentPort?.on('message', (message: Message) => {
  if ('close' in message) {
    void reader.close().then(() => parentPort?.postMessage({ id: message.id, closed: true }));
    return;
  }
  if ('read' in message) {
    void reader.read(message.read).then((result) => parentPort?.postMessage({ id: message.id, result }));
    return;
  }
  try {
    parentPort?.postMessage({ id: message.id, result: checkAnyChunk(message.task) });
  } catch (err) {
    parentPort?.postMessage({ id: message.id, error: err instanceof Error ? err.message : String(err) });
  }
});
