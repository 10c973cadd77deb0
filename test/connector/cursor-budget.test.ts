import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CursorError, filterHash, openCursor, sealCursor } from '../../src/connector/cursor.js';
import { WriteBudget } from '../../src/connector/write-budget.js';
import { deriveFingerprintKeys, FingerprintKeyError, fingerprintKeys } from '../../src/runtime/fingerprint-keys.js';

describe('list cursors', () => {
  const key = crypto.randomBytes(32);
  const fh = filterHash({ compliance_state: 'compliant', os_family: undefined });
  const link = 'https://graph.example/v1.0/deviceManagement/managedDevices?$skiptoken=abc';

  it('round-trips a position without exposing the Graph URL', () => {
    const cursor = sealCursor({ link, skip: 3, top: 25 }, { fingerprintKey: key, tenant: 't1', filterHash: fh });
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(cursor, 'base64url').toString('latin1')).not.toContain('graph.example');
    expect(openCursor(cursor, { fingerprintKey: key, tenant: 't1', filterHash: fh })).toEqual({ link, skip: 3, top: 25 });
  });

  it('refuses a cursor for other filters, another tenant, or altered', () => {
    const cursor = sealCursor({ link: null, skip: 0, top: 25 }, { fingerprintKey: key, tenant: 't1', filterHash: fh });
    expect(() => openCursor(cursor, { fingerprintKey: key, tenant: 't1', filterHash: filterHash({ compliance_state: 'noncompliant' }) })).toThrow(CursorError);
    expect(() => openCursor(cursor, { fingerprintKey: key, tenant: 't2', filterHash: fh })).toThrow(CursorError);
    expect(() => openCursor(cursor, { fingerprintKey: crypto.randomBytes(32), tenant: 't1', filterHash: fh })).toThrow(CursorError);
    const flipped = Buffer.from(cursor, 'base64url');
    flipped[20] = (flipped[20] as number) ^ 1;
    expect(() => openCursor(flipped.toString('base64url'), { fingerprintKey: key, tenant: 't1', filterHash: fh })).toThrow(CursorError);
    expect(() => openCursor('not a cursor!', { fingerprintKey: key, tenant: 't1', filterHash: fh })).toThrow(CursorError);
  });

  it('hashes filters independently of key order and undefined values', () => {
    expect(filterHash({ a: 1, b: undefined, c: 'x' })).toBe(filterHash({ c: 'x', a: 1 }));
  });
});

describe('WriteBudget', () => {
  it('allows the capacity per window per tenant, then says when to retry', () => {
    let now = 0;
    const budget = new WriteBudget({ capacity: 200, windowMs: 20_000, now: () => now });
    for (let i = 0; i < 200; i += 1) expect(budget.take('t').ok).toBe(true);
    const refused = budget.take('t');
    expect(refused).toEqual({ ok: false, retryAfterMs: 100 });
    expect(budget.take('other').ok).toBe(true);
    now += 100;
    expect(budget.take('t').ok).toBe(true);
    expect(budget.take('t').ok).toBe(false);
  });
});

describe('fingerprint keys', () => {
  it('creates the master key file 0600 on first start and reuses it after', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-fp-'));
    try {
      const first = fingerprintKeys({ dataDir: dir });
      expect(fs.statSync(first.file).mode & 0o777).toBe(0o600);
      const second = fingerprintKeys({ dataDir: dir });
      expect(second.keyFor('default').equals(first.keyFor('default'))).toBe(true);
      expect(first.keyFor('default').equals(first.keyFor('other'))).toBe(false);
      expect(first.keyFor('default')).toHaveLength(32);
      fs.writeFileSync(first.file, 'garbage');
      expect(() => fingerprintKeys({ dataDir: dir })).toThrow(FingerprintKeyError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives every process the same key when several start together on a fresh directory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ic-fp-race-'));
    try {
      const module = path.resolve('src/runtime/fingerprint-keys.ts');
      const script = `import('${module}').then((m) => process.stdout.write(m.fingerprintKeys({ dataDir: ${JSON.stringify(dir)} }).keyFor('t').toString('hex')))`;
      const run = () =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          let err = '';
          child.stdout.on('data', (c: Buffer) => (out += c.toString()));
          child.stderr.on('data', (c: Buffer) => (err += c.toString()));
          child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
        });
      const keys = await Promise.all(Array.from({ length: 6 }, run));
      expect(new Set(keys).size).toBe(1);
      expect(keys[0]).toMatch(/^[0-9a-f]{64}$/);
      expect(fs.readdirSync(dir)).toEqual(['fingerprint.key']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('derives with HKDF-SHA256 from the master key', () => {
    const master = Buffer.alloc(32, 7);
    const expected = Buffer.from(crypto.hkdfSync('sha256', master, 'intune-connector/serial-fingerprint/v1', 'tenant:acme', 32));
    expect(deriveFingerprintKeys(master)('acme').equals(expected)).toBe(true);
  });
});
