/**
 * Host metric samples, downsampled on write into 1-minute and 15-minute
 * buckets (mean and max kept), for the dashboard's charts.
 */
import { Repo } from './db.js';

/** One downsampled point. */
export interface SamplePoint {
  at: string;
  mean: number;
  max: number;
}

/** One stored bucket of a metric, as {@link MetricsHistoryRepo.rows} reads it. */
export interface SampleRow {
  labels: string;
  /** Bucket start, Unix seconds. */
  bucket: number;
  mean: number;
  max: number;
}

/** The metrics-history repository. */
export class MetricsHistoryRepo extends Repo {
  private readonly st = {
    upsert: this.db.prepare(`
      INSERT INTO metric_samples (name, labels, resolution, bucket_start, value_sum, value_max, n) VALUES (?, ?, ?, ?, ?, ?, 1)
      ON CONFLICT(name, labels, resolution, bucket_start) DO UPDATE SET value_sum = value_sum + excluded.value_sum,
        value_max = max(value_max, excluded.value_max), n = n + 1`),
    rows: this.db.prepare(
      'SELECT labels, bucket_start AS bucket, value_sum / n AS mean, value_max AS max FROM metric_samples WHERE name = ? AND resolution = ? AND bucket_start >= ? ORDER BY labels, bucket_start',
    ),
  };

  /**
   * Adds a metric sample to its 1-minute and 15-minute buckets (mean and max
   * kept); retention keeps 1-minute buckets for 24 h and 15-minute ones longer.
   */
  add(atMs: number, samples: { name: string; labels?: string; value: number }[]): void {
    this.s.tx(() => {
      for (const x of samples) {
        if (!Number.isFinite(x.value)) continue;
        for (const res of [60, 900]) {
          const bucket = Math.floor(atMs / 1000 / res) * res;
          this.st.upsert.run(x.name, x.labels ?? '', res, bucket, x.value, x.value);
        }
      }
    })();
    this.s.samplesGeneration++;
  }

  /** Downsampled series: mean per bucket, over every label value. */
  list(name: string, resolution: 60 | 900, sinceMs: number): SamplePoint[] {
    const rows = this.s.db
      .prepare(
        'SELECT bucket_start, value_sum / n AS mean, value_max FROM metric_samples WHERE name = ? AND resolution = ? AND bucket_start >= ? ORDER BY bucket_start',
      )
      .all(name, resolution, Math.floor(sinceMs / 1000)) as { bucket_start: number; mean: number; value_max: number }[];
    return rows.map((r) => ({ at: new Date(r.bucket_start * 1000).toISOString(), mean: r.mean, max: r.value_max }));
  }

  /** Buckets of a metric from a bucket start (Unix seconds) on, by label value, then time. */
  rows(name: string, resolution: 60 | 900, fromBucket: number): SampleRow[] {
    return this.st.rows.all(name, resolution, fromBucket) as SampleRow[];
  }
}
