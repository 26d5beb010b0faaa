/**
 * A Clock whose time moves only when the test says so, so that hours of retry
 * waits pass in milliseconds of real time while the I/O in between stays real.
 */
import type { Clock } from '../../daemon/collectors/kube/clock.js';

interface Sleeper {
  due: number;
  resolve: () => void;
}

/** Manually advanced clock. */
export class ManualClock implements Clock {
  #now: number;
  readonly #sleepers = new Set<Sleeper>();
  readonly #waiters = new Set<{ n: number; resolve: () => void }>();

  constructor(startMs = Date.parse('2025-03-14T08:00:00Z')) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const s: Sleeper = {
        due: this.#now + Math.max(0, ms),
        resolve: () => {
          this.#sleepers.delete(s);
          signal?.removeEventListener('abort', s.resolve);
          resolve();
        },
      };
      this.#sleepers.add(s);
      signal?.addEventListener('abort', s.resolve, { once: true });
      for (const w of this.#waiters) if (this.#sleepers.size >= w.n) w.resolve();
    });
  }

  /** Waits now pending. */
  get sleeping(): number {
    return this.#sleepers.size;
  }

  /** Moves time forward by `ms`, waking every wait that falls due. */
  advance(ms: number): void {
    this.#now += ms;
    for (const s of [...this.#sleepers]) if (s.due <= this.#now) s.resolve();
  }

  /** Jumps to the earliest pending wait and wakes it (and any due at the same time). Returns the jump in ms. */
  advanceToNext(): number {
    let due = Number.POSITIVE_INFINITY;
    for (const s of this.#sleepers) due = Math.min(due, s.due);
    if (!Number.isFinite(due)) return 0;
    const step = Math.max(0, due - this.#now);
    this.advance(step);
    return step;
  }

  /** Resolves once at least `n` waits are pending (rejects after `timeoutMs` of real time). */
  waitForSleepers(n: number, timeoutMs = 5000): Promise<void> {
    if (this.#sleepers.size >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = {
        n,
        resolve: () => {
          clearTimeout(timer);
          this.#waiters.delete(w);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new Error(`expected ${n} pending waits, have ${this.#sleepers.size}`));
      }, timeoutMs);
      this.#waiters.add(w);
    });
  }
}
