/** The README's host example (examples/host.ts) runs as written: a child process, no configuration. */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');

describe('examples/host.ts', () => {
  it('loads the connector, lists, checks compliance, is denied remote_lock, and every call is audited', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-example-'));
    try {
      const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: process.env['HOME'], INTUNE_DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'examples/host.ts'], { cwd: root, env, timeout: 120_000 });
      const out = Object.fromEntries(
        stdout
          .trim()
          .split('\n')
          .map((line) => {
            const space = line.indexOf(' ');
            return [line.slice(0, space), JSON.parse(line.slice(space + 1)) as unknown];
          }),
      );
      expect(out['permitted']).toEqual(['list_devices:READ', 'get_device:READ', 'get_compliance:READ', 'find_asset:READ']);
      expect((out['noncompliant'] as { state: string }[]).every((d) => d.state === 'noncompliant')).toBe(true);
      expect((out['noncompliant'] as unknown[]).length).toBeGreaterThan(0);
      expect(out['compliance']).toMatchObject({ state: 'noncompliant', cache: { hit: true, stale: false } });
      expect(out['remote_lock']).toMatchObject({ kind: 'denied', reason: 'operation_disabled' });
      expect(out['audited']).toEqual(['list_devices:allowed', 'get_compliance:allowed', 'get_compliance:allowed', 'remote_lock:denied']);
      expect(out['demo']).toBe(true);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
