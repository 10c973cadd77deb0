/**
 * Each REST response shape covered here is declared once, in zod (src/posture/schemas.ts,
 * src/auth/schemas.ts, src/agents/schemas.ts, src/assets/types.ts, src/connector/assets.ts,
 * src/chronicle/schemas.ts, src/api/schemas.ts); Fastify serialises the answer by the JSON Schema
 * derived from it. specs/openapi.yaml is written for readers, so this compares what a validator
 * enforces on each side: a field, a type, a nullability or an enum member that changes on one
 * side only fails here. Then a real server's answers are read back through the same declarations:
 * the serialiser drops a field the declaration lacks silently, so a live answer that no longer
 * parses (a required field gone, a type changed) is caught here too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConnectionListSchema,
  CreatedKeySchema,
  KeyListSchema,
  responseJsonSchema,
  RunListSchema,
  serializerJsonSchema,
  SnapshotDeviceDetailSchema,
} from '../../src/api/schemas.js';
import { ApiKeyRecordSchema } from '../../src/auth/schemas.js';
import {
  AgentIdentitySchema,
  AgentListSchema,
  AgentPostureListSchema,
  AgentSummarySchema,
  CreatedTokenSchema,
  HeartbeatAckSchema,
} from '../../src/agents/schemas.js';
import { AssetPageSchema } from '../../src/assets/types.js';
import { FoundAssetSchema } from '../../src/connector/assets.js';
import { ChronicleEventPageSchema, VerifyReportJsonSchema } from '../../src/chronicle/schemas.js';
import { ConnectionSchema, PostureSummarySchema, SnapshotDevicePageSchema, SyncRunSummarySchema } from '../../src/posture/schemas.js';
import { heartbeatBody, makeKeyAndCsr, mtlsRequest, type MtlsIdentity } from '../../src/agents/reference-agent.js';
import { loadOpenApi, specChecker } from './openapi.js';
import { writtenBy } from '../helpers/fastify.js';
import { startTestServer, type TestResponse, type TestServer } from './helpers.js';

const doc = loadOpenApi();
/** Words for readers; the derived schemas carry zod's own integer range, which says nothing here. */
const IGNORED = new Set(['description', 'default', 'example', 'examples', 'title']);
const SAFE_INTEGER_BOUNDS = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

function resolve(ref: string): unknown {
  const target = ref
    .replace(/^#\//, '')
    .split('/')
    .reduce<any>((at, part) => at?.[part], doc);
  expect(target, `openapi.yaml has no ${ref}`).toBeDefined();
  return target;
}

/** allOf of object schemas as one object schema; unevaluatedProperties: false closes it like additionalProperties: false. */
function mergeAllOf(node: Node): Node {
  const parts = (node['allOf'] as unknown[]).map((p) => normalise(p) as Node);
  const { allOf: _parts, unevaluatedProperties, ...rest } = node;
  const merged: Node = { ...(normalise(rest) as Node) };
  for (const part of parts) {
    for (const [key, value] of Object.entries(part)) {
      if (key === 'properties') merged['properties'] = { ...(merged['properties'] as Node | undefined), ...(value as Node) };
      else if (key === 'required') merged['required'] = [...new Set([...((merged['required'] as string[] | undefined) ?? []), ...(value as string[])])].sort();
      else merged[key] = value;
    }
  }
  if (unevaluatedProperties === false) merged['additionalProperties'] = false;
  return merged;
}

/** Resolves $refs, merges allOf, writes "X or null" one way, drops the words: what is left is what a validator enforces. */
function normalise(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(normalise);
  if (!isNode(node)) return node;
  if (typeof node['$ref'] === 'string') return normalise(resolve(node['$ref']));
  if (Array.isArray(node['allOf'])) return mergeAllOf(node);
  const out: Node = {};
  for (const [key, value] of Object.entries(node)) {
    if (IGNORED.has(key)) continue;
    if ((key === 'maximum' || key === 'minimum') && SAFE_INTEGER_BOUNDS.has(value as number)) continue;
    const name = key === 'oneOf' ? 'anyOf' : key;
    out[name] = key === 'required' && Array.isArray(value) ? [...value].sort() : normalise(value);
  }
  // "X or null" as { type: [X, 'null'], ...X's keywords }, however it was written.
  const branches = out['anyOf'];
  if (Array.isArray(branches) && branches.length === 2) {
    const nullAt = branches.findIndex((b) => isNode(b) && b['type'] === 'null' && Object.keys(b).length === 1);
    const other = branches[1 - nullAt];
    if (nullAt !== -1 && isNode(other) && typeof other['type'] === 'string') {
      const { anyOf: _branches, ...rest } = out;
      return { ...rest, ...other, type: [other['type'], 'null'].sort() };
    }
  }
  if (Array.isArray(out['type'])) out['type'] = [...(out['type'] as string[])].sort();
  return out;
}

function documented(method: string, path: string, status: number): unknown {
  const op = doc.paths[path]?.[method.toLowerCase()];
  expect(op, `${method} ${path} is not in openapi.yaml`).toBeDefined();
  const schema = op.responses?.[String(status)]?.content?.['application/json']?.schema;
  expect(schema, `${method} ${path} documents no JSON answer for ${status}`).toBeDefined();
  return normalise(schema);
}

const derived = (schema: z.ZodType) => normalise(responseJsonSchema(schema));

const I = '/api/v1/integrations/intune';

describe('specs/openapi.yaml states the response shapes the code declares', () => {
  it.each([
    ['GET', `${I}/connections`, 200, ConnectionListSchema],
    ['POST', `${I}/connections`, 201, ConnectionSchema],
    ['GET', `${I}/connections/{connection_id}`, 200, ConnectionSchema],
    ['PATCH', `${I}/connections/{connection_id}`, 200, ConnectionSchema],
    ['POST', `${I}/connections/{connection_id}/sync`, 202, SyncRunSummarySchema],
    ['GET', `${I}/connections/{connection_id}/runs`, 200, RunListSchema],
    ['GET', `${I}/connections/{connection_id}/runs/{run_id}`, 200, SyncRunSummarySchema],
    ['GET', `${I}/devices`, 200, SnapshotDevicePageSchema],
    ['GET', `${I}/devices/{device_id}`, 200, SnapshotDeviceDetailSchema],
    ['GET', `${I}/summary`, 200, PostureSummarySchema],
    ['GET', '/api/v1/keys', 200, KeyListSchema],
    ['POST', '/api/v1/keys', 201, CreatedKeySchema],
    ['DELETE', '/api/v1/keys/{key_id}', 200, ApiKeyRecordSchema],
    ['POST', '/api/v1/agents/enrollment-tokens', 201, CreatedTokenSchema],
    ['POST', '/api/v1/agents/enroll', 201, AgentIdentitySchema],
    ['GET', '/api/v1/agents', 200, AgentListSchema],
    ['GET', '/api/v1/agents/posture', 200, AgentPostureListSchema],
    ['GET', '/api/v1/agents/{agent_id}', 200, AgentSummarySchema],
    ['DELETE', '/api/v1/agents/{agent_id}', 200, AgentSummarySchema],
    ['POST', '/api/v1/agents/heartbeat', 200, HeartbeatAckSchema],
    ['POST', '/api/v1/agents/renew', 200, AgentIdentitySchema],
    ['GET', '/api/v1/assets', 200, AssetPageSchema],
    ['GET', '/api/v1/assets/{asset_id}', 200, FoundAssetSchema],
    ['GET', '/api/v1/chronicle/events', 200, ChronicleEventPageSchema],
    ['GET', '/api/v1/chronicle/verify', 200, VerifyReportJsonSchema],
  ] as const)('%s %s %i', (method, path, status, schema) => {
    expect(documented(method, path, status)).toEqual(derived(schema));
  });

  it('fails on drift: a field the code adds, or a nullability it changes, is noticed', () => {
    const documentedRun = documented('GET', `${I}/connections/{connection_id}/runs/{run_id}`, 200);
    expect(documentedRun).not.toEqual(derived(SyncRunSummarySchema.extend({ worker: z.string() })));
    expect(documentedRun).not.toEqual(derived(SyncRunSummarySchema.extend({ error_code: z.string() })));
  });
});

describe('live answers parse by their declarations (a real server on PGlite)', () => {
  let t: TestServer;
  let admin: string;
  const spec = specChecker();

  beforeAll(async () => {
    t = await startTestServer('pglite', { otherDevices: 5 });
    admin = await t.key('default', 'admin');
  }, 180_000);
  afterAll(async () => {
    await t?.close();
  });

  /**
   * The answer has the status, parses strictly by the declaration, matches openapi.yaml, and is
   * written byte for byte as the declaration's own JSON Schema would write it (the routes use the
   * serializer's faster form of it).
   */
  async function answers(res: TestResponse, status: number, schema: z.ZodType, method: string, template: string): Promise<void> {
    expect(res.status, res.text.slice(0, 300)).toBe(status);
    const parsed = schema.safeParse(res.body);
    expect(parsed.success, JSON.stringify(parsed.error?.issues.slice(0, 3))).toBe(true);
    spec.check(method, template, res);
    expect(res.text).toBe(await writtenBy(responseJsonSchema(schema), res.body));
    expect(await writtenBy(serializerJsonSchema(schema), res.body)).toBe(res.text);
  }

  it('agents: a token, an enrollment, the list, one agent, its posture, a heartbeat, a renewal and a revocation', async () => {
    const token = await t.request('POST', '/api/v1/agents/enrollment-tokens', { key: admin, body: { ttl_seconds: 600, name: 'contract test' } });
    await answers(token, 201, CreatedTokenSchema, 'POST', '/api/v1/agents/enrollment-tokens');

    const key = await makeKeyAndCsr();
    const enrolled = await t.request('POST', '/api/v1/agents/enroll', {
      body: { token: token.body.token, csr: key.csrPem, platform: 'darwin', agent_class: 'endpoint', os_version: '14.5', os_build: '23F79', model: 'Mac14,2' },
    });
    await answers(enrolled, 201, AgentIdentitySchema, 'POST', '/api/v1/agents/enroll');
    expect(enrolled.body.agent_url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const agentId = enrolled.body.agent_id as string;
    const identity: MtlsIdentity = { certificate: enrolled.body.certificate, keyPem: key.keyPem, serverCa: enrolled.body.server_ca };

    const beat = await mtlsRequest(t.server.agentListener.url, '/api/v1/agents/heartbeat', identity, heartbeatBody({ osVersion: '14.5', filevault: true, sip: 'unknown', uptimeSeconds: 60 }));
    expect(beat.status).toBe(200);
    expect(HeartbeatAckSchema.parse(beat.body)).toMatchObject({ agent_id: agentId });

    const list = await t.request('GET', '/api/v1/agents', { key: admin });
    await answers(list, 200, AgentListSchema, 'GET', '/api/v1/agents');
    expect(list.body.agents.map((a: { agent_id: string }) => a.agent_id)).toContain(agentId);
    await answers(await t.request('GET', `/api/v1/agents/${agentId}`, { key: admin }), 200, AgentSummarySchema, 'GET', '/api/v1/agents/{agent_id}');
    const posture = await t.request('GET', '/api/v1/agents/posture', { key: admin });
    await answers(posture, 200, AgentPostureListSchema, 'GET', '/api/v1/agents/posture');
    expect(posture.body.devices.find((d: { agent_id: string }) => d.agent_id === agentId)).toMatchObject({ filevault: true, sip: 'unknown', uptime_seconds: 60 });

    const renewal = await makeKeyAndCsr();
    const renewed = await mtlsRequest(t.server.agentListener.url, '/api/v1/agents/renew', identity, { csr: renewal.csrPem });
    expect(renewed.status).toBe(200);
    expect(AgentIdentitySchema.parse(renewed.body)).toMatchObject({ agent_id: agentId });

    const revoked = await t.request('DELETE', `/api/v1/agents/${agentId}`, { key: admin });
    await answers(revoked, 200, AgentSummarySchema, 'DELETE', '/api/v1/agents/{agent_id}');
    expect(revoked.body.status).toBe('revoked');
  });

  it('assets: a page with the demo agents merged in, and one asset', async () => {
    const page = await t.request('GET', '/api/v1/assets?source=both&limit=2', { key: admin });
    await answers(page, 200, AssetPageSchema, 'GET', '/api/v1/assets');
    expect(page.body.assets).toHaveLength(2);
    expect(page.body.next_cursor).toEqual(expect.any(String));
    const one = await t.request('GET', `/api/v1/assets/${page.body.assets[0].asset_id}`, { key: admin });
    await answers(one, 200, FoundAssetSchema, 'GET', '/api/v1/assets/{asset_id}');
    expect(Object.keys(one.body.attributes)).toEqual(expect.arrayContaining(['os_family', 'compliance_state', 'sip']));
  });

  it('chronicle: a page of events and the verify report', async () => {
    const auditor = await t.key('default', 'auditor');
    const events = await t.request('GET', '/api/v1/chronicle/events?limit=5', { key: auditor });
    await answers(events, 200, ChronicleEventPageSchema, 'GET', '/api/v1/chronicle/events');
    expect(events.body.events).toHaveLength(5);
    const verify = await t.request('GET', '/api/v1/chronicle/verify', { key: auditor });
    await answers(verify, 200, VerifyReportJsonSchema, 'GET', '/api/v1/chronicle/verify');
    expect(verify.body).toMatchObject({ ok: true, chains: [{ tenant: 'default', ok: true, first_bad_seq: null, reason: null }] });
  });
});
