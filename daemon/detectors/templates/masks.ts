/**
 * General masks applied to every log line before template mining, the same for
 * every source, in one pass over the line's characters (no regular expression
 * runs on the common path, so masking costs about as much as splitting).
 *
 * A line is cut into tokens at whitespace, each token into segments at
 * structural punctuation (`= : , ; ( ) [ ] { } " ' |`). A segment becomes `<*>`
 * when it holds a digit: that one rule masks numbers, durations (`150ms`,
 * `2h33m12.7s`), hex and container ids, UUIDs, IPv4/IPv6 addresses and ports,
 * timestamps and versions, while keys stay constant (`uid=0` → `uid=<*>`,
 * `kubelet.go:1953]` → `kubelet.go:<*>]`). A token that contains a digit is a
 * parameter in the great majority of log statements.
 *
 * Within a token, masked segments joined only by value punctuation are one
 * `<*>` (`time="2025-03-12T10:15:30Z"` → `time="<*>"`).
 *
 * An empty value is a parameter too: `key=` at the end of a token becomes
 * `key=<*>` (also before `)`, `,`, `;`), an empty `()`, `[]`, `{}`, `""`
 * becomes `(<*>)`..., and a dotted name alone in brackets is a value too
 * (`(mail.example.com)`), so a
 * statement whose value is sometimes empty keeps one template.
 *
 * Values without digits are caught by shape: URLs (`scheme://...`), paths with
 * two or more segments (with their query string), Windows paths, IPv6 and MAC
 * addresses whose groups happen to be letters (`fd00::a`), and Kubernetes pod
 * names (`<name>-<pod-template-hash>-<suffix>`, whose hashes use a vowel-free
 * alphabet).
 *
 * Then every run of tokens that hold only parameters and punctuation (`<*>`,
 * `<*>:<*>:<*>`, `(<*>)`, `[<*>::<*>]:<*>`) becomes one `<*>`, and unit words
 * right after a parameter (`150 ms`, `1.16 KB`, `3 seconds`) and calendar
 * words next to one (`Sun Dec 04 04:47:44 2005`) join it: a value written with
 * spaces is still one parameter, so its lines keep one token count. Leader
 * dots that pad to a width (`processor.........0`) become one `...` token.
 */

/** The wildcard that stands for a parameter in a template. */
export const PARAM = '<*>';

// Character classes of ASCII, one bit each, looked up per character.
const SPACE = 1;
const DELIM = 2;
const DIGIT = 4;
const PATH_END = 8;
const LETTER = 16;
const CLASS = new Uint8Array(128);
const mark = (chars: string, bits: number) => {
  for (const c of chars) CLASS[c.charCodeAt(0)] = (CLASS[c.charCodeAt(0)] ?? 0) | bits;
};
mark(' \t\n\v\f\r', SPACE | PATH_END);
// Characters that end a segment: the value of `key=value` or `name:value` is masked alone.
mark('=:,;()[]{}"\'|', DELIM);
// Characters that end a path or URL inside a token.
mark('"\'()[]{}<>,;|', PATH_END);
mark('0123456789', DIGIT);
mark('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', LETTER);

function cls(c: number): number {
  return c < 128 ? (CLASS[c] as number) : LETTER;
}

const UNITS = new Set(
  'B KB MB GB TB PB KiB MiB GiB TiB PiB bytes byte ns us µs ms s sec secs second seconds min mins minute minutes h hr hrs hour hours day days'.split(' '),
);
const CALENDAR = new Set(
  'Mon Tue Wed Thu Fri Sat Sun Monday Tuesday Wednesday Thursday Friday Saturday Sunday Jan Feb Mar Apr May Jun Jul Aug Sep Sept Oct Nov Dec January February March April June July August September October November December'.split(
    ' ',
  ),
);

// Deployment pod name; the hash and suffix alphabets are Kubernetes' SafeEncodeString alphabet.
// IPv6 (maybe bracketed, with zone and port) or MAC address: groups without digits happen ("fd00::a").
const IPV6_OR_MAC = /^[[(]?(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}(?:%\w+)?[\])]?(?::\d{1,5})?[,;.]?$/;
// Masked segments joined by value punctuation ("<*>:<*>:<*>" of a time) are one value.
const ADJACENT_PARAMS = /<\*>(?:[-:.,/]+<\*>)+/g;

// A host or file name alone in parentheses or brackets: "(mail.example.com)", "[db.internal]".
const BRACKETED_NAME = /^(?:\([A-Za-z][\w-]*(?:\.[\w-]+)+\)|\[[A-Za-z][\w-]*(?:\.[\w-]+)+\])[,;:.]?$/;

const POD_NAME = /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$/;

/** Index just past a path or URL that starts at `i`, and how many `/` it has. */
function pathEnd(s: string, i: number): [number, number] {
  let slashes = 0;
  let j = i;
  for (; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (cls(c) & PATH_END) break;
    if (c === 47) slashes++;
  }
  return [j, slashes];
}

function isPodName(s: string, start: number, end: number): boolean {
  return end - start >= 14 && POD_NAME.test(s.slice(start, end));
}

/**
 * Masks one line and cuts it into tokens: every token is a constant word or
 * holds `<*>` for each parameter in it.
 */
export function maskTokens(line: string): string[] {
  const s = line;
  const n = s.length;
  const tokens: string[] = [];
  // True when the last token pushed is a collapsed parameter run.
  let lastParam = false;
  let i = 0;
  while (i < n) {
    let c = s.charCodeAt(i);
    if (cls(c) & SPACE) {
      i++;
      continue;
    }
    // One token, [start, i). `out` is built only once a segment is masked:
    // it then holds the token up to `segStart`.
    const start = i;
    let out: string | null = null;
    let segStart = i;
    let variable = false;
    let hyphens = 0;
    let colons = 0;
    let masked = 0;
    let dots = false;
    // Letters or digits outside masked segments: the token is not a bare value.
    let constText = false;
    let segText = false;
    for (; i < n; i++) {
      c = s.charCodeAt(i);
      const k = cls(c);
      // Letters and digits first: they are most characters of a line.
      if (k & LETTER) {
        segText = true;
        continue;
      }
      if (k & DIGIT) {
        variable = true;
        continue;
      }
      if (k & SPACE) break;
      if (c === 46) {
        if (i + 1 < n && s.charCodeAt(i + 1) === 46) {
          dots = true;
          break;
        }
        continue;
      }
      if (c === 45) {
        hyphens++;
        continue;
      }
      if (c === 58 && i > segStart && i + 2 < n) {
        if (s.charCodeAt(i + 1) === 47 && s.charCodeAt(i + 2) === 47) {
          // "scheme://host/path": the scheme and the rest are one value.
          variable = true;
          i = pathEnd(s, i + 3)[0] - 1;
          continue;
        }
        if (i === segStart + 1 && s.charCodeAt(i + 1) === 92) {
          // Windows path "C:\\dir\\file".
          variable = true;
          i = pathEnd(s, i + 2)[0] - 1;
          continue;
        }
      }
      if (k & DELIM) {
        if (c === 58) colons++;
        // Close the segment [segStart, i) and keep the delimiter.
        if (variable || (hyphens >= 2 && isPodName(s, segStart, i)) || (i === segStart && emptySlot(s, start, i))) {
          out = (out ?? s.slice(start, segStart)) + PARAM;
          masked++;
        } else {
          if (out !== null) out += s.slice(segStart, i);
          if (segText) constText = true;
        }
        if (out !== null) out += s[i];
        segStart = i + 1;
        variable = false;
        segText = false;
        hyphens = 0;
        continue;
      }
      if (i === segStart && (c === 47 || c === 126) && i + 1 < n && (s.charCodeAt(i + 1) === 47 || cls(s.charCodeAt(i + 1)) & (LETTER | DIGIT))) {
        // A path starting here: "/var/lib/x", "~/x", with any query string.
        const [pe, slashes] = pathEnd(s, i);
        if (slashes >= 2 || (c === 126 && slashes >= 1)) {
          variable = true;
          i = pe - 1;
        }
      } else if (c === 42 && i > start && i + 1 < n && s.charCodeAt(i - 1) === 60 && s.charCodeAt(i + 1) === 62) {
        // A "<*>" already in the text.
        variable = true;
      }
    }
    // Close the last segment [segStart, i).
    if (variable || (hyphens >= 2 && isPodName(s, segStart, i)) || (i === segStart && i - 1 > start && s.charCodeAt(i - 1) === 61 && emptyAtEnd(s, i))) {
      out = (out ?? s.slice(start, segStart)) + PARAM;
      masked++;
    } else {
      if (out !== null) out += s.slice(segStart, i);
      if (segText) constText = true;
    }
    if (colons >= 2 && IPV6_OR_MAC.test(s.slice(start, i))) {
      out = PARAM;
      constText = false;
    } else if (out === null && i - start > 4 && BRACKETED_NAME.test(s.slice(start, i))) {
      // A dotted name alone in brackets is the value of its slot: "(mail.example.com)" where others print "(<*>)" or "()".
      out = `${s[start]}${PARAM}${s[i - 1]}`;
      constText = false;
    } else if (masked >= 2 && out !== null) out = out.replace(ADJACENT_PARAMS, PARAM);
    if (i > start) {
      if (out !== null && !constText) {
        // Parameters and punctuation only: one "<*>" for the whole run, which
        // takes in the calendar words before it ("Sun Dec 04 ...").
        while (!lastParam && tokens.length > 0 && isCalendar(tokens[tokens.length - 1] as string)) tokens.pop();
        if (!lastParam) tokens.push(PARAM);
        lastParam = true;
      } else {
        const t = out ?? s.slice(start, i);
        // A unit or calendar word right after a value is part of it: "150 ms", "04 2005".
        if (!(lastParam && isUnitOrCalendar(t))) {
          tokens.push(t);
          lastParam = false;
        }
      }
    }
    if (dots) {
      // Leader dots pad to a width: one "..." token whatever the run length.
      tokens.push('...');
      lastParam = false;
      while (i < n && s.charCodeAt(i) === 46) i++;
    }
  }
  return tokens;
}

/** Closing character of each opening bracket or quote. */
const CLOSER: Record<number, number> = { 40: 41, 91: 93, 123: 125, 34: 34, 39: 39 };

/**
 * True when the empty segment that ends at `i` (at the delimiter s[i]) is a
 * value left empty: `()`, `[]`, `{}`, `""`, `''` — the same slot holds a value
 * in other lines of the statement (`connection from 10.0.0.7 ()` vs
 * `(host-10-0-0-7.example)`), so it is a parameter like the value would be.
 */
function emptySlot(s: string, start: number, i: number): boolean {
  if (i <= start) return false;
  const prev = s.charCodeAt(i - 1);
  const c = s.charCodeAt(i);
  // "init()" is a call without arguments, not an empty value.
  if (CLOSER[prev] === c) return !(prev === 40 && i - 2 >= start && (isAlnum(s.charCodeAt(i - 2)) || s.charCodeAt(i - 2) === 95));
  // "(uid=)", "a=,b=1": a key whose value is empty before a closing bracket or a separator.
  return prev === 61 && i - 1 > start && s.charCodeAt(i - 2) !== 61 && (c === 41 || c === 93 || c === 125 || c === 44 || c === 59);
}

/**
 * True when `key=` that ends a token at `i` has no value: the line ends or the
 * next token is another `key=value` (`logname= uid=0`). `status= true` spaces
 * its value into the next token instead.
 */
function emptyAtEnd(s: string, i: number): boolean {
  let j = i;
  while (j < s.length && cls(s.charCodeAt(j)) & SPACE) j++;
  if (j >= s.length) return true;
  for (; j < s.length && !(cls(s.charCodeAt(j)) & SPACE); j++) if (s.charCodeAt(j) === 61) return true;
  return false;
}

/** Masks one line as `maskTokens` does and joins the tokens with single spaces. */
export function maskLine(line: string): string {
  return maskTokens(line).join(' ');
}

/** Cheap pre-check: calendar words start with one of these capitals, maybe after a bracket. */
function maybeCalendar(t: string): boolean {
  if (t.length < 3) return false;
  const c = cls(t.charCodeAt(0)) & LETTER ? t.charCodeAt(0) : t.charCodeAt(1);
  // A D F J M N O S T W
  return (c === 65 || c === 68 || c === 70 || c === 74 || c === 77 || c === 78 || c === 79 || c === 83 || c === 84 || c === 87);
}

function isAlnum(c: number): boolean {
  return (cls(c) & (LETTER | DIGIT)) !== 0;
}

function bare(token: string): string {
  let i = 0;
  let j = token.length;
  while (i < j && !isAlnum(token.charCodeAt(i)) && token.charCodeAt(i) < 128) i++;
  while (j > i && !isAlnum(token.charCodeAt(j - 1)) && token.charCodeAt(j - 1) < 128) j--;
  return i === 0 && j === token.length ? token : token.slice(i, j);
}

function isCalendar(t: string): boolean {
  return maybeCalendar(t) && CALENDAR.has(bare(t));
}

function isUnitOrCalendar(t: string): boolean {
  // Units and calendar words are short and start with a letter (or µ), maybe after a bracket.
  if (t.length > 11 || !(cls(t.charCodeAt(0)) & LETTER || (t.length > 1 && cls(t.charCodeAt(1)) & LETTER))) return false;
  const b = bare(t);
  return UNITS.has(b) || CALENDAR.has(b);
}
