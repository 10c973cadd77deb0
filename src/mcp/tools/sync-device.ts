/** sync_device (PROPOSE): ask Intune to have a device check in now; listed only when the scope grants PROPOSE. */
import { describeTool } from './types.js';

export const syncDeviceDescriptor = describeTool(
  'sync_device',
  'sync_device',
  {
    description:
      'Asks Intune to tell a device (by Intune id, device_id) to check in now, so its compliance state is re-evaluated within ' +
      'minutes; read it afterwards with get_device_compliance. It changes nothing on the device. A device asked within the last ' +
      'few minutes is not asked again: the answer is recently_requested, with next_allowed_at. Calling it twice is harmless.',
  },
  (v) =>
    v.status === 'requested'
      ? `Intune was asked at ${v.requested_at} to sync the device; it should check in within minutes. A new request is allowed from ${v.next_allowed_at}.`
      : `The device was already asked to sync at ${v.requested_at}, so Intune was not asked again. A new request is allowed from ${v.next_allowed_at}.`,
);
