/**
 * One retry schedule for all the watches of one API server while it cannot be
 * reached.
 *
 * A node runs several list+watch loops against the same server (pods, the
 * Node, node events, pod events per namespace). When the server is down they
 * would all retry on their own, each paying a TCP+TLS attempt; across a big
 * fleet that multiplies the load on a control plane that is trying to come
 * back. Here the first loop to fail becomes the prober and waits out the
 * shared backoff; the others wait for the prober's verdict and all resume the
 * moment any request gets an HTTP answer again.
 */
import { Backoff, type BackoffOptions } from '../../core/runtime/backoff.js';
import type { Clock } from '../../core/runtime/clock.js';

/** Shared backoff for "the server did not answer at all" failures. */
export class ReachabilityGate {
  readonly #clock: Clock;
  readonly #backoff: Backoff;
  #prober = false;
  #waiters = new Set<() => void>();
  /** Attempts the prober was sent back to make while the server was unreachable. */
  probes = 0;

  constructor(clock: Clock, backoff: BackoffOptions) {
    this.#clock = clock;
    this.#backoff = new Backoff({ clock, ...backoff });
  }

  /** Loops waiting for the prober right now. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** A request got an HTTP answer (any status): everyone may go again. */
  reachable(): void {
    this.#backoff.reset();
    this.#release();
  }

  /**
   * A request got no HTTP answer. Resolves when the caller should try again:
   * after the shared backoff for the prober, or when the server answers (or
   * the prober gives up its role) for everyone else. Resolves early on abort.
   */
  async unreachable(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    if (!this.#prober) {
      this.#prober = true;
      try {
        await this.#clock.sleep(this.#backoff.next(), signal);
        if (!signal.aborted) this.probes++;
      } finally {
        this.#prober = false;
        // A prober that was stopped hands the role on: waiters retry and one of them takes it.
        if (signal.aborted) this.#release();
      }
      return;
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #release(): void {
    for (const w of [...this.#waiters]) w();
  }
}
