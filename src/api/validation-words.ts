/**
 * Request validation failures in words. Fastify's validator reports a keyword and a pattern; a
 * person needs the allowed values or the format with an example. Every pattern a route declares
 * has its words here (test/api/errors.test.ts walks every route's schema to keep it so); a pattern
 * without words still never leaks as a regular expression.
 */
import { GUID_EXAMPLE_RULE, GUID_SOURCE, TENANT_RULE } from '../common/ids.js';
import { TIME_BOUND_RULE, TIME_BOUND_SOURCE } from '../common/time.js';

const TIME_WITH_ZONE = 'an ISO 8601 date and time with a time zone, such as 2025-01-31T08:00:00Z';

/** Pattern source -> what to type, in words. */
export const PATTERN_WORDS: ReadonlyMap<string, string> = new Map([
  [`^${GUID_SOURCE}$`, GUID_EXAMPLE_RULE],
  [TIME_BOUND_SOURCE, TIME_BOUND_RULE],
  ['^(?!0000)\\d{4}-.*(?:[zZ]|[+-](?:0\\d|1[0-4])(?::?\\d\\d)?)$', TIME_WITH_ZONE],
  ['^[0-9a-fA-F-]{1,36}$', 'the start of an Intune device id: 1 to 36 hex digits and dashes, such as 0fa4e5e1'],
  ['^[0-9a-f]{16}$', 'a key id: 16 lower-case hex digits, as `intune-connector keys list` shows it'],
  ['^[^\\u0000-\\u001f\\u007f]+$', 'text without control characters (no line breaks or tabs)'],
  ['^[^\\p{Cc}]*$', 'text without control characters (no line breaks or tabs)'],
  ['^[A-Za-z0-9.-]{1,253}$', "the Entra tenant's GUID or its primary domain, such as contoso.onmicrosoft.com"],
  ['^[A-Za-z0-9._-]{1,64}$', TENANT_RULE],
  ['^[A-Za-z0-9._-]{1,128}$', 'an accord name: 1 to 128 letters, digits, dots, underscores or hyphens, such as default'],
  ['^[0-9]{1,4}(\\.[0-9]{1,6}){0,3}$', 'a version number such as 14.4.1'],
  ['^[A-Za-z0-9]{1,16}$', 'a build number of 1 to 16 letters and digits, such as 23E224'],
  ['^[a-z0-9_-]+$', 'lower-case letters, digits, underscores or hyphens, such as darwin'],
  ['^[A-Za-z0-9 ._-]+$', 'letters, digits, spaces, dots, underscores or hyphens'],
  ['^[A-Za-z0-9 ,._()-]+$', 'letters, digits, spaces and , . _ ( ) -, such as Mac14,2'],
  ['^[A-Za-z0-9.+_-]{1,32}$', 'a version of 1 to 32 letters, digits and . + _ -, such as 1.4.0'],
  ['^hmac-sha256:[0-9a-fA-F]{64}$', 'a serial fingerprint as the API shows it: hmac-sha256: followed by 64 hex digits'],
]);

const TYPE_WORDS: Readonly<Record<string, string>> = {
  integer: 'a whole number',
  number: 'a number',
  string: 'text',
  boolean: 'true or false',
  object: 'a JSON object',
  array: 'a list',
  null: 'null',
};

/** The parts of an ajv error this module reads. */
export interface ValidationIssue {
  readonly keyword: string;
  readonly params: Record<string, unknown>;
  readonly message?: string | undefined;
}

const quoteList = (values: readonly unknown[]): string => values.map((v) => String(v)).join(', ');

function typeWords(type: unknown): string {
  const types = [type].flat().map((t) => TYPE_WORDS[String(t)] ?? String(t));
  return types.join(' or ');
}

/** One issue as the end of a sentence that starts with the field's name: "must be one of a, b". */
export function issueInWords(issue: ValidationIssue): string {
  const p = issue.params;
  switch (issue.keyword) {
    case 'enum':
      return `must be one of ${quoteList((p['allowedValues'] as unknown[] | undefined) ?? [])}`;
    case 'const':
      return `must be ${String(p['allowedValue'])}`;
    case 'pattern': {
      const words = PATTERN_WORDS.get(String(p['pattern']));
      return words !== undefined ? `must be ${words}` : 'is not in the expected form (see specs/openapi.yaml for this field)';
    }
    case 'format':
      return p['format'] === 'date-time' ? `must be ${TIME_WITH_ZONE}` : `must be a valid ${String(p['format'])}`;
    case 'type':
      return `must be ${typeWords(p['type'])}`;
    case 'minimum':
    case 'exclusiveMinimum':
      return `must be at least ${String(p['limit'])}${issue.keyword === 'exclusiveMinimum' ? ' (exclusive)' : ''}`;
    case 'maximum':
    case 'exclusiveMaximum':
      return `must be at most ${String(p['limit'])}${issue.keyword === 'exclusiveMaximum' ? ' (exclusive)' : ''}`;
    case 'minLength':
      return Number(p['limit']) === 1 ? 'must not be empty' : `must be at least ${String(p['limit'])} characters long`;
    case 'maxLength':
      return `must be at most ${String(p['limit'])} characters long`;
    case 'minItems':
      return `must list at least ${String(p['limit'])}`;
    case 'maxItems':
      return `must list at most ${String(p['limit'])}`;
    case 'uniqueItems':
      return 'must not list a value twice';
    case 'minProperties':
      return `must name at least ${String(p['limit'])} field${Number(p['limit']) === 1 ? '' : 's'}`;
    case 'required':
      return `must include ${String(p['missingProperty'])}`;
    case 'additionalProperties':
      return `has an unknown field "${String(p['additionalProperty'] ?? '').slice(0, 64)}"; remove it`;
    case 'oneOf':
    case 'anyOf':
      return 'does not match any of the accepted forms (see specs/openapi.yaml for this field)';
    default:
      return 'is invalid (see specs/openapi.yaml for this field)';
  }
}
