/**
 * list_devices: a page of redacted postures behind a sealed cursor. Graph filters what it can;
 * ownership and the OS families that span several Graph values are filtered here, reading at most
 * `maxGraphPages` Graph pages per call.
 */
import type { Logger } from '../../log/index.js';
import { CursorError, filterHash, openCursor, sealCursor, type ListPosition } from '../cursor.js';
import { safeRequestId } from '../errors.js';
import type { DeviceFilter, ManagedDevice } from '../graph/types.js';
import type { ListDevicesInput, ListDevicesOutput } from '../operations.js';
import { denied, failedFrom, succeeded, type RunOutcome } from '../outcome.js';
import type { DevicePosture, OsFamily } from '../posture.js';
import { osFamilyOf, redactDevice } from '../redaction.js';
import { graphFailure, signalOption, type RunCall } from './call.js';
import { defined } from '../../common/values.js';

/** macOS, Windows and Linux are one Graph value each, so Graph filters them; the other families span several values and are filtered here. */
const GRAPH_OS_VALUE: Partial<Record<OsFamily, string>> = { macos: 'macOS', windows: 'Windows', linux: 'Linux' };

/** Where a listing stands: the Graph position to read from, and the hash of the filters its cursor is bound to. */
export interface Listing {
  readonly position: ListPosition;
  readonly filterHash: string;
}

/**
 * Part of input validation: the first page's position, or the one the cursor holds. A cursor of
 * other filters, another tenant or altered is an invalid input.
 */
export async function openListing(input: ListDevicesInput, seal: { readonly tenant: string; readonly fingerprintKey: () => Buffer | Promise<Buffer> }): Promise<Listing | RunOutcome<never>> {
  const fh = filterHash({
    os_family: input.os_family,
    compliance_state: input.compliance_state,
    ownership: input.ownership,
    last_sync_before: input.last_sync_before,
    last_sync_after: input.last_sync_after,
  });
  const clientSide = input.ownership !== undefined || (input.os_family !== undefined && GRAPH_OS_VALUE[input.os_family] === undefined);
  if (input.cursor === undefined) {
    return { position: { link: null, skip: 0, top: clientSide ? Math.min(1000, Math.max(100, input.page_size * 4)) : input.page_size }, filterHash: fh };
  }
  try {
    return { position: openCursor(input.cursor, { fingerprintKey: await seal.fingerprintKey(), tenant: seal.tenant, filterHash: fh }), filterHash: fh };
  } catch (err) {
    if (!(err instanceof CursorError)) throw err;
    return denied(
      'invalid_input',
      'cursor: is not valid for this listing (it belongs to other filters or another tenant, or was altered); repeat the filters of the page it came from, or start again without cursor.',
      'cursor',
    );
  }
}

export interface ListDevicesDeps {
  readonly fingerprintKeyFor: (tenant: string) => Buffer | Promise<Buffer>;
  /** Graph pages one call may read while filtering client-side. */
  readonly maxGraphPages: number;
  readonly logger: Logger | undefined;
}

export async function runListDevices(deps: ListDevicesDeps, call: RunCall<ListDevicesInput>, listing: Listing): Promise<RunOutcome<ListDevicesOutput>> {
  const { graph, tenant, input, signal } = call;
  const key = await deps.fingerprintKeyFor(tenant);
  const pushedOs = input.os_family !== undefined ? GRAPH_OS_VALUE[input.os_family] : undefined;
  const filter: DeviceFilter = {
    ...defined({
      operatingSystem: pushedOs,
      complianceState: input.compliance_state,
      lastSyncAfter: input.last_sync_after,
      lastSyncBefore: input.last_sync_before,
    }),
  };
  const matches = (d: ManagedDevice): boolean =>
    (input.os_family === undefined || osFamilyOf(d.operatingSystem) === input.os_family) &&
    (input.ownership === undefined ||
      (d['managedDeviceOwnerType'] === 'company' || d['managedDeviceOwnerType'] === 'personal' ? d['managedDeviceOwnerType'] : 'unknown') === input.ownership);

  const devices: DevicePosture[] = [];
  let { link, skip } = listing.position;
  const { top } = listing.position;
  let next: ListPosition | null = null;
  let graphRequestId: string | null = null;
  try {
    for (let pagesRead = 1; ; pagesRead += 1) {
      const page =
        link === null
          ? await graph.listDevicesPage({ filter, top, ...signalOption(signal) })
          : await graph.listDevicesPage({ nextLink: link, ...signalOption(signal) });
      graphRequestId = safeRequestId(page.requestId) ?? graphRequestId;
      let i = skip;
      for (; i < page.devices.length && devices.length < input.page_size; i += 1) {
        const device = page.devices[i] as ManagedDevice;
        if (matches(device)) devices.push(redactDevice(device, key));
      }
      if (i < page.devices.length) {
        next = { link, skip: i, top };
        break;
      }
      if (page.nextLink === undefined) break;
      if (devices.length >= input.page_size || pagesRead >= deps.maxGraphPages) {
        next = { link: page.nextLink, skip: 0, top };
        break;
      }
      link = page.nextLink;
      skip = 0;
    }
  } catch (err) {
    return failedFrom(graphFailure(deps.logger, err, 'list_devices'));
  }
  const nextCursor = next === null ? null : sealCursor(next, { fingerprintKey: key, tenant, filterHash: listing.filterHash });
  return succeeded({ devices, next_cursor: nextCursor }, { resultCount: devices.length, graphRequestId });
}
