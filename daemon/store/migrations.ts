/**
 * Numbered schema migrations. Append only: a released migration never changes.
 * `PRAGMA user_version` holds the number of the last one applied.
 */
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
];
