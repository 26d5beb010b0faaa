/**
 * Folding detection cycles that could not be written (disk full) into at most
 * two batches with the same effect, so that a store that cannot write for
 * hours holds about one cycle's worth of changes, not every cycle's.
 */
import type { TemplateBucketRow, TemplateRow } from '../detectors/templates/stats.js';
import type { TrackedFinding } from '../tracker/tracker.js';
import type { CommitBatch } from './store.js';

const keyOf = (t: { stream: string; templateId: string }) => `${t.stream}\0${t.templateId}`;

/**
 * Batches that, committed in order, leave the store as committing `batches` in order would: each finding,
 * checkpoint, template and bucket at its last value, line counts summed, gaps kept. Templates removed on the way
 * go first in a batch of their own (a template can be removed and made again later).
 */
export function foldBatches(batches: CommitBatch[]): CommitBatch[] {
  if (batches.length <= 1) return batches;
  const findings = new Map<string, TrackedFinding>();
  const checkpoints = new Map<string, CommitBatch['checkpoints'][number]>();
  const gaps: CommitBatch['gaps'] = [];
  const lineCounts = new Map<string, number>();
  const templates = new Map<string, TemplateRow | null>();
  const buckets = new Map<string, TemplateBucketRow>();
  const removed = new Map<string, { stream: string; templateId: string }>();
  let bucketsBefore: string | undefined;
  for (const b of batches) {
    for (const f of b.findings) findings.set(f.id, f);
    for (const c of b.checkpoints) checkpoints.set(`${c.source}\0${c.key}`, c);
    gaps.push(...b.gaps);
    for (const [stream, n] of b.lineCounts) lineCounts.set(stream, (lineCounts.get(stream) ?? 0) + n);
    for (const t of b.templates ?? []) templates.set(keyOf(t), t);
    for (const r of b.templateBuckets ?? []) buckets.set(`${keyOf(r)}\0${r.bucketStart}`, r);
    // Within a batch removals follow upserts (TemplateRepo.write): they take the template's buckets so far with them.
    for (const r of b.templatesRemoved ?? []) {
      const k = keyOf(r);
      templates.set(k, null);
      removed.set(k, { stream: r.stream, templateId: r.templateId });
      for (const bk of buckets.keys()) if (bk.startsWith(`${k}\0`)) buckets.delete(bk);
    }
    if (b.templateBucketsBefore && (!bucketsBefore || b.templateBucketsBefore > bucketsBefore)) bucketsBefore = b.templateBucketsBefore;
  }
  const last = batches.at(-1)!;
  const upserts: CommitBatch = {
    at: last.at,
    findings: [...findings.values()],
    checkpoints: [...checkpoints.values()],
    gaps,
    lineCounts,
    templates: [...templates.values()].filter((t): t is TemplateRow => t !== null),
    templateBuckets: [...buckets.values()],
    ...(bucketsBefore ? { templateBucketsBefore: bucketsBefore } : {}),
  };
  if (removed.size === 0) return [upserts];
  return [{ at: batches[0]!.at, findings: [], checkpoints: [], gaps: [], lineCounts: new Map(), templatesRemoved: [...removed.values()] }, upserts];
}
