/**
 * Numbered schema migrations. Append only: a released migration never changes.
 * `PRAGMA user_version` holds the number of the last one applied.
 */
/**
 * The statement a search trigger runs: notes that a row's search document must
 * be (re)indexed. It tests before inserting (see migration 2's comment).
 */
function noteDirty(kind: string, ref: string): string {
  return `INSERT INTO search_dirty (kind, ref) SELECT '${kind}', ${ref} WHERE NOT EXISTS (SELECT 1 FROM search_dirty WHERE kind = '${kind}' AND ref = ${ref});`;
}

/** A table whose rows are search documents (migration 2). */
interface SearchSource {
  /** The table, which also names its triggers' prefix (`findings` → `findings_search_insert`). */
  table: string;
  /** `search_dirty.kind` of its documents. */
  kind: string;
  /** Its column that `search_dirty.ref` holds. */
  ref: string;
  /** The FTS5 table its documents are indexed in. */
  fts: string;
  /** Columns whose change makes the document stale. */
  columns: string[];
}

/**
 * Triggers that keep a table's documents in search_dirty: an insert and a
 * change of an indexed column note the row; a delete drops its document and
 * the note. The text is the one migration 2 was released with, so it must not
 * change (`findings` becomes `findings_search_*`, `log_templates` `templates_search_*`).
 */
function searchTriggers(t: SearchSource): string {
  const name = t.table.replace(/^log_/, '');
  const changed = t.columns.map((c) => `old.${c} IS NOT new.${c}`);
  const when: string[] = [];
  // Three comparisons a line, as the released text has them.
  for (let i = 0; i < changed.length; i += 3) when.push(changed.slice(i, i + 3).join(' OR '));
  return `  CREATE TRIGGER ${name}_search_insert AFTER INSERT ON ${t.table} BEGIN
    ${noteDirty(t.kind, `new.${t.ref}`)}
  END;
  CREATE TRIGGER ${name}_search_update AFTER UPDATE OF ${t.columns.join(', ')} ON ${t.table}
  WHEN ${when.join('\n    OR ')}
  BEGIN
    ${noteDirty(t.kind, `new.${t.ref}`)}
  END;
  CREATE TRIGGER ${name}_search_delete AFTER DELETE ON ${t.table} BEGIN
    DELETE FROM ${t.fts} WHERE rowid = old.rowid;
    DELETE FROM search_dirty WHERE kind = '${t.kind}' AND ref = old.${t.ref};
  END;`;
}

export const MIGRATIONS: readonly string[] = [
  // 1: findings, evidence, diagnoses, checkpoints, samples, templates, counters, gaps
  `
  CREATE TABLE findings (
    id TEXT PRIMARY KEY,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    subject TEXT NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    detail TEXT,
    detector TEXT NOT NULL,
    lifecycle TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    count INTEGER NOT NULL,
    status TEXT NOT NULL,
    resolved_at TEXT,
    causes TEXT NOT NULL DEFAULT '[]',
    root_cause INTEGER NOT NULL DEFAULT 1,
    facts TEXT,
    diagnosis TEXT,
    updated_at TEXT NOT NULL
  );
  CREATE INDEX findings_status_seen ON findings(status, last_seen);
  CREATE INDEX findings_category ON findings(category);
  CREATE TABLE evidence (
    finding_id TEXT NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    source TEXT NOT NULL,
    at TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (finding_id, seq)
  );
  CREATE TABLE diagnosis_cache (
    key TEXT PRIMARY KEY,
    diagnosis TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE checkpoints (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (source, key)
  );
  CREATE TABLE metric_samples (
    name TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '',
    resolution INTEGER NOT NULL,
    bucket_start INTEGER NOT NULL,
    value_sum REAL NOT NULL,
    value_max REAL NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (name, labels, resolution, bucket_start)
  );
  CREATE TABLE log_templates (
    stream TEXT NOT NULL,
    template_id TEXT NOT NULL,
    template TEXT NOT NULL,
    is_error INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    count INTEGER NOT NULL,
    example TEXT,
    PRIMARY KEY (stream, template_id)
  );
  CREATE TABLE template_buckets (
    stream TEXT NOT NULL,
    template_id TEXT NOT NULL,
    bucket_start TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (stream, template_id, bucket_start)
  );
  CREATE TABLE log_counters (
    stream TEXT PRIMARY KEY,
    lines INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT NOT NULL
  );
  `,
  // 2: full-text search (FTS5). One document per finding (its text, subject,
  // diagnosis and evidence lines) and one per log template, in contentless
  // tables keyed by the source row's rowid. Indexing is deferred: triggers only
  // note which rows changed (search_dirty), and Store.search indexes them
  // first. Each cycle rewrites the evidence of every changed finding, and
  // indexing those rows at once made a cycle ten times slower (measured: 14 ms
  // -> 139 ms for 20 findings); noting them costs microseconds, and a finding
  // rewritten a hundred times between two questions is indexed once. (The
  // triggers test before inserting: an upsert that fires them overrides an
  // OR IGNORE inside them.)
  // Runbooks change rarely and are indexed directly. Porter stemming lets
  // "crashing" find "crash".
  `
  CREATE VIRTUAL TABLE findings_fts USING fts5(
    title, message, category, subject, diagnosis, evidence,
    content='', contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2'
  );
  INSERT INTO findings_fts(findings_fts, rank) VALUES ('rank', 'bm25(4.0, 2.0, 3.0, 3.0, 1.5, 1.0)');
  CREATE VIRTUAL TABLE templates_fts USING fts5(
    template, example, stream, content='', contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2'
  );
  INSERT INTO templates_fts(templates_fts, rank) VALUES ('rank', 'bm25(3.0, 1.0, 2.0)');
  -- kind 'finding': ref = findings.id; kind 'template': ref = log_templates.rowid.
  CREATE TABLE search_dirty (
    kind TEXT NOT NULL,
    ref NOT NULL,
    PRIMARY KEY (kind, ref)
  ) WITHOUT ROWID;

${searchTriggers({ table: 'findings', kind: 'finding', ref: 'id', fts: 'findings_fts', columns: ['title', 'message', 'category', 'subject', 'diagnosis'] })}
  CREATE TRIGGER evidence_search_insert AFTER INSERT ON evidence BEGIN
    ${noteDirty('finding', 'new.finding_id')}
  END;
  CREATE TRIGGER evidence_search_update AFTER UPDATE ON evidence BEGIN
    ${noteDirty('finding', 'new.finding_id')}
  END;
  CREATE TRIGGER evidence_search_delete AFTER DELETE ON evidence BEGIN
    ${noteDirty('finding', 'old.finding_id')}
  END;

${searchTriggers({ table: 'log_templates', kind: 'template', ref: 'rowid', fts: 'templates_fts', columns: ['template', 'example', 'stream'] })}

  CREATE TABLE runbooks (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ms REAL NOT NULL,
    sha256 TEXT NOT NULL,
    indexed_at TEXT NOT NULL
  );
  CREATE VIRTUAL TABLE runbooks_fts USING fts5(
    name, title, body, content='', contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2'
  );
  INSERT INTO runbooks_fts(runbooks_fts, rank) VALUES ('rank', 'bm25(2.0, 4.0, 1.0)');
  CREATE TRIGGER runbooks_fts_insert AFTER INSERT ON runbooks BEGIN
    INSERT INTO runbooks_fts (rowid, name, title, body) VALUES (new.rowid, new.id, new.title, new.body);
  END;
  CREATE TRIGGER runbooks_fts_update AFTER UPDATE OF id, title, body ON runbooks BEGIN
    DELETE FROM runbooks_fts WHERE rowid = old.rowid;
    INSERT INTO runbooks_fts (rowid, name, title, body) VALUES (new.rowid, new.id, new.title, new.body);
  END;
  CREATE TRIGGER runbooks_fts_delete AFTER DELETE ON runbooks BEGIN
    DELETE FROM runbooks_fts WHERE rowid = old.rowid;
  END;

  -- What an older database already holds is indexed at the first search.
  INSERT OR IGNORE INTO search_dirty (kind, ref) SELECT 'finding', id FROM findings;
  INSERT OR IGNORE INTO search_dirty (kind, ref) SELECT 'template', rowid FROM log_templates;
  `,
  // 3: what the web page, the MCP tools and the feedback export read.
  // finding_events is the timeline: triggers note when a finding opens,
  // resolves, reopens and gets a diagnosis, so the detection cycle's code is
  // unchanged and an event is never missed; rows go with their finding.
  // feedback holds a person's verdict on a diagnosis with the finding as it
  // was judged (evidence and diagnosis; a later diagnosis may replace it, and
  // retention may delete the finding, but the site's dataset keeps the pair).
  `
  CREATE TABLE finding_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_id TEXT NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT
  );
  CREATE INDEX finding_events_at ON finding_events(at);
  CREATE INDEX finding_events_finding ON finding_events(finding_id);
  CREATE TRIGGER finding_events_opened AFTER INSERT ON findings BEGIN
    INSERT INTO finding_events (finding_id, at, kind) VALUES (new.id, new.first_seen, 'opened');
  END;
  CREATE TRIGGER finding_events_status AFTER UPDATE OF status ON findings WHEN old.status IS NOT new.status BEGIN
    INSERT INTO finding_events (finding_id, at, kind)
      VALUES (new.id, CASE WHEN new.status = 'resolved' THEN coalesce(new.resolved_at, new.updated_at) ELSE new.last_seen END,
        CASE WHEN new.status = 'resolved' THEN 'resolved' ELSE 'reopened' END);
  END;
  CREATE TRIGGER finding_events_diagnosed AFTER UPDATE OF diagnosis ON findings
  WHEN new.diagnosis IS NOT NULL AND old.diagnosis IS NOT new.diagnosis AND json_valid(new.diagnosis) BEGIN
    INSERT INTO finding_events (finding_id, at, kind, detail)
      VALUES (new.id, new.updated_at, 'diagnosed', json_extract(new.diagnosis, '$.diagnoser'));
  END;
  INSERT INTO finding_events (finding_id, at, kind) SELECT id, first_seen, 'opened' FROM findings;
  INSERT INTO finding_events (finding_id, at, kind) SELECT id, resolved_at, 'resolved' FROM findings WHERE status = 'resolved' AND resolved_at IS NOT NULL;
  INSERT INTO finding_events (finding_id, at, kind, detail)
    SELECT id, updated_at, 'diagnosed', json_extract(diagnosis, '$.diagnoser') FROM findings WHERE json_valid(diagnosis);

  CREATE TABLE feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_id TEXT NOT NULL,
    at TEXT NOT NULL,
    helpful INTEGER NOT NULL,
    note TEXT,
    finding TEXT NOT NULL
  );
  CREATE INDEX feedback_finding ON feedback(finding_id);
  `,
  // 4: one index per listing shape. /v1/findings filters on any of status,
  // category and severity (equality), optionally since and a cursor (ranges on
  // last_seen), and always orders by (last_seen DESC, id DESC); an index whose
  // leading columns are the equality filters, followed by (last_seen, id),
  // serves every page as a range read of limit+1 entries, with no sort. The
  // columns go from fewest values to most. Migration 1's (status, last_seen)
  // and (category) are prefixes of these.
  // The open-findings counts of /metrics are kept by triggers in
  // finding_counts, so a scrape reads a few dozen rows, not every open finding.
  `
  DROP INDEX IF EXISTS findings_status_seen;
  DROP INDEX IF EXISTS findings_category;
  CREATE INDEX findings_seen ON findings(last_seen, id);
  CREATE INDEX findings_status_seen ON findings(status, last_seen, id);
  CREATE INDEX findings_category_seen ON findings(category, last_seen, id);
  CREATE INDEX findings_severity_seen ON findings(severity, last_seen, id);
  CREATE INDEX findings_status_category_seen ON findings(status, category, last_seen, id);
  CREATE INDEX findings_status_severity_seen ON findings(status, severity, last_seen, id);
  CREATE INDEX findings_category_severity_seen ON findings(category, severity, last_seen, id);
  CREATE INDEX findings_status_category_severity_seen ON findings(status, category, severity, last_seen, id);

  CREATE TABLE finding_counts (
    status TEXT NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (status, category, severity)
  ) WITHOUT ROWID;
  INSERT INTO finding_counts (status, category, severity, n) SELECT status, category, severity, count(*) FROM findings GROUP BY 1, 2, 3;
  CREATE TRIGGER finding_counts_insert AFTER INSERT ON findings BEGIN
    INSERT INTO finding_counts (status, category, severity, n) VALUES (new.status, new.category, new.severity, 1)
      ON CONFLICT (status, category, severity) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER finding_counts_update AFTER UPDATE OF status, category, severity ON findings
  WHEN old.status IS NOT new.status OR old.category IS NOT new.category OR old.severity IS NOT new.severity
  BEGIN
    UPDATE finding_counts SET n = n - 1 WHERE status = old.status AND category = old.category AND severity = old.severity;
    INSERT INTO finding_counts (status, category, severity, n) VALUES (new.status, new.category, new.severity, 1)
      ON CONFLICT (status, category, severity) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER finding_counts_delete AFTER DELETE ON findings BEGIN
    UPDATE finding_counts SET n = n - 1 WHERE status = old.status AND category = old.category AND severity = old.severity;
  END;
  `,
];
