/**
 * The one reading of a time bound a person types: the CLI's --from/--to and the API's from, to,
 * last_sync_before and last_sync_after accept the same forms, checked by the same code.
 *
 * Forms: a date alone (2025-01-31, meaning 00:00 UTC of that day), or a date and time with a
 * time zone (2025-01-31T08:00Z, 2025-01-31T08:00:00.5+01:00). A time without a zone is refused:
 * it would mean a different instant on every machine. Calendar dates are checked (no 31 April), the
 * year 0000 and offsets beyond 14 hours are refused (PostgreSQL refuses them too).
 */

/** The forms in words, for messages that say what to type. */
export const TIME_BOUND_RULE =
  'a date such as 2025-01-31 (midnight UTC) or a date and time with a time zone such as 2025-01-31T08:00:00Z or 2025-01-31T09:00:00+01:00';

/** The shape of TIME_BOUND_RULE as a pattern (the API's JSON Schema carries it); parseTimeBound also checks the calendar. */
export const TIME_BOUND_SOURCE =
  '^(?!0000)\\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\\d|3[01])(?:[Tt](?:[01]\\d|2[0-3]):[0-5]\\d(?::[0-5]\\d(?:\\.\\d{1,9})?)?(?:[Zz]|[+-](?:0\\d|1[0-4]):?[0-5]\\d))?$';
export const TIME_BOUND_PATTERN = new RegExp(TIME_BOUND_SOURCE);
/** Longest accepted text (a date-time with nine fractional digits and an offset). */
export const TIME_BOUND_MAX_LENGTH = 40;

/** The instant a time bound names, or null when the text is not one of the accepted forms. */
export function parseTimeBound(text: unknown): Date | null {
  if (typeof text !== 'string' || text.length > TIME_BOUND_MAX_LENGTH || !TIME_BOUND_PATTERN.test(text)) return null;
  const year = Number(text.slice(0, 4));
  const month = Number(text.slice(5, 7));
  const day = Number(text.slice(8, 10));
  const calendar = new Date(Date.UTC(year, month - 1, day));
  // Date.UTC rolls 2025-02-30 over into March; a real date survives the round trip.
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) return null;
  if (text.length === 10) return calendar;
  // ±HHMM is ISO 8601's basic form; Date.parse wants the colon.
  const normalised = text.replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  const instant = new Date(normalised);
  return Number.isNaN(instant.getTime()) ? null : instant;
}
