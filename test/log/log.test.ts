import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/index.js';

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
