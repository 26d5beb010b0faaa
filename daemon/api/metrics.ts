/**
 * Prometheus metrics of the daemon, on a registry of its own (never the
 * global one, so tests and embedders do not collide).
 */
import { Counter, Gauge, Histogram, type Metric, Registry, collectDefaultMetrics } from 'prom-client';
import type { SourceStatus } from '../core/types.js';

/** Callbacks the metrics read at scrape time. */
export interface MetricsSources {
  openCounts(): { category: string; severity: string; n: number }[];
  sources(): SourceStatus[];
  dbSizeBytes(): number;
  /** Items waiting for a diagnosis. */
  queueDepth?(): number;
}

/** Every metric nodesage exports. */
export class DaemonMetrics {
  readonly registry = new Registry();
  readonly findingsOpened: Counter<'category' | 'severity'>;
  readonly signals: Counter<'source'>;
  readonly logLines: Counter<'source'>;
  readonly logLinesDropped: Counter<'source'>;
  readonly detectionDuration: Histogram;
  readonly detectorFailures: Counter<'detector'>;
  readonly diagnoses: Counter<'diagnoser' | 'outcome'>;
  readonly diagnosisDuration: Histogram<'diagnoser'>;
  readonly llmTokensPerSecond: Gauge<'phase'>;
  readonly diagnosesDropped: Counter;

  constructor(src: MetricsSources) {
    const registers = [this.registry];
    // prom-client's defaults include gauges named *_total (nodejs_active_handles_total...), which
    // Prometheus naming rules reserve for counters: keep every default metric but those.
    const defaults = new Registry();
    collectDefaultMetrics({ register: defaults });
    for (const m of defaults.getMetricsAsArray()) {
      const metric = m as unknown as { name: string; type?: string };
      if (metric.name.endsWith('_total') && metric.type !== 'counter') continue;
      this.registry.registerMetric(m as unknown as Metric);
    }
    new Gauge({
      name: 'nodesage_findings_open',
      help: 'Open findings by category and severity.',
      labelNames: ['category', 'severity'],
      registers,
      collect() {
        this.reset();
        for (const r of src.openCounts()) this.set({ category: r.category, severity: r.severity }, r.n);
      },
    });
    this.findingsOpened = new Counter({
      name: 'nodesage_findings_opened_total',
      help: 'Findings opened (or reopened) since start.',
      labelNames: ['category', 'severity'],
      registers,
    });
    new Gauge({
      name: 'nodesage_source_healthy',
      help: 'Whether a source is healthy (1) or stale, failing or disabled (0).',
      labelNames: ['source', 'state'],
      registers,
      collect() {
        this.reset();
        for (const s of src.sources()) this.set({ source: s.name, state: s.state }, s.state === 'healthy' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'nodesage_source_last_signal_timestamp_seconds',
      help: 'Unix time of the last signal from a source.',
      labelNames: ['source'],
      registers,
      collect() {
        this.reset();
        for (const s of src.sources()) if (s.lastSignalAt) this.set({ source: s.name }, Date.parse(s.lastSignalAt) / 1000);
      },
    });
    this.signals = new Counter({ name: 'nodesage_signals_total', help: 'Signals received per source.', labelNames: ['source'], registers });
    this.logLines = new Counter({ name: 'nodesage_log_lines_read_total', help: 'Log lines read per source.', labelNames: ['source'], registers });
    // Sources count their own drops (rate limits, unparseable lines); follow those counters.
    const seenDrops = new Map<string, number>();
    this.logLinesDropped = new Counter({
      name: 'nodesage_log_lines_dropped_total',
      help: 'Log lines dropped (rate limits, backlog, unparseable) per source.',
      labelNames: ['source'],
      registers,
      collect() {
        for (const s of src.sources()) {
          const d = s.detail ?? {};
          const dropped = ['droppedLines', 'unparseableLines', 'unparseable'].reduce((n, k) => n + (typeof d[k] === 'number' ? (d[k] as number) : 0), 0);
          const prev = seenDrops.get(s.name) ?? 0;
          if (dropped > prev) this.inc({ source: s.name }, dropped - prev);
          seenDrops.set(s.name, Math.max(prev, dropped));
        }
      },
    });
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
    new Gauge({
      name: 'nodesage_database_size_bytes',
      help: 'Size of the SQLite database (main file and WAL).',
      registers,
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
  }
}
