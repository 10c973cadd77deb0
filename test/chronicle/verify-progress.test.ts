/**
 * A long verify tells how far it is: Chronicle reports each chain's walk range by range, and the
 * CLI shows it on stderr (a bar on a terminal, a line now and then in a log), never for a short one.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createChronicle, type VerifyProgress } from '../../src/chronicle/index.js';
import { verifyProgressReporter } from '../../src/cli/chronicle.js';
import { forEachDatabase, suiteDatabase } from '../helpers/db.js';
import { invoked, suiteWriter, uniqueTenant } from './helpers.js';

forEachDatabase('verify progress', (create) => {
  const suite = suiteDatabase(create);
  const writer = suiteWriter(suite);

  it('is reported range by range up to every row of each chain, on the calling thread and by workers', async () => {
    const a = uniqueTenant('pa');
    const b = uniqueTenant('pb');
    await Promise.all([...Array.from({ length: 1_000 }, (_, i) => writer.append(invoked(a, i))), ...Array.from({ length: 450 }, (_, i) => writer.append(invoked(b, i)))]);
    for (const verify of [{ workers: 0, chunkSize: 100 }, { workers: 2, minEventsForWorkers: 0, chunkSize: 100 }]) {
      const chronicle = await createChronicle({ db: suite.db, verify });
      try {
        const seen: VerifyProgress[] = [];
        const report = await chronicle.verify({ onProgress: (p) => seen.push(p) });
        expect(report.ok).toBe(true);
        for (const [tenant, total] of [[a, 1_000], [b, 450]] as const) {
          const mine = seen.filter((p) => p.tenant === tenant);
          expect(mine.map((p) => p.checked), JSON.stringify(verify)).toEqual(Array.from({ length: Math.ceil(total / 100) }, (_, i) => Math.min(total, (i + 1) * 100)));
          expect(mine.every((p) => p.total === total)).toBe(true);
        }
      } finally {
        await chronicle.close();
      }
    }
  });
});

describe('the CLI\'s verify progress', () => {
  const capture = (isTTY: boolean) => {
    const stream = Object.assign(new PassThrough(), { isTTY, columns: 120 });
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    return { stream, text: () => text };
  };

  /** Feeds tenant acme's progress from `from` to `total` by `step`, the clock moving `ms` before each update: what the reporter wrote. */
  const feed = (isTTY: boolean, options: { quietMs?: number; everyMs?: number }, { from, step, total, ms }: { from: number; step: number; total: number; ms: number }) => {
    const out = capture(isTTY);
    let t = 0;
    const progress = verifyProgressReporter(out.stream, { now: () => t, ...options });
    for (let checked = from; checked <= total; checked += step) {
      t += ms;
      progress.update({ tenant: 'acme', checked, total });
    }
    progress.stop();
    return out.text();
  };

  it('prints nothing for a verify shorter than its quiet period, on a terminal or not', () => {
    for (const isTTY of [true, false]) {
      expect(feed(isTTY, { quietMs: 1_000, everyMs: 5_000 }, { from: 100, step: 100, total: 1_000, ms: 50 }), `isTTY ${isTTY}`).toBe('');
    }
  });

  it('draws a bar on a terminal once the verify runs long, with the tenant and the count', () => {
    const text = feed(true, { quietMs: 1_000 }, { from: 0, step: 20_000, total: 200_000, ms: 400 });
    expect(text).toMatch(/verify \| acme \|/);
    expect(text).toMatch(/\/200000 events/);
  });

  it('writes one plain line every few seconds to a log', () => {
    expect(feed(false, { everyMs: 5_000 }, { from: 10_000, step: 10_000, total: 100_000, ms: 2_000 })).toBe(
      ['verify: tenant acme: 30000 of 100000 events checked', 'verify: tenant acme: 60000 of 100000 events checked', 'verify: tenant acme: 90000 of 100000 events checked', ''].join('\n'),
    );
  });
});
