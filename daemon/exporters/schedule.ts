/**
 * The exporters' one pending timer (next flush, retry or heartbeat), on an
 * injectable clock so tests can let hours of an API-server outage pass.
 */
import type { Clock } from '../core/runtime/clock.js';

/** Runs a callback after a delay; setting it again replaces the pending run. */
export class Rerun {
  private timer: NodeJS.Timeout | undefined;
  private wait: AbortController | undefined;

  /** `clock` defaults to real timers that do not keep the process alive. */
  constructor(
    private readonly run: () => void,
    private readonly clock?: Clock,
  ) {}

  /** Runs the callback `ms` from now, instead of any pending run. */
  in(ms: number): void {
    this.cancel();
    if (!this.clock) {
      this.timer = setTimeout(this.run, ms);
      // An idle exporter must not keep the daemon alive.
      this.timer.unref();
      return;
    }
    const wait = new AbortController();
    this.wait = wait;
    void this.clock.sleep(ms, wait.signal).then(() => {
      if (!wait.signal.aborted) this.run();
    });
  }

  /** Drops the pending run. */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.wait?.abort();
    this.wait = undefined;
  }
}
