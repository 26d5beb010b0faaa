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
 * ranking is reused.
 */
export const SEARCH_SQL = {
  findings: `SELECT fi.id, h.s AS score
    FROM (SELECT rowid AS rid, rank AS s FROM findings_fts WHERE findings_fts MATCH @q) h
    JOIN findings fi ON fi.rowid = h.rid
    WHERE @since IS NULL OR fi.last_seen >= @since
    ORDER BY h.s, fi.last_seen DESC, fi.id LIMIT @limit`,
  templates: `SELECT t.*, h.s AS score
    FROM (SELECT rowid AS rid, rank AS s FROM templates_fts WHERE templates_fts MATCH @q) h
    JOIN log_templates t ON t.rowid = h.rid
    WHERE @since IS NULL OR t.last_seen >= @since
    ORDER BY h.s, t.last_seen DESC LIMIT @limit`,
  runbooks: `SELECT r.id, r.title, r.body, h.s AS score
    FROM (SELECT rowid AS rid, rank AS s FROM runbooks_fts WHERE runbooks_fts MATCH @q ORDER BY rank LIMIT @limit) h
    JOIN runbooks r ON r.rowid = h.rid ORDER BY h.s, r.id`,
} as const;

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
}

// The worker's whole program. Its source is here (not a file of its own) so it is found the same way from
// dist/ and from the TypeScript sources the tests run.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.pragma('cache_size = -' + workerData.cacheKib);
db.pragma('mmap_size = 0');
const stmts = Object.fromEntries(Object.entries(workerData.sql).map(([k, v]) => [k, db.prepare(v)]));
parentPort.on('message', ({ id, params }) => {
  try {
    const rows = {};
    for (const [k, st] of Object.entries(stmts)) rows[k] = st.all(k === 'runbooks' ? { q: params.q, limit: params.limit } : params);
    parentPort.postMessage({ id, rows });
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
      workerData: { path, driver: createRequire(import.meta.url).resolve('better-sqlite3'), sql: SEARCH_SQL, cacheKib: CACHE_KIB },
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
