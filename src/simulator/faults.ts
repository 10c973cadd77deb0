/** The fault spec of `--faults` and SIMULATOR faults: a comma list of name=value (or bare flags). */
import { SimulatorError } from './errors.js';
import type { FaultSpec } from './types.js';
import { defined } from '../common/values.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface FaultKey {
  readonly field: keyof FaultSpec;
  readonly kind: 'rate' | 'seconds' | 'ms' | 'ms-range' | 'count' | 'flag';
  readonly help: string;
}

const KEYS: Readonly<Record<string, FaultKey>> = {
  error: { field: 'errorRate', kind: 'rate', help: 'fraction of Graph requests answered 500/502' },
  unavailable: { field: 'unavailableRate', kind: 'rate', help: 'fraction answered 503 with Retry-After' },
  'retry-after': { field: 'retryAfterSeconds', kind: 'seconds', help: 'Retry-After of those 503s, in seconds (decimals allowed)' },
  latency: { field: 'latencyMs', kind: 'ms', help: 'milliseconds added to every Graph request' },
  reset: { field: 'resetRate', kind: 'rate', help: 'fraction of connections destroyed before answering' },
  truncate: { field: 'truncateRate', kind: 'rate', help: 'fraction of list pages cut off mid-JSON' },
  malformed: { field: 'malformedRate', kind: 'rate', help: 'fraction of list pages with broken JSON' },
  'foreign-next-link': { field: 'foreignNextLink', kind: 'flag', help: 'nextLinks point at a foreign host (=URL to choose it)' },
  'decimal-retry-after': { field: 'decimalRetryAfter', kind: 'flag', help: '429 Retry-After with one decimal place' },
  'token-error': { field: 'tokenErrorRate', kind: 'rate', help: 'fraction of token requests answered 503' },
  'page-latency': {
    field: 'pageLatencyMs',
    kind: 'ms-range',
    help: 'milliseconds each list page takes, drawn uniformly from MIN-MAX (e.g. 800-2500, as large tenants see for a page of 1000)',
  },
  checkin: { field: 'checkinsPerPage', kind: 'count', help: 'devices that check in (lastSyncDateTime becomes now) each time a list page is served' },
  'refuse-filter': { field: 'refuseFilter', kind: 'flag', help: 'list requests with a $filter are answered 400, as a Graph that does not support the filter' },
};

const MAX_MS = 600_000;
const MAX_CHECKINS = 100_000;

/** "800-2500" or "1000" (a fixed latency) as { minMs, maxMs }; undefined when malformed. */
function parseMsRange(value: string): { minMs: number; maxMs: number } | undefined {
  const match = /^(\d{1,6})(?:\s*-\s*(\d{1,6}))?$/.exec(value);
  if (match === null) return undefined;
  const minMs = Number(match[1]);
  const maxMs = match[2] === undefined ? minMs : Number(match[2]);
  if (minMs > maxMs || maxMs > MAX_MS) return undefined;
  return { minMs, maxMs };
}

function isMsRange(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const { minMs, maxMs } = value as { minMs?: unknown; maxMs?: unknown };
  return Number.isInteger(minMs) && Number.isInteger(maxMs) && (minMs as number) >= 0 && (minMs as number) <= (maxMs as number) && (maxMs as number) <= MAX_MS;
}

export const FAULT_SPEC_HELP = Object.entries(KEYS)
  .map(([name, key]) => `${name}: ${key.help}`)
  .join('; ');

function invalid(message: string): SimulatorError {
  return new SimulatorError('invalid_fault_spec', `${message} (example: error=0.1,unavailable=0.05,retry-after=2,latency=50,foreign-next-link)`);
}

/**
 * Parses e.g. "error=0.1,unavailable=0.05,retry-after=2,latency=50,reset=0.01,truncate=0.02,
 * malformed=0.02,foreign-next-link". Throws SimulatorError 'invalid_fault_spec' naming the part to fix.
 */
export function parseFaultSpec(spec: string): FaultSpec {
  if (typeof spec !== 'string') throw invalid('the fault spec must be a string');
  const out: Mutable<FaultSpec> = {};
  const seen = new Set<string>();
  for (const rawPart of spec.split(',')) {
    const part = rawPart.trim();
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    const value = eq === -1 ? undefined : part.slice(eq + 1).trim();
    const key = KEYS[name];
    if (key === undefined) throw invalid(`unknown fault "${name}"; use one of ${Object.keys(KEYS).join(', ')}`);
    if (seen.has(name)) throw invalid(`fault "${name}" is given twice; give it once`);
    seen.add(name);
    switch (key.kind) {
      case 'rate': {
        const n = value === undefined || value === '' ? NaN : Number(value);
        if (!Number.isFinite(n) || n < 0 || n > 1) throw invalid(`fault "${name}" is "${value ?? ''}"; set it to a fraction from 0 to 1, e.g. ${name}=0.1`);
        (out as Record<string, unknown>)[key.field] = n;
        break;
      }
      case 'seconds': {
        const n = value === undefined || value === '' ? NaN : Number(value);
        if (!Number.isFinite(n) || n < 0 || n > 3600) throw invalid(`fault "${name}" is "${value ?? ''}"; set it to seconds from 0 to 3600, e.g. ${name}=1.5`);
        (out as Record<string, unknown>)[key.field] = n;
        break;
      }
      case 'ms': {
        const n = value === undefined || value === '' ? NaN : Number(value);
        if (!Number.isInteger(n) || n < 0 || n > MAX_MS) throw invalid(`fault "${name}" is "${value ?? ''}"; set it to whole milliseconds from 0 to 600000, e.g. ${name}=50`);
        (out as Record<string, unknown>)[key.field] = n;
        break;
      }
      case 'ms-range': {
        const range = value === undefined ? undefined : parseMsRange(value);
        if (range === undefined) throw invalid(`fault "${name}" is "${value ?? ''}"; set it to MIN-MAX whole milliseconds up to 600000, e.g. ${name}=800-2500`);
        (out as Record<string, unknown>)[key.field] = Object.freeze(range);
        break;
      }
      case 'count': {
        const n = value === undefined || value === '' ? NaN : Number(value);
        if (!Number.isInteger(n) || n < 0 || n > MAX_CHECKINS) throw invalid(`fault "${name}" is "${value ?? ''}"; set it to a whole number from 0 to ${MAX_CHECKINS}, e.g. ${name}=5`);
        (out as Record<string, unknown>)[key.field] = n;
        break;
      }
      case 'flag': {
        if (value === undefined || value.toLowerCase() === 'true') {
          (out as Record<string, unknown>)[key.field] = true;
        } else if (value.toLowerCase() === 'false') {
          (out as Record<string, unknown>)[key.field] = false;
        } else if (name === 'foreign-next-link' && /^https?:\/\/[^\s/?#]+\/?$/.test(value)) {
          out.foreignNextLink = true;
          out.foreignNextLinkBase = value.replace(/\/$/, '');
        } else {
          throw invalid(`fault "${name}" is "${value}"; leave it bare (${name}) or set it to true or false${name === 'foreign-next-link' ? ' or to a base URL like https://127.0.0.1:9443' : ''}`);
        }
        break;
      }
    }
  }
  return Object.freeze(out);
}

/** Checks a FaultSpec given as an object (setFaults, options) the way parseFaultSpec checks text. */
export function validateFaults(faults: FaultSpec): FaultSpec {
  if (faults === null || typeof faults !== 'object') throw invalid('faults must be an object');
  for (const [name, key] of Object.entries(KEYS)) {
    const value = (faults as Record<string, unknown>)[key.field];
    if (value === undefined) continue;
    const bad =
      key.kind === 'rate'
        ? typeof value !== 'number' || !(value >= 0 && value <= 1)
        : key.kind === 'seconds'
          ? typeof value !== 'number' || !(value >= 0 && value <= 3600)
          : key.kind === 'ms'
            ? typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_MS
            : key.kind === 'ms-range'
              ? !isMsRange(value)
              : key.kind === 'count'
                ? typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_CHECKINS
                : typeof value !== 'boolean';
    if (bad) throw invalid(`${key.field} (${name}) is ${JSON.stringify(value)}; ${key.help}`);
  }
  const base = faults.foreignNextLinkBase;
  if (base !== undefined && (typeof base !== 'string' || !/^https?:\/\/[^\s/?#]+$/.test(base))) {
    throw invalid(`foreignNextLinkBase is ${JSON.stringify(base)}; set it to a base URL like https://127.0.0.1:9443`);
  }
  const range = faults.pageLatencyMs;
  return Object.freeze({ ...faults, ...defined({ pageLatencyMs: range === undefined ? undefined : Object.freeze({ minMs: range.minMs, maxMs: range.maxMs }) }) });
}
