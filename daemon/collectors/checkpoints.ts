/**
 * Read positions of the log collectors. A collector reads the positions stored
 * at the last commit when it starts, and emits `checkpoint` signals after the
 * lines they cover; the daemon stores those in the same SQLite transaction as
 * everything derived from the lines. So a crash re-reads, never loses, never doubles.
 */
import type { Signal, SourceName } from '../core/types.js';

/** The checkpoints stored at the last commit, as a collector sees them. */
export interface CheckpointReader {
  /** The value stored for `key`, or undefined. */
  get(source: SourceName, key: string): string | undefined;
  /** Every key and value stored for one source. */
  list(source: SourceName): Map<string, string>;
}

/** A reader with nothing stored: the first start on a node. */
export const noCheckpoints: CheckpointReader = {
  get: () => undefined,
  list: () => new Map(),
};

/**
 * Checkpoints kept in memory, with the daemon's commit rule: `commit(signals)`
 * applies the checkpoint signals of one delivered batch. Used when there is no
 * store (one-shot runs) and by tests that mimic the daemon.
 */
export class MemoryCheckpoints implements CheckpointReader {
  private readonly data = new Map<SourceName, Map<string, string>>();

  /** Applies the checkpoint signals of a batch; `value: null` forgets the key. */
  commit(signals: readonly Signal[]): void {
    for (const s of signals) {
      if (s.type !== 'checkpoint') continue;
      let m = this.data.get(s.source);
      if (!m) {
        m = new Map();
        this.data.set(s.source, m);
      }
      if (s.value === null) m.delete(s.key);
      else m.set(s.key, s.value);
    }
  }

  get(source: SourceName, key: string): string | undefined {
    return this.data.get(source)?.get(key);
  }

  list(source: SourceName): Map<string, string> {
    return new Map(this.data.get(source) ?? []);
  }
}

/** The checkpoint signal that stores `value` (JSON-encoded unless already a string). */
export function checkpointSignal(source: SourceName, key: string, value: unknown): Signal {
  return { type: 'checkpoint', source, key, value: value === null ? null : typeof value === 'string' ? value : JSON.stringify(value) };
}

/** Parses a checkpoint value written as JSON; undefined when absent or unreadable (a corrupt value restarts that key). */
export function readJsonCheckpoint<T>(value: string | undefined): T | undefined {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as T;
  } catch {
    return undefined;
  }
}
