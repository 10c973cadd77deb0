/**
 * The checkpoint log as an attacker who can write the checkpoint directory and the database would
 * attack it: lines deleted (in the middle and at the end), edited, reordered and cut; a witness
 * copy; two deployments sharing one directory; a database re-identified under this deployment's
 * checkpoints; key rotation. Every case has its own directory, so one case's damage is not the next
 * one's.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { Db } from '../../src/db/index.js';
import { createChronicle, type Chronicle, type ChronicleOptions } from '../../src/chronicle/index.js';
import { appendLogLines, instanceLogDir, parseKeyFile } from '../../src/chronicle/checkpoints.js';
import { formatVerifyReport } from '../../src/cli/chronicle.js';
import { createTlsMaterial } from '../../src/simulator/tls.js';
import { forEachDatabase, type TestDatabase } from '../helpers/db.js';
import { asSuperuserWithoutGuards, invoked, logFiles, rewriteChain, tempDir, uniqueTenant } from './helpers.js';

forEachDatabase('chronicle checkpoint log', (create) => {
  let tdb: TestDatabase;
  let db: Db;
  let tmp: ReturnType<typeof tempDir>;
  let base: ChronicleOptions;
  const open: Chronicle[] = [];

  // A database per case: a checkpoint signs every chain of its database, and each case counts lines.
  beforeEach(async () => {
    tdb = await create();
    db = await tdb.open();
    tmp = tempDir('log');
    base = { db, signingKeyFile: path.join(tmp.dir, 'keys', 'signing-key.pem'), checkpointDir: path.join(tmp.dir, 'checkpoints') };
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await tdb?.drop();
    tmp.remove();
  });

  async function chronicleWith(extra: Partial<ChronicleOptions> = {}): Promise<Chronicle> {
    const c = await createChronicle({ ...base, ...extra });
    open.push(c);
    return c;
  }

  /** A chain of n events with a checkpoint after each seq in `at`; returns the tenant. */
  async function chain(c: Chronicle, n: number, at: readonly number[]): Promise<string> {
    const tenant = uniqueTenant();
    for (let i = 1; i <= n; i++) {
      await c.append(invoked(tenant, i));
      if (at.includes(i)) await c.checkpoint();
    }
    return tenant;
  }

  /** The lines of the (single-file) log, and a way to write them back. */
  function logLines(): { file: string; lines: string[]; write(lines: string[], trailingNewline?: boolean): void } {
    const files = logFiles(base.checkpointDir as string);
    expect(files).toHaveLength(1);
    const file = files[0] as string;
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    return { file, lines, write: (next, trailingNewline = true) => fs.writeFileSync(file, next.join('\n') + (trailingNewline ? '\n' : '')) };
  }

  it('catches a rewrite from seq K whose checkpoint lines were deleted, by the gap in the line numbers', async () => {
    const c = await chronicleWith();
    const tenant = await chain(c, 10, [3, 6, 10]);
    const other = await chain(c, 2, [2]); // a later line of another chain keeps the deletion in the middle
    expect((await c.verify()).ok).toBe(true);

    await rewriteChain(db, tenant, 5);
    const log = logLines();
    // Lines 2 and 3 signed seq 6 and 10 of the rewritten chain.
    log.write(log.lines.filter((l) => !(l.includes(`"chain":"${tenant}"`) && !l.includes('"seq":3,'))));
    const report = await c.verify();
    expect(report.ok).toBe(false);
    expect(report.checkpointLog).toMatchObject({ ok: false, firstBadLine: 2, reason: 'missing' });
    expect(report.checkpointLog?.detail).toMatch(/lines 2 to [34] are missing/);
    expect(formatVerifyReport(report)).toMatch(/checkpoint log .*: line 2: missing/);
    expect(report.chains.find((x) => x.tenant === other)?.ok).toBe(true);
  });

  it('states the exposure window, and with a witness catches the newest lines deleted and names the first rewritten seq', async () => {
    const witnessDir = path.join(tmp.dir, 'witness');
    const c = await chronicleWith({ witnessDir });
    const tenant = await chain(c, 12, [4, 8, 12]);
    await c.append(invoked(tenant, 13)); // one event no checkpoint covers yet
    const intact = await c.verify({ tenant });
    expect(intact.ok).toBe(true);
    expect(intact.exposure.uncoveredEvents).toBe(1);
    expect(Date.parse(intact.exposure.newestCheckpointTime as string)).toBeLessThanOrEqual(Date.now());
    expect(formatVerifyReport(intact)).toMatch(/exposure: newest checkpoint signed .*Z; 1 event not covered by any checkpoint yet/);

    await rewriteChain(db, tenant, 9);
    const log = logLines();
    log.write(log.lines.slice(0, 2)); // the newest line (seq 12) deleted
    const local = await c.verify({ tenant });
    // Without the witness the cut cannot be told from a quiet log, but the exposure says how much is unguarded.
    expect(local.ok).toBe(true);
    expect(local.exposure.uncoveredEvents).toBe(5);

    const witnessed = await c.verify({ tenant, witnessDir });
    expect(witnessed.ok).toBe(false);
    expect(witnessed.checkpointLog).toMatchObject({ ok: false, firstBadLine: 3, reason: 'missing', witness: { lines: 3 } });
    expect(witnessed.chains[0]).toMatchObject({ ok: false, firstBadSeq: 9, reason: 'checkpoint_mismatch' });
  });

  it('reports an edited, a reordered and a cut line by number', async () => {
    const c = await chronicleWith();
    await chain(c, 4, [1, 2, 3, 4]);
    const log = logLines();
    const original = [...log.lines];

    log.write(original.map((l, i) => (i === 2 ? l.replace(/"seq":3/, '"seq":30') : l)));
    expect((await c.verify()).checkpointLog).toMatchObject({ firstBadLine: 3, reason: 'edited' });

    log.write([original[0], original[2], original[1], original[3]] as string[]);
    expect((await c.verify()).checkpointLog).toMatchObject({ firstBadLine: 2, reason: 'missing' });
    log.write([original[0], original[1], original[3], original[2]] as string[]);
    expect((await c.verify()).checkpointLog).toMatchObject({ firstBadLine: 3, reason: 'missing' });
    log.write([...original, original[1] as string]);
    expect((await c.verify()).checkpointLog).toMatchObject({ firstBadLine: 2, reason: 'reordered' });

    log.write([...original.slice(0, 3), (original[3] as string).slice(0, 40)], false);
    const cut = await c.verify();
    expect(cut.ok).toBe(false);
    expect(cut.checkpointLog).toMatchObject({ firstBadLine: 4, reason: 'cut' });
  });

  it('finds random damage to the log at the line it was done to (property)', async () => {
    const c = await chronicleWith();
    await chain(c, 6, [1, 2, 3, 4, 5, 6]);
    const original = [...logLines().lines];
    const n = original.length;
    type Damage = { kind: 'delete' | 'edit' | 'cut' | 'swap'; line: number; at: number };
    const damage: fc.Arbitrary<Damage> = fc.record({
      kind: fc.constantFrom('delete' as const, 'edit' as const, 'cut' as const, 'swap' as const),
      line: fc.integer({ min: 1, max: n }),
      at: fc.nat({ max: 400 }),
    });
    await fc.assert(
      fc.asyncProperty(damage, async (d) => {
        const log = logLines();
        const lines = [...original];
        const i = d.line - 1;
        let expected: { firstBadLine: number; reason: string };
        switch (d.kind) {
          case 'delete':
            if (d.line === n) return; // the newest line: only a witness can tell (see above)
            lines.splice(i, 1);
            expected = { firstBadLine: d.line, reason: 'missing' };
            break;
          case 'edit': {
            const text = lines[i] as string;
            const k = d.at % text.length;
            lines[i] = text.slice(0, k) + (text[k] === 'a' ? 'b' : 'a') + text.slice(k + 1);
            log.write(lines);
            // An edited key id reads as a line signed by a key this deployment does not hold.
            expect((await c.verify()).checkpointLog).toMatchObject({ ok: false, firstBadLine: d.line, reason: expect.stringMatching(/^(edited|bad_signature)$/) });
            return;
          }
          case 'cut':
            lines.splice(d.line);
            lines[i] = (original[i] as string).slice(0, 1 + (d.at % ((original[i] as string).length - 1)));
            log.write(lines, false);
            expect((await c.verify()).checkpointLog).toMatchObject({ ok: false, firstBadLine: d.line, reason: 'cut' });
            return;
          case 'swap': {
            if (d.line === n) return;
            [lines[i], lines[i + 1]] = [lines[i + 1] as string, lines[i] as string];
            expected = { firstBadLine: d.line, reason: 'missing' };
            break;
          }
        }
        log.write(lines);
        expect((await c.verify()).checkpointLog).toMatchObject({ ok: false, ...expected });
      }),
      { numRuns: 25 },
    );
    logLines().write(original);
    expect((await c.verify()).ok).toBe(true);
  });

  it('tells two deployments sharing one directory and key apart: each intact, the other named plainly', async () => {
    const second = await create();
    try {
      const otherDb = await second.open();
      const mine = await chronicleWith();
      const theirs = await chronicleWith({ db: otherDb });
      // Both start a chain of the same name; each database has its own history.
      await mine.append(invoked('default', 1));
      await theirs.append(invoked('default', 1));
      await theirs.append(invoked('default', 2));
      await mine.checkpoint();
      await theirs.checkpoint();
      const [mineId, theirsId] = [await mine.instanceId(), await theirs.instanceId()];
      expect(mineId).not.toBe(theirsId);

      for (const [c, other] of [
        [mine, theirsId],
        [theirs, mineId],
      ] as const) {
        const report = await c.verify({ tenant: 'default' });
        expect(report.ok).toBe(true);
        expect(report.chains[0]).toMatchObject({ ok: true, checkpointsChecked: 1 });
        expect(report.instance.replaced).toBeNull();
        expect(report.instance.others).toEqual([expect.objectContaining({ id: other, lines: 1 })]);
        expect(formatVerifyReport(report)).toContain(`checkpoints of another Chronicle instance (${other}`);
        expect(formatVerifyReport(report)).not.toContain('TAMPERING');
      }
      await theirs.close();
    } finally {
      await second.drop();
    }
  });

  it('reports a database whose instance id changed under this deployment\'s checkpoints as replaced', async () => {
    const second = await create();
    try {
      const otherDb = await second.open();
      const c = await chronicleWith({ db: otherDb });
      await c.append(invoked('default', 1));
      await c.checkpoint();
      await asSuperuserWithoutGuards(otherDb, async (tx) => {
        await tx.query('ALTER TABLE chronicle_instance DISABLE TRIGGER chronicle_instance_fixed');
        await tx.query('UPDATE chronicle_instance SET id = gen_random_uuid()::text');
        await tx.query('ALTER TABLE chronicle_instance ENABLE ALWAYS TRIGGER chronicle_instance_fixed');
      });
      const reader = await chronicleWith({ db: otherDb });
      const report = await reader.verify();
      expect(report.ok).toBe(false);
      expect(report.instance.replaced?.detail).toMatch(/the database was replaced or its instance id changed/);
      expect(formatVerifyReport(report)).toMatch(/TAMPERING FOUND[\s\S]*database replaced/);
      await c.close();
    } finally {
      await second.drop();
    }
  });

  it('refuses to change the instance id without disabling the guards', async () => {
    await expect(db.query('UPDATE chronicle_instance SET id = gen_random_uuid()::text')).rejects.toThrow(/append-only/);
    await expect(db.query('DELETE FROM chronicle_instance')).rejects.toThrow(/append-only/);
  });

  it('rotates the signing key: hand-over signed by the old key, old public key archived, both trusted by key id', async () => {
    const c = await chronicleWith();
    const tenant = await chain(c, 3, [3]);
    const oldKeyId = c.keyId as string;
    const rotation = await c.rotateKey();
    expect(rotation).toMatchObject({ oldKeyId, line: 2 });
    expect(c.keyId).toBe(rotation.newKeyId);
    expect(rotation.newKeyId).not.toBe(oldKeyId);
    expect(fs.existsSync(rotation.archivedPublicKey)).toBe(true);
    for (let i = 4; i <= 6; i++) await c.append(invoked(tenant, i));
    await c.checkpoint();

    const lines = logLines().lines.map((l) => JSON.parse(l) as { key_id: string; kind?: string; new_key_id?: string });
    expect(lines.map((l) => [l.key_id, l.kind ?? 'checkpoint'])).toEqual([
      [oldKeyId, 'checkpoint'],
      [oldKeyId, 'key_rotation'],
      [rotation.newKeyId, 'checkpoint'],
    ]);

    // A reviewer's verifier reads the new key file and the archive beside it.
    const reader = await chronicleWith({ createSigningKey: false });
    expect(reader.keyId).toBe(rotation.newKeyId);
    const report = await reader.verify({ tenant });
    expect(report.ok).toBe(true);
    expect(report.chains[0]).toMatchObject({ ok: true, checkpointsChecked: 2 });
    expect(report.checkpointLog?.keyRotations).toEqual([expect.objectContaining({ line: 2, from: oldKeyId, to: rotation.newKeyId })]);

    // Someone holding only the old public key follows the hand-over to the new one.
    fs.rmSync(base.signingKeyFile as string);
    const archivedOnly = await chronicleWith({ createSigningKey: false });
    expect((await archivedOnly.verify({ tenant })).ok).toBe(true);
  });

  it('a server that shares the key file signs with the new key as soon as another process has rotated it', async () => {
    const server = await chronicleWith();
    const tenant = await chain(server, 2, [2]);
    const oldKeyId = server.keyId as string;
    // rotate-key run beside serve: another Chronicle on the same key file and directory.
    const cli = await chronicleWith();
    const rotation = await cli.rotateKey();
    await server.append(invoked(tenant, 3));
    await server.checkpoint();
    expect(server.keyId).toBe(rotation.newKeyId);
    const lines = logLines().lines.map((l) => JSON.parse(l) as { key_id: string; kind?: string });
    expect(lines.map((l) => [l.key_id, l.kind ?? 'checkpoint'])).toEqual([
      [oldKeyId, 'checkpoint'],
      [oldKeyId, 'key_rotation'],
      [rotation.newKeyId, 'checkpoint'],
    ]);
    const report = await (await chronicleWith({ createSigningKey: false })).verify({ tenant });
    expect(report.ok).toBe(true);
    expect(report.warnings).toEqual([]);
    expect(report.checkpointLog?.retiredKeyLines).toEqual([]);
  });

  it('names lines signed with a key after its hand-over (a replica with its own copy of the old key) in a warning, not as tampering', async () => {
    const rotating = await chronicleWith();
    const tenant = await chain(rotating, 2, [2]);
    const oldKeyId = rotating.keyId as string;
    // A replica with a key file of its own, a copy of the key before the rotation.
    const replicaKeyFile = path.join(tmp.dir, 'replica-keys', 'signing-key.pem');
    fs.mkdirSync(path.dirname(replicaKeyFile), { recursive: true });
    fs.copyFileSync(base.signingKeyFile as string, replicaKeyFile);
    const replica = await chronicleWith({ signingKeyFile: replicaKeyFile });
    const rotation = await rotating.rotateKey();
    for (const i of [3, 4]) {
      await replica.append(invoked(tenant, i));
      await replica.checkpoint();
    }

    const report = await (await chronicleWith({ createSigningKey: false })).verify({ tenant });
    expect(report.ok).toBe(true);
    expect(report.chains[0]).toMatchObject({ ok: true, checkpointsChecked: 3 });
    expect(report.checkpointLog?.retiredKeyLines).toEqual([
      { line: 3, keyId: oldKeyId, retiredAt: 2 },
      { line: 4, keyId: oldKeyId, retiredAt: 2 },
    ]);
    expect(report.warnings).toEqual([
      `log: 2 lines (3 to 4) are signed by key ${oldKeyId} after line 2 handed it over to ${rotation.newKeyId}: a server still signing with the retired key (give it the new key file or restart it), or someone who holds that key`,
    ]);
  });

  it('trusts no key a retired key hands over to: lines signed with it fail as unsigned', async () => {
    const c = await chronicleWith();
    const tenant = await chain(c, 2, [2]);
    const stolen = parseKeyFile('old key', fs.readFileSync(base.signingKeyFile as string, 'utf8'));
    const rotation = await c.rotateKey();
    // Someone who kept the old key names a successor of their own, and signs a checkpoint with it.
    const theirs = parseKeyFile('their key', crypto.generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    const dir = instanceLogDir(base.checkpointDir as string, (await c.instanceId()) as string);
    await appendLogLines(dir, stolen, (await c.instanceId()) as string, [{ kind: 'key_rotation', newKey: theirs }], new Date());
    const head = (await db.query<{ head_seq: number; head_hash: string }>('SELECT head_seq, head_hash FROM chronicle_chain WHERE tenant = $1', [tenant])).rows[0];
    await appendLogLines(dir, theirs, (await c.instanceId()) as string, [{ kind: 'checkpoint', chain: tenant, seq: Number(head?.head_seq), hash: head?.head_hash as string }], new Date());

    const report = await c.verify({ tenant });
    expect(report.ok).toBe(false);
    expect(report.checkpointLog).toMatchObject({ ok: false, firstBadLine: 4, reason: 'bad_signature' });
    expect(report.checkpointLog?.keyRotations.map((r) => r.to)).toEqual([rotation.newKeyId]);
    expect(report.checkpointLog?.retiredKeyLines).toEqual([{ line: 3, keyId: stolen.keyId, retiredAt: 2 }]);
    expect(report.warnings.join('\n')).toMatch(new RegExp(`line 3 is signed by key ${stolen.keyId} after line 2 handed it over to ${rotation.newKeyId}`));
  });

  it('delivers checkpoint lines to an HTTPS witness in the background, retrying until it takes them', async () => {
    const tls = await createTlsMaterial(['localhost', '127.0.0.1']);
    const received: string[] = [];
    let refuse = 2;
    const server = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        if (refuse > 0) {
          refuse--;
          res.writeHead(503).end();
          return;
        }
        received.push(...(JSON.parse(body) as { lines: string[] }).lines);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const caFile = path.join(tmp.dir, 'witness-ca.pem');
      fs.writeFileSync(caFile, tls.caPem);
      const c = await chronicleWith({
        witnessUrl: `https://127.0.0.1:${(server.address() as AddressInfo).port}/witness`,
        witnessCaFile: caFile,
        witnessRetry: { minMs: 20, maxMs: 100 },
      });
      await chain(c, 2, [1, 2]);
      // The checkpoints returned while the witness was still refusing: delivery never blocks them.
      expect(c.stats().witnessBacklog).toBeGreaterThan(0);
      await expect.poll(() => received.length, { timeout: 10_000 }).toBe(2);
      // The witness takes a line before its answer reaches the writer: the backlog drops on the answer.
      await expect.poll(() => c.stats().witnessBacklog, { timeout: 10_000 }).toBe(0);
      expect(c.stats()).toMatchObject({ witnessBacklog: 0, witnessFailures: 2 });
      expect(received).toEqual(logLines().lines);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
