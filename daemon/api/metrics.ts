/**
 * Prometheus metrics of the daemon, on a registry of its own (never a
 * global one, so tests and embedders do not collide).
 */
import { type ELDHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, PROCESS_SAMPLE_MS, Registry, registerProcessMetrics, whenChanged } from './prometheus.js';
import type { SourceStatus } from '../core/types.js';
import { registerSourceMetrics, scrapedSources } from './source-metrics.js';

/** Callbacks the metrics read at scrape time. */
export interface MetricsSources {
  /** The same array while the counts are unchanged. */
  openCounts(): readonly { category: string; severity: string; n: number }[];
  sources(): SourceStatus[];
  dbSizeBytes(): number;
  /** Items waiting for a diagnosis. */
  queueDepth?(): number;
}

/**
 * Timer interval of the event-loop delay monitor while the daemon works, in
 * ms: the delay is what a tick takes beyond it. 100 ms and not 10: the timer
 * wakes the process, and at 10 ms that alone costs about 4 millicores; any
 * stall of 100 ms or more still delays a tick by its length.
 */
const EVENT_LOOP_RESOLUTION_MS = 100;
/** A slice in which the event loop ran less than this share of the time is idle. */
const IDLE_UTILIZATION = 0.01;
/** The event-loop delay gauges cover this many past slices of EVENT_LOOP_SLICE_MS. */
const EVENT_LOOP_SLICES = 6;
/** Length of an event-loop slice, ms. */
export const EVENT_LOOP_SLICE_MS = 10_000;

type DelaySummary = { p50: number; p99: number; max: number };

/** Options of EventLoopWindow (tests shorten the slices). */
export interface EventLoopWindowOptions {
  /** Length of a slice, ms. Defaults to 10 s. */
  sliceMs?: number;
  /** Slices kept, the current one included. Defaults to 6. */
  slices?: number;
  /**
   * No timer of its own: the caller ends slices with advance() on a wakeup it
   * has anyway (the daemon's detection tick), at most as far apart as a
   * slice. A timer of its own, re-armed on every call, would still wake the
   * process when its old due time came (Node leaves the underlying timer
   * where it was). Defaults to false.
   */
  driven?: boolean;
}

/**
 * Event-loop delay over the last minute, whatever the scrape interval
 * (a histogram reset at each scrape, as Node exporters keep one, shows only
 * what happened since whoever scraped last): every 10 s the monitor's percentiles
 * go into a ring of six slices and the monitor restarts; a scrape reports the
 * worst slice, the current one included.
 *
 * After a slice in which the loop was busy less than 1% of the time
 * (performance.eventLoopUtilization tells which), the next runs without the
 * monitor: its delay is how late the timer that ends it fired (its own, or
 * the caller's tick when the window is driven). The monitor's
 * timer woke an idle daemon ten times a second (once a second still cost
 * about a tenth of its CPU time), and in a slice that idle the loop was busy
 * under 100 ms in all, so no stall it could have seen was longer. The first
 * slice that is busier brings the monitor back.
 */
export class EventLoopWindow {
  private monitor: ELDHistogram | undefined;
  private readonly slices: DelaySummary[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly driven: boolean;
  private readonly keep: number;
  private readonly sliceMs: number;
  private sliceStart = performance.now();
  private utilization = performance.eventLoopUtilization();

  constructor(opts: EventLoopWindowOptions = {}) {
    this.keep = opts.slices ?? EVENT_LOOP_SLICES;
    this.sliceMs = opts.sliceMs ?? EVENT_LOOP_SLICE_MS;
    this.driven = opts.driven ?? false;
    this.monitor = startMonitor();
    if (!this.driven) this.arm();
  }

  /** Has the slice's own timer end it a slice from now. */
  private arm(): void {
    const due = performance.now() + this.sliceMs;
    this.timer = setTimeout(() => this.nextSlice(due), this.sliceMs);
    this.timer.unref();
  }

  /**
   * For a driven window ({@link EventLoopWindowOptions.driven}): ends the
   * slice when it is nearly over (90% of its length), on the caller's wakeup.
   * A window with a timer of its own ignores it (ending a slice here would
   * start a second timer).
   */
  advance(): void {
    if (this.driven && performance.now() - this.sliceStart >= this.sliceMs * 0.9) this.nextSlice(this.sliceStart + this.sliceMs);
  }

  /** The interval of the timer the delay is measured with now, ms: the monitor's, or the slice's while idle. */
  get resolutionMs(): number {
    return this.monitor ? EVENT_LOOP_RESOLUTION_MS : this.sliceMs;
  }

  /** Ends the slice that was to end at `expectedAt` (its lateness is its delay while idle) and starts the next. */
  private nextSlice(expectedAt: number): void {
    const now = performance.now();
    const late = Math.max(0, now - expectedAt) / 1000;
    this.sliceStart = now;
    if (!this.driven) this.arm();
    this.slices.push(this.current(late));
    if (this.slices.length > this.keep - 1) this.slices.shift();
    const elu = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(elu, this.utilization).utilization;
    this.utilization = elu;
    if (busy < IDLE_UTILIZATION) {
      this.monitor?.disable();
      this.monitor = undefined;
    } else if (this.monitor) {
      this.monitor.reset();
    } else {
      this.monitor = startMonitor();
    }
  }

  /** The slice so far; `late` is how late its timer fired (known when it ends), in seconds. */
  private current(late = 0): DelaySummary {
    const m = this.monitor;
    if (!m || m.count === 0) return { p50: late, p99: late, max: late };
    const delay = (ns: number) => Math.max(0, ns / 1e9 - EVENT_LOOP_RESOLUTION_MS / 1000);
    return { p50: delay(m.percentile(50)), p99: delay(m.percentile(99)), max: Math.max(late, delay(m.max)) };
  }

  /** The worst slice's delays, in seconds, over the last minute. */
  read(): DelaySummary {
    const all = [...this.slices, this.current()];
    return { p50: Math.max(...all.map((s) => s.p50)), p99: Math.max(...all.map((s) => s.p99)), max: Math.max(...all.map((s) => s.max)) };
  }

  close(): void {
    clearTimeout(this.timer);
    this.monitor?.disable();
  }
}

function startMonitor(): ELDHistogram {
  const m = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  m.enable();
  return m;
}

/** Every metric nodesage exports. */
export class DaemonMetrics {
  readonly registry = new Registry();
  readonly findingsOpened: Counter<'category' | 'severity'>;
  readonly logLines: Counter<'source'>;
  readonly detectionDuration: Histogram;
  readonly detectorFailures: Counter<'detector'>;
  /** Detection cycles whose commit failed (each is retried with the next cycle). */
  readonly storeCommitFailures: Counter;
  readonly diagnoses: Counter<'diagnoser' | 'outcome'>;
  readonly diagnosisDuration: Histogram<'diagnoser'>;
  readonly llmTokensPerSecond: Gauge<'phase'>;
  readonly diagnosesDropped: Counter;
  private readonly eventLoop: EventLoopWindow;
  private readonly stopProcessMetrics: () => void;

  /**
   * @param opts.eventLoopDriven the event-loop slices end on tick() instead of
   *   a timer of their own: the daemon ticks at least every 10 s.
   */
  constructor(src: MetricsSources, opts: { eventLoopDriven?: boolean } = {}) {
    this.eventLoop = new EventLoopWindow({ driven: opts.eventLoopDriven ?? false });
    const registers = [this.registry];
    // process_* and nodejs_* as a Node exporter shows them (without gauges named *_total, which
    // Prometheus naming reserves for counters, and without a second event-loop timer).
    this.stopProcessMetrics = registerProcessMetrics(this.registry);
    const open: Gauge<'category' | 'severity'> = new Gauge({
      name: 'nodesage_findings_open',
      help: 'Open findings by category and severity.',
      labelNames: ['category', 'severity'],
      registers,
      // The store gives the same array while the counts are unchanged.
      collect: whenChanged(
        () => src.openCounts(),
        (rows) => {
          open.reset();
          for (const r of rows) open.set({ category: r.category, severity: r.severity }, r.n);
        },
      ),
    });
    this.findingsOpened = new Counter({
      name: 'nodesage_findings_opened_total',
      help: 'Findings opened (or reopened) since start.',
      labelNames: ['category', 'severity'],
      registers,
    });
    const sources = scrapedSources(() => src.sources());
    const healthy: Gauge<'source' | 'state'> = new Gauge({
      name: 'nodesage_source_healthy',
      help: 'Whether a source is healthy (1) or stale, failing or disabled (0).',
      labelNames: ['source', 'state'],
      registers,
      collect: whenChanged(sources, (list) => {
        healthy.reset();
        for (const s of list) healthy.set({ source: s.name, state: s.state }, s.state === 'healthy' ? 1 : 0);
      }),
    });
    const lastSignal: Gauge<'source'> = new Gauge({
      name: 'nodesage_source_last_signal_timestamp_seconds',
      help: 'Unix time of the last signal from a source.',
      labelNames: ['source'],
      registers,
      collect: whenChanged(sources, (list) => {
        lastSignal.reset();
        for (const s of list) if (s.lastSignalAt) lastSignal.set({ source: s.name }, Date.parse(s.lastSignalAt) / 1000);
      }),
    });
    registerSourceMetrics(this.registry, sources);
    this.logLines = new Counter({ name: 'nodesage_log_lines_read_total', help: 'Log lines read per source.', labelNames: ['source'], registers });
    this.detectionDuration = new Histogram({
      name: 'nodesage_detection_cycle_duration_seconds',
      help: 'Duration of one detection cycle (detect, track, store).',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.detectorFailures = new Counter({
      name: 'nodesage_detector_failures_total',
      help: 'Detector runs that threw.',
      labelNames: ['detector'],
      registers,
    });
    this.storeCommitFailures = new Counter({
      name: 'nodesage_store_commit_failures_total',
      help: 'Detection cycles that could not be stored (disk full, I/O error); kept and retried with the next cycle.',
      registers,
    });
    new Gauge({
      name: 'nodesage_database_size_bytes',
      help: 'Size of the SQLite database (main file and WAL).',
      registers,
      collectEveryMs: PROCESS_SAMPLE_MS,
      collect() {
        this.set(src.dbSizeBytes());
      },
    });
    this.diagnoses = new Counter({
      name: 'nodesage_diagnoses_total',
      help: 'Diagnoses produced, by diagnoser and outcome.',
      labelNames: ['diagnoser', 'outcome'],
      registers,
    });
    this.diagnosisDuration = new Histogram({
      name: 'nodesage_diagnosis_duration_seconds',
      help: 'Time from dequeue to stored diagnosis.',
      labelNames: ['diagnoser'],
      buckets: [0.01, 0.1, 0.5, 1, 2, 5, 10, 20, 60, 120],
      registers,
    });
    this.llmTokensPerSecond = new Gauge({
      name: 'nodesage_llm_tokens_per_second',
      help: 'Tokens per second of the last diagnosis, by phase (prompt, generation).',
      labelNames: ['phase'],
      registers,
    });
    new Gauge({
      name: 'nodesage_diagnosis_queue_depth',
      help: 'Findings waiting for a diagnosis.',
      registers,
      collect() {
        this.set(src.queueDepth?.() ?? 0);
      },
    });
    this.diagnosesDropped = new Counter({
      name: 'nodesage_diagnosis_queue_dropped_total',
      help: 'Diagnosis requests dropped because the queue was full.',
      registers,
    });
    const eventLoop = this.eventLoop;
    for (const [key, name, what] of [
      ['p50', 'nodesage_event_loop_delay_p50_seconds', 'Median'],
      ['p99', 'nodesage_event_loop_delay_p99_seconds', '99th percentile'],
      ['max', 'nodesage_event_loop_delay_max_seconds', 'Longest'],
    ] as const) {
      new Gauge({
        name,
        help: `${what} event-loop delay, worst 10-second slice of the last minute (perf_hooks.monitorEventLoopDelay, ${EVENT_LOOP_RESOLUTION_MS} ms timer; after an idle slice, how late the timer that ended the next one fired).`,
        registers,
        collectEveryMs: PROCESS_SAMPLE_MS,
        collect() {
          this.set(eventLoop.read()[key]);
        },
      });
    }
  }

  /** Called on the daemon's detection tick; ends the event-loop slice when the window is driven and the slice is due. */
  tick(): void {
    this.eventLoop.advance();
  }

  /** Stops the event-loop monitor and the GC listener. */
  close(): void {
    this.eventLoop.close();
    this.stopProcessMetrics();
  }
}
