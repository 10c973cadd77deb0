/** Small value helpers more than one layer needs. */

/** A JSON object: not null, not an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A database timestamp (a Date from pg, a string from PGlite) as ISO 8601. */
export function iso(value: Date | string): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

/** iso() for a nullable column. */
export function isoOrNull(value: Date | string | null | undefined): string | null {
  return value === null || value === undefined ? null : iso(value);
}

/** An object type whose possibly-undefined properties become optional ones that are never undefined. */
export type Defined<T> = { [K in keyof T as undefined extends T[K] ? never : K]: T[K] } & {
  [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined>;
};

/**
 * The properties whose value is not undefined. Under `exactOptionalPropertyTypes` an optional
 * property may be absent but not undefined; `{ ...defined({ requestId }) }` says that once instead
 * of `...(requestId !== undefined ? { requestId } : {})` at every call.
 */
export function defined<T extends object>(props: T): Defined<T> {
  const out: Record<string, unknown> = {};
  for (const key in props) {
    const value = props[key];
    if (value !== undefined) out[key] = value;
  }
  return out as Defined<T>;
}
