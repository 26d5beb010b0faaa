/**
 * Turns a question in plain words into a safe SQLite FTS5 MATCH expression.
 *
 * Users type anything: quotes, colons (`column:` filters), `NEAR`, `AND`,
 * `*`, `^`, parentheses, pod names with dashes. Every term is therefore
 * reduced to letters and digits and written as a quoted FTS5 string, so no
 * character of the question is ever read as query syntax, and the terms are
 * joined with OR so bm25 ranks documents by how many and how rare the terms
 * they contain are.
 */
import { CATEGORIES } from '../core/types.js';

/** Bounds of one query. */
const MAX_TERMS = 24;
const MAX_PHRASES = 8;
const MAX_TERM_CHARS = 64;

// Words that carry no meaning for the search (English function words and question words).
const STOPWORDS = new Set(
  `a about after all also am an and any are as at be been before being but by can could did do does doing down during each few for from
  had has have having he her here hers him his how i if in into is it its itself just me more most my no nor not now of off on once only or
  other our ours out over own please same she should show so some such tell than that the their theirs them then there these they this
  those through to too under until up very was we were what when where which while who whom why will with would you your yours`.split(/\s+/),
);

// Words that name a catalog category the prefix search alone would miss.
const ALIASES: Record<string, string[]> = {
  oom: ['OOMKilled', 'KernelOOM'],
  conntrack: ['ConntrackFull'],
  pleg: ['KubeletUnhealthy'],
  x509: ['CertificateExpiry'],
  certificate: ['CertificateExpiry'],
  xid: ['GPUXid'],
  hung: ['KernelHungTask'],
  lockup: ['KernelSoftLockup'],
  oops: ['KernelOops'],
  panic: ['KernelOops'],
  mce: ['HardwareError'],
  ecc: ['HardwareError'],
  smart: ['DiskFailure'],
  ntp: ['ClockSkew'],
  chrony: ['ClockSkew'],
  liveness: ['ProbeFailure'],
  readiness: ['ProbeFailure'],
  eviction: ['Evicted'],
  evicted: ['Evicted'],
};

/** A crude stem for comparing question words with category words ("looping" ~ "loop"). */
function stem(w: string): string {
  return w.replace(/(?:ing|ed|es|s|e)$/, '');
}

const CATEGORY_WORDS: { category: string; words: string[] }[] = CATEGORIES.map((c) => ({
  category: c,
  words: (c.match(/[A-Z]+(?![a-z])|[A-Z][a-z]+/g) ?? [c]).map((w) => stem(w.toLowerCase())),
}));

function quote(term: string): string {
  // Terms hold letters and digits only, but keep the quoting rule complete.
  return `"${term.replace(/"/g, '""')}"`;
}

/**
 * The FTS5 expression for `question`, or null when it holds no searchable
 * word. Terms of three or more letters match as prefixes (`"crash"*` finds
 * CrashLoop); categories whose words all appear in the question are added
 * whole ("disk full" finds DiskFull); hyphenated or dotted names are also
 * searched as phrases so an exact pod name ranks first.
 */
export function toFtsQuery(question: string): string | null {
  const text = question.normalize('NFKC').toLowerCase().slice(0, 4000);
  const words = text.match(/[\p{L}\p{N}]+/gu) ?? [];
  const parts: string[] = [];
  const seen = new Set<string>();
  const add = (p: string) => {
    if (!seen.has(p) && parts.length < MAX_TERMS + MAX_PHRASES) {
      seen.add(p);
      parts.push(p);
    }
  };

  let terms = 0;
  for (const w of words) {
    if (terms >= MAX_TERMS) break;
    if (STOPWORDS.has(w) || w.length > MAX_TERM_CHARS) continue;
    const before = parts.length;
    add(w.length >= 3 && !/^\d+$/.test(w) ? `${quote(w)}*` : quote(w));
    if (parts.length > before) terms++;
  }

  const stems = new Set(words.map(stem));
  for (const { category, words: cw } of CATEGORY_WORDS) {
    if (cw.length > 1 && cw.every((w) => stems.has(w))) add(quote(category.toLowerCase()));
  }
  for (const w of words) for (const c of ALIASES[w] ?? []) add(quote(c.toLowerCase()));

  let phrases = 0;
  for (const token of text.match(/[\p{L}\p{N}]+(?:[-_./:][\p{L}\p{N}]+)+/gu) ?? []) {
    if (phrases >= MAX_PHRASES) break;
    const inner = (token.match(/[\p{L}\p{N}]+/gu) ?? []).slice(0, 8).join(' ');
    if (inner.length > 0 && inner.length <= MAX_TERM_CHARS * 2) {
      add(quote(inner));
      phrases++;
    }
  }
  return parts.length > 0 ? parts.join(' OR ') : null;
}
