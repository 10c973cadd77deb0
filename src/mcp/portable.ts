/**
 * JSON Schemas that every MCP client takes. zod writes a nullable field as `type: ["string",
 * "null"]`, which JSON Schema allows but several clients do not read (the MCP Inspector flags it as
 * not portable). Here each such field becomes `anyOf` of one schema per type, with the constraints
 * that belong to the non-null type (format, pattern, enum…) moved into its branch; words
 * (description, title, default, examples) stay on the field.
 */

/** Keys that describe the field as a whole rather than one of its types. */
const FIELD_KEYS = new Set(['description', 'title', 'default', 'examples', '$comment', 'deprecated', 'readOnly', 'writeOnly']);

type Schema = Record<string, unknown>;

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function splitTypes(node: Schema, types: readonly unknown[]): Schema {
  const field: Schema = {};
  const constraints: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'type') continue;
    (FIELD_KEYS.has(key) ? field : constraints)[key] = value;
  }
  const branches = types.map((type): Schema => {
    if (type === 'null') return { type: 'null' };
    const branch: Schema = { type, ...constraints };
    // null is its own branch; an enum that also lists it keeps only the other values.
    if (Array.isArray(branch['enum'])) branch['enum'] = branch['enum'].filter((v) => v !== null);
    return branch;
  });
  return { ...field, anyOf: branches };
}

/** A copy of `schema` in which no `type` is an array; everything else is kept as it was. */
export function portableSchema<T>(schema: T): T {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (!isSchema(node)) return node;
    const out: Schema = {};
    for (const [key, value] of Object.entries(node)) out[key] = walk(value);
    const type = out['type'];
    if (Array.isArray(type)) return type.length === 1 ? { ...out, type: type[0] } : splitTypes(out, type);
    return out;
  };
  return walk(schema) as T;
}
