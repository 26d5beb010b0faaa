/**
 * The full-text queries of a search, and the worker thread that runs them on
 * a read-only connection of its own: ranking every match of a common word
 * over a long history takes tens to hundreds of milliseconds, which the
 * event loop must not wait for.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { CACHE_KIB } from './db.js';
import type { TemplateDbRow } from './templates.js';

/**
 * The full-text queries, run on the main connection (search) or in a worker (searchAsync). Findings come back as
 * ids and scores: their rows are read on the main connection afterwards, so they are current even when the
 * ranking is reused. Findings are ranked by {@link rankFindings}, which picks among these shapes.
 */
export const SEARCH_SQL = {
  findings: `SELECT fi.id, h.s AS score
    FROM (SELECT rowid AS rid, rank AS s FROM findings_fts WHERE findings_fts MATCH @q) h
    JOIN findings fi ON fi.rowid = h.rid
    WHERE @since IS NULL OR fi.last_seen >= @since
    ORDER BY h.s, fi.last_seen DESC, fi.id LIMIT @limit`,
  // The newest matches only: FTS5 walks a doclist in rowid order, so this reads `@window` rows, not every match.
  findingsFloor: 'SELECT rowid FROM findings_fts WHERE findings_fts MATCH @q ORDER BY rowid DESC LIMIT 1 OFFSET @window',
  findingsFrom: `SELECT fi.id, h.s AS score
    FROM (SELECT rowid AS rid, rank AS s FROM findings_fts WHERE findings_fts MATCH @q AND rowid > @floor) h
    JOIN findings fi ON fi.rowid = h.rid
    WHERE @since IS NULL OR fi.last_seen >= @since
    ORDER BY h.s, fi.last_seen DESC, fi.id LIMIT @limit`,
  // Every match, unordered, with the finding's recency: the documents holding a rare term (few by construction).
  findingsAll: `SELECT fi.id, fi.last_seen AS lastSeen, h.s AS score
    FROM (SELECT rowid AS rid, rank AS s FROM findings_fts WHERE findings_fts MATCH @q) h
    JOIN findings fi ON fi.rowid = h.rid
    WHERE @since IS NULL OR fi.last_seen >= @since`,
  findingsLastSeen: 'SELECT last_seen AS lastSeen FROM findings WHERE id = ?',
  // The counters migration 4 maintains: a count(*) of 100,000 findings costs milliseconds.
  findingsCount: 'SELECT coalesce(sum(n), 0) AS n FROM finding_counts',
  // Document frequency of an indexed (stemmed) token, and of the tokens a prefix covers.
  vocabTerm: 'SELECT doc FROM temp.findings_vocab WHERE term = ?',
  vocabPrefix: 'SELECT term, doc FROM temp.findings_vocab WHERE term >= @p AND term < @end',
  // The question's words through the index's own tokenizer (porter stems "failing" to "fail").
  stemClear: 'DELETE FROM temp.search_terms',
  stemAdd: 'INSERT INTO temp.search_terms (rowid, t) VALUES (?, ?)',
  stemRead: 'SELECT doc, term FROM temp.search_terms_vocab ORDER BY doc, offset',
  templates: `SELECT t.*, h.s AS score
    FROM (SELECT rowid AS rid, rank AS s FROM templates_fts WHERE templates_fts MATCH @q) h
    JOIN log_templates t ON t.rowid = h.rid
    WHERE @since IS NULL OR t.last_seen >= @since
    ORDER BY h.s, t.last_seen DESC LIMIT @limit`,
  runbooks: `SELECT r.id, r.title, r.body, h.s AS score
    FROM (SELECT rowid AS rid, rank AS s FROM runbooks_fts WHERE runbooks_fts MATCH @q ORDER BY rank LIMIT @limit) h
    JOIN runbooks r ON r.rowid = h.rid ORDER BY h.s, r.id`,
} as const;

/** Connection-private tables the finding ranking reads: the index's vocabulary and a scratch tokenizer. */
const SEARCH_TEMP_DDL = [
  "CREATE VIRTUAL TABLE IF NOT EXISTS temp.findings_vocab USING fts5vocab(main, findings_fts, 'row')",
  "CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_terms USING fts5(t, tokenize='porter unicode61 remove_diacritics 2')",
  "CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_terms_vocab USING fts5vocab(temp, search_terms, 'instance')",
];

/** The prepared form of SEARCH_SQL on one connection. */
export type SearchStatements = { [K in keyof typeof SEARCH_SQL]: { all(...a: unknown[]): unknown[]; get(...a: unknown[]): unknown; run(...a: unknown[]): unknown } };

/** What the finding ranking keeps between two searches on one connection. */
export interface RankState {
  /** The search generation `n` and `df` were read at. */
  generation: number;
  /** Findings in the store. */
  n: number;
  /** Document frequency by part of a query: [at least, at most], and the part to search instead when cheaper. */
  df: Map<string, [number, number, string?]>;
}

/**
 * Ranks the findings matching `p.q` (an OR of quoted parts, see fts-query.ts) by bm25, at a cost bounded by
 * `budget` documents however common the words are:
 * 1. A word in more than half of the findings (and in more than `budget`) is dropped: FTS5's bm25 gives it an
 *    idf of 1e-6 (its log is negative), so it changes no order among the findings the other words match, and
 *    only cost a ranking of all of them. Computed from the index's vocabulary, not a word list.
 * 2. The rest are split into rare parts (together at most `budget` documents) and common ones. The findings
 *    holding a rare part are all ranked, with their exact score: bm25 is a sum over the query's phrases, so
 *    the score under `(q) AND (rare)`, which counts the rare phrases twice, minus the score under `rare` is the
 *    score under `q`. The findings holding every part are ranked next, among the `budget` newest of them, and the
 *    findings holding only some common parts (when those are too few) among the `budget` newest matches.
 * 3. Too few findings left by the cut: the full question over the newest `budget` matches fills the list.
 * With nothing common, it is the plain ranking of every match. Self-contained (no imports, no closures):
 * the worker runs its source.
 */
export function rankFindings(
  st: SearchStatements,
  state: RankState,
  p: { q: string; since: string | null; limit: number; generation: number; budget: number },
): { id: string; score: number }[] {
  type Row = { id: string; score: number; lastSeen?: string };
  const plain = () => st.findings.all({ q: p.q, since: p.since, limit: p.limit }) as Row[];
  if (state.generation !== p.generation) {
    state.generation = p.generation;
    state.df.clear();
    state.n = (st.findingsCount.get() as { n: number }).n;
  }
  // Small stores: ranking everything costs less than planning.
  if (state.n <= p.budget) return plain();
  const parts = p.q.split(' OR ');
  const unknown = parts.filter((x) => !state.df.has(x));
  if (unknown.length > 0) {
    st.stemClear.run();
    unknown.forEach((x, i) => {
      st.stemAdd.run(i + 1, x.replace(/^"|"\*?$/g, '').replace(/""/g, '"'));
    });
    const tokens = new Map<number, string[]>();
    for (const r of st.stemRead.all() as { doc: number; term: string }[]) tokens.set(r.doc, [...(tokens.get(r.doc) ?? []), r.term]);
    unknown.forEach((x, i) => {
      const toks = tokens.get(i + 1) ?? [];
      const one = (t: string) => (st.vocabTerm.get(t) as { doc: number } | undefined)?.doc ?? 0;
      let df: [number, number, string?];
      if (toks.length !== 1) {
        // A phrase is in at most as many findings as its rarest word.
        df = [0, toks.length === 0 ? 0 : Math.min(...toks.map(one))];
      } else if (x.endsWith('*')) {
        const rows = st.vocabPrefix.all({ p: toks[0], end: `${toks[0]}\u{10ffff}` }) as { term: string; doc: number }[];
        const docs = rows.map((r) => r.doc);
        // A prefix the index holds only as the word itself is that word: the same documents and bm25, without
        // FTS5 merging a prefix doclist on every query.
        const exact = rows.length === 1 && rows[0]?.term === toks[0];
        df = exact ? [docs[0] as number, docs[0] as number, x.slice(0, -1)] : [Math.max(0, ...docs), docs.reduce((a, b) => a + b, 0)];
      } else {
        const d = one(toks[0] as string);
        df = [d, d];
      }
      state.df.set(x, df);
    });
  }
  const dfOf = (x: string) => state.df.get(x) as [number, number, string?];
  const cheap = (list: string[]) => list.map((x) => dfOf(x)[2] ?? x);
  let kept = parts.filter((x) => !(dfOf(x)[0] > state.n / 2 && dfOf(x)[0] > p.budget));
  if (kept.length === 0) kept = parts;
  kept.sort((a, b) => dfOf(a)[1] - dfOf(b)[1]);
  const rare: string[] = [];
  let rareDocs = 0;
  for (const x of kept) {
    if (rareDocs + dfOf(x)[1] > p.budget) break;
    rare.push(x);
    rareDocs += dfOf(x)[1];
  }
  if (rare.length === parts.length) return plain();
  const q = cheap(kept).join(' OR ');
  const byId = new Map<string, Row>();
  const windowed = (expr: string) => {
    const floor = (st.findingsFloor.get({ q: expr, window: p.budget - 1 }) as { rowid: number } | undefined)?.rowid ?? 0;
    for (const r of st.findingsFrom.all({ q: expr, since: p.since, limit: p.limit, floor }) as Row[]) if (!byId.has(r.id)) byId.set(r.id, r);
  };
  if (rare.length === kept.length) {
    for (const r of st.findings.all({ q, since: p.since, limit: p.limit }) as Row[]) byId.set(r.id, r);
  } else {
    if (rare.length > 0) {
      const r1 = cheap(rare).join(' OR ');
      const alone = new Map((st.findingsAll.all({ q: r1, since: p.since }) as Row[]).map((r) => [r.id, r.score]));
      for (const r of st.findingsAll.all({ q: `(${q}) AND (${r1})`, since: p.since }) as Row[]) {
        byId.set(r.id, { ...r, score: r.score - (alone.get(r.id) ?? 0) });
      }
    }
    // The findings holding every word: a finding missing one rarely outranks them, and bm25 gives them the same
    // score under AND as under OR (the same phrases).
    if (kept.length > 1) windowed(cheap(kept).join(' AND '));
    if (byId.size < p.limit) windowed(q);
  }
  if (byId.size < p.limit && kept.length < parts.length) windowed(cheap(parts).join(' OR '));
  const rows = [...byId.values()];
  for (const r of rows) r.lastSeen ??= (st.findingsLastSeen.get(r.id) as { lastSeen: string } | undefined)?.lastSeen ?? '';
  rows.sort((a, b) => a.score - b.score || (a.lastSeen! < b.lastSeen! ? 1 : a.lastSeen! > b.lastSeen! ? -1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return rows.slice(0, p.limit).map((r) => ({ id: r.id, score: r.score }));
}

/** What the three full-text queries return. */
export interface SearchRows {
  findings: { id: string; score: number }[];
  templates: (TemplateDbRow & { score: number })[];
  runbooks: { id: string; title: string; body: string; score: number }[];
}

/** Parameters of the full-text queries. */
export interface SearchParams {
  q: string;
  since: string | null;
  limit: number;
  /** The store's search generation: what the ranking learnt of the index (its size, word frequencies) holds until it changes. */
  generation: number;
  /** Documents one finding ranking reads at most (see rankFindings). */
  budget: number;
}

/** Prepares SEARCH_SQL (and the temporary tables it reads) on `db`. */
export function prepareSearch(db: { prepare(sql: string): unknown; exec(sql: string): unknown }): SearchStatements {
  for (const ddl of SEARCH_TEMP_DDL) db.exec(ddl);
  return Object.fromEntries(Object.entries(SEARCH_SQL).map(([k, v]) => [k, db.prepare(v)])) as SearchStatements;
}

/** Runs the three searches of `p` with statements prepared by prepareSearch. */
export function runSearch(st: SearchStatements, state: RankState, p: SearchParams): SearchRows {
  return {
    findings: rankFindings(st, state, p),
    templates: st.templates.all({ q: p.q, since: p.since, limit: p.limit }) as SearchRows['templates'],
    runbooks: st.runbooks.all({ q: p.q, limit: p.limit }) as SearchRows['runbooks'],
  };
}

// The worker's whole program. Its source is here (not a file of its own) so it is found the same way from
// dist/ and from the TypeScript sources the tests run; the functions it shares with the main thread go in as source.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.pragma('cache_size = -' + workerData.cacheKib);
db.pragma('mmap_size = 0');
const SEARCH_SQL = workerData.sql;
const SEARCH_TEMP_DDL = workerData.ddl;
const rankFindings = ${rankFindings.toString()};
const prepareSearch = ${prepareSearch.toString()};
const runSearch = ${runSearch.toString()};
const stmts = prepareSearch(db);
const state = { generation: -1, n: 0, df: new Map() };
parentPort.on('message', ({ id, params }) => {
  try {
    parentPort.postMessage({ id, rows: runSearch(stmts, state, params) });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message || err) });
  }
});
`;

/** A worker thread with a read-only connection that runs SEARCH_SQL. */
export class SearchWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (r: SearchRows) => void; reject: (e: Error) => void }>();
  private nextId = 0;

  constructor(path: string, onExit: () => void) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { path, driver: createRequire(import.meta.url).resolve('better-sqlite3'), sql: SEARCH_SQL, ddl: SEARCH_TEMP_DDL, cacheKib: CACHE_KIB },
      // A worker is a V8 isolate of its own: its heap holds only rows on their way out.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
    });
    // Idle, it must not keep the process alive.
    this.worker.unref();
    this.worker.on('message', (m: { id: number; rows?: SearchRows; error?: string }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if (m.rows) p?.resolve(m.rows);
      else p?.reject(new Error(`search failed: ${m.error}`));
    });
    const fail = (err: Error) => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      onExit();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`search worker exited with ${code}`)));
  }

  /** Searches sent and not answered yet. */
  get busy(): number {
    return this.pending.size;
  }

  run(params: SearchParams): Promise<SearchRows> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      // Busy, it keeps the process alive until it answers.
      this.worker.ref();
      this.worker.postMessage({ id, params });
    });
  }

  terminate(): void {
    void this.worker.terminate();
  }
}
