/**
 * Where each source stands: committed read positions (checkpoints), gaps in
 * what was read, and lines consumed per stream. Written in the detection
 * cycle's transaction, together with the findings those lines produced.
 */
import type { SourceName } from '../core/types.js';
import { Repo } from './db.js';

/** The part of a commit batch this repository writes. */
export interface ProgressWrite {
  at: string;
  checkpoints: { source: SourceName; key: string; value: string | null }[];
  gaps: { source: SourceName; at: string; detail: string }[];
  /** Lines consumed per stream in this cycle (added to the running totals). */
  lineCounts: Map<string, number>;
}

/** The read-positions repository. */
export class ProgressRepo extends Repo {
  private readonly st = {
    upsertCheckpoint: this.db.prepare(
      'INSERT INTO checkpoints (source, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(source, key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at',
    ),
    deleteCheckpoint: this.db.prepare('DELETE FROM checkpoints WHERE source = ? AND key = ?'),
    getCheckpoint: this.db.prepare('SELECT value FROM checkpoints WHERE source = ? AND key = ?'),
    listCheckpoints: this.db.prepare('SELECT key, value FROM checkpoints WHERE source = ?'),
    insertGap: this.db.prepare('INSERT INTO gaps (source, at, detail) VALUES (?, ?, ?)'),
    addLines: this.db.prepare(
      'INSERT INTO log_counters (stream, lines, updated_at) VALUES (?, ?, ?) ON CONFLICT(stream) DO UPDATE SET lines = lines + excluded.lines, updated_at = excluded.updated_at',
    ),
  };

  /** Writes a cycle's checkpoints, gaps and line counts (inside the caller's transaction). */
  write(b: ProgressWrite): void {
    const s = this.st;
    for (const c of b.checkpoints) {
      if (c.value === null) s.deleteCheckpoint.run(c.source, c.key);
      else s.upsertCheckpoint.run(c.source, c.key, c.value, b.at);
    }
    for (const g of b.gaps) s.insertGap.run(g.source, g.at, g.detail);
    for (const [stream, n] of b.lineCounts) if (n > 0) s.addLines.run(stream, n, b.at);
  }

  /** A committed checkpoint. */
  getCheckpoint(source: SourceName, key: string): string | undefined {
    return (this.st.getCheckpoint.get(source, key) as { value: string } | undefined)?.value;
  }

  /** Every committed checkpoint of a source. */
  listCheckpoints(source: SourceName): Map<string, string> {
    const rows = this.st.listCheckpoints.all(source) as { key: string; value: string }[];
    return new Map(rows.map((r) => [r.key, r.value]));
  }

  /** Lines consumed so far per stream. */
  lineCounts(): Map<string, number> {
    const rows = this.s.db.prepare('SELECT stream, lines FROM log_counters').all() as { stream: string; lines: number }[];
    return new Map(rows.map((r) => [r.stream, r.lines]));
  }

  /** Recorded gaps, newest first. */
  listGaps(limit = 100): { source: string; at: string; detail: string }[] {
    return this.s.db.prepare('SELECT source, at, detail FROM gaps ORDER BY id DESC LIMIT ?').all(limit) as { source: string; at: string; detail: string }[];
  }
}
