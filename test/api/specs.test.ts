/**
 * The contract files themselves: openapi.yaml is a valid OpenAPI 3.1 document whose shared shapes
 * match the code's schemas (the redacted posture, the gate's answer), and asyncapi.yaml declares
 * every Chronicle event with a payload built on its specs/events allow-list.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { DevicePostureSchema } from '../../src/connector/posture.js';
import { EVENT_TYPES } from '../../src/chronicle/types.js';
import { GATE_RESPONSE_JSON_SCHEMA } from '../../src/gate/schemas.js';
import { eventChecker } from './asyncapi.js';
import { OPENAPI_FILE, loadOpenApi, specChecker } from './openapi.js';

describe('specs/openapi.yaml', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(OPENAPI_FILE);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('describes the redacted posture and the gate answer exactly as the code declares them', () => {
    const doc = loadOpenApi();
    const posture = doc.components['schemas']!['DevicePosture'];
    const shape = Object.keys(DevicePostureSchema.shape).sort();
    expect(Object.keys(posture.properties).sort()).toEqual(shape);
    expect([...posture.required].sort()).toEqual(shape);

    const gate = doc.components['schemas']!['GateResult'];
    const declared = GATE_RESPONSE_JSON_SCHEMA as { properties: Record<string, unknown>; required: string[] };
    expect(Object.keys(gate.properties).sort()).toEqual(Object.keys(declared.properties).sort());
    expect([...gate.required].sort()).toEqual([...declared.required].sort());
    const reasons = (declared.properties['reason'] as { enum: string[] }).enum;
    expect(gate.properties.reason.enum).toEqual(reasons);
  });

  it('has no stray keys (a comma in an unquoted YAML flow value splits it into a key with no value)', () => {
    const strays: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (node === null || typeof node !== 'object') return;
      for (const [key, value] of Object.entries(node)) {
        if (value === null && !Array.isArray(node)) strays.push(`${at}/${key}`);
        walk(value, `${at}/${key}`);
      }
    };
    walk(loadOpenApi(), '');
    walk(eventChecker().doc, 'asyncapi');
    expect(strays).toEqual([]);
  });

  it('compiles every component schema', () => {
    const checker = specChecker();
    for (const name of Object.keys(checker.doc.components['schemas']!)) {
      expect(() => checker.errorsFor(name, null)).not.toThrow();
    }
  });
});

describe('specs/asyncapi.yaml', () => {
  const checker = eventChecker();
  const doc = checker.doc;

  it('is an AsyncAPI 3.0 document declaring every Chronicle event, with payloads from specs/events', () => {
    expect(doc.asyncapi).toBe('3.0.0');
    expect([...checker.types].sort()).toEqual([...EVENT_TYPES].sort());
    for (const [key, message] of Object.entries<any>(doc.components.messages)) {
      const ref: string = message.payload.allOf[1].properties.data.$ref;
      expect(ref).toBe(`./events/${message.name}.v1.schema.json`);
      expect(fs.existsSync(path.resolve(import.meta.dirname, '../../specs', ref)), `${key}: ${ref}`).toBe(true);
      // Compiles, and refuses an event of another type.
      expect(checker.errorsFor({ type: message.name })).not.toEqual([]);
    }
  });

  it('links every channel to its message and every operation to its channel', () => {
    const resolve = (ref: string) => ref.replace(/^#\//, '').split('/').reduce<any>((node, part) => node?.[part], doc);
    for (const [name, channel] of Object.entries<any>(doc.channels)) {
      for (const message of Object.values<any>(channel.messages)) expect(resolve(message.$ref), `${name} → ${message.$ref}`).toBeDefined();
      expect(EVENT_TYPES as readonly string[]).toContain(channel.address);
    }
    for (const [name, operation] of Object.entries<any>(doc.operations)) {
      expect(operation.action).toBe('receive');
      expect(resolve(operation.channel.$ref), name).toBeDefined();
      for (const message of operation.messages) expect(resolve(message.$ref), `${name} → ${message.$ref}`).toBeDefined();
    }
  });
});
