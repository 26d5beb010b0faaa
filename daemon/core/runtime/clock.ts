/**
 * The one notion of time of every source and exporter: "now" and cancellable
 * waits. Retry waits, poll intervals and staleness all go through a Clock, so
 * tests can let hours of an outage pass in a few real seconds (ManualClock)
 * while the I/O in between stays real.
 */

/** A source of "now" and of cancellable waits. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`, or as soon as `signal` aborts (it never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The wall clock and real timers. Its waits never keep the process alive on
 * their own: the daemon's listener or the CLI's own work does that, so a
 * source that was never stopped cannot hold a finished process open.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      timer.unref();
      signal?.addEventListener('abort', done, { once: true });
    });
  },
};

/**
 * Runs `fn` after `ms` on `clock` unless the returned function is called
 * first: the callback form of Clock.sleep, for flush and settle timers.
 */
export function after(clock: Clock, ms: number, fn: () => void): () => void {
  const ac = new AbortController();
  void clock.sleep(ms, ac.signal).then(() => {
    if (!ac.signal.aborted) fn();
  });
  return () => ac.abort();
}

/** Formats epoch milliseconds as an RFC3339 UTC timestamp. */
export function isoAt(ms: number): string {
  return new Date(ms).toISOString();
}

interface Sleeper {
  due: number;
  resolve: () => void;
}

/** A Clock whose time moves only when told to (tests, replays). */
export class ManualClock implements Clock {
  #now: number;
  readonly #sleepers = new Set<Sleeper>();
  readonly #waiters = new Set<{ n: number; resolve: () => void }>();

  /** `startMs` defaults to 2025-03-14T08:00:00Z. */
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

  /** Delays of the waits now pending, from now, shortest first. */
  pendingDelays(): number[] {
    return [...this.#sleepers].map((s) => s.due - this.#now).sort((a, b) => a - b);
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
