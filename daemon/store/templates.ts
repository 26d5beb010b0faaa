/**
 * Log templates mined per stream and their per-bucket counts: the miner's
 * baselines, restored at start and written with each detection cycle.
 */
import type { TemplateBucketRow, TemplateRow } from '../detectors/templates/stats.js';
import { Repo } from './db.js';

/** A log_templates row. */
export interface TemplateDbRow {
  stream: string;
  template_id: string;
  template: string;
  is_error: number;
  first_seen: string;
  last_seen: string;
  count: number;
  example: string | null;
}

/** A log_templates row as the miner and the search read it. */
export function rowToTemplate(r: TemplateDbRow): TemplateRow {
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
}

/** The part of a commit batch this repository writes. */
export interface TemplatesWrite {
  templates?: TemplateRow[];
  templateBuckets?: TemplateBucketRow[];
  /** Templates that no longer exist (merged, evicted, stream gone): deleted with their buckets. */
  templatesRemoved?: { stream: string; templateId: string }[];
  /** Bucket rows older than this are outside every baseline: deleted. */
  templateBucketsBefore?: string;
}

/** The log templates repository. */
export class TemplateRepo extends Repo {
  private readonly st = {
    upsertTemplate: this.db.prepare(`
      INSERT INTO log_templates (stream, template_id, template, is_error, first_seen, last_seen, count, example)
      VALUES (@stream, @templateId, @template, @isError, @firstSeen, @lastSeen, @count, @example)
      ON CONFLICT(stream, template_id) DO UPDATE SET template=excluded.template, is_error=excluded.is_error,
        last_seen=excluded.last_seen, count=excluded.count, example=excluded.example`),
    upsertBucket: this.db.prepare(
      'INSERT INTO template_buckets (stream, template_id, bucket_start, count) VALUES (?, ?, ?, ?) ON CONFLICT(stream, template_id, bucket_start) DO UPDATE SET count = excluded.count',
    ),
    deleteTemplate: this.db.prepare('DELETE FROM log_templates WHERE stream = ? AND template_id = ?'),
    deleteTemplateBuckets: this.db.prepare('DELETE FROM template_buckets WHERE stream = ? AND template_id = ?'),
    pruneBuckets: this.db.prepare('DELETE FROM template_buckets WHERE bucket_start < ?'),
  };

  /** Writes a cycle's template changes (inside the caller's transaction). */
  write(b: TemplatesWrite): void {
    const s = this.st;
    for (const t of b.templates ?? []) s.upsertTemplate.run({ ...t, isError: t.isError ? 1 : 0, example: t.example });
    for (const t of b.templateBuckets ?? []) s.upsertBucket.run(t.stream, t.templateId, t.bucketStart, t.count);
    for (const r of b.templatesRemoved ?? []) {
      s.deleteTemplate.run(r.stream, r.templateId);
      s.deleteTemplateBuckets.run(r.stream, r.templateId);
    }
    if (b.templateBucketsBefore) s.pruneBuckets.run(b.templateBucketsBefore);
  }

  /** Template rows (to restore the miner's baselines at start). */
  list(): TemplateRow[] {
    return (this.s.db.prepare('SELECT * FROM log_templates').all() as TemplateDbRow[]).map(rowToTemplate);
  }

  /** Template bucket rows since a time. */
  listBuckets(since: string): TemplateBucketRow[] {
    const rows = this.s.db
      .prepare('SELECT stream, template_id, bucket_start, count FROM template_buckets WHERE bucket_start >= ?')
      .all(since) as { stream: string; template_id: string; bucket_start: string; count: number }[];
    return rows.map((r) => ({ stream: r.stream, templateId: r.template_id, bucketStart: r.bucket_start, count: r.count }));
  }
}
