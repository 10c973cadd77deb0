/**
 * remote_lock (MUTATE): declared so its contract is fixed, but in Phase 1 the connector refuses it
 * for every scope; it is never listed, and a call anyway is refused and audited.
 */
import { describeTool } from './types.js';

export const remoteLockDescriptor = describeTool(
  'remote_lock',
  'remote_lock',
  {
    description:
      'Locks a device (by Intune id, device_id) remotely; the user needs the passcode to unlock it. Requires the MUTATE ' +
      'capability and a human-approved ceremony. Disabled in Phase 1: calls are refused and recorded and never reach Intune.',
  },
  (v) => `Intune was asked at ${v.requested_at} to lock the device.`,
);
