/**
 * Admission for interactive model requests (`/v1/ask`, `/v1/chat/completions`).
 *
 * The engine runs one generation at a time and queues the rest without
 * limit; on a CPU node one answer takes tens of seconds, so an unbounded
 * queue only turns load into timeouts. The gate admits one running request
 * plus a few waiting ones and refuses the next at once, so the client can
 * retry (429 / 503 with Retry-After) instead of hanging.
 */

/** Options of {@link EngineGate}. */
export interface EngineGateOptions {
  /** Requests allowed to wait behind the running one. Defaults to 4. */
  maxWaiting?: number;
}

/** A bounded count of interactive requests in flight. */
export class EngineGate {
  readonly #limit: number;
  #active = 0;

  constructor(options: EngineGateOptions = {}) {
    const maxWaiting = options.maxWaiting ?? 4;
    if (!Number.isInteger(maxWaiting) || maxWaiting < 0) throw new TypeError('EngineGate: maxWaiting must be an integer >= 0');
    this.#limit = 1 + maxWaiting;
  }

  /** Requests admitted and not yet released (running + waiting). */
  get active(): number {
    return this.#active;
  }

  /** Admits a request and returns its release function (safe to call twice), or null when full. */
  tryEnter(): (() => void) | null {
    if (this.#active >= this.#limit) return null;
    this.#active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
    };
  }
}
