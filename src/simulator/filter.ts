/**
 * $filter for managedDevices: a small tokenizer, a recursive-descent parser for the OData subset,
 * and a checker that accepts what Intune supports and the connector uses:
 *
 *   eq on id, azureADDeviceId, operatingSystem, complianceState, serialNumber
 *   gt, ge, lt, le on lastSyncDateTime (unquoted DateTimeOffset literals)
 *   and; parentheses; or only between eq comparisons of one property that Intune lets you
 *   combine with or (complianceState, operatingSystem, serialNumber)
 *   string literals in single quotes, '' for a quote; enum literals also as
 *   microsoft.graph.complianceState'compliant'
 *
 * Anything else (other properties, ne, functions such as contains/startswith, not, `or` across
 * properties, syntax errors, a quoted date) is refused with FilterError, which the Graph route
 * answers as 400 BadRequest, as Graph does. String comparisons ignore case, as Intune's do.
 * The result is compiled once per request into a predicate over device objects.
 */
import { MANAGED_DEVICE_PROPERTIES, PROPERTY_BY_NAME } from './properties.js';
import { GUID_SOURCE } from '../common/ids.js';
import { defined } from '../common/values.js';

export class FilterError extends Error {
  override readonly name = 'FilterError';
}

type Token =
  | { readonly kind: 'lparen'; readonly pos: number }
  | { readonly kind: 'rparen'; readonly pos: number }
  | { readonly kind: 'comma'; readonly pos: number }
  | { readonly kind: 'word'; readonly text: string; readonly pos: number }
  | { readonly kind: 'string'; readonly value: string; readonly pos: number }
  | { readonly kind: 'enum'; readonly type: string; readonly value: string; readonly pos: number }
  | { readonly kind: 'datetime'; readonly text: string; readonly ms: number; readonly pos: number }
  | { readonly kind: 'guid'; readonly text: string; readonly pos: number }
  | { readonly kind: 'number'; readonly text: string; readonly pos: number };

const MAX_FILTER_LENGTH = 4096;
const MAX_DEPTH = 32;
// Fixed-shape literals are matched whole at the current position (sticky), never searched for.
const DATETIME_AT = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})/y;
const GUID_AT = new RegExp(`${GUID_SOURCE}(?![\\w-])`, 'y');
const NUMBER_AT = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.:-])/y;

function isWordStart(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || c === '$';
}
function isWordChar(c: string): boolean {
  return isWordStart(c) || (c >= '0' && c <= '9') || c === '.' || c === '/';
}

function matchAt(re: RegExp, text: string, pos: number): string | undefined {
  re.lastIndex = pos;
  const m = re.exec(text);
  return m === null ? undefined : m[0];
}

/** Reads the string literal opening at `start` ('' stands for one quote); returns it and the index after it. */
function readString(text: string, start: number): { value: string; end: number } {
  let value = '';
  let i = start + 1;
  for (;;) {
    if (i >= text.length) throw new FilterError(`Invalid filter clause: unterminated string literal at position ${start}.`);
    const ch = text[i] as string;
    if (ch === "'") {
      if (text[i + 1] !== "'") return { value, end: i + 1 };
      value += "'";
      i += 2;
      continue;
    }
    value += ch;
    i++;
  }
}

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === ',') {
      tokens.push(c === '(' ? { kind: 'lparen', pos: i } : c === ')' ? { kind: 'rparen', pos: i } : { kind: 'comma', pos: i });
      i++;
      continue;
    }
    if (c === "'") {
      const { value, end } = readString(text, i);
      tokens.push({ kind: 'string', value, pos: i });
      i = end;
      continue;
    }
    if ((c >= '0' && c <= '9') || c === '-') {
      const datetime = matchAt(DATETIME_AT, text, i);
      if (datetime !== undefined) {
        const ms = Date.parse(datetime);
        if (Number.isNaN(ms)) throw new FilterError(`Invalid filter clause: '${datetime}' is not a valid DateTimeOffset.`);
        tokens.push({ kind: 'datetime', text: datetime, ms, pos: i });
        i += datetime.length;
        continue;
      }
      const guid = matchAt(GUID_AT, text, i);
      if (guid !== undefined) {
        tokens.push({ kind: 'guid', text: guid, pos: i });
        i += guid.length;
        continue;
      }
      const num = matchAt(NUMBER_AT, text, i);
      if (num !== undefined) {
        tokens.push({ kind: 'number', text: num, pos: i });
        i += num.length;
        continue;
      }
      throw new FilterError(
        `Invalid filter clause: the value at position ${i} is not a valid literal. Dates need a zone, e.g. 2025-06-01T00:00:00Z or 2025-06-01T02:00:00+02:00 (write + as %2B in a URL).`,
      );
    }
    if (isWordStart(c)) {
      const start = i;
      while (i < text.length && isWordChar(text[i] as string)) i++;
      const word = text.slice(start, i);
      if (text[i] === "'" && word.includes('.')) {
        // A qualified enum literal: microsoft.graph.complianceState'compliant'
        const { value, end } = readString(text, i);
        tokens.push({ kind: 'enum', type: word, value, pos: start });
        i = end;
        continue;
      }
      tokens.push({ kind: 'word', text: word, pos: start });
      continue;
    }
    throw new FilterError(`Invalid filter clause: unexpected character '${c}' at position ${i}.`);
  }
  return tokens;
}

export type Operator = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le';
const OPERATORS: ReadonlySet<string> = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le', 'has', 'in', 'add', 'sub', 'mul', 'div', 'mod']);

type Literal = Exclude<Token, { kind: 'lparen' | 'rparen' | 'comma' | 'word' }> | { readonly kind: 'keyword'; readonly text: 'null' | 'true' | 'false'; readonly pos: number };

export type FilterNode =
  | { readonly kind: 'and' | 'or'; readonly left: FilterNode; readonly right: FilterNode }
  | { readonly kind: 'compare'; readonly property: string; readonly op: Operator; readonly literal: Literal };

class Parser {
  private index = 0;
  constructor(
    private readonly tokens: readonly Token[],
    private readonly text: string,
  ) {}

  parse(): FilterNode {
    if (this.tokens.length === 0) throw new FilterError('Invalid filter clause: the filter is empty.');
    const node = this.parseOr(0);
    const extra = this.tokens[this.index];
    if (extra !== undefined) throw new FilterError(`Invalid filter clause: syntax error at position ${extra.pos} in '${this.text}'.`);
    return node;
  }

  private peekWord(word: string): boolean {
    const t = this.tokens[this.index];
    return t?.kind === 'word' && t.text === word;
  }

  private parseOr(depth: number): FilterNode {
    let left = this.parseAnd(depth);
    while (this.peekWord('or')) {
      this.index++;
      left = { kind: 'or', left, right: this.parseAnd(depth) };
    }
    return left;
  }

  private parseAnd(depth: number): FilterNode {
    let left = this.parsePrimary(depth);
    while (this.peekWord('and')) {
      this.index++;
      left = { kind: 'and', left, right: this.parsePrimary(depth) };
    }
    return left;
  }

  private parsePrimary(depth: number): FilterNode {
    if (depth > MAX_DEPTH) throw new FilterError(`Invalid filter clause: parentheses nested deeper than ${MAX_DEPTH}.`);
    const t = this.tokens[this.index];
    if (t === undefined) throw new FilterError(`Invalid filter clause: the expression ends too early in '${this.text}'.`);
    if (t.kind === 'lparen') {
      this.index++;
      const inner = this.parseOr(depth + 1);
      const close = this.tokens[this.index];
      if (close?.kind !== 'rparen') throw new FilterError(`Invalid filter clause: ')' expected at position ${close?.pos ?? this.text.length}.`);
      this.index++;
      return inner;
    }
    if (t.kind !== 'word') throw new FilterError(`Invalid filter clause: a property name is expected at position ${t.pos}; put the property on the left, e.g. complianceState eq 'compliant'.`);
    if (t.text === 'not') throw new FilterError("Invalid filter clause: the 'not' operator is not supported for managedDevices.");
    const next = this.tokens[this.index + 1];
    if (next?.kind === 'lparen') throw new FilterError(`Invalid filter clause: the function '${t.text}' is not supported for managedDevices; use eq comparisons.`);
    if (next?.kind === 'word' && (next.text === 'any' || next.text === 'all')) throw new FilterError('Invalid filter clause: lambda operators are not supported for managedDevices.');
    this.index++;
    const opToken = this.tokens[this.index];
    if (opToken?.kind !== 'word' || !OPERATORS.has(opToken.text)) {
      throw new FilterError(`Invalid filter clause: a comparison operator (eq, gt, ge, lt, le) is expected after '${t.text}' at position ${opToken?.pos ?? this.text.length}.`);
    }
    if (!['eq', 'ne', 'gt', 'ge', 'lt', 'le'].includes(opToken.text)) {
      throw new FilterError(`Invalid filter clause: the operator '${opToken.text}' is not supported for managedDevices.`);
    }
    this.index++;
    const lit = this.tokens[this.index];
    if (lit === undefined) throw new FilterError(`Invalid filter clause: a value is expected after '${t.text} ${opToken.text}'.`);
    let literal: Literal;
    if (lit.kind === 'word') {
      if (lit.text !== 'null' && lit.text !== 'true' && lit.text !== 'false') {
        throw new FilterError(`Invalid filter clause: comparing two properties is not supported; quote string values, e.g. '${lit.text}'.`);
      }
      literal = { kind: 'keyword', text: lit.text, pos: lit.pos };
    } else if (lit.kind === 'lparen' || lit.kind === 'rparen' || lit.kind === 'comma') {
      throw new FilterError(`Invalid filter clause: a value is expected at position ${lit.pos}.`);
    } else {
      literal = lit;
    }
    this.index++;
    return { kind: 'compare', property: t.text, op: opToken.text as Operator, literal };
  }
}

export function parseFilter(text: string): FilterNode {
  if (text.length > MAX_FILTER_LENGTH) throw new FilterError(`Invalid filter clause: the filter is longer than ${MAX_FILTER_LENGTH} characters.`);
  return new Parser(tokenize(text), text).parse();
}

/** Properties Intune filters on, the operators each accepts, and whether `or` may combine them. */
const FILTERABLE: Readonly<Record<string, { readonly ops: readonly Operator[]; readonly or: boolean }>> = {
  id: { ops: ['eq'], or: false },
  azureADDeviceId: { ops: ['eq'], or: false },
  operatingSystem: { ops: ['eq'], or: true },
  complianceState: { ops: ['eq'], or: true },
  serialNumber: { ops: ['eq'], or: true },
  lastSyncDateTime: { ops: ['gt', 'ge', 'lt', 'le'], or: false },
};

const CANONICAL_NAMES = new Map(MANAGED_DEVICE_PROPERTIES.map((p) => [p.name.toLowerCase(), p.name]));

type Predicate = (device: Readonly<Record<string, unknown>>) => boolean;

export interface CompiledFilter {
  readonly predicate: Predicate;
  /** A normalised rendering, stable for equal filters (bound into skiptokens). */
  readonly canonical: string;
  /** When the filter pins id or azureADDeviceId to one value, the index can answer it. */
  readonly lookup?: { readonly property: 'id' | 'azureADDeviceId'; readonly value: string };
  readonly properties: ReadonlySet<string>;
  /**
   * When the filter is only lastSyncDateTime comparisons joined by `and` (a sync's range), those
   * comparisons: the store answers them from a numeric column instead of parsing every date.
   */
  readonly lastSyncConditions?: readonly LastSyncCondition[];
}

export interface LastSyncCondition {
  readonly op: 'gt' | 'ge' | 'lt' | 'le';
  readonly ms: number;
}

/** The lastSyncDateTime comparisons of a filter made of nothing else, or undefined. */
function lastSyncConditionsOf(node: FilterNode): LastSyncCondition[] | undefined {
  if (node.kind === 'compare') {
    if (CANONICAL_NAMES.get(node.property.toLowerCase()) !== 'lastSyncDateTime' || node.literal.kind !== 'datetime') return undefined;
    if (node.op !== 'gt' && node.op !== 'ge' && node.op !== 'lt' && node.op !== 'le') return undefined;
    return [{ op: node.op, ms: node.literal.ms }];
  }
  if (node.kind !== 'and') return undefined;
  const left = lastSyncConditionsOf(node.left);
  const right = lastSyncConditionsOf(node.right);
  return left === undefined || right === undefined ? undefined : [...left, ...right];
}

function literalText(literal: Literal): string {
  switch (literal.kind) {
    case 'string':
      return `'${literal.value.replace(/'/g, "''")}'`;
    case 'enum':
      return `${literal.type}'${literal.value}'`;
    case 'keyword':
    case 'datetime':
    case 'guid':
    case 'number':
      return literal.text;
  }
}

function compileCompare(node: Extract<FilterNode, { kind: 'compare' }>): { predicate: Predicate; canonical: string; property: string; value?: string } {
  const property = CANONICAL_NAMES.get(node.property.toLowerCase());
  if (property === undefined) {
    throw new FilterError(`Could not find a property named '${node.property}' on type 'microsoft.graph.managedDevice'.`);
  }
  const rule = FILTERABLE[property];
  if (rule === undefined) {
    throw new FilterError(`Invalid filter clause: filtering on '${property}' is not supported; filter on ${Object.keys(FILTERABLE).join(', ')}.`);
  }
  if (!rule.ops.includes(node.op)) {
    throw new FilterError(`Invalid filter clause: the operator '${node.op}' is not supported on '${property}'; use ${rule.ops.join(', ')}.`);
  }
  const spec = PROPERTY_BY_NAME.get(property);
  const { literal } = node;
  const canonical = `${property} ${node.op} ${literalText(literal)}`;

  if (spec?.type === 'Edm.DateTimeOffset') {
    if (literal.kind !== 'datetime') {
      const found = literal.kind === 'string' ? 'Edm.String' : literal.kind === 'keyword' ? literal.text : 'Edm.Int32';
      throw new FilterError(
        `A binary operator with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and '${found}' for operator kind '${node.op}'. Write the date unquoted, e.g. ${property} ge 2025-06-01T00:00:00Z.`,
      );
    }
    const bound = literal.ms;
    const op = node.op;
    const predicate: Predicate = (device) => {
      const raw = device[property];
      if (typeof raw !== 'string') return false;
      const ms = Date.parse(raw);
      return op === 'gt' ? ms > bound : op === 'ge' ? ms >= bound : op === 'lt' ? ms < bound : ms <= bound;
    };
    return { predicate, canonical, property };
  }

  let value: string;
  if (literal.kind === 'string') {
    value = literal.value;
  } else if (literal.kind === 'enum' && spec?.type === 'enum') {
    const expected = spec.edmType.replace(/^graph\./, 'microsoft.graph.');
    if (literal.type !== expected) throw new FilterError(`Invalid filter clause: the enum type '${literal.type}' does not match '${expected}'.`);
    value = literal.value;
  } else if (literal.kind === 'keyword' && literal.text === 'null') {
    throw new FilterError(`Invalid filter clause: comparing '${property}' with null is not supported.`);
  } else {
    throw new FilterError(
      `A binary operator with incompatible types was detected. Found operand types '${spec?.type === 'enum' ? spec.edmType.replace(/^graph\./, 'microsoft.graph.') : 'Edm.String'}' and '${literal.kind === 'datetime' ? 'Edm.DateTimeOffset' : literal.kind === 'guid' ? 'Edm.Guid' : 'Edm.Int32'}' for operator kind 'Equal'. Quote string values: ${property} eq '...'.`,
    );
  }
  if (spec?.type === 'enum' && !(spec.enumValues ?? []).includes(value)) {
    throw new FilterError(`The value '${value}' is not a valid enumeration type constant of '${spec.edmType.replace(/^graph\./, 'microsoft.graph.')}'; use one of ${(spec.enumValues ?? []).join(', ')}.`);
  }
  const wanted = value.toLowerCase();
  const predicate: Predicate = (device) => {
    const raw = device[property];
    return typeof raw === 'string' && raw.toLowerCase() === wanted;
  };
  return { predicate, canonical, property, value };
}

interface Compiled {
  readonly predicate: Predicate;
  readonly canonical: string;
  readonly properties: Set<string>;
  readonly lookups: { property: string; value: string }[];
}

function compileNode(node: FilterNode): Compiled {
  switch (node.kind) {
    case 'compare': {
      const c = compileCompare(node);
      return {
        predicate: c.predicate,
        canonical: c.canonical,
        properties: new Set([c.property]),
        lookups: c.value !== undefined && (c.property === 'id' || c.property === 'azureADDeviceId') ? [{ property: c.property, value: c.value }] : [],
      };
    }
    case 'and': {
      const l = compileNode(node.left);
      const r = compileNode(node.right);
      return {
        predicate: (d) => l.predicate(d) && r.predicate(d),
        canonical: `(${l.canonical} and ${r.canonical})`,
        properties: new Set([...l.properties, ...r.properties]),
        lookups: [...l.lookups, ...r.lookups],
      };
    }
    case 'or': {
      const disjuncts: Extract<FilterNode, { kind: 'compare' }>[] = [];
      const collect = (n: FilterNode): void => {
        if (n.kind === 'or') {
          collect(n.left);
          collect(n.right);
        } else if (n.kind === 'compare') {
          disjuncts.push(n);
        } else {
          throw new FilterError("Invalid filter clause: 'or' may only combine eq comparisons of one property, e.g. complianceState eq 'compliant' or complianceState eq 'inGracePeriod'.");
        }
      };
      collect(node);
      const compiled = disjuncts.map((d) => compileCompare(d));
      const first = compiled[0]?.property ?? '';
      if (!compiled.every((c) => c.property === first) || FILTERABLE[first]?.or !== true) {
        throw new FilterError(
          `Invalid filter clause: 'or' is supported only between eq comparisons of the same property, one of ${Object.entries(FILTERABLE)
            .filter(([, r]) => r.or)
            .map(([p]) => p)
            .join(', ')}.`,
        );
      }
      const predicates = compiled.map((c) => c.predicate);
      return {
        predicate: (d) => predicates.some((p) => p(d)),
        canonical: `(${compiled.map((c) => c.canonical).join(' or ')})`,
        properties: new Set([first]),
        lookups: [],
      };
    }
  }
}

export function compileFilter(text: string): CompiledFilter {
  const tree = parseFilter(text);
  const compiled = compileNode(tree);
  const lastSyncConditions = lastSyncConditionsOf(tree);
  const lookup = compiled.lookups.find((l) => l.property === 'id') ?? compiled.lookups[0];
  return {
    predicate: compiled.predicate,
    canonical: compiled.canonical,
    properties: compiled.properties,
    ...defined({
      lastSyncConditions,
      lookup: lookup === undefined ? undefined : { property: lookup.property as 'id' | 'azureADDeviceId', value: lookup.value },
    }),
  };
}
