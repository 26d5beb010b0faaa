/**
 * Findings, their evidence and their diagnoses: what a detection cycle
 * writes, the listing pages the API serves, the timeline, and the counts
 * /metrics reads.
 */
import type Database from 'better-sqlite3';
import type { Category, Diagnosis, Evidence, Severity, Subject } from '../core/types.js';
import type { TrackedFinding } from '../tracker/tracker.js';
import { Repo } from './db.js';

/** Most evidence rows kept per finding (the newest win). */
export const MAX_EVIDENCE = 20;

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

/** The filters of a findings listing: every subset of them is a query shape with its own index (migration 4). */
export const LISTING_FILTERS = ['status', 'severity', 'category', 'since', 'cursor'] as const;

/** Raised for a bad pagination cursor. */
export class CursorError extends Error {
  readonly code = 'BAD_CURSOR';
  override readonly name = 'CursorError';
}

/** One timeline event with its finding's headline. */
export interface TimelineEvent {
  at: string;
  kind: 'opened' | 'resolved' | 'reopened' | 'diagnosed';
  /** For `diagnosed`: the diagnoser (`rule-hint`, `llm:<id>`). */
  detail: string | null;
  finding: { id: string; category: Category; severity: Severity; subject: Subject; title: string; status: 'open' | 'resolved' };
}

/** A findings row; `ev` is its evidence as a JSON array of [source, at, text], in seq order. */
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
  ev?: string;
}

/**
 * The columns of a finding with its evidence: one correlated subquery over
 * the evidence key (finding_id, seq), evaluated only for the rows a page
 * returns, so a page is one statement.
 */
const FINDING_COLUMNS =
  "f.*, (SELECT json_group_array(json_array(e.source, e.at, e.text)) FROM evidence e WHERE e.finding_id = f.id ORDER BY e.seq) AS ev";

/**
 * A finding as the public Finding's JSON text (core/contract.ts FindingSchema: its fields, in its order, the subject
 * reduced to its declared fields), written by SQLite and ending before the diagnosis, which the caller projects:
 * byte for byte what JSON.stringify makes of the projected finding (json_quote escapes as JSON.stringify does), without
 * building fifty objects in JavaScript and stringifying them again for every page.
 */
const PUBLIC_HEAD = `'{"id":' || json_quote(f.id) || ',"category":' || json_quote(f.category) || ',"severity":' || json_quote(f.severity)
  || ',"subject":' || json_patch(json_object('kind', f.subject ->> '$.kind', 'name', f.subject ->> '$.name'),
       json_object('namespace', f.subject ->> '$.namespace', 'container', f.subject ->> '$.container'))
  || ',"title":' || json_quote(f.title) || ',"message":' || json_quote(f.message)
  || ',"evidence":[' || coalesce((SELECT group_concat(item, ',') FROM (SELECT '{"source":' || json_quote(e.source) || ',"at":' || json_quote(e.at)
       || ',"text":' || json_quote(e.text) || '}' AS item FROM evidence e WHERE e.finding_id = f.id ORDER BY e.seq)), '') || ']'
  || ',"firstSeen":' || json_quote(f.first_seen) || ',"lastSeen":' || json_quote(f.last_seen) || ',"count":' || f.count
  || ',"status":' || json_quote(f.status) || CASE WHEN f.status = 'resolved' THEN ',"resolvedAt":' || json_quote(f.resolved_at) ELSE '' END
  || ',"causes":' || f.causes || ',"rootCause":' || CASE f.root_cause WHEN 1 THEN 'true' ELSE 'false' END AS head, f.diagnosis, f.last_seen, f.id`;

/** A page row of {@link FindingRepo.listJson}. */
export interface PublicFindingJson {
  /** The finding's JSON up to its diagnosis (no closing brace). */
  head: string;
  /** The stored diagnosis JSON, or null. */
  diagnosis: string | null;
  /** When the finding was last seen (the listing's order). */
  last_seen: string;
  id: string;
}

/** A page of {@link FindingRepo.listJson}. */
export interface JsonPage {
  items: PublicFindingJson[];
  nextCursor: string | null;
  /**
   * `lastSeen` of the first finding past the page (null when there is none): with it, the page of the same query
   * narrowed by a `since` is a prefix of this one (api/listing.ts).
   */
  pastLastSeen: string | null;
}

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

/** The WHERE term of each listing filter and its parameters. */
const LISTING_TERMS: Record<(typeof LISTING_FILTERS)[number], { sql: string; params: (q: FindingQuery) => unknown[] }> = {
  status: { sql: 'status = ?', params: (q) => [q.status] },
  severity: { sql: 'severity = ?', params: (q) => [q.severity] },
  category: { sql: 'category = ?', params: (q) => [q.category] },
  since: { sql: 'last_seen >= ?', params: (q) => [q.since] },
  // A row value, so the index range starts at the cursor (an OR of two terms would not).
  cursor: { sql: '(last_seen, id) < (?, ?)', params: (q) => decodeCursor(q.cursor as string) },
};

/**
 * The SQL of a findings page for a query: the listing shape is the set of
 * filters present, and the statement text depends on nothing else, so each
 * shape is prepared once and has one plan (checked by test/history-scale.test.ts).
 */
function listingQuery(q: FindingQuery, columns = FINDING_COLUMNS): { sql: string; params: unknown[]; limit: number } {
  const where: string[] = [];
  const params: unknown[] = [];
  for (const k of LISTING_FILTERS) {
    if (q[k] === undefined || q[k] === '') continue;
    where.push(LISTING_TERMS[k].sql);
    params.push(...LISTING_TERMS[k].params(q));
  }
  const limit = Math.min(Math.max(q.limit ?? 50, 1), 500);
  const sql = `SELECT ${columns} FROM findings f ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY last_seen DESC, id DESC LIMIT ?`;
  return { sql, params: [...params, limit + 1], limit };
}

/** A stored row as a finding; evidence from the row's `ev` column. */
function rowToFinding(r: FindingRow): TrackedFinding {
  const f: TrackedFinding = {
    id: r.id,
    category: r.category as Category,
    severity: r.severity as Severity,
    subject: JSON.parse(r.subject) as Subject,
    title: r.title,
    message: r.message,
    evidence: r.ev ? (JSON.parse(r.ev) as [Evidence['source'], string, string][]).map(([source, at, text]) => ({ source, at, text })) : [],
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

/** Evidence as stored, to compare with what a commit writes. */
const sameEvidence = (stored: { source: string; at: string; text: string }[], next: Evidence[]) =>
  stored.length === next.length && stored.every((s, i) => s.source === next[i]!.source && s.at === next[i]!.at && s.text === next[i]!.text);

/** The findings repository. */
export class FindingRepo extends Repo {
  private readonly listingStmts = new Map<string, Database.Statement>();
  private readonly st = {
    upsert: this.db.prepare(`
      INSERT INTO findings (id, category, severity, subject, title, message, detail, detector, lifecycle,
        first_seen, last_seen, count, status, resolved_at, causes, root_cause, facts, diagnosis, updated_at)
      VALUES (@id, @category, @severity, @subject, @title, @message, @detail, @detector, @lifecycle,
        @first_seen, @last_seen, @count, @status, @resolved_at, @causes, @root_cause, @facts, NULL, @updated_at)
      ON CONFLICT(id) DO UPDATE SET severity=excluded.severity, title=excluded.title, message=excluded.message,
        last_seen=excluded.last_seen, count=excluded.count, status=excluded.status, resolved_at=excluded.resolved_at,
        causes=excluded.causes, root_cause=excluded.root_cause, facts=excluded.facts, updated_at=excluded.updated_at`),
    deleteEvidence: this.db.prepare('DELETE FROM evidence WHERE finding_id = ?'),
    insertEvidence: this.db.prepare('INSERT INTO evidence (finding_id, seq, source, at, text) VALUES (?, ?, ?, ?, ?)'),
    evidenceOf: this.db.prepare('SELECT source, at, text FROM evidence WHERE finding_id = ? ORDER BY seq'),
    get: this.db.prepare(`SELECT ${FINDING_COLUMNS} FROM findings f WHERE f.id = ?`),
    open: this.db.prepare(`SELECT ${FINDING_COLUMNS} FROM findings f WHERE status = 'open'`),
    // Kept by the triggers of migration 4.
    openCounts: this.db.prepare("SELECT category, severity, n FROM finding_counts WHERE status = 'open' AND n > 0"),
    setDiagnosis: this.db.prepare('UPDATE findings SET diagnosis = ?, updated_at = ? WHERE id = ?'),
    timeline: this.db.prepare(`SELECT e.at, e.kind, e.detail, f.id, f.category, f.severity, f.subject, f.title, f.status
      FROM finding_events e JOIN findings f ON f.id = e.finding_id
      WHERE e.at >= @since ORDER BY e.at DESC, e.id DESC LIMIT @limit`),
  };

  /**
   * Writes findings of a detection cycle (inside the caller's transaction). Evidence is rewritten only when it
   * differs from the stored rows: a condition seen again changes its count, not its text, and must not send the
   * finding back to the full-text index (which would make every cached search stale each cycle).
   */
  write(findings: readonly TrackedFinding[], at: string): void {
    const st = this.st;
    for (const f of findings) {
      st.upsert.run({
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
        updated_at: at,
      });
      const evidence = f.evidence.slice(-MAX_EVIDENCE);
      if (sameEvidence(st.evidenceOf.all(f.id) as Evidence[], evidence)) continue;
      st.deleteEvidence.run(f.id);
      for (const [i, e] of evidence.entries()) st.insertEvidence.run(f.id, i, e.source, e.at, e.text);
    }
  }

  /** Open findings, for the tracker at start. */
  loadOpen(): TrackedFinding[] {
    return (this.st.open.all() as FindingRow[]).map(rowToFinding);
  }

  /** One finding by id. */
  get(id: string): TrackedFinding | undefined {
    const r = this.st.get.get(id) as FindingRow | undefined;
    return r ? rowToFinding(r) : undefined;
  }

  /** A page of findings, newest first, with their evidence and diagnosis, in one statement. */
  list(q: FindingQuery = {}): { items: TrackedFinding[]; nextCursor: string | null } {
    const { items, nextCursor } = this.page<FindingRow>(q, FINDING_COLUMNS);
    return { items: items.map(rowToFinding), nextCursor };
  }

  /** The same page as {@link list}, each finding as public JSON text written by SQLite (what the listing route sends). */
  listJson(q: FindingQuery = {}): JsonPage {
    return this.page<PublicFindingJson>(q, PUBLIC_HEAD);
  }

  private page<R extends { last_seen: string; id: string }>(q: FindingQuery, columns: string): { items: R[]; nextCursor: string | null; pastLastSeen: string | null } {
    const { sql, params, limit } = listingQuery(q, columns);
    // limit + 1 rows: the row past the page tells whether there is a next one.
    const rows = this.listingStatement(sql).all(...params) as R[];
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    const past = rows[limit];
    const nextCursor = past && last ? Buffer.from(JSON.stringify([last.last_seen, last.id])).toString('base64url') : null;
    return { items, nextCursor, pastLastSeen: past ? past.last_seen : null };
  }

  private listingStatement(sql: string): Database.Statement {
    let st = this.listingStmts.get(sql);
    if (!st) {
      st = this.s.db.prepare(sql);
      this.listingStmts.set(sql, st);
    }
    return st;
  }

  /** The plan of a listing query and of getFinding and openCounts, by name. */
  queryPlans(q: FindingQuery): { listing: string[]; listingJson: string[]; getFinding: string[]; openCounts: string[] } {
    const { sql, params } = listingQuery(q);
    const json = listingQuery(q, PUBLIC_HEAD);
    return { listing: plan(this.s.db, sql, params), listingJson: plan(this.s.db, json.sql, json.params), getFinding: plan(this.s.db, this.st.get.source, ['a']), openCounts: plan(this.s.db, this.st.openCounts.source, []) };
  }

  /** Counts of open findings by category and severity (for /metrics). */
  openCounts(): { category: string; severity: string; n: number }[] {
    return this.st.openCounts.all() as { category: string; severity: string; n: number }[];
  }

  /** Stores a diagnosis on its finding. */
  setDiagnosis(id: string, d: Diagnosis): void {
    this.st.setDiagnosis.run(JSON.stringify(d), new Date().toISOString(), id);
    this.s.findingsGeneration++;
  }

  /** Timeline events (opened, resolved, reopened, diagnosed) since a time, newest first, with their finding's headline. */
  timeline(q: { since?: string; limit?: number } = {}): TimelineEvent[] {
    const limit = Math.min(Math.max(q.limit ?? 200, 1), 1000);
    const rows = this.st.timeline.all({ since: q.since ?? '', limit }) as {
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
}

/** `EXPLAIN QUERY PLAN` detail lines of a statement. */
export function plan(db: Database.Database, sql: string, params: unknown[]): string[] {
  return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail);
}
