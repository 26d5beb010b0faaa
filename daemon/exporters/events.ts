/**
 * Opt-in: publishes event-type findings (kernel and runtime problems that
 * happened, as node-problem-detector's "temporary" problems) as Kubernetes
 * Events on the Node or Pod they are about. Rate-limited, deduplicated, and
 * queued (bounded) while the API server is away; never blocks detection.
 */
import type { Logger } from 'pino';
import { Backoff } from '../core/runtime/backoff.js';
import { type Clock, systemClock } from '../core/runtime/clock.js';
import { TokenBucket } from '../core/runtime/token-bucket.js';
import { Rerun } from './schedule.js';
import type { TrackedFinding } from '../tracker/tracker.js';

/** A core/v1 Event as nodesage writes it (JSON wire form). */
export interface EventBody {
  metadata: { name: string; namespace: string };
  involvedObject: { kind: 'Node' | 'Pod'; name: string; namespace?: string };
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  source: { component: string; host: string };
  reportingComponent: string;
  reportingInstance: string;
}

/** Creates events; the real one (kube-writers.ts) posts to the API server. */
export interface EventWriter {
  createEvent(e: EventBody): Promise<void>;
}

/** Options of the events exporter. */
export interface EventsExporterOptions {
  nodeName: string;
  writer: EventWriter;
  logger?: Logger;
  /** Events kept while the API server is away (oldest dropped first). Defaults to 200. */
  maxQueue?: number;
  /** Events sent per minute at most. Defaults to 20. */
  perMinute?: number;
  /** A finding is published again only after this long. Defaults to 600000 ms. */
  dedupeMs?: number;
  /** Time, rate limit and retry waits (tests pass a manual clock). Defaults to the system clock. */
  clock?: Clock;
}

/** Publishes event-type findings as Kubernetes Events. */
export class EventsExporter {
  /** Events to send, each with the finding it is about. */
  private readonly queue: { findingId: string; event: EventBody }[] = [];
  private readonly lastPublished = new Map<string, number>();
  private readonly backoff: Backoff;
  /** The Events one minute allows (`perMinute`, saved up to a minute's worth). */
  private readonly rate: TokenBucket;
  private readonly rerun: Rerun;
  private sending = false;
  private stopped = false;
  /** Counters for status and tests. */
  readonly stats = { sent: 0, dropped: 0, deduplicated: 0, failures: 0, lastError: null as string | null };

  constructor(private readonly opts: EventsExporterOptions) {
    this.backoff = new Backoff({ initialMs: 1000, maxMs: 30_000, jitter: 0.2, clock: opts.clock });
    this.rate = new TokenBucket(this.perMinute() / 60, this.perMinute(), () => this.clock());
    this.rerun = new Rerun(() => void this.drain(), opts.clock);
  }

  private clock(): number {
    return (this.opts.clock ?? systemClock).now();
  }

  private perMinute(): number {
    return this.opts.perMinute ?? 20;
  }

  /** Queues events for the findings opened in this cycle; never blocks. */
  publish(opened: TrackedFinding[]): void {
    const now = this.clock();
    for (const f of opened) {
      if (f.lifecycle !== 'event') continue;
      const last = this.lastPublished.get(f.id);
      if (last !== undefined && now - last < (this.opts.dedupeMs ?? 600_000)) {
        this.stats.deduplicated++;
        continue;
      }
      this.lastPublished.set(f.id, now);
      if (this.lastPublished.size > 10_000) this.lastPublished.delete(this.lastPublished.keys().next().value!);
      // Still waiting (API server away): the same problem again updates its queued event rather than adding another
      // (the head of the queue may be on the wire).
      const queued = this.queue.find((q, i) => q.findingId === f.id && !(this.sending && i === 0));
      if (queued) {
        const again = this.toEvent(f, now);
        // The finding's count already includes the occurrences of the queued event.
        queued.event = { ...again, metadata: queued.event.metadata, firstTimestamp: queued.event.firstTimestamp };
        this.stats.deduplicated++;
        continue;
      }
      this.queue.push({ findingId: f.id, event: this.toEvent(f, now) });
      const max = this.opts.maxQueue ?? 200;
      while (this.queue.length > max) {
        this.queue.shift();
        this.stats.dropped++;
      }
    }
    // While retrying, the queue goes with the retry: new events must not cut the backoff short.
    if (this.queue.length > 0 && this.backoff.attempts === 0) this.schedule(0);
  }

  private toEvent(f: TrackedFinding, now: number): EventBody {
    const isPod = f.subject.kind !== 'Node';
    const namespace = isPod ? (f.subject.namespace ?? 'default') : 'default';
    return {
      metadata: { name: `${isPod ? f.subject.name : this.opts.nodeName}.nodesage.${f.id}.${now.toString(16)}`.slice(0, 253), namespace },
      involvedObject: isPod ? { kind: 'Pod', name: f.subject.name, namespace } : { kind: 'Node', name: this.opts.nodeName },
      reason: f.category,
      message: `${f.title}${f.subject.container ? ` (container ${f.subject.container})` : ''}: ${f.message}`.slice(0, 1024),
      type: f.severity === 'info' ? 'Normal' : 'Warning',
      count: Math.max(1, f.count),
      firstTimestamp: f.firstSeen,
      // Never in the future.
      lastTimestamp: new Date(Math.min(Date.parse(f.lastSeen), now)).toISOString(),
      source: { component: 'nodesage', host: this.opts.nodeName },
      reportingComponent: 'nodesage',
      reportingInstance: this.opts.nodeName,
    };
  }

  /** Events waiting to be sent. */
  depth(): number {
    return this.queue.length;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.rerun.in(ms);
  }

  /** Sends queued events within the rate limit. */
  async drain(): Promise<void> {
    if (this.sending || this.stopped) return;
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        const wait = this.rate.wait();
        if (wait > 0) {
          this.schedule(Math.ceil(wait * 1000));
          return;
        }
        const e = this.queue[0]!.event;
        try {
          await this.opts.writer.createEvent(e);
        } catch (err) {
          // Created by an earlier attempt whose answer was lost with the connection: sent, not to be sent twice.
          if (alreadyExists(err)) {
            this.queue.shift();
            this.stats.sent++;
            this.backoff.reset();
            continue;
          }
          this.stats.failures++;
          this.stats.lastError = (err as Error).message;
          const delay = this.backoff.next();
          this.opts.logger?.warn({ err, retryInMs: delay, queued: this.queue.length }, 'creating an event failed; will retry');
          this.schedule(delay);
          return;
        }
        this.queue.shift();
        this.rate.take();
        this.stats.sent++;
        this.backoff.reset();
      }
    } finally {
      this.sending = false;
    }
  }

  /** Stops sending. */
  stop(): void {
    this.stopped = true;
    this.rerun.cancel();
  }
}

/** A 409 from the API server (HttpStatusError): an object of that name exists. */
function alreadyExists(err: unknown): boolean {
  return (err as { status?: unknown }).status === 409;
}
