import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { canonicalJson, createChronicle, type Chronicle, type ChronicleEvent } from '../../src/chronicle/index.js';
import { forEachDatabase, type TestDatabase } from '../helpers/db.js';
import { GUID_A, GUID_B, GUID_C, SAMPLE_DATA, invoked, tempDir } from './helpers.js';

const README = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md');
const python = spawnSync('python3', ['--version']).status === 0;

/** The outside-verifier recipe, exactly as the README shows it. */
function readmeRecipe(): string {
  const readme = fs.readFileSync(README, 'utf8');
  const section = readme.slice(readme.indexOf('<!-- section:chronicle -->'), readme.indexOf('<!-- /section:chronicle -->'));
  const match = /```python\n([\s\S]*?)```/.exec(section);
  if (match === null) throw new Error('README chronicle section has no python recipe');
  return match[1] as string;
}

async function exportText(chronicle: Chronicle, options: Parameters<Chronicle['export']>[0]): Promise<{ text: string; events: number }> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  const { events } = await chronicle.export(options, out);
  out.end();
  return { text, events };
}

forEachDatabase('chronicle query and export', (create) => {
  let tdb: TestDatabase;
  let chronicle: Chronicle;
  const times: string[] = [];

  beforeAll(async () => {
    tdb = await create();
    chronicle = await createChronicle({ db: await tdb.open() });
    vi.useFakeTimers({ toFake: ['Date'] });
    const at = (minute: number) => vi.setSystemTime(new Date(Date.UTC(2025, 0, 31, 9, minute, 0)));
    at(0);
    times.push((await chronicle.append(invoked('acme', 1))).time); // seq 1: allowed, devices A+B, agent-1
    at(1);
    times.push((await chronicle.append(invoked('acme', 2, { decision: 'denied', reason: 'capability_not_granted', outcome: 'denied', target: { device_id: GUID_C.toUpperCase() } }))).time);
    at(2);
    times.push(
      (await chronicle.append({ tenant: 'acme', type: 'DEVICE_COMPLIANCE_CHECKED', actor: { kind: 'service', id: 'gate' }, requestId: 'req-gate', data: SAMPLE_DATA.DEVICE_COMPLIANCE_CHECKED }))
        .time,
    ); // seq 3: deny, devices A+B
    at(3);
    times.push(
      (await chronicle.append({ tenant: 'acme', type: 'DEVICE_COMPLIANCE_CHECKED', actor: { kind: 'service', id: 'gate' }, data: { ...SAMPLE_DATA.DEVICE_COMPLIANCE_CHECKED, decision: 'allow', reason: 'compliant', compliance_state: 'compliant', intune_device_id: GUID_C, azure_ad_device_id: null } }))
        .time,
    );
    at(4);
    times.push((await chronicle.append({ tenant: 'acme', type: 'admin.api_key_created', actor: { kind: 'human', id: 'cli:root' }, data: SAMPLE_DATA['admin.api_key_created'] })).time);
    at(5);
    for (let i = 6; i <= 30; i++) await chronicle.append(invoked('acme', i));
    await chronicle.append(invoked('other', 1)); // another tenant's chain, same device ids
    vi.useRealTimers();
  });
  afterAll(async () => {
    vi.useRealTimers();
    await chronicle?.close();
    await tdb?.drop();
  });

  const seqs = (events: ChronicleEvent[]) => events.map((e) => e.seq);

  it('filters by type, actor, device (any case, any field) and decision, within one tenant', async () => {
    expect(seqs((await chronicle.query({ tenant: 'acme', types: ['DEVICE_COMPLIANCE_CHECKED'] })).events)).toEqual([3, 4]);
    expect(seqs((await chronicle.query({ tenant: 'acme', types: ['DEVICE_COMPLIANCE_CHECKED', 'admin.api_key_created'] })).events)).toEqual([3, 4, 5]);
    expect(seqs((await chronicle.query({ tenant: 'acme', actorId: 'gate' })).events)).toEqual([3, 4]);
    expect(seqs((await chronicle.query({ tenant: 'acme', deviceId: GUID_C })).events)).toEqual([2, 4]);
    expect(seqs((await chronicle.query({ tenant: 'acme', deviceId: GUID_C.toUpperCase() })).events)).toEqual([2, 4]);
    expect(seqs((await chronicle.query({ tenant: 'acme', decision: 'deny' })).events)).toEqual([2, 3]);
    expect(seqs((await chronicle.query({ tenant: 'acme', decision: 'denied' })).events)).toEqual([2, 3]);
    expect((await chronicle.query({ tenant: 'acme', decision: 'allow', limit: 1000 })).events).toHaveLength(27); // 30 less two denials and the key event, which has no decision
    expect(seqs((await chronicle.query({ tenant: 'acme', deviceId: GUID_B, decision: 'deny' })).events)).toEqual([3]);
    expect(seqs((await chronicle.query({ tenant: 'other', deviceId: GUID_A })).events)).toEqual([1]);
    expect((await chronicle.query({ tenant: 'nobody' })).events).toEqual([]);
  });

  it('filters by time range: from inclusive, to exclusive', async () => {
    expect(seqs((await chronicle.query({ tenant: 'acme', from: times[1] as string, to: times[3] as string })).events)).toEqual([2, 3]);
    expect(seqs((await chronicle.query({ tenant: 'acme', to: new Date(times[1] as string) })).events)).toEqual([1]);
    expect((await chronicle.query({ tenant: 'acme', from: '2025-01-31T09:05:00Z', limit: 1000 })).events).toHaveLength(25);
  });

  it('pages with an opaque cursor, oldest first or newest first', async () => {
    const seen: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await chronicle.query({ tenant: 'acme', limit: 7, ...(cursor !== undefined ? { cursor } : {}) });
      seen.push(...seqs(page.events));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));

    const newest = await chronicle.query({ tenant: 'acme', order: 'desc', limit: 3 });
    expect(seqs(newest.events)).toEqual([30, 29, 28]);
    const older = await chronicle.query({ tenant: 'acme', order: 'desc', limit: 3, cursor: newest.nextCursor as string });
    expect(seqs(older.events)).toEqual([27, 26, 25]);
    await expect(chronicle.query({ tenant: 'acme', cursor: newest.nextCursor as string })).rejects.toMatchObject({ code: 'invalid_query', field: 'cursor' });
  });

  it('returns events rebuilt from the stored body, with their chain links', async () => {
    const { events } = await chronicle.query({ tenant: 'acme', limit: 3 });
    expect(events[2]).toMatchObject({ seq: 3, type: 'DEVICE_COMPLIANCE_CHECKED', code: '0x2801', requestId: 'req-gate', data: SAMPLE_DATA.DEVICE_COMPLIANCE_CHECKED });
    expect(events[1]?.prevHash).toBe(events[0]?.hash);
    expect(events[2]?.prevHash).toBe(events[1]?.hash);
  });

  it.each([
    [{ tenant: 'no spaces allowed' }, 'tenant'],
    [{ tenant: 'acme', limit: 0 }, 'limit'],
    [{ tenant: 'acme', limit: 1001 }, 'limit'],
    [{ tenant: 'acme', types: ['DROP TABLE'] }, 'types'],
    [{ tenant: 'acme', from: 'last tuesday' }, 'from'],
    [{ tenant: 'acme', decision: 'maybe' }, 'decision'],
    [{ tenant: 'acme', deviceId: "x' OR 1=1" }, 'deviceId'],
    [{ tenant: 'acme', cursor: 'not-a-cursor' }, 'cursor'],
  ])('refuses a malformed filter %j, naming %s', async (filter, field) => {
    const err = await chronicle.query(filter as never).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'ChronicleError', code: 'invalid_query', field });
    expect((err as Error).message.startsWith(`${field}: `)).toBe(true);
  });

  it('exports canonical JSON lines: the stored body, its chain links, in seq order', async () => {
    const { text, events } = await exportText(chronicle, { tenant: 'acme', format: 'jsonl' });
    expect(events).toBe(30);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(30);
    const parsed = lines.map((l) => JSON.parse(l) as { body: string; chain: string; hash: string; prev_hash: string; seq: number });
    lines.forEach((line, i) => expect(canonicalJson(parsed[i])).toBe(line));
    expect(parsed.map((p) => p.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(Object.keys(parsed[0] as object)).toEqual(['body', 'chain', 'hash', 'prev_hash', 'seq']);
    const all = await exportText(chronicle, { format: 'jsonl' });
    expect(all.events).toBe(31);
    await expect(chronicle.export({ format: 'csv' } as never, new PassThrough())).rejects.toMatchObject({ code: 'invalid_query', field: 'format' });
  });

  describe.skipIf(!python)('the README recipe (python3, SHA-256 only)', () => {
    let dir: ReturnType<typeof tempDir>;
    beforeAll(() => {
      dir = tempDir('recipe');
      fs.writeFileSync(path.join(dir.dir, 'verify_export.py'), readmeRecipe());
    });
    afterAll(() => dir?.remove());
    const runRecipe = (file: string) => spawnSync('python3', [path.join(dir.dir, 'verify_export.py'), file], { encoding: 'utf8' });

    it('re-verifies a real export of every chain', async () => {
      const file = path.join(dir.dir, 'all.jsonl');
      fs.writeFileSync(file, (await exportText(chronicle, { format: 'jsonl' })).text);
      const result = runRecipe(file);
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      const { events } = await chronicle.query({ tenant: 'acme', order: 'desc', limit: 1 });
      expect(result.stdout).toContain(`chain acme: intact up to seq 30, hash ${events[0]?.hash}`);
      expect(result.stdout).toContain('chain other: intact up to seq 1');
    });

    it('re-verifies a partial export that starts mid-chain', async () => {
      const file = path.join(dir.dir, 'partial.jsonl');
      fs.writeFileSync(file, (await exportText(chronicle, { tenant: 'acme', format: 'jsonl', fromSeq: 11 })).text);
      expect(runRecipe(file).stdout).toContain('chain acme: intact up to seq 30');
    });

    it('names the seq of an export that was edited after the fact', async () => {
      const file = path.join(dir.dir, 'edited.jsonl');
      const lines = (await exportText(chronicle, { tenant: 'acme', format: 'jsonl' })).text.trimEnd().split('\n');
      lines[11] = (lines[11] as string).replace('"result_count\\":12', '"result_count\\":13');
      fs.writeFileSync(file, `${lines.join('\n')}\n`);
      const result = runRecipe(file);
      expect(result.status).toBe(1);
      expect(result.stdout).toContain('seq 12: hash is not SHA-256(prev_hash || SHA-256(body))');

      const dropped = path.join(dir.dir, 'dropped.jsonl');
      const kept = (await exportText(chronicle, { tenant: 'acme', format: 'jsonl' })).text.trimEnd().split('\n');
      kept.splice(4, 1);
      fs.writeFileSync(dropped, `${kept.join('\n')}\n`);
      expect(runRecipe(dropped).stdout).toContain('seq 6: expected seq 5');
    });
  });
});
