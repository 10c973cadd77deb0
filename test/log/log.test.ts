import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import { createLogger, lazyChildLoggerFactory, type Logger } from '../../src/log/index.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text, lines: () => text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('operational log redaction', () => {
  it('removes secrets, tokens and device PII by key, at the top level and nested', () => {
    const out = capture();
    const logger = createLogger({ level: 'info' }, out.stream);
    logger.info(
      {
        clientSecret: 'secret-value-1',
        headers: { authorization: 'Bearer eyJ-token-value' },
        device: { serialNumber: 'C02FAKE123', userPrincipalName: 'alex@contoso.example', id: 'kept-id' },
        req: { headers: { authorization: 'Bearer other-token' } },
      },
      'graph call',
    );
    const text = out.text();
    for (const leaked of ['secret-value-1', 'eyJ-token-value', 'C02FAKE123', 'alex@contoso.example', 'other-token']) {
      expect(text).not.toContain(leaked);
    }
    const [line] = out.lines();
    expect((line?.['device'] as Record<string, unknown>)['id']).toBe('kept-id');
    expect((line?.['device'] as Record<string, unknown>)['serialNumber']).toBe('[redacted]');
    expect(line?.['msg']).toBe('graph call');
  });
});

describe('request loggers made on first use', () => {
  it('write request lines with the request id, redacted like any other, and drop lines below the level without a child', async () => {
    const out = capture();
    const logger = createLogger({ level: 'warn' }, out.stream);
    let children = 0;
    const counting = new Proxy(logger, {
      get(target, prop, receiver) {
        if (prop === 'child') children++;
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const app = Fastify({
      loggerInstance: counting as unknown as FastifyBaseLogger,
      logController: new LogController({ disableRequestLogging: true }),
      genReqId: () => 'req-lazy-1',
      childLoggerFactory: (l, bindings, options) => lazyChildLoggerFactory(l as unknown as Logger, bindings, options as never) as unknown as FastifyBaseLogger,
    });
    app.get('/quiet', async (request) => {
      request.log.info({ note: 'below the level' }, 'not written');
      return { ok: true };
    });
    app.get('/loud', async (request) => {
      request.log.warn({ clientSecret: 'secret-value-2', device: { serialNumber: 'C02LAZY' } }, 'written');
      return { ok: true };
    });
    try {
      await app.ready();
      const before = children; // Fastify's own loggers for the server and its plugins
      expect((await app.inject({ url: '/quiet' })).statusCode).toBe(200);
      expect(children).toBe(before);
      expect(out.text()).toBe('');
      expect((await app.inject({ url: '/loud' })).statusCode).toBe(200);
      expect(children).toBe(before + 1);
      const [line] = out.lines();
      expect(line?.['reqId']).toBe('req-lazy-1');
      expect(line?.['msg']).toBe('written');
      expect(line?.['clientSecret']).toBe('[redacted]');
      expect(out.text()).not.toContain('C02LAZY');
    } finally {
      await app.close();
    }
  });
});
