/**
 * Chronicle's answers as every surface prints them (the API, `chronicle query`, `chronicle verify
 * --json`): snake_case, one mapping, so a reviewer's script reads the same names everywhere.
 */
import type { ChainVerifyReport, CheckpointLogReport, ChronicleEvent, VerifyReport } from './types.js';
import type { ChainReportJson, ChronicleEventJson, VerifyReportJson } from './schemas.js';

export function eventToJson(event: ChronicleEvent): ChronicleEventJson {
  return {
    seq: event.seq,
    tenant: event.tenant,
    time: event.time,
    type: event.type,
    code: event.code,
    actor: event.actor,
    request_id: event.requestId,
    data: event.data,
    prev_hash: event.prevHash,
    hash: event.hash,
  };
}

export function chainToJson(chain: ChainVerifyReport): ChainReportJson {
  return {
    tenant: chain.tenant,
    ok: chain.ok,
    events_checked: chain.eventsChecked,
    head_seq: chain.headSeq,
    checkpoints_checked: chain.checkpointsChecked,
    first_bad_seq: chain.firstBadSeq,
    reason: chain.reason,
    detail: chain.detail,
  };
}

/** What the API answers: the chains and counts, without this host's directories. */
export function verifyReportToJson(report: VerifyReport): VerifyReportJson {
  return {
    ok: report.ok,
    chains: report.chains.map(chainToJson),
    events_checked: report.eventsChecked,
    duration_ms: report.durationMs,
    warnings: report.warnings,
  };
}

function checkpointLogToJson(log: CheckpointLogReport): Record<string, unknown> {
  return {
    dir: log.dir,
    ok: log.ok,
    lines: log.lines,
    first_bad_line: log.firstBadLine,
    reason: log.reason,
    detail: log.detail,
    key_rotations: log.keyRotations.map((r) => ({ line: r.line, from: r.from, to: r.to, time: r.time })),
    retired_key_lines: log.retiredKeyLines.map((r) => ({ line: r.line, key_id: r.keyId, retired_at: r.retiredAt })),
    witness: log.witness === null ? null : { dir: log.witness.dir, lines: log.witness.lines },
  };
}

/** What `chronicle verify --json` prints on the reviewer's own machine: everything, checkpoint log and instance included. */
export function fullVerifyReportToJson(report: VerifyReport): Record<string, unknown> {
  return {
    ...verifyReportToJson(report),
    instance: {
      id: report.instance.id,
      replaced: report.instance.replaced,
      others: report.instance.others.map((o) => ({ id: o.id, lines: o.lines, key_id: o.keyId, note: o.note })),
    },
    checkpoint_log: report.checkpointLog === null ? null : checkpointLogToJson(report.checkpointLog),
    exposure: { newest_checkpoint_time: report.exposure.newestCheckpointTime, uncovered_events: report.exposure.uncoveredEvents },
  };
}
