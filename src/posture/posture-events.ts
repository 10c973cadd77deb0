/**
 * integration.intune.device_posture_changed: what a sync saw change on a device since the
 * previous snapshot (compliance state, encryption, OS major version), so reviewers see changes
 * without diffing snapshots. None on a connection's first sync (there is nothing to compare);
 * at most POSTURE_CHANGE_EVENT_CAP per run, one per device, then one summary event with the
 * number not listed. Ids and enumerated values only.
 */
import type { Actor, AppendInput } from '../chronicle/types.js';
import type { PostureChange } from './snapshots.js';

/** Per-device events one run appends before it summarises the rest in one event. */
export const POSTURE_CHANGE_EVENT_CAP = 100;

const EVENT = 'integration.intune.device_posture_changed';

const valuesOf = (state: string | null, encrypted: boolean | null, major: string | null) => ({
  compliance_state: state,
  is_encrypted: encrypted,
  os_major_version: major === null ? null : Number(major),
});

/** The events of one run: one per change (at most the cap), then a summary when more changed. */
export function postureChangeEvents(
  tenant: string,
  actor: Actor,
  ids: { readonly connectionId: string; readonly runId: string },
  changes: readonly PostureChange[],
  total: number,
): AppendInput[] {
  const listed = changes.slice(0, POSTURE_CHANGE_EVENT_CAP);
  const events: AppendInput[] = listed.map((c) => {
    const changed = [
      ...(c.old_state !== c.new_state ? ['compliance_state'] : []),
      ...(c.old_encrypted !== c.new_encrypted ? ['is_encrypted'] : []),
      ...(c.old_major !== c.new_major ? ['os_major_version'] : []),
    ];
    return {
      tenant,
      type: EVENT,
      actor,
      data: {
        connection_id: ids.connectionId,
        run_id: ids.runId,
        summary: false,
        intune_device_id: c.device_id,
        azure_ad_device_id: c.azure_ad_device_id,
        changed,
        old: valuesOf(c.old_state, c.old_encrypted, c.old_major),
        new: valuesOf(c.new_state, c.new_encrypted, c.new_major),
        devices_not_listed: 0,
      },
    };
  });
  if (total > listed.length) {
    events.push({
      tenant,
      type: EVENT,
      actor,
      data: {
        connection_id: ids.connectionId,
        run_id: ids.runId,
        summary: true,
        intune_device_id: null,
        azure_ad_device_id: null,
        changed: [],
        old: null,
        new: null,
        devices_not_listed: total - listed.length,
      },
    });
  }
  return events;
}
