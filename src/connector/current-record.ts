/**
 * "The current record" of an Entra device that has several Intune records (re-enrolment leaves the
 * old ones behind): the one rule get_compliance reports by and the gate decides by, so the two can
 * never name different records for the same answer from Graph.
 *
 * Most recent last sync first; then the later enrolment (a re-enrolled device's current record);
 * then the greater Intune id, so the order never depends on the order Graph returns records in.
 * Null and unreadable times rank below every real time.
 */
import type { DevicePosture } from './posture.js';

/** What the comparator reads of a record: a full posture, or the few fields an asset summary keeps. */
export type RecordTimes = Pick<DevicePosture, 'last_sync_at' | 'enrolled_at' | 'device_id'>;

/** Milliseconds since the epoch, or NaN for null and unreadable timestamps. */
const timeOf = (iso: string | null): number => (iso === null ? Number.NaN : Date.parse(iso));

/** Orders timestamps ascending; null and unreadable ones sort before every real time. */
function compareTimes(a: string | null, b: string | null): number {
  const x = timeOf(a);
  const y = timeOf(b);
  if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) ? (Number.isNaN(y) ? 0 : -1) : 1;
  return Math.sign(x - y);
}

/**
 * Comparator for `Array.prototype.sort`: the current record first. Negative when `a` is more
 * current than `b`; 0 only for records with the same last sync, enrolment and Intune id.
 */
export function currentRecordFirst(a: RecordTimes, b: RecordTimes): number {
  return (
    compareTimes(b.last_sync_at, a.last_sync_at) ||
    compareTimes(b.enrolled_at, a.enrolled_at) ||
    (a.device_id > b.device_id ? -1 : a.device_id < b.device_id ? 1 : 0)
  );
}

/** The current record of `records` (undefined when there is none), whatever order they come in. */
export function currentRecord<T extends RecordTimes>(records: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const record of records) if (best === undefined || currentRecordFirst(record, best) < 0) best = record;
  return best;
}
