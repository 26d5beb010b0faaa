/**
 * Opt-in: publishes node problems as NodeConditions, like node-problem-detector
 * (same condition types and reasons where they overlap), so schedulers, the
 * cluster autoscaler and remediation controllers can act on them.
 *
 * Detection never waits for it: update() only records the desired state; a
 * timer flushes it with backoff while the API server is away, and the whole
 * desired state is resent when it comes back.
 */
import type { Logger } from 'pino';
import type { TrackedFinding } from '../tracker/tracker.js';
import { Backoff } from '../core/runtime/backoff.js';
import { type Clock, systemClock } from '../core/runtime/clock.js';
import { Rerun } from './schedule.js';

/** One node condition nodesage owns. */
export interface ExportedCondition {
  type: string;
  status: 'True' | 'False';
  reason: string;
  message: string;
  lastHeartbeatTime: string;
  lastTransitionTime: string;
}

interface ConditionRule {
  type: string;
  okReason: string;
  okMessage: string;
  /** The problem reason when this finding sets the condition, else null. */
  match(f: TrackedFinding): string | null;
}

// `reasons`: a finding merged from several views of one problem keeps every reason (merge.ts).
const text = (f: TrackedFinding) => `${f.detail ?? ''} ${f.title} ${String(f.facts?.reasons ?? '')}`;

/** The conditions nodesage sets; names and reasons follow node-problem-detector where they overlap. */
export const CONDITION_RULES: readonly ConditionRule[] = [
  {
    type: 'KernelDeadlock',
    okReason: 'KernelHasNoDeadlock',
    okMessage: 'kernel has no deadlock',
    match: (f) => (f.category === 'KernelHungTask' ? 'TaskHung' : f.category === 'KernelSoftLockup' ? 'SoftLockup' : null),
  },
  {
    type: 'ReadonlyFilesystem',
    okReason: 'FilesystemIsNotReadOnly',
    okMessage: 'Filesystem is not read-only',
    match: (f) => (f.category === 'FilesystemError' && /read.?only/i.test(text(f)) ? 'FilesystemIsReadOnly' : null),
  },
  {
    type: 'FrequentKubeletRestart',
    okReason: 'NoFrequentKubeletRestart',
    okMessage: 'kubelet is functioning properly',
    match: (f) => (f.category === 'KubeletUnhealthy' && /restart/i.test(text(f)) ? 'FrequentKubeletRestart' : null),
  },
  {
    type: 'FrequentContainerdRestart',
    okReason: 'NoFrequentContainerdRestart',
    okMessage: 'containerd is functioning properly',
    match: (f) => (f.category === 'RuntimeUnhealthy' && /restart/i.test(text(f)) ? 'FrequentContainerdRestart' : null),
  },
];

/** Writes node status; the real one patches through @kubernetes/client-node. */
export interface NodeStatusWriter {
  patchConditions(nodeName: string, conditions: ExportedCondition[]): Promise<void>;
}

/** Options of the conditions exporter. */
export interface ConditionsExporterOptions {
  nodeName: string;
  writer: NodeStatusWriter;
  logger?: Logger;
  /** Resend unchanged conditions this often (heartbeat). Defaults to 60000 ms. */
  heartbeatMs?: number;
  /** First retry delay after a failed write. Defaults to 1000 ms. */
  retryInitialMs?: number;
  /** Longest retry delay. Defaults to 30000 ms. */
  retryMaxMs?: number;
  /** Time and waits (tests pass a manual clock). Defaults to the system clock. */
  clock?: Clock;
}

/** Keeps this node's nodesage conditions in line with the open findings. */
export class ConditionsExporter {
  private desired = new Map<string, ExportedCondition>();
  private dirty = true;
  /** Changes of the desired state so far: one made while a write is on the wire is written after it. */
  private changes = 0;
  private readonly rerun: Rerun;
  private readonly backoff: Backoff;
  private lastSent = 0;
  private flushing = false;
  private stopped = false;
  /** Successful and failed writes, for status and tests. */
  readonly stats = { writes: 0, failures: 0, lastError: null as string | null };

  constructor(private readonly opts: ConditionsExporterOptions) {
    this.backoff = new Backoff({ initialMs: opts.retryInitialMs ?? 1000, maxMs: opts.retryMaxMs ?? 30_000, jitter: 0.2, clock: opts.clock });
    this.rerun = new Rerun(() => void this.flush(), opts.clock);
  }

  private now(): number {
    return (this.opts.clock ?? systemClock).now();
  }

  /** Records the desired conditions from the open findings; never blocks. */
  update(open: TrackedFinding[], now = new Date(this.now()).toISOString()): void {
    for (const rule of CONDITION_RULES) {
      const hits = open.map((f) => ({ f, reason: rule.match(f) })).filter((h) => h.reason !== null);
      const prev = this.desired.get(rule.type);
      const status: 'True' | 'False' = hits.length > 0 ? 'True' : 'False';
      const reason = hits.length > 0 ? hits[0]!.reason! : rule.okReason;
      const message = hits.length > 0 ? hits.map((h) => h.f.title).join('; ').slice(0, 1024) : rule.okMessage;
      if (!prev || prev.status !== status || prev.reason !== reason || prev.message !== message) {
        this.desired.set(rule.type, {
          type: rule.type,
          status,
          reason,
          message,
          lastHeartbeatTime: now,
          lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : now,
        });
        this.dirty = true;
        this.changes++;
      }
    }
    // While retrying, the retry sends the new state too: a change must not cut the backoff short.
    if (this.dirty && this.backoff.attempts === 0) this.schedule(0);
  }

  /** The conditions as they would be written now. */
  conditions(): ExportedCondition[] {
    return [...this.desired.values()];
  }

  /** Starts the heartbeat. */
  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.rerun.in(ms);
  }

  /** Writes the desired state if it changed or the heartbeat is due. */
  async flush(): Promise<void> {
    if (this.flushing || this.stopped) return;
    const heartbeat = this.opts.heartbeatMs ?? 60_000;
    if (!this.dirty && this.now() - this.lastSent < heartbeat) {
      this.schedule(heartbeat - (this.now() - this.lastSent));
      return;
    }
    if (this.desired.size === 0) this.update([]);
    this.flushing = true;
    const now = new Date(this.now()).toISOString();
    const conditions = [...this.desired.values()].map((c) => ({ ...c, lastHeartbeatTime: now }));
    const sending = this.changes;
    try {
      await this.opts.writer.patchConditions(this.opts.nodeName, conditions);
      this.stats.writes++;
      this.stats.lastError = null;
      this.dirty = this.changes !== sending;
      this.lastSent = this.now();
      this.backoff.reset();
      this.schedule(this.dirty ? 0 : heartbeat);
    } catch (err) {
      this.stats.failures++;
      this.stats.lastError = (err as Error).message;
      // Everything is resent on the next success: the desired state is the queue.
      this.dirty = true;
      const delay = this.backoff.next();
      this.opts.logger?.warn({ err, retryInMs: delay }, 'writing node conditions failed; will retry');
      this.schedule(delay);
    } finally {
      this.flushing = false;
    }
  }

  /** Stops the timers. */
  stop(): void {
    this.stopped = true;
    this.rerun.cancel();
  }
}
