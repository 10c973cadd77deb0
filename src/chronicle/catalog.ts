/**
 * The event catalog: every event type Chronicle records, its catalog code, and its JSON Schema in
 * specs/events/<type>.v1.schema.json (validated by ./validate.ts). Plain data, so the verify
 * workers can load it without the validator.
 */
import { fileURLToPath } from 'node:url';
import { EVENT_TYPES, type EventType } from './types.js';

export interface EventCatalogEntry {
  /** The catalog code (e.g. "0x2801"), or null for events without one. */
  readonly code: string | null;
  /** The schema of the event's data, relative to the package root. */
  readonly schemaFile: string;
  readonly description: string;
  /** The data field holding the decision, for `query({ decision })`. */
  readonly decisionField?: string;
  /** Data fields (paths) holding device ids, for `query({ deviceId })`. */
  readonly deviceIdFields?: readonly (readonly string[])[];
}

const schemaFile = (type: EventType) => `specs/events/${type}.v1.schema.json`;

export const EVENT_CATALOG: Readonly<Record<EventType, EventCatalogEntry>> = Object.freeze({
  CONNECTOR_INVOKED: {
    code: null,
    schemaFile: schemaFile('CONNECTOR_INVOKED'),
    description: 'Every Intune connector invocation, allowed or denied, succeeded or failed.',
    decisionField: 'decision',
    deviceIdFields: [
      ['target', 'device_id'],
      ['target', 'azure_ad_device_id'],
    ],
  },
  DEVICE_COMPLIANCE_CHECKED: {
    code: '0x2801',
    schemaFile: schemaFile('DEVICE_COMPLIANCE_CHECKED'),
    description: 'The compliance gate evaluated a device during credential issuance.',
    decisionField: 'decision',
    deviceIdFields: [['intune_device_id'], ['azure_ad_device_id']],
  },
  'integration.intune.sync_completed': {
    code: null,
    schemaFile: schemaFile('integration.intune.sync_completed'),
    description: 'A posture sync run of an Intune connection finished.',
  },
  'integration.intune.device_posture_changed': {
    code: null,
    schemaFile: schemaFile('integration.intune.device_posture_changed'),
    description: "A sync saw a device's compliance state, encryption or OS major version change (or, past the per-run cap, how many more did).",
    deviceIdFields: [['intune_device_id'], ['azure_ad_device_id']],
  },
  'agent.macos.enrolled': {
    code: null,
    schemaFile: schemaFile('agent.macos.enrolled'),
    description: 'A macOS endpoint agent enrolled.',
  },
  'integration.intune.connection_created': {
    code: null,
    schemaFile: schemaFile('integration.intune.connection_created'),
    description: 'An administrator created an Intune connection.',
  },
  'integration.intune.connection_updated': {
    code: null,
    schemaFile: schemaFile('integration.intune.connection_updated'),
    description: 'An administrator changed an Intune connection.',
  },
  'admin.api_key_created': {
    code: null,
    schemaFile: schemaFile('admin.api_key_created'),
    description: 'An API key was issued.',
  },
  'admin.api_key_revoked': {
    code: null,
    schemaFile: schemaFile('admin.api_key_revoked'),
    description: 'An API key was revoked.',
  },
  'agent.enrollment_token_created': {
    code: null,
    schemaFile: schemaFile('agent.enrollment_token_created'),
    description: 'An administrator made a one-time agent enrollment token.',
  },
  'agent.certificate_renewed': {
    code: null,
    schemaFile: schemaFile('agent.certificate_renewed'),
    description: 'An enrolled agent renewed its client certificate.',
  },
  'agent.revoked': {
    code: null,
    schemaFile: schemaFile('agent.revoked'),
    description: 'An administrator revoked an enrolled agent.',
  },
  'integration.intune.posture_read': {
    code: null,
    schemaFile: schemaFile('integration.intune.posture_read'),
    description: 'A REST read of device posture: who read which device, or which filter, and how many devices it answered.',
    deviceIdFields: [['device_id']],
  },
  'asset.sources_merged': {
    code: null,
    schemaFile: schemaFile('asset.sources_merged'),
    description: 'Asset identity joined sources into one asset (serial fingerprint, then Entra device id).',
  },
  'asset.split': {
    code: null,
    schemaFile: schemaFile('asset.split'),
    description: 'The sources of one asset now belong to several assets.',
  },
  'asset.conflict_detected': {
    code: null,
    schemaFile: schemaFile('asset.conflict_detected'),
    description: 'A serial fingerprint or Entra device id named several machines; nothing was merged on it.',
  },
});

/** The schema of the stored body (the envelope around `data`). */
export const ENVELOPE_SCHEMA_FILE = 'specs/events/chronicle.envelope.v1.schema.json';

/** The package root: specs/ ships beside dist/ (and src/ in a checkout). */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function specPath(relative: string): string {
  return `${PACKAGE_ROOT}${relative}`;
}

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && (EVENT_TYPES as readonly string[]).includes(value);
}
