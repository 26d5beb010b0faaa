/**
 * Time as the kube collectors see it. Retry waits go through a Clock so tests
 * can let hours of an API-server outage pass in a few real seconds.
 */

/** A source of "now" and of cancellable waits. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`, or as soon as `signal` aborts (it never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The wall clock and real timers. */
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
      signal?.addEventListener('abort', done, { once: true });
    });
  },
};

/** Formats epoch milliseconds as an RFC3339 UTC timestamp. */
export function isoAt(ms: number): string {
  return new Date(ms).toISOString();
}
