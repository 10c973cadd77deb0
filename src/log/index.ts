/**
 * Operational logs (pino), always on stderr so `intune-connector mcp` keeps stdout clean JSON-RPC.
 * Secrets, tokens and device PII are removed by path before a line is written; Chronicle, not
 * these logs, is the audit record.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

/** Property names that never reach a log line, wherever they appear (two levels deep). */
export const REDACTED_KEYS = [
  'authorization',
  'Authorization',
  'cookie',
  'clientSecret',
  'client_secret',
  'client_assertion',
  'secret',
  'password',
  'token',
  'accessToken',
  'access_token',
  'apiKey',
  'key',
  'userPrincipalName',
  'deviceName',
  'managedDeviceName',
  'emailAddress',
  'userDisplayName',
  'phoneNumber',
  'imei',
  'meid',
  'iccid',
  'udid',
  'wiFiMacAddress',
  'ethernetMacAddress',
  'serialNumber',
  'activationLockBypassCode',
  'notes',
  'easDeviceId',
  'remoteAssistanceSessionUrl',
  'subscriberCarrier',
  'userId',
] as const;

const redactPaths = REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]).concat([
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
]);

export type { Logger };

export function createLogger(
  { level = 'info', name = 'intune-connector' }: { level?: LoggerOptions['level']; name?: string } = {},
  destination?: NodeJS.WritableStream,
): Logger {
  const options: LoggerOptions = {
    name,
    level,
    redact: { paths: redactPaths, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  return destination === undefined ? pino(options, pino.destination({ fd: 2, sync: true })) : pino(options, destination);
}
