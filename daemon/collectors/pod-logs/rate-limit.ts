/** The per-container line rate limit of the pod-log source. */

/** Per-container rate limit of delivered lines. */
export interface RateLimit {
  /** Lines per second refilled. */
  linesPerSecond: number;
  /** Lines that may arrive at once. */
  burst: number;
}

/** A token bucket: `take()` is true while the rate allows one more line. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number,
  ) {
    this.tokens = limit.burst;
    this.last = now();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    const t = this.now();
    if (t > this.last) {
      this.tokens = Math.min(this.limit.burst, this.tokens + ((t - this.last) * this.limit.linesPerSecond) / 1000);
      this.last = t;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
