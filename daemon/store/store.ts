/**
 * The SQLite store: the only module with SQL. WAL journal, numbered migrations,
 * prepared statements, one transaction per detection cycle (findings together
 * with the read positions of the signals they came from).
 */
import { existsSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { DirError, makeDirs } from '../core/dirs.js';
import type { Category, Diagnosis, Evidence, Severity, SourceName, Subject } from '../core/types.js';
import type { TrackedFinding } from '../tracker/tracker.js';
import type { TemplateBucketRow, TemplateRow } from '../detectors/templates/stats.js';
import { toFtsQuery } from './fts-query.js';
import { MIGRATIONS } from './migrations.js';

/** Database file name inside dataDir. */
export const DB_FILE = 'nodesage.db';

/** Most evidence rows kept per finding (the newest win). */
export const MAX_EVIDENCE = 20;

/** Options of Store.open. */
export interface StoreOptions {
  /** Folder of the database file; created if missing. */
  dir: string;
  logger?: Logger;
  /** Resolved history older than this is deleted. Defaults to 30. */
  maxAgeDays?: number;
  /** Above this size the oldest history is deleted. Defaults to 256. */
  maxSizeMB?: number;
}

/** Filters of listFindings. */
export interface FindingQuery {
  status?: 'open' | 'resolved';
  severity?: Severity;
  category?: string;
  /** Only findings seen at or after this time. */
  since?: string;
  /** Page size. Defaults to 50. */
  limit?: number;
  /** Opaque cursor from the previous page's nextCursor. */
  cursor?: string;
}


/** Everything one detection cycle writes, in one transaction. */
export interface CommitBatch {
  at: string;
  findings: TrackedFinding[];
  checkpoints: { source: SourceName; key: string; value: string | null }[];
  gaps: { source: SourceName; at: string; detail: string }[];
  /** Lines consumed per stream in this cycle (added to the running totals). */
  lineCounts: Map<string, number>;
  templates?: TemplateRow[];
  templateBuckets?: TemplateBucketRow[];
  /** Templates that no longer exist (merged, evicted, stream gone): deleted with their buckets. */
  templatesRemoved?: { stream: string; templateId: string }[];
  /** Bucket rows older than this are outside every baseline: deleted. */
  templateBucketsBefore?: string;
}

/** The filters of a findings listing: every subset of them is a query shape with its own index (migration 4). */
export const LISTING_FILTERS = ['status', 'severity', 'category', 'since', 'cursor'] as const;

/**
 * The WAL is truncated back to this size once checkpointed (`journal_size_limit`), and a commit that finds it
 * larger tries a truncating checkpoint.
 */
const WAL_LIMIT_BYTES = 4 * 1024 * 1024;

/** Evidence of this many findings is read with one statement. */
const EVIDENCE_BATCH = 500;
/** Findings deleted per retention transaction; the event loop runs between two. */
const PRUNE_BATCH = 200;
/** Search documents indexed per transaction by the background maintenance. */
const FTS_BATCH = 200;
/** At most this many changed documents are indexed synchronously by a search; the rest is left to maintenance. */
const FTS_SEARCH_REFRESH_MAX = 1000;

/** Lets timers and I/O run between two slices of store work. */
const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

function decodeCursor(cursor: string): [string, string] {
  let c: unknown;
  try {
    c = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new CursorError('cursor is not one this server issued');
  }
  if (!Array.isArray(c) || c.length !== 2 || typeof c[0] !== 'string' || typeof c[1] !== 'string') {
    throw new CursorError('cursor is not one this server issued');
  }
  return [c[0], c[1]];
}

/**
 * The SQL of a findings page for a query: the listing shape is the set of
 * filters present, and the statement text depends on nothing else, so each
 * shape is prepared once and has one plan (checked by test/history-scale.test.ts).
 */
function listingQuery(q: FindingQuery): { sql: string; params: unknown[]; limit: number } {
  const where: string[] = [];
  const params: unknown[] = [];
  for (const k of LISTING_FILTERS) {
    if (q[k] === undefined || q[k] === '') continue;
    where.push(LISTING_TERMS[k].sql);
    params.push(...LISTING_TERMS[k].params(q));
  }
  const limit = Math.min(Math.max(q.limit ?? 50, 1), 500);
  const sql = `SELECT * FROM findings ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY last_seen DESC, id DESC LIMIT ?`;
  return { sql, params: [...params, limit + 1], limit };
}

/** The WHERE term of each listing filter and its parameters. */
const LISTING_TERMS: Record<(typeof LISTING_FILTERS)[number], { sql: string; params: (q: FindingQuery) => unknown[] }> = {
  status: { sql: 'status = ?', params: (q) => [q.status] },
  severity: { sql: 'severity = ?', params: (q) => [q.severity] },
  category: { sql: 'category = ?', params: (q) => [q.category] },
  since: { sql: 'last_seen >= ?', params: (q) => [q.since] },
  // A row value, so the index range starts at the cursor (an OR of two terms would not).
  cursor: { sql: '(last_seen, id) < (?, ?)', params: (q) => decodeCursor(q.cursor as string) },
};

// Retention deletes: the oldest resolved findings first, a LIMIT at a time (index findings_status_seen).
const PRUNE_AGE_SQL =
  "DELETE FROM findings WHERE rowid IN (SELECT rowid FROM findings WHERE status = 'resolved' AND last_seen < ? ORDER BY last_seen LIMIT ?)";
const PRUNE_OLDEST_SQL = "DELETE FROM findings WHERE rowid IN (SELECT rowid FROM findings WHERE status = 'resolved' ORDER BY last_seen LIMIT ?)";

// The full-text queries of a search: run on the main connection (search) or in the worker (searchAsync).
const SEARCH_SQL = {
  findings: `SELECT fi.*, h.s AS score
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

const searchLimit = (opts: SearchOptions) => Math.min(Math.max(opts.limit ?? 10, 1), 100);

/** A log_templates row. */
interface TemplateDbRow {
  stream: string;
  template_id: string;
  template: string;
  is_error: number;
  first_seen: string;
  last_seen: string;
  count: number;
  example: string | null;
}

interface SearchRows {
  findings: (FindingRow & { score: number })[];
  templates: (TemplateDbRow & { score: number })[];
  runbooks: { id: string; title: string; body: string; score: number }[];
}

// The worker's whole program: a read-only connection that runs SEARCH_SQL. Its
// source is here (not a file of its own) so it is found the same way from
// dist/ and from the TypeScript sources the tests run.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
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

/** A worker thread with a read-only connection that runs the full-text queries. */
class SearchWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (r: SearchRows) => void; reject: (e: Error) => void }>();
  private nextId = 0;

  constructor(path: string, onExit: () => void) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { path, driver: createRequire(import.meta.url).resolve('better-sqlite3'), sql: SEARCH_SQL },
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

  run(params: { q: string; since: string | null; limit: number }): Promise<SearchRows> {
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

/** Raised for a bad pagination cursor. */
export class CursorError extends Error {
  readonly code = 'BAD_CURSOR';
  override readonly name = 'CursorError';
}

interface FindingRow {
  id: string;
  category: string;
  severity: string;
  subject: string;
  title: string;
  message: string;
  detail: string | null;
  detector: string;
  lifecycle: string;
  first_seen: string;
  last_seen: string;
  count: number;
  status: string;
  resolved_at: string | null;
  causes: string;
  root_cause: number;
  facts: string | null;
  diagnosis: string | null;
}

function isCorruptionError(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT');
}

/** The SQLite store. */
export class Store {
  readonly path: string;
  /** Where a corrupt database was moved at start, or null. */
  readonly recoveredFrom: string | null;
  private readonly db: Database.Database;
  private readonly maxAgeDays: number;
  private readonly maxSizeMB: number;
  private readonly stmts: ReturnType<Store['prepare']>;
  private readonly commitTx: (batches: CommitBatch[]) => void;
  private readonly listingStmts = new Map<string, Database.Statement>();
  private pruning: Promise<{ deleted: number }> | null = null;
  private indexing: Promise<number> | null = null;

  private constructor(path: string, db: Database.Database, recoveredFrom: string | null, opts: StoreOptions) {
    this.path = path;
    this.db = db;
    this.recoveredFrom = recoveredFrom;
    this.maxAgeDays = opts.maxAgeDays ?? 30;
    this.maxSizeMB = opts.maxSizeMB ?? 256;
    this.stmts = this.prepare();
    this.commitTx = db.transaction((batches: CommitBatch[]) => {
      for (const b of batches) this.applyBatch(b);
    });
  }

  /**
   * Opens (or creates) the database. A database that fails `PRAGMA quick_check`
   * or cannot be opened is moved aside with a timestamp and a fresh one created.
   */
  static open(opts: StoreOptions): Store {
    try {
      makeDirs(opts.dir);
    } catch (err) {
      throw new DirError(`the data folder cannot be used: ${(err as Error).message}`);
    }
    const path = join(opts.dir, DB_FILE);
    let recoveredFrom: string | null = null;
    let db: Database.Database;
    try {
      db = Store.openChecked(path);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CANTOPEN' || (err as { code?: string }).code === 'SQLITE_READONLY') {
        throw new DirError(`the database ${path} cannot be opened for writing (${(err as { code?: string }).code}): check the folder's permissions`);
      }
      if (!isCorruptionError(err) && !(err instanceof CorruptDatabaseError)) throw err;
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      recoveredFrom = `${path}.corrupt-${stamp}`;
      renameSync(path, recoveredFrom);
      for (const suffix of ['-wal', '-shm']) {
        if (existsSync(path + suffix)) renameSync(path + suffix, recoveredFrom + suffix);
      }
      opts.logger?.error({ err, movedTo: recoveredFrom }, 'database was corrupt; moved it aside and started a fresh one');
      db = Store.openChecked(path);
    }
    return new Store(path, db, recoveredFrom, opts);
  }

  private static openChecked(path: string): Database.Database {
    const db = new Database(path);
    try {
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new CorruptDatabaseError(String(check));
      if (db.pragma('user_version', { simple: true }) === 0) db.pragma('auto_vacuum = INCREMENTAL');
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode loses at most the last transactions on power loss, never consistency.
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      // Without it a WAL that grew while a reader held it (a long search, sqlite3 or a backup on the node) keeps
      // its largest size on disk after the checkpoint.
      db.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
      Store.migrate(db);
      return db;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private static migrate(db: Database.Database): void {
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new Error(`database schema version ${current} is newer than this nodesage (${MIGRATIONS.length}); refusing to downgrade`);
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v]!);
        db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  private prepare() {
    const db = this.db;
    return {
      upsertFinding: db.prepare(`
        INSERT INTO findings (id, category, severity, subject, title, message, detail, detector, lifecycle,
          first_seen, last_seen, count, status, resolved_at, causes, root_cause, facts, diagnosis, updated_at)
        VALUES (@id, @category, @severity, @subject, @title, @message, @detail, @detector, @lifecycle,
          @first_seen, @last_seen, @count, @status, @resolved_at, @causes, @root_cause, @facts, NULL, @updated_at)
        ON CONFLICT(id) DO UPDATE SET severity=excluded.severity, title=excluded.title, message=excluded.message,
          last_seen=excluded.last_seen, count=excluded.count, status=excluded.status, resolved_at=excluded.resolved_at,
          causes=excluded.causes, root_cause=excluded.root_cause, facts=excluded.facts, updated_at=excluded.updated_at`),
      deleteEvidence: db.prepare('DELETE FROM evidence WHERE finding_id = ?'),
      insertEvidence: db.prepare('INSERT INTO evidence (finding_id, seq, source, at, text) VALUES (?, ?, ?, ?, ?)'),
      evidenceOf: db.prepare('SELECT source, at, text FROM evidence WHERE finding_id = ? ORDER BY seq'),
      // A page's evidence in one read: the ids go in as one JSON array.
      evidenceOfMany: db.prepare('SELECT finding_id, seq, source, at, text FROM evidence WHERE finding_id IN (SELECT value FROM json_each(?))'),
      pruneByAge: db.prepare(PRUNE_AGE_SQL),
      pruneOldest: db.prepare(PRUNE_OLDEST_SQL),
      countResolved: db.prepare("SELECT count(*) AS n FROM findings WHERE status = 'resolved'"),
      // Kept by the triggers of migration 4.
      openCounts: db.prepare("SELECT category, severity, n FROM finding_counts WHERE status = 'open' AND n > 0"),
      getFinding: db.prepare('SELECT * FROM findings WHERE id = ?'),
      openFindings: db.prepare("SELECT * FROM findings WHERE status = 'open'"),
      setDiagnosis: db.prepare('UPDATE findings SET diagnosis = ?, updated_at = ? WHERE id = ?'),
      upsertCheckpoint: db.prepare(
        'INSERT INTO checkpoints (source, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(source, key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at',
      ),
      deleteCheckpoint: db.prepare('DELETE FROM checkpoints WHERE source = ? AND key = ?'),
      getCheckpoint: db.prepare('SELECT value FROM checkpoints WHERE source = ? AND key = ?'),
      listCheckpoints: db.prepare('SELECT key, value FROM checkpoints WHERE source = ?'),
      insertGap: db.prepare('INSERT INTO gaps (source, at, detail) VALUES (?, ?, ?)'),
      addLines: db.prepare(
        'INSERT INTO log_counters (stream, lines, updated_at) VALUES (?, ?, ?) ON CONFLICT(stream) DO UPDATE SET lines = lines + excluded.lines, updated_at = excluded.updated_at',
      ),
      upsertTemplate: db.prepare(`
        INSERT INTO log_templates (stream, template_id, template, is_error, first_seen, last_seen, count, example)
        VALUES (@stream, @templateId, @template, @isError, @firstSeen, @lastSeen, @count, @example)
        ON CONFLICT(stream, template_id) DO UPDATE SET template=excluded.template, is_error=excluded.is_error,
          last_seen=excluded.last_seen, count=excluded.count, example=excluded.example`),
      upsertBucket: db.prepare(
        'INSERT INTO template_buckets (stream, template_id, bucket_start, count) VALUES (?, ?, ?, ?) ON CONFLICT(stream, template_id, bucket_start) DO UPDATE SET count = excluded.count',
      ),
      deleteTemplate: db.prepare('DELETE FROM log_templates WHERE stream = ? AND template_id = ?'),
      deleteTemplateBuckets: db.prepare('DELETE FROM template_buckets WHERE stream = ? AND template_id = ?'),
      pruneBuckets: db.prepare('DELETE FROM template_buckets WHERE bucket_start < ?'),
      cacheGet: db.prepare('SELECT diagnosis FROM diagnosis_cache WHERE key = ?'),
      cachePut: db.prepare('INSERT OR REPLACE INTO diagnosis_cache (key, diagnosis, created_at) VALUES (?, ?, ?)'),
      upsertSample: db.prepare(`
        INSERT INTO metric_samples (name, labels, resolution, bucket_start, value_sum, value_max, n) VALUES (?, ?, ?, ?, ?, ?, 1)
        ON CONFLICT(name, labels, resolution, bucket_start) DO UPDATE SET value_sum = value_sum + excluded.value_sum,
          value_max = max(value_max, excluded.value_max), n = n + 1`),
    };
  }

  private applyBatch(b: CommitBatch): void {
    const s = this.stmts;
    for (const f of b.findings) {
      s.upsertFinding.run({
        id: f.id,
        category: f.category,
        severity: f.severity,
        subject: JSON.stringify(f.subject),
        title: f.title,
        message: f.message,
        detail: f.detail ?? null,
        detector: f.detector,
        lifecycle: f.lifecycle,
        first_seen: f.firstSeen,
        last_seen: f.lastSeen,
        count: f.count,
        status: f.status,
        resolved_at: f.resolvedAt ?? null,
        causes: JSON.stringify(f.causes ?? []),
        root_cause: f.rootCause === false ? 0 : 1,
        facts: f.facts ? JSON.stringify(f.facts) : null,
        updated_at: b.at,
      });
      s.deleteEvidence.run(f.id);
      for (const [i, e] of f.evidence.slice(-MAX_EVIDENCE).entries()) s.insertEvidence.run(f.id, i, e.source, e.at, e.text);
    }
    for (const c of b.checkpoints) {
      if (c.value === null) s.deleteCheckpoint.run(c.source, c.key);
      else s.upsertCheckpoint.run(c.source, c.key, c.value, b.at);
    }
    for (const g of b.gaps) s.insertGap.run(g.source, g.at, g.detail);
    for (const [stream, n] of b.lineCounts) if (n > 0) s.addLines.run(stream, n, b.at);
    for (const t of b.templates ?? []) {
      s.upsertTemplate.run({ ...t, isError: t.isError ? 1 : 0, example: t.example });
    }
    for (const t of b.templateBuckets ?? []) s.upsertBucket.run(t.stream, t.templateId, t.bucketStart, t.count);
    for (const r of b.templatesRemoved ?? []) {
      s.deleteTemplate.run(r.stream, r.templateId);
      s.deleteTemplateBuckets.run(r.stream, r.templateId);
    }
    if (b.templateBucketsBefore) s.pruneBuckets.run(b.templateBucketsBefore);
  }

  /**
   * Writes detection cycles atomically, in order: several when earlier ones could
   * not be written (disk full) and are retried together with the current one.
   */
  commit(...batches: CommitBatch[]): void {
    this.commitTx(batches);
    // The automatic checkpoint cannot pass a reader's snapshot; once the reader is gone this brings the WAL back.
    if (this.walBytes() > WAL_LIMIT_BYTES) this.checkpoint();
  }

  private walBytes(): number {
    const wal = `${this.path}-wal`;
    return existsSync(wal) ? statSync(wal).size : 0;
  }

  /**
   * Copies the WAL into the database file and truncates it, without waiting for readers: one holding an older
   * snapshot would otherwise stall the event loop for the whole busy timeout. What it cannot copy yet stays in
   * the WAL for the next attempt. Returns whether the WAL was emptied.
   */
  private checkpoint(): boolean {
    this.db.pragma('busy_timeout = 0');
    try {
      const [r] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
      return r?.busy === 0;
    } finally {
      this.db.pragma('busy_timeout = 5000');
    }
  }

  /** Evidence of many findings, each list in seq order, with one statement per EVIDENCE_BATCH ids. */
  private evidenceFor(ids: string[]): Map<string, Evidence[]> {
    const out = new Map<string, (Evidence & { seq: number })[]>();
    for (let i = 0; i < ids.length; i += EVIDENCE_BATCH) {
      const rows = this.stmts.evidenceOfMany.all(JSON.stringify(ids.slice(i, i + EVIDENCE_BATCH))) as {
        finding_id: string;
        seq: number;
        source: Evidence['source'];
        at: string;
        text: string;
      }[];
      for (const r of rows) {
        let list = out.get(r.finding_id);
        if (!list) {
          list = [];
          out.set(r.finding_id, list);
        }
        list.push({ seq: r.seq, source: r.source, at: r.at, text: r.text });
      }
    }
    const result = new Map<string, Evidence[]>();
    for (const [id, list] of out) result.set(id, list.sort((a, b) => a.seq - b.seq).map(({ source, at, text }) => ({ source, at, text })));
    return result;
  }

  /** Findings of rows, their evidence read together. */
  private rowsToFindings(rows: FindingRow[]): TrackedFinding[] {
    const evidence = this.evidenceFor(rows.map((r) => r.id));
    return rows.map((r) => this.rowToFinding(r, evidence.get(r.id) ?? []));
  }

  private rowToFinding(r: FindingRow, evidence: Evidence[]): TrackedFinding {
    const f: TrackedFinding = {
      id: r.id,
      category: r.category as Category,
      severity: r.severity as Severity,
      subject: JSON.parse(r.subject) as Subject,
      title: r.title,
      message: r.message,
      evidence,
      firstSeen: r.first_seen,
      lastSeen: r.last_seen,
      count: r.count,
      status: r.status as 'open' | 'resolved',
      resolvedAt: r.resolved_at,
      causes: JSON.parse(r.causes) as string[],
      rootCause: r.root_cause === 1,
      diagnosis: r.diagnosis ? (JSON.parse(r.diagnosis) as Diagnosis) : null,
      detector: r.detector,
      lifecycle: r.lifecycle as 'condition' | 'event',
    };
    if (r.detail !== null) f.detail = r.detail;
    if (r.facts) f.facts = JSON.parse(r.facts) as TrackedFinding['facts'];
    return f;
  }

  /** Open findings, for the tracker at start. */
  loadOpenFindings(): TrackedFinding[] {
    return this.rowsToFindings(this.stmts.openFindings.all() as FindingRow[]);
  }

  /** One finding by id. */
  getFinding(id: string): TrackedFinding | undefined {
    const r = this.stmts.getFinding.get(id) as FindingRow | undefined;
    return r ? this.rowToFinding(r, this.stmts.evidenceOf.all(r.id) as Evidence[]) : undefined;
  }

  /** A page of findings, newest first. */
  listFindings(q: FindingQuery = {}): { items: TrackedFinding[]; nextCursor: string | null } {
    const { sql, params, limit } = listingQuery(q);
    const rows = this.listingStatement(sql).all(...params) as FindingRow[];
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    const nextCursor = rows.length > limit && last ? Buffer.from(JSON.stringify([last.last_seen, last.id])).toString('base64url') : null;
    return { items: this.rowsToFindings(page), nextCursor };
  }

  private listingStatement(sql: string): Database.Statement {
    let st = this.listingStmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.listingStmts.set(sql, st);
    }
    return st;
  }

  /**
   * The query plan (`EXPLAIN QUERY PLAN` detail lines) of the listing for a
   * query, and of every other statement a read route or the retention runs
   * per page or per scrape, by name.
   */
  queryPlans(q: FindingQuery): { listing: string[]; [name: string]: string[] } {
    const plan = (sql: string, params: unknown[]) =>
      (this.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail);
    const { sql, params } = listingQuery(q);
    return {
      listing: plan(sql, params),
      evidenceOfPage: plan(this.stmts.evidenceOfMany.source, ['["a"]']),
      getFinding: plan(this.stmts.getFinding.source, ['a']),
      openCounts: plan(this.stmts.openCounts.source, []),
      pruneByAge: plan(PRUNE_AGE_SQL, ['2026-01-01', 1]),
      pruneOldest: plan(PRUNE_OLDEST_SQL, [1]),
    };
  }

  /** Counts of open findings by category and severity (for /metrics). */
  openCounts(): { category: string; severity: string; n: number }[] {
    return this.stmts.openCounts.all() as { category: string; severity: string; n: number }[];
  }

  /** Stores a diagnosis on its finding. */
  setDiagnosis(id: string, d: Diagnosis): void {
    this.stmts.setDiagnosis.run(JSON.stringify(d), new Date().toISOString(), id);
  }

  /** A cached diagnosis by key, or undefined. */
  cacheGet(key: string): Diagnosis | undefined {
    const r = this.stmts.cacheGet.get(key) as { diagnosis: string } | undefined;
    return r ? (JSON.parse(r.diagnosis) as Diagnosis) : undefined;
  }

  /** Caches a diagnosis by key. */
  cachePut(key: string, d: Diagnosis): void {
    this.stmts.cachePut.run(key, JSON.stringify(d), new Date().toISOString());
  }

  /** A committed checkpoint. */
  getCheckpoint(source: SourceName, key: string): string | undefined {
    return (this.stmts.getCheckpoint.get(source, key) as { value: string } | undefined)?.value;
  }

  /** Every committed checkpoint of a source. */
  listCheckpoints(source: SourceName): Map<string, string> {
    const rows = this.stmts.listCheckpoints.all(source) as { key: string; value: string }[];
    return new Map(rows.map((r) => [r.key, r.value]));
  }

  /** Lines consumed so far per stream. */
  lineCounts(): Map<string, number> {
    const rows = this.db.prepare('SELECT stream, lines FROM log_counters').all() as { stream: string; lines: number }[];
    return new Map(rows.map((r) => [r.stream, r.lines]));
  }

  /** Recorded gaps, newest first. */
  listGaps(limit = 100): { source: string; at: string; detail: string }[] {
    return this.db.prepare('SELECT source, at, detail FROM gaps ORDER BY id DESC LIMIT ?').all(limit) as {
      source: string;
      at: string;
      detail: string;
    }[];
  }

  /** Template rows (to restore the miner's baselines at start). */
  listTemplates(): TemplateRow[] {
    const rows = this.db.prepare('SELECT * FROM log_templates').all() as TemplateDbRow[];
    return rows.map((r) => {
      return {
        stream: r.stream,
        templateId: r.template_id,
        template: r.template,
        isError: r.is_error === 1,
        firstSeen: r.first_seen,
        lastSeen: r.last_seen,
        count: r.count,
        example: r.example ?? '',
      };
    });
  }

  /** Template bucket rows since a time. */
  listTemplateBuckets(since: string): TemplateBucketRow[] {
    const rows = this.db
      .prepare('SELECT stream, template_id, bucket_start, count FROM template_buckets WHERE bucket_start >= ?')
      .all(since) as { stream: string; template_id: string; bucket_start: string; count: number }[];
    return rows.map((r) => ({ stream: r.stream, templateId: r.template_id, bucketStart: r.bucket_start, count: r.count }));
  }

  /**
   * Adds a metric sample to its 1-minute and 15-minute buckets (mean and max
   * kept); retention keeps 1-minute buckets for 24 h and 15-minute ones longer.
   */
  addSamples(atMs: number, samples: { name: string; labels?: string; value: number }[]): void {
    const tx = this.db.transaction(() => {
      for (const s of samples) {
        if (!Number.isFinite(s.value)) continue;
        for (const res of [60, 900]) {
          const bucket = Math.floor(atMs / 1000 / res) * res;
          this.stmts.upsertSample.run(s.name, s.labels ?? '', res, bucket, s.value, s.value);
        }
      }
    });
    tx();
  }

  /** Downsampled series: mean per bucket. */
  listSamples(name: string, resolution: 60 | 900, sinceMs: number): { at: string; mean: number; max: number }[] {
    const rows = this.db
      .prepare(
        'SELECT bucket_start, value_sum / n AS mean, value_max FROM metric_samples WHERE name = ? AND resolution = ? AND bucket_start >= ? ORDER BY bucket_start',
      )
      .all(name, resolution, Math.floor(sinceMs / 1000)) as { bucket_start: number; mean: number; value_max: number }[];
    return rows.map((r) => ({ at: new Date(r.bucket_start * 1000).toISOString(), mean: r.mean, max: r.value_max }));
  }

  /**
   * Every series of a metric since a time, one per label value (a mount for
   * `fs_used_percent`), oldest bucket first.
   */
  listSampleSeries(name: string, resolution: 60 | 900, sinceMs: number): { labels: string; points: { at: string; mean: number; max: number }[] }[] {
    const rows = this.db
      .prepare(
        'SELECT labels, bucket_start, value_sum / n AS mean, value_max FROM metric_samples WHERE name = ? AND resolution = ? AND bucket_start >= ? ORDER BY labels, bucket_start',
      )
      .all(name, resolution, Math.floor(sinceMs / 1000)) as { labels: string; bucket_start: number; mean: number; value_max: number }[];
    const series = new Map<string, { at: string; mean: number; max: number }[]>();
    for (const r of rows) {
      const list = series.get(r.labels) ?? [];
      list.push({ at: new Date(r.bucket_start * 1000).toISOString(), mean: r.mean, max: r.value_max });
      series.set(r.labels, list);
    }
    return [...series].map(([labels, points]) => ({ labels, points }));
  }

  /** Timeline events (opened, resolved, reopened, diagnosed) since a time, newest first, with their finding's headline. */
  listTimeline(q: { since?: string; limit?: number } = {}): TimelineEvent[] {
    const limit = Math.min(Math.max(q.limit ?? 200, 1), 1000);
    const rows = this.db
      .prepare(
        `SELECT e.at, e.kind, e.detail, f.id, f.category, f.severity, f.subject, f.title, f.status
        FROM finding_events e JOIN findings f ON f.id = e.finding_id
        WHERE e.at >= @since ORDER BY e.at DESC, e.id DESC LIMIT @limit`,
      )
      .all({ since: q.since ?? '', limit }) as {
      at: string;
      kind: TimelineEvent['kind'];
      detail: string | null;
      id: string;
      category: string;
      severity: string;
      subject: string;
      title: string;
      status: string;
    }[];
    return rows.map((r) => ({
      at: r.at,
      kind: r.kind,
      detail: r.detail,
      finding: {
        id: r.id,
        category: r.category as Category,
        severity: r.severity as Severity,
        subject: JSON.parse(r.subject) as Subject,
        title: r.title,
        status: r.status as 'open' | 'resolved',
      },
    }));
  }

  /** Stores a person's verdict on a finding's diagnosis with the finding as judged; returns the row id. */
  addFeedback(f: { findingId: string; at: string; helpful: boolean; note: string | null; finding: unknown }): number {
    return Number(
      this.db
        .prepare('INSERT INTO feedback (finding_id, at, helpful, note, finding) VALUES (?, ?, ?, ?, ?)')
        .run(f.findingId, f.at, f.helpful ? 1 : 0, f.note, JSON.stringify(f.finding)).lastInsertRowid,
    );
  }

  /** Every feedback row, oldest first (iterated, so a large export never sits in memory at once). */
  *iterateFeedback(): Generator<FeedbackRecord> {
    const it = this.db.prepare('SELECT id, finding_id, at, helpful, note, finding FROM feedback ORDER BY id').iterate() as IterableIterator<{
      id: number;
      finding_id: string;
      at: string;
      helpful: number;
      note: string | null;
      finding: string;
    }>;
    for (const r of it) yield { id: r.id, findingId: r.finding_id, at: r.at, helpful: r.helpful === 1, note: r.note, finding: JSON.parse(r.finding) as unknown };
  }

  /** Database size on disk (main file + WAL). */
  sizeBytes(): number {
    let n = 0;
    for (const p of [this.path, `${this.path}-wal`]) if (existsSync(p)) n += statSync(p).size;
    return n;
  }

  /**
   * Retention: deletes resolved findings, samples, template buckets and gaps
   * older than maxAgeDays (1-minute samples after 24 h); then, while the file is
   * over maxSizeMB, the oldest resolved findings and history in slices.
   * Findings go PRUNE_BATCH per transaction with the event loop running in
   * between (a finding's delete also deletes its evidence and index entries),
   * so a large backlog never stalls detection or the API. A call while one
   * runs gets that one's result.
   */
  prune(now = Date.now()): Promise<{ deleted: number }> {
    this.pruning ??= this.pruneSlices(now).finally(() => {
      this.pruning = null;
    });
    return this.pruning;
  }

  /** Runs a delete statement taking a LIMIT as its last parameter until it deletes less than a slice. */
  private async deleteInSlices(st: Database.Statement, params: unknown[], max = Number.POSITIVE_INFINITY): Promise<number> {
    let deleted = 0;
    while (deleted < max && this.db.open) {
      const n = st.run(...params, Math.min(PRUNE_BATCH, max - deleted)).changes;
      deleted += n;
      // Deleted findings leave the index by trigger, without a refresh: cached searches are stale.
      if (n > 0) this.searchGeneration++;
      if (n < PRUNE_BATCH) break;
      await yieldToLoop();
    }
    return deleted;
  }

  private async pruneSlices(now: number): Promise<{ deleted: number }> {
    const cutoff = new Date(now - this.maxAgeDays * 86_400_000).toISOString();
    let deleted = await this.deleteInSlices(this.stmts.pruneByAge, [cutoff]);
    if (!this.db.open) return { deleted };
    const tx = this.db.transaction(() => {
      deleted += this.db.prepare('DELETE FROM metric_samples WHERE resolution = 60 AND bucket_start < ?').run(Math.floor(now / 1000) - 86_400).changes;
      deleted += this.db.prepare('DELETE FROM metric_samples WHERE bucket_start < ?').run(Math.floor(Date.parse(cutoff) / 1000)).changes;
      deleted += this.db.prepare('DELETE FROM template_buckets WHERE bucket_start < ?').run(cutoff).changes;
      deleted += this.db.prepare('DELETE FROM gaps WHERE at < ?').run(cutoff).changes;
      deleted += this.db.prepare('DELETE FROM diagnosis_cache WHERE created_at < ?').run(cutoff).changes;
    });
    tx();
    const limit = this.maxSizeMB * 1024 * 1024;
    for (let round = 0; round < 20 && this.db.open && this.sizeBytes() > limit; round++) {
      this.checkpoint();
      this.db.pragma('incremental_vacuum');
      if (this.sizeBytes() <= limit) break;
      // A fifth of the resolved history per round: enough to converge fast, little enough to keep most of it.
      const resolvedCount = (this.stmts.countResolved.get() as { n: number }).n;
      let n = await this.deleteInSlices(this.stmts.pruneOldest, [], Math.max(20, Math.ceil(resolvedCount / 5)));
      if (!this.db.open) return { deleted: deleted + n };
      const slice = this.db.transaction(() => {
        let k = 0;
        k += this.db.prepare('DELETE FROM metric_samples WHERE rowid IN (SELECT rowid FROM metric_samples ORDER BY bucket_start LIMIT 5000)').run().changes;
        k += this.db.prepare('DELETE FROM template_buckets WHERE rowid IN (SELECT rowid FROM template_buckets ORDER BY bucket_start LIMIT 5000)').run().changes;
        k += this.db.prepare('DELETE FROM diagnosis_cache WHERE rowid IN (SELECT rowid FROM diagnosis_cache ORDER BY created_at LIMIT 500)').run().changes;
        return k;
      });
      n += slice();
      deleted += n;
      if (n === 0) break;
      await yieldToLoop();
    }
    if (!this.db.open) return { deleted };
    this.db.pragma('incremental_vacuum');
    this.checkpoint();
    return { deleted };
  }

  /**
   * Applies `redact` to text stored under other redaction rules (a database
   * written by an earlier version): log templates and their samples, and
   * findings' titles, messages, facts, evidence and diagnoses. Changed rows are
   * rewritten with `secure_delete` on, the search index is brought up to date
   * and merged, and the WAL truncated, so the old text leaves the files too.
   * Runs only when `version` (of the rules) differs from the one recorded by
   * the previous run. Returns the rows changed.
   */
  redactStored(redact: (text: string) => string, version: string): { templates: number; findings: number; evidence: number } {
    const db = this.db;
    const changed = { templates: 0, findings: 0, evidence: 0 };
    const marker = db.prepare("SELECT value FROM checkpoints WHERE source = 'redaction' AND key = 'rules'").get() as { value: string } | undefined;
    if (marker?.value === version) return changed;
    // Every string inside a JSON column (facts, diagnosis).
    const redactJsonText = (json: string | null): string | null =>
      json === null ? null : JSON.stringify(JSON.parse(json, (_k, v: unknown) => (typeof v === 'string' ? redact(v) : v)));
    db.pragma('secure_delete = ON');
    try {
      db.transaction(() => {
        // Pages by rowid: a long history is never held in memory at once.
        const pages = function* <R extends { rowid: number }>(sql: string): Generator<R> {
          const page = db.prepare(`${sql} WHERE rowid > ? ORDER BY rowid LIMIT 2000`);
          for (let after = 0, rows = page.all(after) as R[]; rows.length > 0; after = rows[rows.length - 1]!.rowid, rows = page.all(after) as R[]) yield* rows;
        };
        const updateTemplate = db.prepare('UPDATE log_templates SET template = ?, example = ? WHERE rowid = ?');
        for (const r of pages<{ rowid: number; template: string; example: string | null }>('SELECT rowid, template, example FROM log_templates')) {
          const template = redact(r.template);
          const example = r.example === null ? null : redact(r.example);
          if (template === r.template && example === r.example) continue;
          updateTemplate.run(template, example, r.rowid);
          changed.templates++;
        }
        const updateFinding = db.prepare('UPDATE findings SET title = ?, message = ?, facts = ?, diagnosis = ? WHERE id = ?');
        type FindingText = { rowid: number; id: string; title: string; message: string; facts: string | null; diagnosis: string | null };
        for (const r of pages<FindingText>('SELECT rowid, id, title, message, facts, diagnosis FROM findings')) {
          const next = [redact(r.title), redact(r.message), redactJsonText(r.facts), redactJsonText(r.diagnosis)] as const;
          if (next[0] === r.title && next[1] === r.message && next[2] === r.facts && next[3] === r.diagnosis) continue;
          updateFinding.run(...next, r.id);
          changed.findings++;
        }
        const updateEvidence = db.prepare('UPDATE evidence SET text = ? WHERE rowid = ?');
        for (const r of pages<{ rowid: number; text: string }>('SELECT rowid, text FROM evidence')) {
          const text = redact(r.text);
          if (text === r.text) continue;
          updateEvidence.run(text, r.rowid);
          changed.evidence++;
        }
        db.prepare("INSERT INTO checkpoints (source, key, value, updated_at) VALUES ('redaction', 'rules', ?, ?) ON CONFLICT(source, key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at").run(
          version,
          new Date().toISOString(),
        );
      })();
      if (changed.templates + changed.findings + changed.evidence > 0) {
        this.refreshSearchIndex();
        // Merging the index's segments drops the deleted documents' words, which secure_delete then overwrites.
        db.exec("INSERT INTO templates_fts(templates_fts) VALUES ('optimize'); INSERT INTO findings_fts(findings_fts) VALUES ('optimize');");
        db.pragma('wal_checkpoint(TRUNCATE)');
      }
    } finally {
      db.pragma('secure_delete = OFF');
    }
    return changed;
  }

  /**
   * Indexes the findings and log templates that changed since the last call
   * (the triggers of migration 2 note them), at most `max` of them, in slices
   * of one transaction each. `search` calls it first, so results are current
   * whenever the backlog is small. Returns the number of documents indexed.
   */
  refreshSearchIndex(max = Number.POSITIVE_INFINITY): number {
    let total = 0;
    while (total < max) {
      const n = this.indexSlice(Math.min(max - total, 5000));
      total += n;
      if (n === 0) break;
    }
    return total;
  }

  /** Indexes at most `n` changed documents in one transaction; returns how many. */
  private indexSlice(n: number): number {
    this.ftsStmts ??= this.prepareFts();
    const st = this.ftsStmts;
    return this.db.transaction(() => {
      st.clearBatch.run();
      const k = st.takeBatch.run(n).changes;
      if (k === 0) return 0;
      for (const step of st.steps) step.run();
      this.searchGeneration++;
      return k;
    })();
  }

  private ftsStmts: ReturnType<Store['prepareFts']> | undefined;

  private prepareFts() {
    const db = this.db;
    // The slice being indexed: a connection-private table, so nothing of it reaches the file.
    db.exec('CREATE TEMP TABLE IF NOT EXISTS search_batch (kind TEXT NOT NULL, ref NOT NULL, PRIMARY KEY (kind, ref)) WITHOUT ROWID');
    return {
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
  maintainSearchIndex(): Promise<number> {
    this.indexing ??= (async () => {
      let total = 0;
      while (this.db.open) {
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
    // A backlog larger than this (an upgraded history) is indexed by maintainSearchIndex in slices.
    this.refreshSearchIndex(FTS_SEARCH_REFRESH_MAX);
    const params = { q: query, since: opts.since ?? null, limit: searchLimit(opts) };
    const rows = {
      findings: this.db.prepare(SEARCH_SQL.findings).all(params),
      templates: this.db.prepare(SEARCH_SQL.templates).all(params),
      runbooks: this.db.prepare(SEARCH_SQL.runbooks).all({ q: query, limit: params.limit }),
    } as SearchRows;
    return this.searchResult(query, rows);
  }

  /**
   * `search` with the full-text queries run on a read-only connection in a
   * worker thread: ranking every match of a common word over a long history
   * takes tens to hundreds of milliseconds, which the event loop must not
   * wait for. The same question asked again while the index has not changed
   * reuses the ranked rows (and concurrent askers share one run).
   */
  async searchAsync(question: string, opts: SearchOptions = {}): Promise<SearchResult> {
    const query = toFtsQuery(question);
    if (query === null) return { query, findings: [], templates: [], runbooks: [] };
    this.refreshSearchIndex(FTS_SEARCH_REFRESH_MAX);
    const params = { q: query, since: opts.since ?? null, limit: searchLimit(opts) };
    const key = JSON.stringify(params);
    if (this.searchCacheGeneration !== this.searchGeneration) {
      this.searchCache.clear();
      this.searchCacheGeneration = this.searchGeneration;
    }
    let rows = this.searchCache.get(key);
    if (!rows) {
      rows = this.searchWorker().run(params);
      // Bounded: distinct questions beyond this start a fresh map.
      if (this.searchCache.size >= 256) this.searchCache.clear();
      this.searchCache.set(key, rows);
      rows.catch(() => this.searchCache.delete(key));
    }
    return this.searchResult(query, await rows);
  }

  private searchGeneration = 0;
  private searchCacheGeneration = 0;
  private readonly searchCache = new Map<string, Promise<SearchRows>>();
  private worker: SearchWorker | undefined;

  private searchWorker(): SearchWorker {
    this.worker ??= new SearchWorker(this.path, () => {
      this.worker = undefined;
    });
    return this.worker;
  }

  /** Rows of the three full-text queries as a SearchResult (findings with their evidence). */
  private searchResult(query: string, rows: SearchRows): SearchResult {
    const hits = this.rowsToFindings(rows.findings);
    return {
      query,
      findings: hits.map((finding, i) => ({ finding, score: rows.findings[i]!.score })),
      templates: rows.templates.map((r) => ({
        stream: r.stream,
        templateId: r.template_id,
        template: r.template,
        example: r.example ?? '',
        isError: r.is_error === 1,
        count: r.count,
        firstSeen: r.first_seen,
        lastSeen: r.last_seen,
        score: r.score,
      })),
      runbooks: rows.runbooks,
    };
  }

  /**
   * Writes runbook changes in one transaction: `upsert` rows whose content
   * differs from the stored one, `remove` ids. Returns how many rows changed.
   */
  applyRunbooks(changes: { upsert: RunbookRecord[]; remove: string[] }): { upserted: number; removed: number } {
    const upsert = this.db.prepare(`
      INSERT INTO runbooks (id, title, body, path, size, mtime_ms, sha256, indexed_at)
      VALUES (@id, @title, @body, @path, @size, @mtimeMs, @sha256, @indexedAt)
      ON CONFLICT(id) DO UPDATE SET title = excluded.title, body = excluded.body, path = excluded.path, size = excluded.size,
        mtime_ms = excluded.mtime_ms, sha256 = excluded.sha256, indexed_at = excluded.indexed_at
      WHERE runbooks.sha256 IS NOT excluded.sha256 OR runbooks.title IS NOT excluded.title OR runbooks.path IS NOT excluded.path`);
    const remove = this.db.prepare('DELETE FROM runbooks WHERE id = ?');
    const tx = this.db.transaction(() => {
      const at = new Date().toISOString();
      let upserted = 0;
      let removed = 0;
      for (const r of changes.upsert) upserted += upsert.run({ ...r, indexedAt: at }).changes;
      for (const id of changes.remove) removed += remove.run(id).changes;
      if (upserted + removed > 0) this.searchGeneration++;
      return { upserted, removed };
    });
    return tx();
  }

  /** Stored runbooks without their bodies, by id. */
  listRunbooks(): Omit<RunbookRecord, 'body'>[] {
    return this.db.prepare('SELECT id, title, path, size, mtime_ms AS mtimeMs, sha256 FROM runbooks ORDER BY id').all() as Omit<RunbookRecord, 'body'>[];
  }

  /** One stored runbook. */
  getRunbook(id: string): RunbookRecord | undefined {
    return this.db.prepare('SELECT id, title, body, path, size, mtime_ms AS mtimeMs, sha256 FROM runbooks WHERE id = ?').get(id) as
      | RunbookRecord
      | undefined;
  }

  /** Checkpoints the WAL into the main file and closes. */
  close(): void {
    this.worker?.terminate();
    this.worker = undefined;
    if (!this.db.open) return;
    try {
      this.checkpoint();
    } finally {
      this.db.close();
    }
  }
}

/** quick_check did not say ok. */
export class CorruptDatabaseError extends Error {
  readonly code = 'DB_CORRUPT';
  override readonly name = 'CorruptDatabaseError';
}

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

/** One timeline event with its finding's headline. */
export interface TimelineEvent {
  at: string;
  kind: 'opened' | 'resolved' | 'reopened' | 'diagnosed';
  /** For `diagnosed`: the diagnoser (`rule-hint`, `llm:<id>`). */
  detail: string | null;
  finding: { id: string; category: Category; severity: Severity; subject: Subject; title: string; status: 'open' | 'resolved' };
}

/** A stored feedback row. */
export interface FeedbackRecord {
  id: number;
  findingId: string;
  at: string;
  helpful: boolean;
  note: string | null;
  /** The finding (with evidence and diagnosis) as it was judged. */
  finding: unknown;
}
