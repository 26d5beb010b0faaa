/** The per-container line rate limit of the pod-log source. */
import { TokenBucket } from '../../core/runtime/token-bucket.js';

/** Per-container rate limit of delivered lines. */
export interface RateLimit {
  /** Lines per second refilled. */
  linesPerSecond: number;
  /** Lines that may arrive at once. */
  burst: number;
}

/** The bucket of one container: `limit.linesPerSecond` lines a second, `limit.burst` at once. */
export function lineBucket(limit: RateLimit, now: () => number): TokenBucket {
  return new TokenBucket(limit.linesPerSecond, limit.burst, now);
}
