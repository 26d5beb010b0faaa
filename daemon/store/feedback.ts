/**
 * People's verdicts on diagnoses, and the cache of diagnoses by prompt key:
 * what the diagnoser reads and what the feedback export streams.
 */
import type { Diagnosis } from '../core/types.js';
import { Repo } from './db.js';

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

/** The feedback and diagnosis-cache repository. */
export class FeedbackRepo extends Repo {
  private readonly st = {
    cacheGet: this.db.prepare('SELECT diagnosis FROM diagnosis_cache WHERE key = ?'),
    cachePut: this.db.prepare('INSERT OR REPLACE INTO diagnosis_cache (key, diagnosis, created_at) VALUES (?, ?, ?)'),
    add: this.db.prepare('INSERT INTO feedback (finding_id, at, helpful, note, finding) VALUES (?, ?, ?, ?, ?)'),
  };

  /** A cached diagnosis by key, or undefined. */
  cacheGet(key: string): Diagnosis | undefined {
    const r = this.st.cacheGet.get(key) as { diagnosis: string } | undefined;
    return r ? (JSON.parse(r.diagnosis) as Diagnosis) : undefined;
  }

  /** Caches a diagnosis by key. */
  cachePut(key: string, d: Diagnosis): void {
    this.st.cachePut.run(key, JSON.stringify(d), new Date().toISOString());
  }

  /** Stores a person's verdict on a finding's diagnosis with the finding as judged; returns the row id. */
  add(f: { findingId: string; at: string; helpful: boolean; note: string | null; finding: unknown }): number {
    const id = Number(this.st.add.run(f.findingId, f.at, f.helpful ? 1 : 0, f.note, JSON.stringify(f.finding)).lastInsertRowid);
    this.s.feedbackGeneration++;
    return id;
  }

  /** Every feedback row, oldest first (iterated, so a large export never sits in memory at once). */
  *iterate(): Generator<FeedbackRecord> {
    const it = this.s.db.prepare('SELECT id, finding_id, at, helpful, note, finding FROM feedback ORDER BY id').iterate() as IterableIterator<{
      id: number;
      finding_id: string;
      at: string;
      helpful: number;
      note: string | null;
      finding: string;
    }>;
    for (const r of it) yield { id: r.id, findingId: r.finding_id, at: r.at, helpful: r.helpful === 1, note: r.note, finding: JSON.parse(r.finding) as unknown };
  }
}
