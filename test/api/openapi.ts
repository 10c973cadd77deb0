/**
 * Checks real responses against specs/openapi.yaml: the status must be documented for the
 * operation, and a JSON body must validate against the documented schema (JSON Schema 2020-12,
 * as OpenAPI 3.1 uses it, with ajv). Schemas are taken from the YAML itself, never copied.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import YAML from 'yaml';
import { expect } from 'vitest';
import type { TestResponse } from './helpers.js';

const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

export const OPENAPI_FILE = path.resolve(import.meta.dirname, '../../specs/openapi.yaml');
const DOC_ID = 'https://intune-connector.invalid/openapi.json';

export type OpenApiDoc = {
  paths: Record<string, Record<string, any>>;
  components: Record<string, Record<string, any>>;
  [k: string]: unknown;
};

export function loadOpenApi(): OpenApiDoc {
  return YAML.parse(fs.readFileSync(OPENAPI_FILE, 'utf8')) as OpenApiDoc;
}

const pointer = (...parts: string[]): string => parts.map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1')).join('/');

export interface SpecChecker {
  readonly doc: OpenApiDoc;
  /** Asserts the response is documented for the operation and its body matches the schema. */
  check(method: string, template: string, res: TestResponse): void;
  /** Validates a value against a component schema, returning ajv's errors (empty when valid). */
  errorsFor(component: string, value: unknown): string[];
}

export function specChecker(): SpecChecker {
  const doc = loadOpenApi();
  const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
  ajv.addSchema(doc as object, DOC_ID);
  const cache = new Map<string, ReturnType<typeof ajv.compile>>();
  const validatorAt = (ptr: string) => {
    let validate = cache.get(ptr);
    if (validate === undefined) {
      validate = ajv.compile({ $ref: `${DOC_ID}#/${ptr}` });
      cache.set(ptr, validate);
    }
    return validate;
  };

  const resolveResponse = (response: any): { response: any; ptr: string | null } => {
    if (typeof response?.$ref === 'string') {
      const ref = (response.$ref as string).replace(/^#\//, '');
      const target = ref.split('/').reduce<any>((node, part) => node?.[part.replaceAll('~1', '/').replaceAll('~0', '~')], doc);
      return { response: target, ptr: ref };
    }
    return { response, ptr: null };
  };

  return {
    doc,
    check(method, template, res) {
      const operation = doc.paths[template]?.[method.toLowerCase()];
      expect(operation, `${method} ${template} is not in openapi.yaml`).toBeDefined();
      const declared = operation.responses?.[String(res.status)];
      expect(declared, `${method} ${template} answered ${res.status}, which openapi.yaml does not document (body: ${res.text.slice(0, 300)})`).toBeDefined();
      const { response, ptr } = resolveResponse(declared);
      const contentType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
      if (response.content === undefined) return;
      expect(Object.keys(response.content), `${method} ${template} ${res.status} answered ${contentType}`).toContain(contentType);
      if (contentType !== 'application/json') return;
      const schemaPtr =
        ptr !== null
          ? `${ptr}/${pointer('content', 'application/json', 'schema')}`
          : pointer('paths', template, method.toLowerCase(), 'responses', String(res.status), 'content', 'application/json', 'schema');
      const validate = validatorAt(schemaPtr);
      const ok = validate(res.body);
      expect(ok, `${method} ${template} ${res.status} body does not match openapi.yaml: ${ajv.errorsText(validate.errors)}\n${res.text.slice(0, 500)}`).toBe(true);
      for (const [name, header] of Object.entries<any>(response.headers ?? {})) {
        if (header?.schema?.const !== undefined) expect(res.headers.get(name)).toBe(header.schema.const);
      }
    },
    errorsFor(component, value) {
      const validate = validatorAt(pointer('components', 'schemas', component));
      return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
    },
  };
}
