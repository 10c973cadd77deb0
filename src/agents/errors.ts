/**
 * What agents and administrators can fix, as an HTTP status, a machine-readable code and a
 * sentence. Both listeners answer these as `{ error: { code, message } }`.
 */
export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

export const invalidToken = (): AgentError =>
  new AgentError(401, 'invalid_token', 'the enrollment token is unknown, used, expired or not yet usable; ask an administrator for a new one (`intune-connector agents token create`)', 'token');
