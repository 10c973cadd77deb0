/**
 * The error handler on its own: every failure a route can raise leaves as `{ error: { code,
 * message } }` with the right status, and an unexpected one says "internal error" with the
 * request id and nothing of the original message (which may hold SQL, paths or host names).
 */
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { ApiError, errorHandler } from '../../src/api/errors.js';
import { KeyInputError } from '../../src/auth/keys.js';
import { ChronicleError } from '../../src/chronicle/types.js';
import { DbError } from '../../src/db/errors.js';
import { PostureInputError, PostureNotFoundError, SecretRefError, SyncInProgressError } from '../../src/posture/index.js';

const RUN_ID = '3b0c5d4e-1111-4222-8333-944455556666';

describe('errorHandler', () => {
  const cases: Array<[string, () => Error, number, string, Record<string, unknown>?]> = [
    ['ApiError', () => new ApiError(418, 'teapot', 'short and stout'), 418, 'teapot'],
    ['KeyInputError', () => new KeyInputError('invalid_role', 'role', 'role must be one of admin, reader'), 400, 'invalid_role', { field: 'role' }],
    ['PostureInputError', () => new PostureInputError('invalid_field', 'display_name', 'display_name is too long'), 400, 'invalid_field', { field: 'display_name' }],
    ['PostureNotFoundError', () => new PostureNotFoundError('connection_not_found', 'no such connection'), 404, 'not_found'],
    ['SecretRefError', () => new SecretRefError('secret_ref_not_registered', 'env:X is not registered'), 400, 'secret_ref_not_registered', { field: 'secret_ref' }],
    ['SyncInProgressError', () => new SyncInProgressError(RUN_ID, RUN_ID), 409, 'sync_in_progress', { run_id: RUN_ID }],
    ['DbError unavailable', () => new DbError('database unavailable: connect ECONNREFUSED 10.1.2.3:5432', 'db_unavailable'), 503, 'service_unavailable', { database: 'unreachable' }],
    ['DbError read-only', () => new DbError('database unavailable: read-only transaction on 10.1.2.3', 'db_unavailable', { reason: 'read_only' }), 503, 'service_unavailable', { database: 'read_only' }],
    ['DbError disk full', () => new DbError('database unavailable: could not extend file on pg-primary', 'db_unavailable', { reason: 'disk_full' }), 503, 'service_unavailable', { database: 'disk_full' }],
    ['ChronicleError unavailable', () => new ChronicleError('commit failed on pg-primary.internal', 'unavailable'), 503, 'audit_unavailable'],
    [
      'ChronicleError around a read-only database',
      () => new ChronicleError('commit failed on pg-primary.internal', 'unavailable', undefined, { cause: new DbError('database unavailable: 10.1.2.3', 'db_unavailable', { reason: 'read_only' }) }),
      503,
      'audit_unavailable',
      { database: 'read_only' },
    ],
    [
      "ChronicleError around the driver's out-of-disk error",
      () => new ChronicleError('commit failed on pg-primary.internal', 'unavailable', undefined, { cause: Object.assign(new Error('could not extend file "base/1/2": No space left on device'), { code: '53100' }) }),
      503,
      'audit_unavailable',
      { database: 'disk_full' },
    ],
    ['ChronicleError invalid cursor', () => new ChronicleError('cursor is not a cursor this query returned', 'invalid_query', 'cursor'), 400, 'invalid_cursor'],
  ];

  for (const [name, make, status, code, extra] of cases) {
    it(`maps ${name} to ${status} ${code}`, async () => {
      const app = Fastify();
      app.setErrorHandler(errorHandler);
      app.get('/boom', async () => {
        throw make();
      });
      const res = await app.inject({ method: 'GET', url: '/boom' });
      expect(res.statusCode).toBe(status);
      const body = res.json();
      expect(body.error.code).toBe(code);
      expect(body.error.message.length).toBeGreaterThan(5);
      if (extra !== undefined) expect(body.error).toMatchObject(extra);
      if (status === 503) {
        expect(res.headers['retry-after']).toBe('5');
        expect(res.body).not.toMatch(/10\.1\.2\.3|pg-primary|ECONNREFUSED/);
      }
      await app.close();
    });
  }

  it('says why the database cannot serve, in words and by name', async () => {
    const app = Fastify();
    app.setErrorHandler(errorHandler);
    const reasons = ['unreachable', 'read_only', 'disk_full', 'out_of_resources', 'shutting_down'] as const;
    const answers = new Map<string, { message: string; database: string }>();
    for (const reason of reasons) {
      app.get(`/${reason}`, async () => {
        throw new DbError('database unavailable: 10.1.2.3', 'db_unavailable', { reason });
      });
    }
    for (const reason of reasons) answers.set(reason, (await app.inject({ method: 'GET', url: `/${reason}` })).json().error);
    expect([...answers.values()].map((a) => a.database)).toEqual([...reasons]);
    expect(answers.get('read_only')?.message).toMatch(/refuses writes \(it is read-only/);
    expect(answers.get('disk_full')?.message).toMatch(/out of disk space/);
    expect(answers.get('shutting_down')?.message).toMatch(/shutting down or restarting/);
    expect(answers.get('unreachable')?.message).toMatch(/cannot be reached/);
    // Five reasons, five different sentences.
    expect(new Set([...answers.values()].map((a) => a.message)).size).toBe(reasons.length);
    await app.close();
  });

  it('answers anything unexpected with 500 "internal error" and the request id, nothing else', async () => {
    const app = Fastify({ genReqId: () => 'req-1234' });
    app.setErrorHandler(errorHandler);
    app.get('/boom', async () => {
      throw new TypeError("relation \"api_keys\" does not exist at SELECT secret_sha256 FROM api_keys WHERE key_id = 'x' (/srv/app/dist/api/keys.js:42)");
    });
    const res = await app.inject({ method: 'GET', url: '/boom' });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: { code: 'internal_error', message: 'internal error (request id req-1234)', request_id: 'req-1234' } });
    await app.close();
  });
});
