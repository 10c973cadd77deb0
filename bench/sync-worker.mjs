/**
 * One measured sync run for bench:sync, in its own plain `node` process running the built product
 * (dist/), as `serve` and `intune-connector sync` run it: no TypeScript loader in the figures. The
 * parent passes the product's environment (simulator variables, DATABASE_URL, INTUNE_DATA_DIR,
 * INTUNE_SYNC_CONCURRENCY); the worker opens the database and Chronicle, bootstraps the connection,
 * runs one sync while sampling its memory every 20 ms, prints one JSON line and exits.
 */
import v8 from 'node:v8';
import { createChronicle } from '../dist/chronicle/index.js';
import { loadConfig } from '../dist/config/index.js';
import { openDatabase } from '../dist/db/index.js';
import { createLogger } from '../dist/log/index.js';
import { createPostureService, secretProviderFromConfig } from '../dist/posture/index.js';
import { fingerprintKeys } from '../dist/runtime/index.js';

const mb = (bytes) => Math.round(bytes / 1024 / 1024);
const env = { ...process.env };
const config = loadConfig(env, { cwd: env.INTUNE_DATA_DIR });
const logger = createLogger({ level: 'warn' });
const db = await openDatabase(config.database);
const chronicle = await createChronicle({ db, logger, ...config.chronicle, checkpointIntervalMs: 0 });
const service = createPostureService({
  db,
  chronicle,
  logger,
  secrets: secretProviderFromConfig(config, env),
  config,
  fingerprintKeyFor: fingerprintKeys({ dataDir: config.database.dataDir }).keyFor,
});
try {
  const connection = await service.bootstrapFromConfig(config);
  if (connection === null) throw new Error('no ENTRA_* variables: the connection cannot be bootstrapped');
  const startRss = process.memoryUsage.rss();
  let peakRss = startRss;
  let peakHeap = process.memoryUsage().heapUsed;
  // What the process held when its RSS peaked: V8's spaces (resident) and memory outside the heap.
  let atPeak = {};
  const sampler = setInterval(() => {
    const usage = process.memoryUsage();
    peakHeap = Math.max(peakHeap, usage.heapUsed);
    if (usage.rss <= peakRss) return;
    peakRss = usage.rss;
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, mb(s.physical_space_size)]).filter(([, size]) => size > 0));
    atPeak = { heap_total: mb(usage.heapTotal), heap_used: mb(usage.heapUsed), external: mb(usage.external), array_buffers: mb(usage.arrayBuffers), spaces };
  }, 20);
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const { done } = await service.startSync('default', connection.id, { kind: 'system', id: 'bench' });
  const run = await done;
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  process.stdout.write(
    `${JSON.stringify({
      status: run.status,
      error: run.error_code,
      devices: run.devices,
      pages: run.pages,
      wall_ms: Math.round(wallMs),
      cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
      current_after_ms: run.duration_ms ?? 0,
      start_rss_mb: mb(startRss),
      peak_rss_mb: mb(peakRss),
      peak_heap_mb: mb(peakHeap),
      process_max_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      at_peak_mb: atPeak,
    })}\n`,
  );
} finally {
  await service.close();
  await chronicle.close();
  await db.close();
}
