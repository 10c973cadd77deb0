import type { Logger } from '../log/index.js';

/**
 * Parts opened one after another and closed in reverse order. A failure to close one part is
 * logged and does not stop the others from closing; `closeAll` empties the stack, so calling it
 * twice closes nothing twice.
 */
export interface CloserStack {
  push(name: string, close: () => Promise<void>): void;
  closeAll(): Promise<void>;
}

export function createCloserStack(logger: Logger): CloserStack {
  const closers: Array<{ name: string; close: () => Promise<void> }> = [];
  return {
    push: (name, close) => void closers.push({ name, close }),
    async closeAll() {
      for (const { name, close } of closers.splice(0).reverse()) {
        try {
          await close();
        } catch (err) {
          logger.warn({ err, part: name }, 'error while closing');
        }
      }
    },
  };
}
