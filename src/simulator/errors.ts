/** Errors the simulator raises to its caller (bad options, bad tenant file, bad fault spec). */

export type SimulatorErrorCode =
  | 'invalid_fault_spec'
  | 'invalid_options'
  | 'tenant_file_unreadable'
  | 'tenant_file_invalid'
  | 'unknown_device'
  | 'invalid_device_patch';

export class SimulatorError extends Error {
  override readonly name = 'SimulatorError';
  constructor(
    readonly code: SimulatorErrorCode,
    /** A sentence that says what is wrong and what to do about it. */
    message: string,
  ) {
    super(message);
  }
}
