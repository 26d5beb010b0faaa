/** Per-key request rate (token bucket) and concurrency limits. */
import { TokenBucket } from '../../core/runtime/token-bucket.js';

/** A token bucket per key: `rate` tokens a second, at most `burst` saved up. */
export class RateLimiter {
  readonly #buckets = new Map<string, TokenBucket>();
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
    /** Keys tracked at most; the least recently used are forgotten (a forgotten key starts full). */
    private readonly maxKeys = 10_000,
  ) {}

  /** Takes one token; returns 0 when allowed, else the seconds until one is available. */
  take(key: string): number {
    const b = this.#bucket(key);
    return b.take() ? 0 : b.wait();
  }

  /** Seconds until `key` has a token, without taking one (0: it has one now). */
  wait(key: string): number {
    return this.#bucket(key).wait();
  }

  /** The key's bucket, moved to the most recently used end. */
  #bucket(key: string): TokenBucket {
    const b = this.#buckets.get(key) ?? new TokenBucket(this.rate, this.burst, this.now);
    this.#buckets.delete(key);
    this.#buckets.set(key, b);
    if (this.#buckets.size > this.maxKeys) this.#buckets.delete(this.#buckets.keys().next().value as string);
    return b;
  }
}

/** At most `limit` running at once per key. */
export class ConcurrencyLimiter {
  readonly #running = new Map<string, number>();
  constructor(private readonly limit: number) {}

  /** Returns a release function, or null when the key is at its limit. */
  tryAcquire(key: string): (() => void) | null {
    const n = this.#running.get(key) ?? 0;
    if (n >= this.limit) return null;
    this.#running.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#running.get(key) ?? 1) - 1;
      if (left <= 0) this.#running.delete(key);
      else this.#running.set(key, left);
    };
  }
}
