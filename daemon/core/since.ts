/**
 * `since` as people write it: an RFC3339 time or a relative age (`30m`, `1h`,
 * `2d`, `90s`, `1w`). Shared by the CLI and the API so both accept the same.
 */
import { CodedError } from '../errors.js';

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** What `since` accepts, in the words of an error message. */
export const SINCE_HELP = 'an RFC3339 time (2026-05-04T08:00:00Z) or an age such as 30m, 1h, 2d';

/** The pattern the API's schemas check `since` against (RFC3339 or an age). */
export const SINCE_PATTERN = '^(\\d{1,6}[smhdw]|\\d{4}-\\d{2}-\\d{2}([Tt ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?([Zz]|[+-]\\d{2}:?\\d{2})?)?)$';

/** Raised for a `since` that is neither an RFC3339 time nor an age. */
export class SinceError extends CodedError {
  readonly code = 'BAD_SINCE';
}

/** Turns `since` into an ISO time; throws SinceError naming what is accepted. */
export function parseSince(value: string, nowMs = Date.now()): string {
  const v = value.trim();
  const rel = /^(\d{1,6})([smhdw])$/.exec(v);
  if (rel) return new Date(nowMs - Number(rel[1]) * UNIT_MS[rel[2] as keyof typeof UNIT_MS]).toISOString();
  const t = /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : Number.NaN;
  // A leap second or a year outside 0000-9999 (after the offset) is no time nodesage can store or compare.
  const iso = Number.isNaN(t) ? '' : new Date(t).toISOString();
  if (!/^\d{4}-/.test(iso)) throw new SinceError(`since must be ${SINCE_HELP}, not "${value}"`);
  return iso;
}
