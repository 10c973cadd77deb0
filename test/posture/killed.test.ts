/**
 * A replica killed with SIGKILL mid-run (PostgreSQL: several processes share one database). PGlite
 * is one process per data directory by design; its runs recover through the same lease expiry.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SyncInProgressError, type Connection } from '../../src/posture/index.js';
import { createPostgresDatabase, pgAvailable } from '../helpers/db.js';
import { ADMIN, eventually, openWorld, type World } from './helpers.js';

const CHILD = path.join(import.meta.dirname, 'fixtures', 'sync-child.ts');

/** Resolves with the first stdout line matching `pattern` (rejects if the child exits first). */
function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      for (const line of buffer.split('\n')) {
        const match = pattern.exec(line);
        if (match) {
          clearTimeout(timer);
          resolve(match);
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code}) before printing ${pattern}; stderr: ${stderr}`));
    });
  });
}

describe.skipIf(!pgAvailable())('a killed replica [postgres]', () => {
  let world: World;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    world = await openWorld(await createPostgresDatabase(), { devices: 300, seed: 'posture-kill' });
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await world?.close();
  });

  it('leaves the previous snapshot current; once its lease expires the next run marks its run abandoned', async () => {
    const connection = (await world.service.bootstrapFromConfig(world.config)) as Connection;
    expect((await (await world.service.startSync('default', connection.id, ADMIN)).done).status).toBe('succeeded');

    // Another replica (its own process, short lease, pages of 100) starts a slow sync and dies after one page.
    world.sim.setFaults({ latencyMs: 400 });
    child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      env: { ...process.env, ...world.env, DATABASE_URL: world.database.url, LEASE_TTL_MS: '1500', PAGE_SIZE: '100', INTUNE_SYNC_CONCURRENCY: '1', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise((resolve) => child?.on('exit', resolve));
    const runId = (await waitForLine(child, /^run ([0-9a-f-]{36})$/))[1] as string;
    await waitForLine(child, /^progress 1 100$/);
    child.kill('SIGKILL');
    await exited;

    expect(await world.service.getRun('default', runId)).toMatchObject({ status: 'running', trigger: 'manual' });
    // Its lease is still live for a moment: nobody else may start, and readers see the old snapshot whole.
    await expect(world.service.startSync('default', connection.id, ADMIN)).rejects.toMatchObject({ runId });
    expect((await world.service.listDevices('default', { limit: 1 })).total).toBe(300);
    expect((await world.service.summary('default')).devices).toBe(300);

    world.sim.setFaults({});
    const next = await eventually(
      async () => {
        try {
          return await world.service.startSync('default', connection.id, ADMIN);
        } catch (err) {
          if (err instanceof SyncInProgressError) return undefined;
          throw err;
        }
      },
      { everyMs: 100, timeoutMs: 10_000 },
    );
    expect((await next.done).status).toBe('succeeded');
    const killed = await world.service.getRun('default', runId);
    expect(killed).toMatchObject({ status: 'failed', error_code: 'abandoned' });
    expect(killed?.error_message).toMatch(/lease expired/);
    const { events } = await world.chronicle.query({ tenant: 'default', types: ['integration.intune.sync_completed'] });
    expect(events.find((e) => e.data['run_id'] === runId)).toMatchObject({
      actor: { kind: 'system', id: 'lease-expiry' },
      data: { status: 'failed', error_code: 'abandoned' },
    });
    // The killed run's partial rows are cleaned up with the replaced snapshot.
    expect((await world.db.query<{ n: number }>('SELECT count(*)::int AS n FROM intune_device_postures')).rows[0]?.n).toBe(300);
  });
});
