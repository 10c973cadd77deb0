/**
 * The append path: validate and canonicalise in the caller's turn, then group commit.
 *
 * Appends that arrive while a batch is in flight wait in a queue and go together in the next one
 * (up to maxBatch): one statement (chronicle_append), one implicit transaction, one multi-row
 * INSERT and one head-row UPDATE per batch. Inside it, the head rows of the batch's chains are
 * locked FOR UPDATE in tenant order (a fixed order, so writers in other processes wait and never
 * deadlock) and the events take the next seqs after the locked heads. An append's promise resolves
 * only after that statement has committed, and rejects when it did not.
 */
import type { Db, Queryable } from '../db/index.js';
import type { Logger } from '../log/index.js';
import { GENESIS_HASH, createChainHasher } from './canonical.js';
import { validateAppendInput } from './validate.js';
import { bodyAt, prepareEvent, type PreparedEvent } from './envelope.js';
import { ChronicleError, type AppendInput, type AppendReceipt, type ChronicleStats } from './types.js';

export interface WriterOptions {
  readonly db: Db;
  readonly logger?: Logger;
  readonly maxBatch: number;
  readonly appendTimeoutMs: number;
}

interface Pending {
  readonly event: PreparedEvent;
  readonly resolve: (receipt: AppendReceipt) => void;
  readonly reject: (err: ChronicleError) => void;
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
  inFlight: boolean;
}

const APPEND_SQL = `SELECT out_seq, out_prev_hash, out_hash, out_time
  FROM chronicle_append($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11, $12)`;

interface AppendedRow {
  out_seq: number;
  out_prev_hash: string;
  out_hash: string;
  out_time: string;
}

export class GroupCommitWriter {
  private readonly queue: Pending[] = [];
  private running = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private readonly hasher = createChainHasher();
  private counters = { appended: 0, failed: 0, batches: 0 };
  /** Chains this writer has committed events to (close() checkpoints only those). */
  readonly touchedChains = new Set<string>();

  constructor(private readonly options: WriterOptions) {}

  append(input: AppendInput): Promise<AppendReceipt> {
    if (this.closed) return Promise.reject(new ChronicleError('Chronicle is closed: the event was not recorded', 'closed'));
    const checked = validateAppendInput(input);
    if (!checked.ok) {
      const type = typeof input?.type === 'string' && input.type.length <= 64 ? input.type : 'event';
      return Promise.reject(
        new ChronicleError(`${checked.field}: ${checked.message}; the ${type} event was not recorded`, 'invalid_event', checked.field),
      );
    }
    let event: PreparedEvent;
    try {
      event = prepareEvent(input);
    } catch (err) {
      return Promise.reject(
        new ChronicleError(`data: ${(err as Error).message}; the ${input.type} event was not recorded`, 'invalid_event', 'data'),
      );
    }
    return new Promise<AppendReceipt>((resolve, reject) => {
      const pending: Pending = { event, resolve, reject, timer: undefined, settled: false, inFlight: false };
      pending.timer = setTimeout(() => this.expire(pending), this.options.appendTimeoutMs);
      this.queue.push(pending);
      this.kick();
    });
  }

  /**
   * Appends one event inside the caller's transaction, so it commits (or not) with the caller's
   * own change: the record and the side effect are one. Not group-committed; the chain's head row
   * stays locked until the caller's transaction ends, so keep that transaction short.
   */
  async appendWithin(tx: Queryable, input: AppendInput): Promise<AppendReceipt> {
    if (this.closed) throw new ChronicleError('Chronicle is closed: the event was not recorded', 'closed');
    const checked = validateAppendInput(input);
    if (!checked.ok) throw new ChronicleError(`${checked.field}: ${checked.message}; the ${input.type} event was not recorded`, 'invalid_event', checked.field);
    const event = prepareEvent(input);
    const refused = (err: unknown): ChronicleError =>
      new ChronicleError(`Chronicle could not record the ${input.type} event: the database refused it; nothing was recorded`, 'unavailable', undefined, { cause: err });
    const { rows } = await tx.query<AppendedRow>(APPEND_SQL, [
      [event.tenant],
      [event.head],
      [event.tail],
      [event.type],
      [event.code],
      [event.actor.kind],
      [event.actor.id],
      [event.requestId],
      [event.decision],
      [event.deviceIds.join(',')],
      new Date().toISOString(),
      GENESIS_HASH,
    ]).catch((err: unknown) => {
      throw refused(err);
    });
    const row = rows[0];
    if (row === undefined) throw new ChronicleError(`Chronicle could not record the ${input.type} event: no receipt`, 'unavailable');
    const seq = Number(row.out_seq);
    if (this.hasher(row.out_prev_hash, bodyAt(event, seq, row.out_time)) !== row.out_hash) {
      throw new ChronicleError(`Chronicle could not record the ${input.type} event: the database chained it differently (check that its encoding is UTF8)`, 'unavailable');
    }
    this.touchedChains.add(event.tenant);
    return { tenant: event.tenant, seq, hash: row.out_hash, time: row.out_time };
  }

  stats(): Omit<ChronicleStats, 'witnessBacklog' | 'witnessFailures'> {
    return { ...this.counters, pending: this.queue.length };
  }

  /** Refuses new appends and resolves once every queued append has committed or failed. */
  async close(): Promise<void> {
    this.closed = true;
    if (!this.running && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private expire(pending: Pending): void {
    if (pending.settled) return;
    pending.settled = true;
    this.counters.failed++;
    const ms = this.options.appendTimeoutMs;
    pending.reject(
      pending.inFlight
        ? new ChronicleError(
            `Chronicle did not confirm the ${pending.event.type} event within ${ms} ms; treat it as not recorded (the database is slow or unreachable)`,
            'unavailable',
          )
        : new ChronicleError(
            `Chronicle could not record the ${pending.event.type} event within ${ms} ms; nothing was recorded (the database is slow or unreachable)`,
            'unavailable',
          ),
    );
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    // Start after the current turn, so appends made together (a loop, a Promise.all) share the first batch too.
    queueMicrotask(() => void this.drain());
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        const batch: Pending[] = [];
        while (batch.length < this.options.maxBatch && this.queue.length > 0) {
          const next = this.queue.shift() as Pending;
          if (next.settled) continue; // timed out while queued: never written
          next.inFlight = true;
          batch.push(next);
        }
        if (batch.length === 0) break;
        await this.commitBatch(batch);
      }
    } finally {
      this.running = false;
      if (this.queue.length > 0) this.kick();
      else for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private async commitBatch(batch: Pending[]): Promise<void> {
    let receipts: AppendReceipt[];
    try {
      receipts = await this.writeBatch(batch);
    } catch (err) {
      const cause = err as { code?: unknown; message?: unknown };
      this.options.logger?.warn(
        { err: { code: cause?.code, message: cause?.message }, events: batch.length },
        'Chronicle could not commit a batch of events',
      );
      for (const pending of batch) {
        if (pending.settled) continue;
        pending.settled = true;
        clearTimeout(pending.timer);
        this.counters.failed++;
        pending.reject(
          new ChronicleError(`Chronicle could not record the ${pending.event.type} event: the database is unavailable; nothing was recorded`, 'unavailable', undefined, {
            cause: err,
          }),
        );
      }
      return;
    }
    this.counters.batches++;
    for (const receipt of receipts) this.touchedChains.add(receipt.tenant);
    batch.forEach((pending, i) => {
      clearTimeout(pending.timer);
      if (pending.settled) return; // timed out in flight; the caller already treats it as not recorded
      pending.settled = true;
      this.counters.appended++;
      pending.resolve(receipts[i] as AppendReceipt);
    });
  }

  /**
   * One statement, one round trip, one implicit transaction (see the chronicle_append migration).
   * The hashes it returns are recomputed here from the same pieces: a database that chained
   * differently (say, a broken encoding) fails the batch loudly instead of handing out receipts.
   */
  private async writeBatch(batch: readonly Pending[]): Promise<AppendReceipt[]> {
    const n = batch.length;
    const cols = {
      tenant: new Array<string>(n),
      head: new Array<string>(n),
      tail: new Array<string>(n),
      type: new Array<string>(n),
      code: new Array<string | null>(n),
      actorKind: new Array<string>(n),
      actorId: new Array<string>(n),
      requestId: new Array<string | null>(n),
      decision: new Array<string | null>(n),
      devices: new Array<string>(n),
    };
    for (let i = 0; i < n; i++) {
      const event = (batch[i] as Pending).event;
      cols.tenant[i] = event.tenant;
      cols.head[i] = event.head;
      cols.tail[i] = event.tail;
      cols.type[i] = event.type;
      cols.code[i] = event.code;
      cols.actorKind[i] = event.actor.kind;
      cols.actorId[i] = event.actor.id;
      cols.requestId[i] = event.requestId;
      cols.decision[i] = event.decision;
      cols.devices[i] = event.deviceIds.join(',');
    }
    const { rows } = await this.options.db.query<AppendedRow>(APPEND_SQL, [
      cols.tenant,
      cols.head,
      cols.tail,
      cols.type,
      cols.code,
      cols.actorKind,
      cols.actorId,
      cols.requestId,
      cols.decision,
      cols.devices,
      new Date().toISOString(),
      GENESIS_HASH,
    ]);
    if (rows.length !== n) throw new Error(`chronicle_append returned ${rows.length} of ${n} receipts`);
    const receipts = new Array<AppendReceipt>(n);
    for (let i = 0; i < n; i++) {
      const event = (batch[i] as Pending).event;
      const row = rows[i] as AppendedRow;
      const seq = Number(row.out_seq);
      if (this.hasher(row.out_prev_hash, bodyAt(event, seq, row.out_time)) !== row.out_hash) {
        this.options.logger?.error({ tenant: event.tenant, seq }, 'the database chained an event differently from Chronicle: check that the database encoding is UTF8');
        throw new Error(`chain hash of ${event.tenant} seq ${seq} does not match the recomputed one`);
      }
      receipts[i] = { tenant: event.tenant, seq, hash: row.out_hash, time: row.out_time };
    }
    return receipts;
  }
}
