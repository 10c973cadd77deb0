/**
 * A host framework loading the connector: open the runtime, map the host's caller to an
 * InvocationContext, ask what that caller may do, invoke operations, and treat a denial as an
 * answer rather than an exception. Every call below is recorded in Chronicle before it returns.
 *
 * Runs with no configuration: without ENTRA_* the runtime starts the built-in simulator as a
 * labelled demo tenant, and the embedded database lives under INTUNE_DATA_DIR (a temporary
 * directory here unless you set it).
 *
 *   npx tsx examples/host.ts
 *
 * In your own project import from 'intune-connector' instead of '../src/index.js'.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_TENANT, loadConfig, openRuntime, type InvocationContext } from '../src/index.js';

const dataDir = process.env['INTUNE_DATA_DIR'] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'intune-connector-example-'));
const config = loadConfig({ ...process.env, INTUNE_DATA_DIR: dataDir, LOG_LEVEL: process.env['LOG_LEVEL'] ?? 'warn' });
const runtime = await openRuntime(config);
const show = (label: string, value: unknown) => process.stdout.write(`${label} ${JSON.stringify(value)}\n`);

try {
  const { connector } = runtime;

  // 1. The host decides who is calling and what they were delegated.
  const context: InvocationContext = {
    tenant: DEFAULT_TENANT,
    actor: { kind: 'agent', id: 'example-agent' },
    scope: { capabilities: ['READ'], ceremonyRequiredFor: [] },
    requestId: crypto.randomUUID(),
    channel: 'library',
  };

  // 2. What this caller may call right now (what an MCP tool list would show).
  show('permitted', connector.permittedOperations(context.scope).map((op) => `${op.name}:${op.capability}`));

  // 3. A read: redacted postures, a page at a time.
  const page = await connector.invoke('list_devices', { compliance_state: 'noncompliant', page_size: 3 }, context);
  if (!page.ok) throw new Error(`list_devices: ${page.message}`);
  show('noncompliant', page.value.devices.map((d) => ({ device_id: d.device_id, os: d.os_family, state: d.compliance_state })));

  // 4. The compliance question, answered through the cache (a second ask is a cache hit).
  const first = page.value.devices[0];
  if (first !== undefined) {
    await connector.invoke('get_compliance', { device_id: first.device_id }, context);
    const again = await connector.invoke('get_compliance', { device_id: first.device_id }, context);
    if (again.ok) show('compliance', { device_id: again.value.device_id, state: again.value.compliance_state, cache: again.value.cache, audit_seq: again.audit.seq });
  }

  // 5. A denial is a typed answer, audited like the rest: MUTATE is disabled in Phase 1.
  const lock = await connector.invoke('remote_lock', { device_id: first?.device_id ?? crypto.randomUUID() }, context);
  if (!lock.ok) show('remote_lock', { kind: lock.kind, reason: lock.reason, message: lock.message });

  // 6. What the audit trail now holds for this tenant.
  const events = await runtime.chronicle.query({ tenant: DEFAULT_TENANT, types: ['CONNECTOR_INVOKED'], limit: 100 });
  show('audited', events.events.map((e) => `${String(e.data['operation'])}:${String(e.data['decision'])}`));
  show('demo', runtime.demo !== undefined);
} finally {
  await runtime.close();
  if (process.env['INTUNE_DATA_DIR'] === undefined) fs.rmSync(dataDir, { recursive: true, force: true });
}
