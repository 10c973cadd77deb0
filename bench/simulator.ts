/**
 * bench:simulator — is the simulator fast enough never to be the bottleneck?
 *
 *   start:  startSimulator({ devices: 200 }) to a listening server with its CA written, in a
 *           fresh process each run (so module loading counts, as it does for `serve`'s demo).
 *   list:   100,000 devices in pages of 1000 with a plain HTTPS client (undici, bodies read as
 *           text, not parsed), the simulator in a child process so it has its own event loop.
 *   filter: an azureADDeviceId lookup (the gate's query) against the same 100,000 devices.
 *
 *   node --import tsx bench/simulator.ts [--devices 100000] [--runs 5]
 *
 * Targets: start under 1 s; 100,000 devices listed well under 5 s.
 * Prints medians and writes bench/results/simulator.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Agent, fetch } from 'undici';
import { median } from './lib.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const self = fileURLToPath(import.meta.url);

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i === -1 ? undefined : Number(process.argv[i + 1]);
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
}

interface Served {
  readonly graphUrl: string;
  readonly caPem: string;
  readonly token: string;
  readonly aad: string;
  readonly startMs: number;
  /** CPU time (user + system) the child spent getting there, module loading included. */
  readonly startCpuMs: number;
}

interface Usage {
  readonly rssMb: number;
  readonly cpuMs: number;
}

const cpuMs = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/** Child: start a simulator, print what the parent needs as one JSON line, report RSS on request. */
async function serve(devices: number): Promise<void> {
  const started = performance.now();
  const { startSimulator } = await import('../src/simulator/index.js');
  const sim = await startSimulator({ devices, seed: 'bench' });
  const startMs = performance.now() - started;
  const token = await sim.mintToken();
  // Asked over HTTPS rather than through sim.devices, which would build a second copy of the tenant.
  const agent = new Agent({ connect: { ca: sim.caPem } });
  const page = (await (
    await fetch(`${sim.graphUrl}/v1.0/deviceManagement/managedDevices?$top=1&$select=azureADDeviceId`, { headers: { authorization: `Bearer ${token}` }, dispatcher: agent })
  ).json()) as { value: { azureADDeviceId: string }[] };
  await agent.close();
  const served: Served = { graphUrl: sim.graphUrl, caPem: sim.caPem, token, aad: String(page.value[0]?.azureADDeviceId), startMs, startCpuMs: cpuMs() };
  process.stdout.write(`${JSON.stringify(served)}\n`);
  readline.createInterface({ input: process.stdin }).on('line', () => {
    const usage: Usage = { rssMb: process.memoryUsage().rss / 1_048_576, cpuMs: cpuMs() };
    process.stdout.write(`${JSON.stringify(usage)}\n`);
  });
  process.stdin.on('end', () => {
    void sim.close().then(() => process.exit(0));
  });
}

function startChild(devices: number): Promise<{ child: ChildProcess; served: Served; lines: readline.Interface }> {
  const child = spawn(process.execPath, ['--import', 'tsx', self, '--serve', String(devices)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });
  return new Promise((resolve, reject) => {
    lines.once('line', (line) => resolve({ child, served: JSON.parse(line) as Served, lines }));
    child.once('exit', (code) => reject(new Error(`simulator child exited ${String(code)}`)));
  });
}

const DEVICE_MARK = '"@odata.type":"#microsoft.graph.managedDevice"';

async function listAll(served: Served, agent: Agent): Promise<{ ms: number; devices: number; bytes: number; pages: number }> {
  const started = performance.now();
  let next: string | undefined = `${served.graphUrl}/v1.0/deviceManagement/managedDevices?$top=1000`;
  let devices = 0;
  let bytes = 0;
  let pages = 0;
  while (next !== undefined) {
    const res = await fetch(next, { headers: { authorization: `Bearer ${served.token}` }, dispatcher: agent });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`page ${pages} answered ${res.status}: ${text.slice(0, 200)}`);
    bytes += text.length;
    pages++;
    // The nextLink sits before "value"; finding it needs no full parse of the page.
    const match = /"@odata\.nextLink":"([^"]+)"/.exec(text.slice(0, 2000));
    next = match?.[1];
    for (let at = text.indexOf(DEVICE_MARK); at !== -1; at = text.indexOf(DEVICE_MARK, at + DEVICE_MARK.length)) devices++;
  }
  return { ms: performance.now() - started, devices, bytes, pages };
}

async function main(): Promise<void> {
  const serveIndex = process.argv.indexOf('--serve');
  if (serveIndex !== -1) return serve(Number(process.argv[serveIndex + 1]));

  const size = arg('devices', 100_000);
  const runs = arg('runs', 5);

  const starts: number[] = [];
  const startCpus: number[] = [];
  for (let i = 0; i < runs; i++) {
    const { child, served } = await startChild(200);
    starts.push(served.startMs);
    startCpus.push(served.startCpuMs);
    child.stdin?.end();
    await new Promise((resolve) => child.once('exit', resolve));
  }

  const { child, served, lines } = await startChild(size);
  const usage = async (): Promise<Usage> => {
    child.stdin?.write('usage\n');
    return new Promise((resolve) => lines.once('line', (line) => resolve(JSON.parse(line) as Usage)));
  };
  const agent = new Agent({ connect: { ca: served.caPem } });
  const lists: number[] = [];
  const serverCpus: number[] = [];
  let last = { ms: 0, devices: 0, bytes: 0, pages: 0 };
  await listAll(served, agent); // warm-up: connection, JIT, filter-free path
  for (let i = 0; i < runs; i++) {
    const before = await usage();
    last = await listAll(served, agent);
    serverCpus.push((await usage()).cpuMs - before.cpuMs);
    if (last.devices !== size) throw new Error(`listed ${last.devices} devices, expected ${size}`);
    lists.push(last.ms);
  }
  const lookups: number[] = [];
  for (let i = 0; i < 200; i++) {
    const started = performance.now();
    const res = await fetch(`${served.graphUrl}/v1.0/deviceManagement/managedDevices?$filter=${encodeURIComponent(`azureADDeviceId eq '${served.aad}'`)}`, {
      headers: { authorization: `Bearer ${served.token}` },
      dispatcher: agent,
    });
    await res.text();
    lookups.push(performance.now() - started);
  }
  const rss = (await usage()).rssMb;
  child.stdin?.end();
  await new Promise((resolve) => child.once('exit', resolve));
  await agent.close();

  const result = {
    startMs200Devices: { median: Math.round(median(starts)), runs: starts.map(Math.round), cpuMsMedian: Math.round(median(startCpus)) },
    startMs100kDevices: Math.round(served.startMs),
    list: {
      devices: size,
      pageSize: 1000,
      pages: last.pages,
      megabytes: Math.round(last.bytes / 1_048_576),
      medianMs: Math.round(median(lists)),
      runsMs: lists.map(Math.round),
      devicesPerSecond: Math.round(size / (median(lists) / 1000)),
      simulatorCpuMsMedian: Math.round(median(serverCpus)),
    },
    azureADDeviceIdLookupMs: { median: Number(median(lookups).toFixed(2)), p95: Number([...lookups].sort((a, b) => a - b)[Math.floor(lookups.length * 0.95)]?.toFixed(2)) },
    simulatorRssMb: Math.round(rss),
    node: process.version,
    // The figures are wall-clock: on a shared machine read them with the load beside them.
    loadAverage1m: Number(os.loadavg()[0]?.toFixed(2)),
    cpus: os.cpus().length,
  };
  process.stdout.write(
    [
      `start, 200 devices (fresh process, median of ${runs}): ${result.startMs200Devices.median} ms wall, ${result.startMs200Devices.cpuMsMedian} ms CPU`,
      `start, ${size} devices: ${result.startMs100kDevices} ms`,
      `list ${size} devices in pages of 1000 (median of ${runs}): ${result.list.medianMs} ms, ${result.list.devicesPerSecond} devices/s, ${result.list.megabytes} MB; simulator CPU ${result.list.simulatorCpuMsMedian} ms`,
      `azureADDeviceId lookup over ${size} devices: median ${result.azureADDeviceIdLookupMs.median} ms, p95 ${result.azureADDeviceIdLookupMs.p95} ms`,
      `simulator RSS after the runs: ${result.simulatorRssMb} MB`,
    ].join('\n') + '\n',
  );
  const out = path.join(here, 'results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'simulator.json'), `${JSON.stringify(result, null, 2)}\n`);
}

await main();
