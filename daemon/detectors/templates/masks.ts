/**
 * General masks applied to every log line before template mining, the same for
 * every source. Two passes:
 *
 * 1. One regular expression replaces values that span punctuation or carry no
 *    digit (URLs, UUIDs, timestamps, MAC/IPv6/IPv4 addresses with ports, hex
 *    literals, file paths, Kubernetes pod names) by `<*>`, so that
 *    `10.0.0.7:8080` or `2h33m12.7s` is one parameter and not three.
 * 2. A scanner cuts every whitespace token into segments at structural
 *    punctuation (`= : , ; ( ) [ ] { } " ' |`) and replaces each segment that
 *    contains a digit (or an earlier `<*>`) by `<*>`. That is what masks
 *    numbers, durations (`150ms`), hex ids, block ids and versions while keeping
 *    keys constant: `uid=0` → `uid=<*>`, `kubelet.go:1953]` → `kubelet.go:<*>]`.
 *
 * A token that contains a digit is a parameter in the great majority of log
 * statements, so this rule costs little and makes Drain's prefix tree route
 * such tokens to its wildcard branch.
 */

/** The wildcard that stands for a parameter in a template. */
export const PARAM = '<*>';

const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\\.?';
const WEEKDAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?';
const TIME = '\\d{1,2}:\\d{2}(?::\\d{2})?(?:[.,]\\d+)?';
const H4 = '[0-9a-fA-F]{1,4}';

/**
 * Every first-pass mask, each a regular expression source, tried left to
 * right at each position (so longer shapes come first).
 */
const FIRST_PASS: readonly string[] = [
  // URL with scheme: its host, path and query are one value.
  '\\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\\s"\'<>()\\[\\]{}]+',
  // UUID.
  '\\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\\b',
  // ISO-8601 date with optional time and zone; also 2024/01/02 and 20240102T.
  `\\b\\d{4}[-/]\\d{2}[-/]\\d{2}(?:[T ]${TIME}(?:Z|[+-]\\d{2}:?\\d{2})?)?`,
  // ctime / syslog timestamps: "Sun Dec 04 04:47:44 2005", "Jun 14 15:16:01".
  `\\b(?:${WEEKDAY}\\s+)?${MONTH}\\s+\\d{1,2},?\\s+(?:\\d{4}\\s+)?${TIME}(?:\\s+\\d{4}\\b)?`,
  // MAC address.
  '\\b[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5}\\b',
  // Bracketed IPv6 with optional port.
  `\\[(?:${H4})?(?::${H4}?){2,7}(?:%\\w+)?\\](?::\\d{1,5})?`,
  // IPv6 with a "::" shortcut (or an IPv4 tail).
  `(?<![\\w:.])(?:(?:${H4}:){1,6}|:):(?:${H4}(?::${H4}){0,5}|(?:ffff:)?\\d{1,3}(?:\\.\\d{1,3}){3})?(?![\\w:])`,
  // Full 8-group IPv6.
  `(?<![\\w:.])${H4}(?::${H4}){7}(?![\\w:])`,
  // IPv4 with optional CIDR suffix and port.
  '(?<![\\w.])\\d{1,3}(?:\\.\\d{1,3}){3}(?:/\\d{1,2})?(?::\\d{1,5})?(?!\\.?\\d)',
  // Clock time alone: 04:47:44.123.
  `(?<![\\w:.])${TIME}(?![\\w:])`,
  // Hex literal.
  '\\b0[xX][0-9a-fA-F]+\\b',
  // Unix path with at least two segments (absolute, ~ or ./ relative).
  '(?<![\\w.:/~-])(?:~|\\.{1,2})?(?:/[\\w.@%+*~-]+){2,}/?',
  // Windows path.
  '\\b[A-Za-z]:\\\\[^\\s"\'<>|]*',
  // Deployment pod name: <name>-<pod-template-hash>-<5 chars>, both from
  // Kubernetes' vowel-free alphabet, so it holds even without a digit.
  '(?<![\\w.-])[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}(?![\\w.-])',
];

const FIRST_PASS_RE = new RegExp(FIRST_PASS.join('|'), 'g');

// Characters that end a segment: the value of `key=value` or `name:value` is masked alone.
const SEGMENT_DELIMITERS = new Set([...'=:,;()[]{}"\'|'].map((c) => c.charCodeAt(0)));

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * Masks one line and cuts it into tokens: every token is a constant word or
 * contains `<*>` for each parameter in it.
 */
export function maskTokens(line: string): string[] {
  const s = line.replace(FIRST_PASS_RE, PARAM);
  const tokens: string[] = [];
  const n = s.length;
  let out = '';
  let segStart = 0;
  let segVariable = false;
  let tokenStart = -1;
  let changed = false;
  const closeSegment = (end: number) => {
    if (segVariable) {
      out += PARAM;
      changed = true;
    } else out += s.slice(segStart, end);
    segVariable = false;
  };
  const closeToken = (end: number) => {
    if (tokenStart < 0) return;
    closeSegment(end);
    tokens.push(changed ? out : s.slice(tokenStart, end));
    tokenStart = -1;
    out = '';
    changed = false;
  };
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (isSpace(c)) {
      closeToken(i);
      continue;
    }
    if (c === 46 /* . */ && s.charCodeAt(i + 1) === 46) {
      // Leader dots ("processor.......0") pad to a width: one "..." token, whatever the run length.
      closeToken(i);
      while (s.charCodeAt(i + 1) === 46) i++;
      tokens.push('...');
      continue;
    }
    if (tokenStart < 0) {
      tokenStart = i;
      segStart = i;
    }
    if (SEGMENT_DELIMITERS.has(c)) {
      closeSegment(i);
      out += s[i];
      segStart = i + 1;
    } else if (isDigit(c) || (c === 42 /* * */ && s.charCodeAt(i - 1) === 60 && s.charCodeAt(i + 1) === 62)) {
      segVariable = true;
    }
  }
  closeToken(n);
  return tokens;
}

/** Masks one line as `maskTokens` does and joins the tokens with single spaces. */
export function maskLine(line: string): string {
  return maskTokens(line).join(' ');
}
