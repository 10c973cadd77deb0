/**
 * The posture read audit on its own, against a real Chronicle on a real database: reads are
 * written without the caller waiting, all of them on close (a clean stop loses none), retried when
 * Chronicle fails for a moment, and refused (503 audit_unavailable upstream) rather than dropped
 * when the queue is full and Chronicle still cannot record.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createChronicle, type Chronicle } from '../../src/chronicle/index.js';
import { ChronicleError, type AppendInput } from '../../src/chronicle/types.js';
import { toApiError } from '../../src/api/errors.js';
import { createPostureReadAudit, type PostureRead } from '../../src/api/read-audit.js';
import { createPGliteDatabase, type TestDatabase } from '../helpers/db.js';

const DEVICE = '0fa4e5e1-6a7b-4c1d-9e2f-3a4b5c6d7e8f';
const actor = { kind: 'human', id: 'key:0123456789abcdef' } as const;
const detail = (i: number): PostureRead => ({ tenant: 'acme', actor, requestId: `req-detail-${i}`, route: 'detail', status: 200, deviceId: DEVICE.toUpperCase(), count: 1 });
const list: PostureRead = {
  tenant: 'acme',
  actor,
  requestId: 'req-list',
  route: 'list',
  status: 200,
  query: { compliance_state: 'noncompliant', last_sync_after: '2025-01-31', limit: 100, cursor: 'opaque-cursor-text' },
  count: 3,
  total: 42,
};

describe('posture read audit', () => {
  let tdb: TestDatabase;
  let chronicle: Chronicle;
  const reads = async () => (await chronicle.query({ tenant: 'acme', types: ['integration.intune.posture_read'] })).events;

  beforeEach(async () => {
    tdb = await createPGliteDatabase();
    chronicle = await createChronicle({ db: await tdb.open() });
  });
  afterEach(async () => {
    await chronicle.close();
    await tdb.drop();
  });

  it('writes every queued read on close, with the filter as validated and never the cursor', async () => {
    const audit = createPostureReadAudit({ chronicle, flushIntervalMs: 60_000 });
    await audit.record(list);
    for (let i = 0; i < 3; i++) await audit.record(detail(i));
    expect(audit.stats()).toMatchObject({ recorded: 4, pending: 4, written: 0 });
    await audit.close();
    expect(audit.stats()).toMatchObject({ written: 4, pending: 0 });
    const events = await reads();
    expect(events.map((e) => e.requestId)).toEqual(['req-list', 'req-detail-0', 'req-detail-1', 'req-detail-2']);
    expect(events[0]?.actor).toEqual(actor);
    expect(events[0]?.data).toEqual({
      route: 'GET /api/v1/integrations/intune/devices',
      status: 200,
      filter: { compliance_state: 'noncompliant', last_sync_after: '2025-01-31T00:00:00.000Z', limit: 100, paged: true },
      count: 3,
      total: 42,
    });
    expect(JSON.stringify(events)).not.toContain('opaque-cursor-text');
    expect((await chronicle.query({ tenant: 'acme', deviceId: DEVICE })).events).toHaveLength(3);
    await expect(audit.record(detail(9))).rejects.toMatchObject({ code: 'closed' });
  });

  it('writes on its own within the flush interval, without close', async () => {
    const audit = createPostureReadAudit({ chronicle, flushIntervalMs: 50 });
    await audit.record(detail(1));
    const deadline = Date.now() + 10_000;
    while ((await reads()).length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    expect((await reads()).map((e) => e.requestId)).toEqual(['req-detail-1']);
    await audit.close();
  });

  it('keeps what Chronicle could not record and writes it on the next flush, in order', async () => {
    let failNext = 2;
    const flaky = {
      append(input: AppendInput) {
        if (failNext > 0) {
          failNext -= 1;
          return Promise.reject(new ChronicleError('commit failed', 'unavailable'));
        }
        return chronicle.append(input);
      },
    };
    const audit = createPostureReadAudit({ chronicle: flaky, flushIntervalMs: 60_000 });
    for (let i = 0; i < 3; i++) await audit.record(detail(i));
    await audit.flush();
    expect(audit.stats()).toMatchObject({ written: 1, pending: 2, retries: 2 });
    await audit.close();
    expect(audit.stats()).toMatchObject({ written: 3, pending: 0 });
    expect((await reads()).map((e) => e.requestId).sort()).toEqual(['req-detail-0', 'req-detail-1', 'req-detail-2']);
  });

  it('refuses a read with audit_unavailable when the queue is full and Chronicle cannot record', async () => {
    const down = { append: () => Promise.reject(new ChronicleError('database unavailable', 'unavailable')) };
    const audit = createPostureReadAudit({ chronicle: down, flushIntervalMs: 60_000, maxPending: 2 });
    await audit.record(detail(0));
    await audit.record(detail(1));
    const refused = await audit.record(detail(2)).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ChronicleError);
    expect(toApiError(refused)).toMatchObject({ statusCode: 503, code: 'audit_unavailable' });
    expect(audit.stats().pending).toBe(2);
  });
});
