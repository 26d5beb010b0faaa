/**
 * The exporters' one pending timer (next flush, retry or heartbeat), on the
 * sources' clock so tests can let hours of an API-server outage pass.
 */
import { type Clock, after, systemClock } from '../core/runtime/clock.js';

/** Runs a callback after a delay; setting it again replaces the pending run. */
export class Rerun {
  private cancelPending: (() => void) | undefined;

  /** `clock` defaults to the system clock, whose waits do not keep the process alive. */
  constructor(
    private readonly run: () => void,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Runs the callback `ms` from now, instead of any pending run. */
  in(ms: number): void {
    this.cancel();
    this.cancelPending = after(this.clock, ms, this.run);
  }

  /** Drops the pending run. */
  cancel(): void {
    this.cancelPending?.();
    this.cancelPending = undefined;
  }
}
