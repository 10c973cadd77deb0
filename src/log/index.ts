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

type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * A request's child logger that is only made when a line is written. pino serialises a child's
 * bindings through the redaction paths when the child is made, which cost the gate's hot path
 * about a tenth of its CPU for a request id that is almost never logged. Lines below the level
 * are dropped without making it; everything written is the real child's, redaction included.
 */
export class LazyChildLogger {
  private made: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly childBindings: Record<string, unknown>,
  ) {}

  private real(): Logger {
    return (this.made ??= this.parent.child(this.childBindings) as Logger);
  }

  private write(level: LevelName, args: unknown[]): void {
    if (this.made === undefined && !this.parent.isLevelEnabled(level)) return;
    (this.real()[level] as (...a: unknown[]) => void)(...args);
  }

  get level(): string {
    return this.made?.level ?? this.parent.level;
  }

  set level(level: string) {
    this.real().level = level;
  }

  isLevelEnabled(level: string): boolean {
    return (this.made ?? this.parent).isLevelEnabled(level);
  }

  bindings(): Record<string, unknown> {
    return this.real().bindings();
  }

  child(bindings: Record<string, unknown>, options?: Parameters<Logger['child']>[1]): Logger {
    return this.real().child(bindings, options) as unknown as Logger;
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}
}

/**
 * Fastify's `childLoggerFactory` with lazy children (see LazyChildLogger). A route with its own
 * log level gets a real child at once, since its level differs from the parent's.
 */
export function lazyChildLoggerFactory(logger: Logger, bindings: Record<string, unknown>, options: Parameters<Logger['child']>[1]): Logger {
  if (options !== undefined && Object.keys(options).length > 0) return logger.child(bindings, options) as unknown as Logger;
  return new LazyChildLogger(logger, bindings) as unknown as Logger;
}
