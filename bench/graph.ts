/**
 * bench:graph — devices per second listed through the Graph client (real MSAL, real HTTPS,
 * zod parsing of every device) from the simulator, and the peak RSS of the listing process.
 *
 * The simulator runs in a child process so it does not share the client's event loop or heap:
 * the figures are the client's. The child is this same file started with `--serve N`.
 *
 *   npm run bench:graph                       # 10,000 and 100,000 devices, several runs each
 *   npm run bench:graph -- --sizes 10000 --runs 3
 *
 * Target: 100,000 devices listed in under 10 s with under 300 MB peak RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { median } from './lib.js';
import type { SimulatorHandle } from '../src/simulator/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** What the simulator child reports: its handle's identities and URLs, plus a token for the raw baseline, which has no MSAL. */
type SimulatorInfo = Pick<SimulatorHandle, 'tenantId' | 'clientId' | 'clientSecret' | 'loginUrl' | 'graphUrl' | 'caFile' | 'caPem'> & {
  readonly token: string;
};

async function serve(devices: number): Promise<void> {
  const { startSimulator } = await import('../src/simulator/index.js');
  const handle = await startSimulator({
    devices,
    seed: 'bench',
    // The benchmark measures the client, not Intune's throttling.
    throttle: { requestsPer20s: 1_000_000 },
    requestLogLimit: 1_000,
  });
  const info: SimulatorInfo = {
    tenantId: handle.tenantId,
    clientId: handle.clientId,
    clientSecret: handle.clientSecret,
    loginUrl: handle.loginUrl,
    graphUrl: handle.graphUrl,
    caFile: handle.caFile,
    caPem: handle.caPem,
    token: await handle.mintToken(),
  };
  process.stdout.write(`${JSON.stringify(info)}\n`);
  const stop = (): void => {
    void handle.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function startChild(devices: number): Promise<{ child: ChildProcess; info: SimulatorInfo }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'graph.ts'), '--serve', String(devices)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const info = await new Promise<SimulatorInfo>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`simulator child exited with ${String(code)} before it was ready`)));
    lines.once('line', (line) => resolve(JSON.parse(line) as SimulatorInfo));
  });
  return { child, info };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

interface RunResult {
  readonly devices: number;
  readonly pages: number;
  readonly seconds: number;
  readonly devicesPerSecond: number;
  readonly peakRssMb: number;
  readonly requests: number;
  readonly retries: number;
}

type Client = ReturnType<typeof import('../src/connector/graph/index.js').createGraphClient>;

async function createClient(info: SimulatorInfo): Promise<Client> {
  const { createGraphClient } = await import('../src/connector/graph/index.js');
  return createGraphClient({
    tenantId: info.tenantId,
    clientId: info.clientId,
    credential: { clientSecret: info.clientSecret },
    graph: { cloud: 'custom', loginUrl: info.loginUrl, graphUrl: info.graphUrl, caFile: info.caFile, timeoutMs: 30_000, maxRetries: 4 },
  });
}

/** One full listing with a long-lived client (token cached, connection kept alive), as a sync run sees it. */
async function listOnce(client: Client, expected: number): Promise<RunResult> {
  const before = client.stats();
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 20);
  const seen = new Set<string>();
  let pages = 0;
  const started = performance.now();
  try {
    for await (const page of client.listDevices({ top: 1000 })) {
      pages++;
      for (const device of page.devices) seen.add(device.id);
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
    }
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - started) / 1000;
  const stats = client.stats();
  if (seen.size !== expected) throw new Error(`listed ${seen.size} distinct devices, expected ${expected}`);
  return {
    devices: seen.size,
    pages,
    seconds: Number(seconds.toFixed(3)),
    devicesPerSecond: Math.round(seen.size / seconds),
    peakRssMb: Number((peakRss / 1024 / 1024).toFixed(1)),
    requests: stats.requests - before.requests,
    retries: stats.retries - before.retries,
  };
}

/**
 * The floor: the same pages fetched with a bare undici request and JSON.parse, no MSAL, no Graph
 * client, no zod. The gap between this and listOnce is what the client costs.
 */
async function rawOnce(info: SimulatorInfo, expected: number): Promise<{ seconds: number; peakRssMb: number }> {
  const { Agent, request } = await import('undici');
  const agent = new Agent({ connect: { ca: info.caPem } });
  let count = 0;
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 20);
  const started = performance.now();
  try {
    let url: string | undefined = `${info.graphUrl}/v1.0/deviceManagement/managedDevices?$top=1000`;
    while (url !== undefined) {
      const response = await request(url, { headers: { authorization: `Bearer ${info.token}` }, dispatcher: agent });
      const page = JSON.parse(await response.body.text()) as { value: unknown[]; '@odata.nextLink'?: string };
      count += page.value.length;
      url = page['@odata.nextLink'];
    }
  } finally {
    clearInterval(sampler);
    await agent.close();
  }
  if (count !== expected) throw new Error(`raw baseline listed ${count} devices, expected ${expected}`);
  return { seconds: (performance.now() - started) / 1000, peakRssMb: Number((peakRss / 1024 / 1024).toFixed(1)) };
}

function argValue(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

async function main(): Promise<void> {
  const serveArg = argValue('--serve');
  if (serveArg !== undefined) {
    await serve(Number(serveArg));
    return;
  }
  // What the process holds before any listing (node, tsx, the modules): part of every peak below.
  const startRssMb = Number((process.memoryUsage.rss() / 1024 / 1024).toFixed(1));
  const sizes = (argValue('--sizes') ?? '10000,100000').split(',').map(Number);
  const runsArg = argValue('--runs');
  const summary: Record<string, unknown>[] = [];
  for (const size of sizes) {
    const runs = runsArg !== undefined ? Number(runsArg) : size >= 100_000 ? 3 : 5;
    const { child, info } = await startChild(size);
    const results: RunResult[] = [];
    const raw: { seconds: number; peakRssMb: number }[] = [];
    const client = await createClient(info);
    try {
      // One unmeasured warm-up: token, TLS session and JIT do not count against the first run.
      await listOnce(client, size);
      for (let run = 0; run < runs; run++) {
        const result = await listOnce(client, size);
        results.push(result);
        console.log(
          `  ${size} devices, run ${run + 1}/${runs}: ${result.seconds.toFixed(2)} s, ${result.devicesPerSecond} devices/s, peak RSS ${result.peakRssMb} MB, ${result.pages} pages`,
        );
      }
      // After the client's runs, so its garbage does not count against the client's peak RSS.
      for (let run = 0; run < runs; run++) raw.push(await rawOnce(info, size));
    } finally {
      await client.close();
      await stopChild(child);
    }
    const row = {
      devices: size,
      runs,
      medianSeconds: Number(median(results.map((r) => r.seconds)).toFixed(3)),
      medianDevicesPerSecond: Math.round(median(results.map((r) => r.devicesPerSecond))),
      medianPeakRssMb: Number(median(results.map((r) => r.peakRssMb)).toFixed(1)),
      maxPeakRssMb: Math.max(...results.map((r) => r.peakRssMb)),
      rawBaselineMedianSeconds: Number(median(raw.map((r) => r.seconds)).toFixed(3)),
      // Same process, after the client's runs: indicative of the runtime's own share of the peak.
      rawBaselineMedianPeakRssMb: Number(median(raw.map((r) => r.peakRssMb)).toFixed(1)),
      results,
    };
    summary.push(row);
    console.log(
      `${size} devices: median ${row.medianSeconds} s (${row.medianDevicesPerSecond} devices/s), median peak RSS ${row.medianPeakRssMb} MB (max ${row.maxPeakRssMb} MB); bare undici + JSON.parse baseline ${row.rawBaselineMedianSeconds} s, ${row.rawBaselineMedianPeakRssMb} MB`,
    );
  }
  const target = summary.find((row) => row['devices'] === 100_000);
  const output = {
    benchmark: 'graph',
    setup:
      'simulator in a child process; client (MSAL + Graph client + zod) in this process; $top=1000; HTTPS over loopback; rawBaseline = the same pages with bare undici + JSON.parse',
    loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
    cpus: os.cpus().length,
    startRssMb,
    node: process.version,
    target: '100,000 devices in < 10 s with < 300 MB peak RSS',
    ...(target !== undefined
      ? { targetMet: (target['medianSeconds'] as number) < 10 && (target['maxPeakRssMb'] as number) < 300 }
      : {}),
    sizes: summary,
  };
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  fs.writeFileSync(path.join(here, 'results', 'graph.json'), `${JSON.stringify(output, null, 2)}\n`);
  console.log(`wrote bench/results/graph.json`);
}

await main();
