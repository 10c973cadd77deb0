/**
 * The Graph client's request pipeline, as @microsoft/microsoft-graph-client middleware:
 *
 *   AuthenticationHandler (the library's; token from MSAL, attached only to the Graph host)
 *   -> RetryMiddleware     (our policy: Retry-After, backoff with jitter, no retry of ambiguous POSTs)
 *   -> BudgetMiddleware    (Intune's per-app budget: each attempt waits for its slot; Retry-After pauses it)
 *   -> AttemptMiddleware   (per-attempt timeout, caller abort, one log line per exchange)
 *   -> TransportMiddleware (undici over the Agent that trusts INTUNE_CA_FILE; origin guard)
 *
 * The library's RetryHandler is deliberately absent so nothing retries behind the policy's back.
 * Each call carries a CallState (a middleware option) through the chain: the transport stores the
 * buffered exchange there and the retry middleware the final GraphError, because the library
 * would otherwise wrap our errors into its own type and lose their fields.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { Context, Middleware, MiddlewareOptions } from '@microsoft/microsoft-graph-client';
import { request as undiciRequest, type Dispatcher } from 'undici';
import type { Logger } from '../../log/index.js';
import {
  GraphError,
  abortedError,
  graphErrorFromStatus,
  malformedError,
  markAmbiguous,
  safeCode,
  safeRequestId,
} from './errors.js';
import { decideRetry, parseRetryAfterMs, type RetryPolicy } from './retry.js';
import { GraphErrorBodySchema } from './schemas.js';
import type { GraphBudget } from './budget.js';
import { defined } from '../../common/values.js';
import type { CollectionStream, CollectionStreamResult } from './collection-stream.js';

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** Sleeps unless aborted; rejects with GraphError 'aborted' when the signal fires. */
export const defaultSleep: Sleep = async (ms, signal) => {
  try {
    await sleepFor(ms, undefined, signal !== undefined ? { signal } : {});
  } catch (error) {
    // node:timers/promises rejects an aborted wait with a DOMException AbortError; callers expect the typed one.
    if (signal?.aborted === true) throw abortedError();
    throw error;
  }
};

/** Counters behind GraphClient.stats(); mutated only by the pipeline of one client. */
export interface MutableStats {
  requests: number;
  retries: number;
  throttledWaits: number;
  throttledWaitMs: number;
  retryWaitMs: number;
  tokenRequests: number;
  coercedValues: number;
}

export interface Exchange {
  readonly status: number;
  /** A response header by lower-case name, or null. */
  header(name: string): string | null;
  readonly text: string;
  /** The body stopped before its end (connection cut mid-body). */
  readonly truncated: boolean;
  /** A 2xx JSON body read item by item (CallState.stream): text is then empty. */
  readonly streamed?: CollectionStreamResult;
}

/** Per-call state, passed to the middleware through the library's MiddlewareControl. */
export class CallState implements MiddlewareOptions {
  attempts = 0;
  exchange: Exchange | undefined;
  /** Parsed JSON body of the final 2xx exchange (undefined for an empty body). */
  json: unknown;
  failure: GraphError | undefined;
  /**
   * Set by a collection read that takes its items as they arrive: a fresh reader per attempt (a
   * retried page starts over). The final 2xx body's result is in `streamed`, its skeleton in `json`.
   */
  stream: ((requestId: string) => CollectionStream) | undefined;
  streamed: CollectionStreamResult | undefined;

  constructor(
    readonly method: 'GET' | 'POST',
    /** The resource path as a template (ids replaced by {id}), without the query: log lines only. */
    readonly pathForLog: string,
    readonly clientRequestId: string,
    readonly signal: AbortSignal | undefined,
  ) {}

  fail(error: GraphError): GraphError {
    this.failure = error;
    return error;
  }
}

function stateOf(context: Context): CallState {
  const state = context.middlewareControl?.getMiddlewareOptions(CallState) as CallState | undefined;
  if (state === undefined) throw new Error('Graph pipeline invoked without a CallState');
  return state;
}

function requestUrl(context: Context): string {
  return typeof context.request === 'string' ? context.request : context.request.url;
}

interface GraphErrorFields {
  readonly graphCode?: string;
  readonly requestId?: string;
}

/** Graph's code and request-id from an error body; anything else in it stays unread. */
function errorFields(exchange: Exchange): GraphErrorFields {
  const headerRequestId = safeRequestId(exchange.header('request-id'));
  let graphCode: string | undefined;
  let bodyRequestId: string | undefined;
  if (exchange.text !== '' && exchange.text.length < 64_000) {
    try {
      const parsed = GraphErrorBodySchema.safeParse(JSON.parse(exchange.text));
      if (parsed.success) {
        graphCode = parsed.data.error.code !== undefined ? safeCode(parsed.data.error.code) : undefined;
        bodyRequestId = safeRequestId(parsed.data.error.innerError?.['request-id']);
      }
    } catch {
      // A non-JSON error body (a proxy's HTML page) leaves only the status to go on.
    }
  }
  const requestId = headerRequestId ?? bodyRequestId;
  return { ...defined({ graphCode, requestId }) };
}

export function requestIdOf(exchange: Exchange | undefined): string | undefined {
  return exchange === undefined ? undefined : safeRequestId(exchange.header('request-id'));
}

const isJsonContent = (exchange: Exchange): boolean => isJsonType(exchange.header('content-type'));

/** Our retry policy. See retry.ts for the pure decisions it applies. */
export class RetryMiddleware implements Middleware {
  private next: Middleware | undefined;

  constructor(
    private readonly policy: RetryPolicy,
    private readonly sleep: Sleep,
    private readonly random: () => number,
    private readonly stats: MutableStats,
    private readonly logger: Logger | undefined,
  ) {}

  setNext(next: Middleware): void {
    this.next = next;
  }

  async execute(context: Context): Promise<void> {
    const state = stateOf(context);
    const next = this.next;
    if (next === undefined) throw new Error('RetryMiddleware has no next middleware');
    let waitedMs = 0;
    let malformedRetries = 0;
    for (let attempt = 1; ; attempt++) {
      state.attempts = attempt;
      state.exchange = undefined;
      state.streamed = undefined;
      const outcome = await this.attemptOnce(next, context, state);
      if (outcome === undefined) return;
      const { failure } = outcome;
      let { error } = outcome;
      if (error.kind === 'aborted' || error.kind === 'foreign_next_link') throw state.fail(error.with({ attempts: attempt }));
      if (state.method !== 'GET' && failure === 'no_response') error = markAmbiguous(error);
      const exchange = state.exchange as Exchange | undefined;

      const decision = decideRetry({
        attempt,
        method: state.method,
        ...defined({ response: exchange === undefined ? undefined : { status: exchange.status, retryAfter: exchange.header('retry-after') } }),
        failure,
        malformedRetriesSoFar: malformedRetries,
        waitedMs,
        random: this.random,
        policy: this.policy,
      });
      if (!decision.retry) {
        this.logger?.debug({ path: state.pathForLog, method: state.method, kind: error.kind, status: error.status, attempts: attempt, reason: decision.reason }, 'graph call failed');
        throw state.fail(error.with({ attempts: attempt }));
      }
      if (failure === 'malformed') malformedRetries++;
      this.logger?.info(
        { path: state.pathForLog, method: state.method, kind: error.kind, status: error.status, attempt, delayMs: decision.delayMs, requestId: error.requestId },
        'graph call retrying',
      );
      this.stats.retries++;
      if (decision.throttled) {
        this.stats.throttledWaits++;
        this.stats.throttledWaitMs += decision.delayMs;
      }
      this.stats.retryWaitMs += decision.delayMs;
      waitedMs += decision.delayMs;
      try {
        await this.sleep(decision.delayMs, state.signal);
      } catch {
        throw state.fail(abortedError().with({ attempts: attempt }));
      }
      if (state.signal?.aborted === true) throw state.fail(abortedError().with({ attempts: attempt }));
    }
  }

  /** Undefined when the attempt succeeded (body stored on the state), else how it failed. */
  private async attemptOnce(
    next: Middleware,
    context: Context,
    state: CallState,
  ): Promise<{ failure: 'status' | 'no_response' | 'malformed'; error: GraphError } | undefined> {
    try {
      await next.execute(context);
    } catch (err) {
      const error =
        err instanceof GraphError
          ? err
          : new GraphError('network', 'The connection to Microsoft Graph failed; retry shortly.', { graphCode: 'network' }, { cause: err });
      return { failure: 'no_response', error };
    }
    const exchange = state.exchange as Exchange | undefined;
    if (exchange === undefined) {
      return { failure: 'no_response', error: new GraphError('network', 'Microsoft Graph sent no answer; retry shortly.', { graphCode: 'network' }) };
    }
    const requestId = requestIdOf(exchange);
    if (exchange.status >= 200 && exchange.status < 300) {
      const malformed = this.parseBody(state, exchange, requestId);
      return malformed === undefined ? undefined : { failure: 'malformed', error: malformed };
    }
    const retryAfterMs = parseRetryAfterMs(exchange.header('retry-after'));
    const error = graphErrorFromStatus(exchange.status, {
      ...errorFields(exchange),
      ...defined({ retryAfterMs }),
      ambiguous: state.method !== 'GET' && exchange.status >= 500,
    });
    return { failure: 'status', error };
  }

  /** Undefined when the 2xx body is usable (stored on the state), else the malformed error. */
  private parseBody(state: CallState, exchange: Exchange, requestId: string | undefined): GraphError | undefined {
    const details = requestId !== undefined ? { requestId, status: exchange.status } : { status: exchange.status };
    // A 2xx to a device action means it was accepted; its body (normally none) changes nothing.
    if (state.method !== 'GET') {
      state.json = undefined;
      return undefined;
    }
    if (exchange.truncated) return malformedError('the body ended before its end, or exceeded 64 MB', details);
    if (exchange.streamed !== undefined) {
      if (!exchange.streamed.ok) return malformedError('the body is not valid JSON', details);
      state.json = exchange.streamed.skeleton;
      state.streamed = exchange.streamed;
      return undefined;
    }
    if (exchange.text === '' || exchange.status === 204) {
      state.json = undefined;
      return undefined;
    }
    if (!isJsonContent(exchange)) return malformedError('the body is not JSON', details);
    try {
      state.json = JSON.parse(exchange.text);
      // The text of a 1,000-device page is megabytes; nothing reads it once parsed.
      state.exchange = { status: exchange.status, header: exchange.header, text: '', truncated: false };
      return undefined;
    } catch {
      return malformedError('the body is not valid JSON', details);
    }
  }
}

/**
 * Each attempt waits for a slot of the app's budget before it is sent (a retry is a request Intune
 * counts too), as long as the caller's signal allows; a throttled answer pauses the whole budget
 * for its Retry-After, so other callers (and, with a shared budget, other replicas) wait with it.
 */
export class BudgetMiddleware implements Middleware {
  private next: Middleware | undefined;

  constructor(
    private readonly budget: GraphBudget,
    /** Intune counts per app per tenant: the Entra tenant and the client id. */
    private readonly key: string,
    private readonly sleep: Sleep,
  ) {}

  setNext(next: Middleware): void {
    this.next = next;
  }

  async execute(context: Context): Promise<void> {
    const state = stateOf(context);
    const next = this.next;
    if (next === undefined) throw new Error('BudgetMiddleware has no next middleware');
    const write = state.method !== 'GET';
    let slot: string | undefined;
    for (;;) {
      const reservation = await this.budget.reserve(this.key, write);
      if (reservation.waitMs <= 0) {
        slot = reservation.slot;
        break;
      }
      // A sleep cut short by the caller's abort rejects with the typed 'aborted' error.
      await this.sleep(reservation.waitMs, state.signal);
    }
    try {
      await next.execute(context);
    } finally {
      if (slot !== undefined) this.budget.sent?.(this.key, slot, write);
    }
    const exchange = state.exchange;
    if (exchange !== undefined && (exchange.status === 429 || exchange.status === 503)) {
      const retryAfterMs = parseRetryAfterMs(exchange.header('retry-after'));
      if (retryAfterMs !== undefined && retryAfterMs > 0) this.budget.pause(this.key, retryAfterMs);
    }
  }
}

const TIMEOUT = Symbol('graph-timeout');

/** One attempt: a timeout of its own, the caller's abort, and a log line with what happened. */
export class AttemptMiddleware implements Middleware {
  private next: Middleware | undefined;

  constructor(
    private readonly timeoutMs: number,
    private readonly logger: Logger | undefined,
  ) {}

  setNext(next: Middleware): void {
    this.next = next;
  }

  async execute(context: Context): Promise<void> {
    const state = stateOf(context);
    const next = this.next;
    if (next === undefined) throw new Error('AttemptMiddleware has no next middleware');
    if (state.signal?.aborted === true) throw abortedError();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(TIMEOUT), this.timeoutMs);
    const onAbort = (): void => controller.abort(state.signal?.reason);
    state.signal?.addEventListener('abort', onAbort, { once: true });
    if (context.options === undefined) context.options = {};
    context.options.signal = controller.signal as NonNullable<typeof context.options.signal>;
    const started = performance.now();
    try {
      await next.execute(context);
      const exchange = state.exchange;
      this.logger?.debug(
        {
          method: state.method,
          path: state.pathForLog,
          status: exchange?.status,
          requestId: requestIdOf(exchange),
          attempt: state.attempts,
          durationMs: Math.round(performance.now() - started),
        },
        'graph exchange',
      );
    } catch (err) {
      const durationMs = Math.round(performance.now() - started);
      let failure: GraphError;
      if (err instanceof GraphError) {
        failure = err;
      } else if (controller.signal.aborted && controller.signal.reason === TIMEOUT) {
        failure = new GraphError('timeout', `Microsoft Graph did not answer within ${this.timeoutMs} ms (INTUNE_GRAPH_TIMEOUT_MS).`, { graphCode: 'timeout' }, { cause: err });
      } else if (controller.signal.aborted) {
        failure = abortedError();
      } else {
        failure = new GraphError('network', `The connection to Microsoft Graph failed (${networkCode(err)}); retry shortly.`, { graphCode: networkCode(err) }, { cause: err });
      }
      this.logger?.debug(
        { method: state.method, path: state.pathForLog, kind: failure.kind, attempt: state.attempts, durationMs },
        'graph exchange failed',
      );
      throw failure;
    } finally {
      clearTimeout(timer);
      state.signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** A short, safe name for a socket-level failure (ECONNRESET, UND_ERR_SOCKET, ...). */
function networkCode(err: unknown): string {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return 'network_error';
}

/**
 * Sends one attempt with undici and buffers the body (within the attempt's timeout).
 * It refuses any URL outside the configured Graph origin and API root: a second, independent
 * guard behind the nextLink check, because the library's own host check ignores the port.
 */
export class TransportMiddleware implements Middleware {
  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly graphOrigin: string,
    private readonly apiRoot: string,
    private readonly stats: MutableStats,
  ) {}

  async execute(context: Context): Promise<void> {
    const state = stateOf(context);
    const url = requestUrl(context);
    if (!isUnderApiRoot(url, this.graphOrigin, this.apiRoot)) {
      throw foreignNextLinkError();
    }
    const options = context.options ?? {};
    const signal = options.signal as AbortSignal | undefined;
    this.stats.requests++;
    // undici's request() rather than fetch(): a page is ~2 MB of JSON, and skipping the WHATWG
    // stream layer makes reading it markedly cheaper.
    const response = await undiciRequest(url, {
      method: state.method,
      headers: plainHeaders(options.headers),
      ...(typeof options.body === 'string' ? { body: options.body } : {}),
      ...defined({ signal }),
      dispatcher: this.dispatcher,
    });
    const headers = response.headers;
    const header = (name: string): string | null => {
      const value = headers[name];
      return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
    };
    const streaming =
      state.stream !== undefined && state.method === 'GET' && response.statusCode >= 200 && response.statusCode < 300 && response.statusCode !== 204;
    let text = '';
    let truncated = false;
    let streamed: CollectionStreamResult | undefined;
    try {
      if (streaming && isJsonType(header('content-type'))) {
        const reader = (state.stream as NonNullable<CallState['stream']>)(safeRequestId(header('request-id')) ?? state.clientRequestId);
        const size = await streamLimited(response.body, MAX_BODY_BYTES, (chunk) => reader.write(chunk));
        // An empty body is left to the usual reading of one (no page at all).
        if (size > 0) streamed = reader.end();
      } else {
        const chunks: Buffer[] = [];
        const size = await streamLimited(response.body, MAX_BODY_BYTES, (chunk) => {
          chunks.push(chunk);
        });
        text = Buffer.concat(chunks, size).toString('utf8');
      }
    } catch (err) {
      if (signal?.aborted === true) throw err;
      truncated = true;
    }
    state.exchange = { status: response.statusCode, header, text, truncated, ...defined({ streamed }) };
  }
}

const isJsonType = (type: string | null): boolean => type === null || type === '' || type.includes('json');

/**
 * Reads a body of at most `limit` bytes, handing each chunk on as it arrives (nothing is kept here:
 * the streaming parser or the caller's buffer takes it); resolves with the body's size.
 */
async function streamLimited(body: AsyncIterable<Buffer | Uint8Array> & { destroy(): unknown }, limit: number, onChunk: (chunk: Buffer) => void): Promise<number> {
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw new Error('response body over the size limit');
    }
    onChunk(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  }
  return size;
}

/** Far above a 1,000-device page (~3 MB); a body beyond it is not Graph talking. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** The library hands headers over as a plain object, a Headers instance or pairs; undici takes an object. */
function plainHeaders(headers: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers === undefined || headers === null) return out;
  if (typeof (headers as { forEach?: unknown }).forEach === 'function' && !Array.isArray(headers)) {
    (headers as { forEach(cb: (value: string, key: string) => void): void }).forEach((value, key) => {
      out[key] = value;
    });
    return out;
  }
  if (Array.isArray(headers)) {
    for (const pair of headers as [string, string][]) out[pair[0]] = pair[1];
    return out;
  }
  for (const [key, value] of Object.entries(headers as Record<string, unknown>)) {
    if (typeof value === 'string') out[key] = value;
  }
  return out;
}

export function foreignNextLinkError(): GraphError {
  return new GraphError(
    'foreign_next_link',
    'Microsoft Graph returned a next-page link outside the configured Graph host and API root; it was not followed and no token was sent. Check INTUNE_GRAPH_URL, or for a proxy in front of Graph, that it rewrites @odata.nextLink.',
    { graphCode: 'foreign_next_link' },
  );
}

/** Same scheme, host and port as the Graph URL, path under its API root, no credentials in the URL. */
export function isUnderApiRoot(url: string, graphOrigin: string, apiRoot: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (parsed.username !== '' || parsed.password !== '') return false;
  if (parsed.origin !== graphOrigin) return false;
  return parsed.pathname.startsWith(`${apiRoot}/`);
}
