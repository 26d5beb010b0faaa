/**
 * The pod-log collector driven by pollNow() only (no timer, no watch, no rate
 * limit), over a fresh fixture host root: each test step is deterministic.
 */
import { PodLogCollector, type PodLogCollectorOptions } from '../../daemon/collectors/pod-logs.js';
import { type CommitLog, type HostRoot, makeHostRoot } from './host-root.js';

/** One test's host root and the collectors it started. */
export class PodLogHarness {
  readonly host: HostRoot = makeHostRoot();
  private running: PodLogCollector[] = [];

  /** @param defaults options every collector of this harness gets (overridable per start). */
  constructor(private readonly defaults: PodLogCollectorOptions = {}) {}

  /** Starts a collector over the host root, feeding `log`. */
  async start(log: CommitLog, opts: PodLogCollectorOptions = {}): Promise<PodLogCollector> {
    const c = new PodLogCollector({
      hostRoot: this.host.root,
      checkpoints: log.store,
      pollIntervalMs: 3_600_000,
      scanIntervalMs: 0,
      watch: false,
      rateLimit: null,
      ...this.defaults,
      ...opts,
    });
    this.running.push(c);
    await c.start(log.sink);
    return c;
  }

  /** Stops one collector (a daemon stop or crash between steps). */
  async stop(c: PodLogCollector): Promise<void> {
    await c.stop();
    this.running = this.running.filter((r) => r !== c);
  }

  /** Stops everything and removes the host root. */
  async cleanup(): Promise<void> {
    for (const c of this.running) await c.stop();
    this.running = [];
    this.host.cleanup();
  }
}
