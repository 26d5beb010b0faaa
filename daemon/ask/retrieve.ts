/**
 * Retrieval for `/v1/ask`: which findings, log templates and runbooks a
 * question is about. Full-text search (bm25) first; findings named by id are
 * always included; a question that names nothing specific ("what is wrong
 * with this node?") gets the open findings, worst first.
 */
import { severityRank } from '../core/types.js';
import type { FindingQuery, SearchResult, Store, TemplateHit } from '../store/store.js';
import type { TrackedFinding } from '../tracker/tracker.js';

/** A finding given to the answer, with its citation marker (`F1`...). */
export interface RetrievedFinding {
  ref: string;
  finding: TrackedFinding;
  /** Why it is here: matched the words, was named by id, or is an open finding of a general question. */
  reason: 'match' | 'id' | 'open';
}

/** A runbook given to the answer, with its citation marker (`R1`...). */
export interface RetrievedRunbook {
  ref: string;
  id: string;
  title: string;
  /** The sections that match the question best, at most `maxRunbookChars`. */
  excerpt: string;
}

/** What a question retrieved, best first in each list. */
export interface Retrieved {
  findings: RetrievedFinding[];
  runbooks: RetrievedRunbook[];
  templates: TemplateHit[];
  /** The FTS5 expression used, or null when the question had no searchable word. */
  query: string | null;
}

/** Limits of one retrieval. */
export interface RetrieveOptions {
  /** Only findings and templates seen at or after this RFC3339 time. */
  since?: string;
  /** Findings returned at most. Defaults to 6. */
  maxFindings?: number;
  /** Runbooks returned at most. Defaults to 3. */
  maxRunbooks?: number;
  /** Log templates returned at most. Defaults to 4. */
  maxTemplates?: number;
  /** Characters of one runbook excerpt. Defaults to 900. */
  maxRunbookChars?: number;
}

/** The store reads retrieval needs. */
export type RetrievalStore = Pick<Store, 'search' | 'searchAsync' | 'getFinding' | 'listFindings'>;

// A question made only of these words asks for an overview, not for something specific.
const GENERAL = new Set(
  `wrong problem problems issue issues happening happened going status health healthy unhealthy node nodes overview summary summarize
  summarise broken ok okay fine today now anything everything something going on currently current state findings finding open alerts
  alert error errors failing failures trouble check report`.split(/\s+/),
);

const STOP = /^(?:a|an|and|any|are|is|it|me|my|of|on|the|this|that|there|to|what|whats|what's|which|why|how|with|in|for|do|does|i|we|you|be|been|has|have|please|tell|show|give|list|all|s)$/;

function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
}

/** A crude stem, the same on both sides of a comparison ("certificates" ~ "certificate"). */
function stem(w: string): string {
  return w.replace(/(?:ing|ed|es|s|e)$/, '');
}

/** True when the question names nothing beyond "what is wrong / status". */
export function isGeneralQuestion(question: string): boolean {
  const w = words(question).filter((x) => !STOP.test(x));
  return w.every((x) => GENERAL.has(x));
}

/** The sections of a markdown body that share the most words with the question, in document order, within `maxChars`. */
export function runbookExcerpt(body: string, question: string, maxChars: number): string {
  const terms = new Set(words(question).filter((w) => w.length >= 3 && !STOP.test(w)).map(stem));
  // Sections start at headings; long sections are split at blank lines so a match is not buried.
  const sections: string[] = [];
  for (const sec of body.split(/\n(?=\s{0,3}#{1,6}\s)/)) {
    let chunk = '';
    for (const para of sec.split(/\n\s*\n/)) {
      if (chunk && chunk.length + para.length > maxChars / 2) {
        sections.push(chunk);
        chunk = '';
      }
      chunk = chunk ? `${chunk}\n\n${para}` : para;
    }
    if (chunk.trim()) sections.push(chunk);
  }
  const scored = sections.map((text, i) => {
    const w = new Set(words(text).map(stem));
    let score = 0;
    for (const t of terms) if (w.has(t)) score++;
    return { text: text.trim(), i, score };
  });
  // The first section (title and intro) wins ties: it says what the runbook is for.
  const order = [...scored].sort((a, b) => b.score - a.score || a.i - b.i);
  const chosen: typeof scored = [];
  let used = 0;
  for (const s of order) {
    if (used >= maxChars) break;
    if (s.score === 0 && chosen.length > 0) break;
    chosen.push(s);
    used += s.text.length + 2;
  }
  const text = chosen
    .sort((a, b) => a.i - b.i)
    .map((s) => s.text)
    .join('\n\n');
  return text.length > maxChars ? `${text.slice(0, maxChars - 1)}…` : text;
}

const ID = /\b[0-9a-f]{16}\b/g;

// bm25 scores are negative (lower is better): this multiplies an open finding's relevance.
const OPEN_BOOST = 1.5;

/** How many results of each kind retrieval asks the search for. */
export function searchLimit(options: RetrieveOptions = {}): number {
  return Math.max(options.maxFindings ?? 6, options.maxRunbooks ?? 3, options.maxTemplates ?? 4);
}

/**
 * Finds what the question is about. Never throws on odd text (the store
 * sanitises the search). `found` is the search already run for it (the API
 * runs it off the event loop with Store.searchAsync); else it runs here.
 */
export function retrieve(store: RetrievalStore, question: string, options: RetrieveOptions = {}, found?: SearchResult): Retrieved {
  const maxFindings = options.maxFindings ?? 6;
  const maxRunbooks = options.maxRunbooks ?? 3;
  const maxTemplates = options.maxTemplates ?? 4;
  const maxRunbookChars = options.maxRunbookChars ?? 900;
  const since = options.since;
  const picked = new Map<string, { finding: TrackedFinding; reason: RetrievedFinding['reason'] }>();

  for (const id of new Set(question.toLowerCase().match(ID) ?? [])) {
    const f = store.getFinding(id);
    if (f && picked.size < maxFindings) picked.set(f.id, { finding: f, reason: 'id' });
  }
  const hits = found ?? store.search(question, { ...(since ? { since } : {}), limit: searchLimit(options) });
  // "What is wrong with this node?" matches every node finding by the word "node": the open ones answer it better.
  const general = isGeneralQuestion(question);
  // What is open now answers "is the disk full?" better than an equally worded resolved finding.
  const ranked = hits.findings
    .map((h) => ({ ...h, score: h.finding.status === 'open' ? h.score * OPEN_BOOST : h.score }))
    .sort((a, b) => a.score - b.score);
  for (const h of general ? [] : ranked) {
    if (picked.size >= maxFindings) break;
    if (!picked.has(h.finding.id)) picked.set(h.finding.id, { finding: h.finding, reason: 'match' });
  }
  if (picked.size === 0 || general) {
    const q: FindingQuery = { status: 'open', limit: 200, ...(since ? { since } : {}) };
    const open = store
      .listFindings(q)
      .items.sort((a, b) => severityRank(b.severity) - severityRank(a.severity) || (a.lastSeen < b.lastSeen ? 1 : a.lastSeen > b.lastSeen ? -1 : 0));
    for (const f of open) {
      if (picked.size >= maxFindings) break;
      if (!picked.has(f.id)) picked.set(f.id, { finding: f, reason: 'open' });
    }
  }
  return {
    findings: [...picked.values()].map((p, i) => ({ ref: `F${i + 1}`, ...p })),
    runbooks: hits.runbooks.slice(0, maxRunbooks).map((r, i) => ({
      ref: `R${i + 1}`,
      id: r.id,
      title: r.title,
      excerpt: runbookExcerpt(r.body, question, maxRunbookChars),
    })),
    templates: hits.templates.slice(0, maxTemplates),
    query: hits.query,
  };
}
