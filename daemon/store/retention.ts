/**
 * Maintenance of the whole database: retention by age and by size, in
 * slices with the event loop running between them, and the re-redaction of
 * text stored under older redaction rules.
 */
import type Database from 'better-sqlite3';
import { Repo, type StoreDb, yieldToLoop } from './db.js';
import { plan } from './findings.js';
import type { SearchRepo } from './search.js';

/** Findings deleted per retention transaction; the event loop runs between two. */
const PRUNE_BATCH = 200;

// Retention deletes: the oldest resolved findings first, a LIMIT at a time (index findings_status_seen).
const PRUNE_AGE_SQL =
  "DELETE FROM findings WHERE rowid IN (SELECT rowid FROM findings WHERE status = 'resolved' AND last_seen < ? ORDER BY last_seen LIMIT ?)";
const PRUNE_OLDEST_SQL = "DELETE FROM findings WHERE rowid IN (SELECT rowid FROM findings WHERE status = 'resolved' ORDER BY last_seen LIMIT ?)";

/** Retention limits. */
export interface RetentionOptions {
  /** Resolved history older than this is deleted. Defaults to 30. */
  maxAgeDays?: number;
  /** Above this size the oldest history is deleted. Defaults to 256. */
  maxSizeMB?: number;
}

/** The retention and maintenance repository. */
export class Retention extends Repo {
  private readonly search: SearchRepo;
  private readonly maxAgeDays: number;
  private readonly maxSizeMB: number;
  private readonly st;
  private pruning: Promise<{ deleted: number }> | null = null;

  constructor(s: StoreDb, search: SearchRepo, opts: RetentionOptions) {
    super(s);
    this.search = search;
    this.maxAgeDays = opts.maxAgeDays ?? 30;
    this.maxSizeMB = opts.maxSizeMB ?? 256;
    this.st = {
      pruneByAge: s.db.prepare(PRUNE_AGE_SQL),
      pruneOldest: s.db.prepare(PRUNE_OLDEST_SQL),
      countResolved: s.db.prepare("SELECT count(*) AS n FROM findings WHERE status = 'resolved'"),
    };
  }

  /** Plans of the retention deletes, by name. */
  queryPlans(): { pruneByAge: string[]; pruneOldest: string[] } {
    return { pruneByAge: plan(this.s.db, PRUNE_AGE_SQL, ['2026-01-01', 1]), pruneOldest: plan(this.s.db, PRUNE_OLDEST_SQL, [1]) };
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
    while (deleted < max && this.s.db.open) {
      const n = st.run(...params, Math.min(PRUNE_BATCH, max - deleted)).changes;
      deleted += n;
      if (n > 0) {
        // Deleted findings leave the index by trigger, without a refresh: cached searches and pages are stale.
        this.s.searchGeneration++;
        this.s.findingsGeneration++;
      }
      if (n < PRUNE_BATCH) break;
      await yieldToLoop();
    }
    return deleted;
  }

  private async pruneSlices(now: number): Promise<{ deleted: number }> {
    const db = this.s.db;
    const cutoff = new Date(now - this.maxAgeDays * 86_400_000).toISOString();
    let deleted = await this.deleteInSlices(this.st.pruneByAge, [cutoff]);
    if (!db.open) return { deleted };
    this.s.tx(() => {
      deleted += db.prepare('DELETE FROM metric_samples WHERE resolution = 60 AND bucket_start < ?').run(Math.floor(now / 1000) - 86_400).changes;
      deleted += db.prepare('DELETE FROM metric_samples WHERE bucket_start < ?').run(Math.floor(Date.parse(cutoff) / 1000)).changes;
      deleted += db.prepare('DELETE FROM template_buckets WHERE bucket_start < ?').run(cutoff).changes;
      deleted += db.prepare('DELETE FROM gaps WHERE at < ?').run(cutoff).changes;
      deleted += db.prepare('DELETE FROM diagnosis_cache WHERE created_at < ?').run(cutoff).changes;
    })();
    this.s.samplesGeneration++;
    this.s.samplesPrunes++;
    const limit = this.maxSizeMB * 1024 * 1024;
    for (let round = 0; round < 20 && db.open && this.s.sizeBytes() > limit; round++) {
      this.s.checkpoint();
      db.pragma('incremental_vacuum');
      if (this.s.sizeBytes() <= limit) break;
      // A fifth of the resolved history per round: enough to converge fast, little enough to keep most of it.
      const resolvedCount = (this.st.countResolved.get() as { n: number }).n;
      let n = await this.deleteInSlices(this.st.pruneOldest, [], Math.max(20, Math.ceil(resolvedCount / 5)));
      if (!db.open) return { deleted: deleted + n };
      n += this.s.tx(() => {
        let k = 0;
        k += db.prepare('DELETE FROM metric_samples WHERE rowid IN (SELECT rowid FROM metric_samples ORDER BY bucket_start LIMIT 5000)').run().changes;
        k += db.prepare('DELETE FROM template_buckets WHERE rowid IN (SELECT rowid FROM template_buckets ORDER BY bucket_start LIMIT 5000)').run().changes;
        k += db.prepare('DELETE FROM diagnosis_cache WHERE rowid IN (SELECT rowid FROM diagnosis_cache ORDER BY created_at LIMIT 500)').run().changes;
        return k;
      })();
      deleted += n;
      if (n === 0) break;
      await yieldToLoop();
    }
    if (!db.open) return { deleted };
    db.pragma('incremental_vacuum');
    this.s.checkpoint();
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
    const db = this.s.db;
    const changed = { templates: 0, findings: 0, evidence: 0 };
    const marker = db.prepare("SELECT value FROM checkpoints WHERE source = 'redaction' AND key = 'rules'").get() as { value: string } | undefined;
    if (marker?.value === version) return changed;
    // Every string inside a JSON column (facts, diagnosis).
    const redactJsonText = (json: string | null): string | null =>
      json === null ? null : JSON.stringify(JSON.parse(json, (_k, v: unknown) => (typeof v === 'string' ? redact(v) : v)));
    db.pragma('secure_delete = ON');
    try {
      this.s.tx(() => {
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
        db.prepare(
          "INSERT INTO checkpoints (source, key, value, updated_at) VALUES ('redaction', 'rules', ?, ?) ON CONFLICT(source, key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
        ).run(version, new Date().toISOString());
      })();
      if (changed.templates + changed.findings + changed.evidence > 0) {
        this.s.findingsGeneration++;
        this.search.refreshIndex();
        // Merging the index's segments drops the deleted documents' words, which secure_delete then overwrites.
        db.exec("INSERT INTO templates_fts(templates_fts) VALUES ('optimize'); INSERT INTO findings_fts(findings_fts) VALUES ('optimize');");
        db.pragma('wal_checkpoint(TRUNCATE)');
      }
    } finally {
      db.pragma('secure_delete = OFF');
    }
    return changed;
  }
}
