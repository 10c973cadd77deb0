/** list_devices: a tenant's managed devices, a bounded page at a time behind an opaque cursor. */
import { LIST_PAGE_SIZE_DEFAULT, LIST_PAGE_SIZE_MAX } from '../../connector/operations.js';
import { plural, postureLine } from '../text.js';
import { describeTool } from './types.js';

export const listDevicesDescriptor = describeTool(
  'list_devices',
  'list_devices',
  {
    description:
      'Lists Intune managed devices as redacted postures: Intune id, Entra device id, OS family and version, compliance state, ' +
      'encryption, jailbreak, ownership, last check-in, model. No names, users or serial numbers. Filter by os_family, ' +
      'compliance_state, ownership, last_sync_before/last_sync_after. Returns at most page_size devices ' +
      `(default ${LIST_PAGE_SIZE_DEFAULT}, max ${LIST_PAGE_SIZE_MAX}) and next_cursor: to read the next page, call again with the ` +
      'same filters and cursor set to next_cursor; stop when next_cursor is null. A filtered page may hold fewer devices than ' +
      'page_size, even none, before the last page. To check one device, prefer get_device_compliance.',
  },
  (value) => {
    const head =
      value.next_cursor === null
        ? `${plural(value.devices.length, 'device')}; this is the last page.`
        : `${plural(value.devices.length, 'device')}; more remain: call list_devices again with the same filters and cursor "${value.next_cursor}".`;
    return [head, ...value.devices.map(postureLine)].join('\n');
  },
);
