/**
 * Validates real events (as the chronicle API returns them) against the message payloads of
 * specs/asyncapi.yaml, which reference the event allow-lists in specs/events/*.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import YAML from 'yaml';

const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

const SPECS = path.resolve(import.meta.dirname, '../../specs');
// The event schemas' $ids live under this base, so the document's relative refs resolve to them.
const DOC_ID = 'https://intune-connector.dev/specs/asyncapi.yaml';

export interface EventChecker {
  readonly doc: any;
  /** Message names (event types) the document declares. */
  readonly types: readonly string[];
  /** ajv errors for an event against the message of its type; ['no message …'] when undeclared. */
  errorsFor(event: { type: string }): string[];
}

export function eventChecker(): EventChecker {
  const doc = YAML.parse(fs.readFileSync(path.join(SPECS, 'asyncapi.yaml'), 'utf8'));
  const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
  for (const file of fs.readdirSync(path.join(SPECS, 'events')).filter((f) => f.endsWith('.json'))) {
    ajv.addSchema(JSON.parse(fs.readFileSync(path.join(SPECS, 'events', file), 'utf8')));
  }
  // The document's own `id` (an AsyncAPI field) is not a schema id: leave it out of what ajv sees.
  const { id: _applicationId, ...schemaDoc } = doc;
  ajv.addSchema(schemaDoc, DOC_ID);
  const byType = new Map<string, string>();
  for (const [key, message] of Object.entries<any>(doc.components.messages)) byType.set(message.name, key);
  return {
    doc,
    types: [...byType.keys()],
    errorsFor(event) {
      const key = byType.get(event.type);
      if (key === undefined) return [`no message for ${event.type} in asyncapi.yaml`];
      const validate = ajv.getSchema(`${DOC_ID}#/components/messages/${key}/payload`) ?? ajv.compile({ $ref: `${DOC_ID}#/components/messages/${key}/payload` });
      return validate(event) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
    },
  };
}
