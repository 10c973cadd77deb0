/** Shared set-up for the Graph client's HTTPS tests: a real simulator and a real client against it. */
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { createGraphClient, type GraphClientOptions } from '../../src/connector/graph/index.js';
import { createLogger, type Logger } from '../../src/log/index.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { SimulatorHandle, SimulatorOptions } from '../../src/simulator/types.js';

export type TestClient = ReturnType<typeof createGraphClient>;

export async function simulator(options: SimulatorOptions = {}): Promise<SimulatorHandle> {
  return startSimulator({ devices: 50, seed: 'graph-client-tests', ...options });
}

export function clientFor(sim: SimulatorHandle, overrides: Partial<Omit<GraphClientOptions, 'graph'>> & { graph?: Partial<GraphClientOptions['graph']> } = {}): TestClient {
  const { graph, ...rest } = overrides;
  return createGraphClient({
    tenantId: sim.tenantId,
    clientId: sim.clientId,
    credential: { clientSecret: sim.clientSecret },
    ...rest,
    graph: {
      cloud: 'custom',
      loginUrl: sim.loginUrl,
      graphUrl: sim.graphUrl,
      caFile: sim.caFile,
      timeoutMs: 5_000,
      maxRetries: 3,
      ...graph,
    },
  });
}

/**
 * A client that already holds a token: fault tests then time Graph alone, not the token request
 * (which a loaded machine can slow down past a deliberately short timeout).
 */
export async function warmClientFor(sim: SimulatorHandle, overrides: Parameters<typeof clientFor>[1] = {}): Promise<TestClient> {
  const client = clientFor(sim, overrides);
  await client.listDevicesPage({ top: 1 });
  sim.clearRequests();
  return client;
}

/** A sleep that records what it was asked to wait, waits only `realMs`, and can run a hook first. */
export function recordingSleep(options: { realMs?: number; before?: (ms: number, call: number) => void } = {}): {
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  waits: number[];
} {
  const waits: number[] = [];
  return {
    waits,
    sleep: async (ms, signal) => {
      waits.push(ms);
      options.before?.(ms, waits.length);
      if (signal?.aborted === true) throw new Error('aborted');
      await delay(options.realMs ?? 0);
    },
  };
}

export const graphRequests = (sim: SimulatorHandle) => sim.requests().filter((r) => r.kind === 'graph');
export const tokenRequests = (sim: SimulatorHandle) => sim.requests().filter((r) => r.kind === 'token');

/** A logger whose lines are kept in memory, to search them for things that must never appear. */
export function capturingLogger(): { logger: Logger; lines: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: createLogger({ level: 'debug' }, sink), lines: () => chunks.join('') };
}

/** Runs fn and returns what it threw (failing the test if it did not throw). */
export async function failureOf(fn: () => Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await fn();
  } catch (err) {
    return err as Error & Record<string, unknown>;
  }
  throw new Error('expected the call to fail');
}
