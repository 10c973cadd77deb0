/** Request plumbing shared by the Entra and Graph routes: bounded bodies, JSON answers, Graph's error body. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RecordedRequest } from './types.js';

export type MutableRecord = { -readonly [K in keyof RecordedRequest]: RecordedRequest[K] };

export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  /** Graph's request-id (also Entra's trace id) for this exchange. */
  readonly requestId: string;
  readonly clientRequestId: string | undefined;
  readonly record: MutableRecord;
}

export const MAX_BODY_BYTES = 64 * 1024;

export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
}

export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) throw new BodyTooLargeError(`request body is larger than ${limit} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function send(ex: Exchange, status: number, body: string, headers: Readonly<Record<string, string>> = {}): void {
  ex.record.status = status;
  if (ex.res.destroyed || ex.res.writableEnded) return;
  ex.res.writeHead(status, { 'content-length': String(Buffer.byteLength(body)), ...headers });
  ex.res.end(body);
}

export const GRAPH_JSON = 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8';

/** Headers every Graph answer carries: request-id, the caller's client-request-id echoed, OData version. */
export function graphHeaders(ex: Exchange, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  return {
    'request-id': ex.requestId,
    'client-request-id': ex.clientRequestId ?? ex.requestId,
    'x-ms-ags-diagnostic': '{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"SIM"}}',
    'odata-version': '4.0',
    'cache-control': 'no-cache',
    'strict-transport-security': 'max-age=31536000',
    ...extra,
  };
}

/** Graph's date in innerError: ISO without zone designator or fraction, as Graph writes it. */
function innerDate(): string {
  return new Date().toISOString().slice(0, 19);
}

export function graphErrorBody(ex: Exchange, code: string, message: string): string {
  return JSON.stringify({
    error: {
      code,
      message,
      innerError: { date: innerDate(), 'request-id': ex.requestId, 'client-request-id': ex.clientRequestId ?? ex.requestId },
    },
  });
}

export function sendGraphError(ex: Exchange, status: number, code: string, message: string, headers: Readonly<Record<string, string>> = {}): void {
  send(ex, status, graphErrorBody(ex, code, message), graphHeaders(ex, { 'content-type': 'application/json', ...headers }));
}
