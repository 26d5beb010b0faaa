/**
 * Full-text search over findings, log templates and runbooks: the index
 * maintenance (documents noted by the triggers of migration 2 are indexed in
 * slices), the search itself on the main connection or in a worker, and the
 * runbook rows it searches.
 */
import type { TrackedFinding } from '../tracker/tracker.js';
import { Repo, type StoreDb, yieldToLoop } from './db.js';
import type { FindingRepo } from './findings.js';
import { toFtsQuery } from './fts-query.js';
import { rowToTemplate } from './templates.js';
import { prepareSearch, type RankState, runSearch, type SearchParams, type SearchRows, type SearchStatements, SearchWorker } from './search-worker.js';

/** Search documents indexed per transaction by the background maintenance. */
const FTS_BATCH = 200;
/** At most this many changed documents are indexed synchronously by a search; the rest is left to maintenance. */
const FTS_SEARCH_REFRESH_MAX = 1000;
/** Most distinct questions whose ranked rows are kept; beyond it the oldest is dropped. */
const SEARCH_CACHE_ENTRIES = 256;
/** Idle search workers are stopped after this long: their isolates and page caches are memory the node gets back. */
const WORKER_IDLE_MS = 20_000;
/**
 * Most search workers. Ranking one common word over 100,000 findings takes 50-100 ms; a second worker lets two
 * new questions rank at once instead of one waiting for the other (a node has at least two cores).
 */
const MAX_WORKERS = 2;
/**
 * Findings one ranking reads at most, whatever the question: ranking costs a few microseconds per matching
 * finding, so a word in every one of 100,000 findings cost 50-100 ms (see rankFindings).
 */
const RANK_BUDGET = 1000;

/** Options of Store.search. */
export interface SearchOptions {
  /** Only findings and templates seen at or after this RFC3339 time (runbooks are timeless). */
  since?: string;
  /** Most results of each kind. Defaults to 10 (at most 100). */
  limit?: number;
}

/** A finding that matched a search; `score` is bm25 (lower is a better match). */
export interface FindingHit {
  finding: TrackedFinding;
  score: number;
}

/** A log template that matched a search. */
export interface TemplateHit {
  /** `podLog:<ns>/<pod>/<container>` or `journald:<unit>`. */
  stream: string;
  templateId: string;
  template: string;
  /** Last example line (redacted). */
  example: string;
  isError: boolean;
  count: number;
  firstSeen: string;
  lastSeen: string;
  score: number;
}

/** A runbook that matched a search. */
export interface RunbookHit {
  id: string;
  title: string;
  body: string;
  score: number;
}

/** What Store.search returns, best match first in each list. */
export interface SearchResult {
  /** The FTS5 expression the question became; null when it held no searchable word. */
  query: string | null;
  findings: FindingHit[];
  templates: TemplateHit[];
  runbooks: RunbookHit[];
}

/** One indexed runbook (a markdown file of runbooksDir). */
export interface RunbookRecord {
  /** File name without `.md`. */
  id: string;
  /** First `# ` heading, else the id. */
  title: string;
  body: string;
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
}

const searchLimit = (opts: SearchOptions) => Math.min(Math.max(opts.limit ?? 10, 1), 100);

/** The search repository. */
export class SearchRepo extends Repo {
  private readonly findings: FindingRepo;
  private ftsStmts: ReturnType<SearchRepo['prepareFts']> | undefined;
  private indexing: Promise<number> | null = null;
  private cacheGeneration = 0;
  private readonly cache = new Map<string, Promise<SearchRows>>();
  private workers: SearchWorker[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private mainSearch: { st: SearchStatements; state: RankState } | undefined;

  constructor(s: StoreDb, findings: FindingRepo) {
    super(s);
    this.findings = findings;
  }

  /**
   * Indexes the findings and log templates that changed since the last call
   * (the triggers of migration 2 note them), at most `max` of them, in slices
   * of one transaction each. `search` calls it first, so results are current
   * whenever the backlog is small. Returns the number of documents indexed.
   */
  refreshIndex(max = Number.POSITIVE_INFINITY): number {
    let total = 0;
    while (total < max) {
      const n = this.indexSlice(Math.min(max - total, 5000));
      total += n;
      if (n === 0) break;
    }
    return total;
  }

  /** True when some document waits to be indexed. */
  private anyDirty(): boolean {
    this.ftsStmts ??= this.prepareFts();
    return this.ftsStmts.anyDirty.get() !== undefined;
  }

  /** Indexes at most `n` changed documents in one transaction; returns how many. */
  private indexSlice(n: number): number {
    this.ftsStmts ??= this.prepareFts();
    const st = this.ftsStmts;
    return this.s.tx(() => {
      st.clearBatch.run();
      const k = st.takeBatch.run(n).changes;
      if (k === 0) return 0;
      for (const step of st.steps) step.run();
      this.s.searchGeneration++;
      return k;
    })();
  }

  private prepareFts() {
    const db = this.s.db;
    // The slice being indexed: a connection-private table, so nothing of it reaches the file.
    db.exec('CREATE TEMP TABLE IF NOT EXISTS search_batch (kind TEXT NOT NULL, ref NOT NULL, PRIMARY KEY (kind, ref)) WITHOUT ROWID');
    return {
      anyDirty: db.prepare('SELECT 1 FROM search_dirty LIMIT 1').pluck(),
      clearBatch: db.prepare('DELETE FROM temp.search_batch'),
      takeBatch: db.prepare('INSERT INTO temp.search_batch (kind, ref) SELECT kind, ref FROM search_dirty LIMIT ?'),
      steps: [
        `DELETE FROM findings_fts WHERE rowid IN
          (SELECT f.rowid FROM temp.search_batch d JOIN findings f ON f.id = d.ref WHERE d.kind = 'finding')`,
        `INSERT INTO findings_fts (rowid, title, message, category, subject, diagnosis, evidence)
          SELECT f.rowid, f.title, f.message, f.category,
            CASE WHEN json_valid(f.subject) THEN concat_ws(' ', json_extract(f.subject, '$.kind'), json_extract(f.subject, '$.namespace'),
              json_extract(f.subject, '$.name'), json_extract(f.subject, '$.container')) END,
            CASE WHEN json_valid(f.diagnosis) THEN concat_ws(' ', json_extract(f.diagnosis, '$.summary'), json_extract(f.diagnosis, '$.probableCause')) END,
            (SELECT group_concat(e.text, char(10)) FROM evidence e WHERE e.finding_id = f.id)
          FROM temp.search_batch d JOIN findings f ON f.id = d.ref WHERE d.kind = 'finding'`,
        "DELETE FROM templates_fts WHERE rowid IN (SELECT ref FROM temp.search_batch WHERE kind = 'template')",
        `INSERT INTO templates_fts (rowid, template, example, stream)
          SELECT t.rowid, t.template, t.example, t.stream FROM temp.search_batch d JOIN log_templates t ON t.rowid = d.ref WHERE d.kind = 'template'`,
        'DELETE FROM search_dirty WHERE (kind, ref) IN (SELECT kind, ref FROM temp.search_batch)',
      ].map((sql) => db.prepare(sql)),
    };
  }

  /**
   * Indexes every changed document in slices of FTS_BATCH, letting the event
   * loop run between two (the daemon calls it after each detection cycle; an
   * upgraded database may start with its whole history to index). A call while
   * one runs gets that one's result. Resolves with the number indexed.
   */
  maintainIndex(): Promise<number> {
    // Most cycles change nothing searchable: a lookup instead of a transaction.
    if (!this.indexing && !this.anyDirty()) return Promise.resolve(0);
    this.indexing ??= (async () => {
      let total = 0;
      while (this.s.db.open) {
        const n = this.indexSlice(FTS_BATCH);
        total += n;
        if (n < FTS_BATCH) break;
        await yieldToLoop();
      }
      return total;
    })().finally(() => {
      this.indexing = null;
    });
    return this.indexing;
  }

  /**
   * Full-text search over findings (title, message, category, subject,
   * diagnosis summary and cause, evidence lines), log templates and runbooks,
   * best bm25 match first. Any text is a valid question: it is reduced to
   * quoted terms (fts-query.ts), so operators in it are never parsed.
   */
  search(question: string, opts: SearchOptions = {}): SearchResult {
    const query = toFtsQuery(question);
    if (query === null) return { query, findings: [], templates: [], runbooks: [] };
    // A backlog larger than this (an upgraded history) is indexed by maintainIndex in slices.
    this.refreshIndex(FTS_SEARCH_REFRESH_MAX);
    this.mainSearch ??= { st: prepareSearch(this.s.db), state: { generation: -1, n: 0, df: new Map() } };
    const { st, state } = this.mainSearch;
    return this.result(query, runSearch(st, state, this.params(query, opts)));
  }

  /**
   * `search` with the full-text queries run on a read-only connection in a
   * worker thread. The same question asked again while the index has not
   * changed reuses the ranked rows (and concurrent askers share one run); the
   * findings themselves are read afresh, so their counts and states are current.
   */
  async searchAsync(question: string, opts: SearchOptions = {}): Promise<SearchResult> {
    const query = toFtsQuery(question);
    if (query === null) return { query, findings: [], templates: [], runbooks: [] };
    this.refreshIndex(FTS_SEARCH_REFRESH_MAX);
    const params = this.params(query, opts);
    // A `since` filter reads last_seen, which changes without touching the index: such rankings last one findings generation.
    const key = JSON.stringify([query, params.limit, params.since, params.since === null ? 0 : this.s.findingsGeneration]);
    if (this.cacheGeneration !== this.s.searchGeneration) {
      this.cache.clear();
      this.cacheGeneration = this.s.searchGeneration;
    }
    let rows = this.cache.get(key);
    if (rows) {
      // Most recently used last, so the oldest is dropped first.
      this.cache.delete(key);
    } else {
      rows = this.searchWorker().run(params);
      rows.catch(() => this.cache.delete(key));
    }
    this.cache.set(key, rows);
    if (this.cache.size > SEARCH_CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
    return this.result(query, await rows);
  }

  private params(q: string, opts: SearchOptions): SearchParams {
    return { q, since: opts.since ?? null, limit: searchLimit(opts), generation: this.s.searchGeneration, budget: RANK_BUDGET };
  }

  /** An idle worker, else a new one while fewer than MAX_WORKERS run, else the least busy. */
  private searchWorker(): SearchWorker {
    let w = this.workers.find((x) => x.busy === 0);
    if (!w && this.workers.length < MAX_WORKERS) {
      const created = new SearchWorker(this.s.path, () => {
        this.workers = this.workers.filter((x) => x !== created);
      });
      this.workers.push(created);
      w = created;
    }
    w ??= this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    this.armIdleTimer();
    return w;
  }

  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => (this.workers.some((x) => x.busy > 0) ? this.armIdleTimer() : this.stopWorkers()), WORKER_IDLE_MS);
    this.idleTimer.unref();
  }

  /** Stops the workers (they start again with the next search). */
  stopWorkers(): void {
    clearTimeout(this.idleTimer);
    for (const w of this.workers) w.terminate();
    this.workers = [];
  }

  /** Rows of the three full-text queries as a SearchResult; findings read by id (one deleted since is left out). */
  private result(query: string, rows: SearchRows): SearchResult {
    const findings: FindingHit[] = [];
    for (const r of rows.findings) {
      const finding = this.findings.get(r.id);
      if (finding) findings.push({ finding, score: r.score });
    }
    return {
      query,
      findings,
      templates: rows.templates.map((r) => ({ ...rowToTemplate(r), score: r.score })),
      runbooks: rows.runbooks,
    };
  }

  /**
   * Writes runbook changes in one transaction: `upsert` rows whose content
   * differs from the stored one, `remove` ids. Returns how many rows changed.
   */
  applyRunbooks(changes: { upsert: RunbookRecord[]; remove: string[] }): { upserted: number; removed: number } {
    const upsert = this.s.db.prepare(`
      INSERT INTO runbooks (id, title, body, path, size, mtime_ms, sha256, indexed_at)
      VALUES (@id, @title, @body, @path, @size, @mtimeMs, @sha256, @indexedAt)
      ON CONFLICT(id) DO UPDATE SET title = excluded.title, body = excluded.body, path = excluded.path, size = excluded.size,
        mtime_ms = excluded.mtime_ms, sha256 = excluded.sha256, indexed_at = excluded.indexed_at
      WHERE runbooks.sha256 IS NOT excluded.sha256 OR runbooks.title IS NOT excluded.title OR runbooks.path IS NOT excluded.path`);
    const remove = this.s.db.prepare('DELETE FROM runbooks WHERE id = ?');
    return this.s.tx(() => {
      const at = new Date().toISOString();
      let upserted = 0;
      let removed = 0;
      for (const r of changes.upsert) upserted += upsert.run({ ...r, indexedAt: at }).changes;
      for (const id of changes.remove) removed += remove.run(id).changes;
      if (upserted + removed > 0) this.s.searchGeneration++;
      return { upserted, removed };
    })();
  }

  /** Stored runbooks without their bodies, by id. */
  listRunbooks(): Omit<RunbookRecord, 'body'>[] {
    return this.s.db.prepare('SELECT id, title, path, size, mtime_ms AS mtimeMs, sha256 FROM runbooks ORDER BY id').all() as Omit<RunbookRecord, 'body'>[];
  }
}
