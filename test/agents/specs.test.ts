/**
 * The agent request schemas the server enforces and the ones openapi.yaml documents are the same:
 * same fields, same required ones, same bounds where both state them.
 */
import { describe, expect, it } from 'vitest';
import { enrollBody, heartbeatBody, renewBody, tokenCreateBody } from '../../src/agents/schemas.js';
import { loadOpenApi } from '../api/openapi.js';

describe('agent request schemas in openapi.yaml', () => {
  const doc = loadOpenApi();
  const schemas = doc.components['schemas']!;
  const bodyOf = (path: string) => doc.paths[path]!['post'].requestBody.content['application/json'].schema;

  it.each([
    ['EnrollRequest', enrollBody, () => schemas['EnrollRequest']],
    ['Heartbeat', heartbeatBody, () => schemas['Heartbeat']],
    ['renew', renewBody, () => bodyOf('/api/v1/agents/renew')],
    ['enrollment-tokens', tokenCreateBody, () => bodyOf('/api/v1/agents/enrollment-tokens')],
  ] as const)('%s has the fields, required fields and bounds the server checks', (_name, code, documented) => {
    const spec = documented();
    const fields = code.properties as Record<string, Record<string, unknown>>;
    expect(Object.keys(spec.properties).sort()).toEqual(Object.keys(fields).sort());
    expect([...(spec.required ?? [])].sort()).toEqual([...(('required' in code ? code.required : []) as readonly string[])].sort());
    expect(spec.additionalProperties).toBe(false);
    for (const [field, rule] of Object.entries(fields)) {
      let documentedRule = spec.properties[field];
      if (typeof documentedRule.$ref === 'string') documentedRule = schemas[documentedRule.$ref.split('/').pop()]!;
      for (const bound of ['minLength', 'maxLength', 'minimum', 'maximum', 'pattern'] as const) {
        if (rule[bound] !== undefined && documentedRule[bound] !== undefined) expect(documentedRule[bound], `${field}.${bound}`).toEqual(rule[bound]);
      }
    }
  });
});
