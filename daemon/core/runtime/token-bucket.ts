/**
 * One token bucket for every rate limit of the agent: lines a container may
 * deliver, Events the exporter may create, requests a caller may make.
 */

/** `ratePerSecond` tokens a second, at most `burst` saved up; starts full. */
export class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number,
  ) {
    this.#tokens = burst;
    this.#at = now();
  }

  /** Seconds until a token is there (0: there is one now); takes nothing. */
  wait(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : (1 - this.#tokens) / this.ratePerSecond;
  }

  /** Takes a token if there is one. */
  take(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  #refill(): void {
    const t = this.now();
    if (t > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((t - this.#at) * this.ratePerSecond) / 1000);
      this.#at = t;
    }
  }
}
