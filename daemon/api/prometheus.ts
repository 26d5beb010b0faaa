/**
 * A small Prometheus text-format (0.0.4) writer: counters, gauges and
 * histograms with labels, a registry that renders them, and the process_* and
 * nodejs_* metrics a Node exporter shows. The subset of prom-client's API the
 * daemon uses, without its cluster aggregation, exemplars and second
 * event-loop timer, which cost resident memory and idle CPU on small nodes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { type PerformanceEntry, PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';

/** Label values of one series. */
export type Labels<L extends string> = Partial<Record<L, string | number>>;

/** Options of a metric; `M` is the metric's own type, `this` in `collect`. */
export interface MetricOptions<L extends string, M = unknown> {
  name: string;
  help: string;
  /** Label names, in the order they are written. Defaults to none. */
  labelNames?: readonly L[];
  /** Registries the metric is added to. Defaults to none. */
  registers?: Registry[];
  /** Called before each scrape to bring values up to date; `this` is the metric. */
  collect?: (this: M) => void | Promise<void>;
  /**
   * Least time between two collects, in ms; a scrape sooner shows the values of the last one. For
   * process figures sampled anyway (CPU, memory, descriptors), which no scraper reads more often. Defaults to 0.
   */
  collectEveryMs?: number;
}

/** Options of a histogram. */
export interface HistogramOptions<L extends string> extends MetricOptions<L, Histogram<L>> {
  /** Upper bounds of the buckets, ascending. Defaults to Prometheus client defaults (5 ms to 10 s). */
  buckets?: readonly number[];
}

/** A metric a registry can render. */
export interface Metric {
  readonly name: string;
  /**
   * Exposition lines of this metric (HELP, TYPE and samples) at a scrape that started at `now` (performance.now()
   * ms, the same for every metric of a scrape); a promise only while an asynchronous collect runs.
   */
  render(now: number): string | Promise<string>;
}

const escapeHelp = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** A sample value as Prometheus writes it. */
function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

/** `{a="x",b="y"}`, or nothing without labels. */
function formatLabels(pairs: [string, string | number][]): string {
  return pairs.length === 0 ? '' : `{${pairs.map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(',')}}`;
}

abstract class BaseMetric<L extends string, V> implements Metric {
  readonly name: string;
  protected readonly help: string;
  protected readonly labelNames: readonly L[];
  /** Series by their label key. */
  protected readonly series = new Map<string, { labels: [string, string | number][]; value: V }>();
  private readonly collectFn: (() => void | Promise<void>) | undefined;
  private readonly collectEveryMs: number;
  private collectedAt = Number.NEGATIVE_INFINITY;
  /** Counts writes; the text rendered at a count is kept until the next write. */
  private writes = 0;
  private rendered: { writes: number; text: string } | undefined;
  protected abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(opts: MetricOptions<L, never>) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(opts.name)) throw new Error(`invalid metric name: ${opts.name}`);
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames ?? [];
    this.collectFn = opts.collect as unknown as (() => void | Promise<void>) | undefined;
    this.collectEveryMs = opts.collectEveryMs ?? 0;
    for (const r of opts.registers ?? []) r.registerMetric(this);
  }

  /** The series of these labels, created with `init` when new. */
  protected entry(labels: Labels<L> | undefined, init: () => V): { labels: [string, string | number][]; value: V } {
    // Every write goes through here (its caller changes the value it returns).
    this.writes++;
    const pairs: [string, string | number][] = [];
    for (const k of this.labelNames) {
      const v = labels?.[k];
      if (v !== undefined) pairs.push([k, v]);
    }
    for (const k of Object.keys(labels ?? {})) {
      if (!this.labelNames.includes(k as L)) throw new Error(`${this.name} has no label "${k}"`);
    }
    const key = pairs.map(([k, v]) => `${k}\u0000${v}`).join('\u0001');
    let e = this.series.get(key);
    if (!e) {
      e = { labels: pairs, value: init() };
      this.series.set(key, e);
    }
    return e;
  }

  /** Drops every series. */
  reset(): void {
    this.writes++;
    this.series.clear();
  }

  protected abstract samples(): string[];

  render(now: number): string | Promise<string> {
    if (this.collectFn && now - this.collectedAt >= this.collectEveryMs) {
      this.collectedAt = now;
      // Most collects are synchronous: waiting a microtask for each of some fifty metrics cost a scrape more than rendering them.
      const pending = this.collectFn.call(this);
      if (pending) return pending.then(() => this.text());
    }
    return this.text();
  }

  /** The exposition lines, rendered again only after a write: most series do not change between two scrapes. */
  private text(): string {
    if (this.rendered?.writes !== this.writes) {
      const text = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`, ...this.samples()].join('\n');
      this.rendered = { writes: this.writes, text };
    }
    return this.rendered.text;
  }
}

/**
 * A collect that calls `write` only when `read` gives another value (by identity) than at the last scrape: a
 * series left unwritten keeps the text it rendered. For readers that return the same object while nothing changed.
 */
export function whenChanged<T>(read: () => T, write: (value: T) => void): () => void {
  let last: { value: T } | undefined;
  return () => {
    const value = read();
    if (last && last.value === value) return;
    last = { value };
    write(value);
  };
}

/** Splits optional labels from a value argument, as prom-client's `inc(labels?, value?)` does. */
function args<L extends string>(a?: Labels<L> | number, b?: number): { labels: Labels<L> | undefined; value: number | undefined } {
  return typeof a === 'number' ? { labels: undefined, value: a } : { labels: a, value: b };
}

/** A value that only goes up. */
export class Counter<L extends string = never> extends BaseMetric<L, number> {
  protected readonly type = 'counter';
  constructor(opts: MetricOptions<L, Counter<L>>) {
    super(opts as MetricOptions<L, never>);
    // An unlabelled counter is 0 before its first increment, so rate() has a start.
    if (this.labelNames.length === 0) this.entry(undefined, () => 0);
  }
  /** Adds `value` (default 1); negative values are refused. */
  inc(labels?: Labels<L> | number, value?: number): void {
    const a = args(labels, value);
    const v = a.value ?? 1;
    if (!(v >= 0)) throw new Error(`${this.name}: a counter cannot decrease (${v})`);
    this.entry(a.labels, () => 0).value += v;
  }
  protected samples(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  }
}

/** A value that goes up and down. */
export class Gauge<L extends string = never> extends BaseMetric<L, number> {
  protected readonly type = 'gauge';
  constructor(opts: MetricOptions<L, Gauge<L>>) {
    super(opts as MetricOptions<L, never>);
    if (this.labelNames.length === 0) this.entry(undefined, () => 0);
  }
  /** Sets the value of a series. */
  set(labels: Labels<L> | number, value?: number): void {
    const a = args(labels, value);
    this.entry(a.labels, () => 0).value = a.value ?? 0;
  }
  /** Adds `value` (default 1). */
  inc(labels?: Labels<L> | number, value?: number): void {
    const a = args(labels, value);
    this.entry(a.labels, () => 0).value += a.value ?? 1;
  }
  protected samples(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  }
}

interface HistogramValue {
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted in cumulative buckets, with their sum and count. */
export class Histogram<L extends string = never> extends BaseMetric<L, HistogramValue> {
  protected readonly type = 'histogram';
  private readonly buckets: readonly number[];
  constructor(opts: HistogramOptions<L>) {
    super(opts as MetricOptions<L, never>);
    this.buckets = [...(opts.buckets ?? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])].sort((a, b) => a - b);
    if (this.labelNames.length === 0) this.entry(undefined, () => this.empty());
  }
  private empty(): HistogramValue {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }
  /** Records one observation. */
  observe(labels: Labels<L> | number, value?: number): void {
    const a = args(labels, value);
    const v = a.value ?? 0;
    const h = this.entry(a.labels, () => this.empty()).value;
    const i = this.buckets.findIndex((b) => v <= b);
    if (i >= 0) h.counts[i]!++;
    h.sum += v;
    h.count++;
  }
  /** Starts a timer; the returned function observes the seconds elapsed and returns them. */
  startTimer(labels?: Labels<L>): (more?: Labels<L>) => number {
    const t0 = process.hrtime.bigint();
    return (more) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      this.observe({ ...labels, ...more } as Labels<L>, seconds);
      return seconds;
    };
  }
  protected samples(): string[] {
    const out: string[] = [];
    for (const { labels, value } of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += value.counts[i]!;
        out.push(`${this.name}_bucket${formatLabels([...labels, ['le', formatValue(b)]])} ${cumulative}`);
      });
      out.push(`${this.name}_bucket${formatLabels([...labels, ['le', '+Inf']])} ${value.count}`);
      out.push(`${this.name}_sum${formatLabels(labels)} ${formatValue(value.sum)}`);
      out.push(`${this.name}_count${formatLabels(labels)} ${value.count}`);
    }
    return out;
  }
}

/** A set of metrics rendered together. */
export class Registry {
  /** Content type of the text exposition format. */
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  private readonly byName = new Map<string, Metric>();

  /** Adds a metric; a second metric of the same name is refused. */
  registerMetric(m: Metric): void {
    if (this.byName.has(m.name)) throw new Error(`a metric named ${m.name} is already registered`);
    this.byName.set(m.name, m);
  }

  /** The exposition text of every metric, collect callbacks run first. */
  async metrics(): Promise<string> {
    const parts: string[] = [];
    const now = performance.now();
    for (const m of this.byName.values()) {
      const text = m.render(now);
      parts.push(typeof text === 'string' ? text : await text);
    }
    return `${parts.join('\n\n')}\n`;
  }
}

/** Fields of /proc/self/status, in bytes (kB values). */
function procStatus(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
      const m = /^(\w+):\s+(\d+) kB/.exec(line);
      if (m) out.set(m[1]!, Number(m[2]) * 1024);
    }
  } catch {
    // Not Linux: the gauges stay 0.
  }
  return out;
}

function maxFds(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const n = Number(line?.split(/ {2,}/)[1]);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Counts by name, for the active handle, request and resource gauges. */
function countBy(names: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const n of names) m.set(n, (m.get(n) ?? 0) + 1);
  return m;
}

/** Least time between two samples of the process_* and nodejs_* figures, in ms. */
export const PROCESS_SAMPLE_MS = 1000;

const GC_KINDS: Record<number, string> = {
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/**
 * The process_* and nodejs_* metrics, with prom-client's names, types and
 * help texts (Prometheus' process-exporter conventions). Values are read at
 * scrape time; only the GC histogram listens all the time. Returns a function
 * that stops that listener.
 */
export function registerProcessMetrics(registry: Registry): () => void {
  const registers = [registry];
  // Sampled at most once a second: these figures cost more to read than the rest of a scrape to write.
  const collectEveryMs = PROCESS_SAMPLE_MS;
  const processStart = Math.round(Date.now() / 1000 - process.uptime());
  let cpu = process.cpuUsage();
  new Counter({
    name: 'process_cpu_user_seconds_total',
    help: 'Total user CPU time spent in seconds.',
    registers,
    collectEveryMs,
    collect() {
      cpu = process.cpuUsage();
      this.reset();
      this.inc(cpu.user / 1e6);
    },
  });
  new Counter({
    name: 'process_cpu_system_seconds_total',
    help: 'Total system CPU time spent in seconds.',
    registers,
    collectEveryMs,
    collect() {
      this.reset();
      this.inc(cpu.system / 1e6);
    },
  });
  new Counter({
    name: 'process_cpu_seconds_total',
    help: 'Total user and system CPU time spent in seconds.',
    registers,
    collectEveryMs,
    collect() {
      this.reset();
      this.inc((cpu.user + cpu.system) / 1e6);
    },
  });
  new Gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since unix epoch in seconds.',
    registers,
    collectEveryMs,
    collect() {
      this.set(processStart);
    },
  });
  let status = new Map<string, number>();
  new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    registers,
    collectEveryMs,
    collect() {
      status = procStatus();
      this.set(status.get('VmRSS') ?? process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: 'process_virtual_memory_bytes',
    help: 'Virtual memory size in bytes.',
    registers,
    collectEveryMs,
    collect() {
      this.set(status.get('VmSize') ?? 0);
    },
  });
  new Gauge({
    name: 'process_heap_bytes',
    help: 'Process heap size in bytes.',
    registers,
    collectEveryMs,
    collect() {
      this.set(status.get('VmData') ?? 0);
    },
  });
  new Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    registers,
    collectEveryMs,
    collect() {
      try {
        this.set(readdirSync('/proc/self/fd').length - 1);
      } catch {
        // Not Linux.
      }
    },
  });
  const fdLimit = maxFds();
  if (fdLimit !== undefined) {
    new Gauge({
      name: 'process_max_fds',
      help: 'Maximum number of open file descriptors.',
      registers,
      collectEveryMs,
      collect() {
        this.set(fdLimit);
      },
    });
  }
  new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    registers,
    collectEveryMs,
    // Measured at scrape time: how long a setImmediate waits. No timer runs in between. A scrape that measures it
    // waits for the rest of the loop's turn, so it is sampled like the other process figures.
    async collect() {
      const t0 = process.hrtime.bigint();
      await new Promise((r) => setImmediate(r));
      this.set(Number(process.hrtime.bigint() - t0) / 1e9);
    },
  });
  const grouped = (name: string, help: string, label: 'type', names: () => string[]) =>
    new Gauge<'type'>({
      name,
      help,
      labelNames: [label],
      registers,
      collectEveryMs,
      collect() {
        this.reset();
        for (const [type, n] of countBy(names())) this.set({ type }, n);
      },
    });
  const ctorNames = (objs: unknown[]) => objs.map((o) => (o as object | null)?.constructor?.name ?? 'unknown');
  const p = process as unknown as { _getActiveHandles?: () => unknown[]; _getActiveRequests?: () => unknown[] };
  grouped('nodejs_active_resources', 'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.', 'type', () =>
    process.getActiveResourcesInfo(),
  );
  grouped('nodejs_active_handles', 'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.', 'type', () => ctorNames(p._getActiveHandles?.() ?? []));
  grouped('nodejs_active_requests', 'Number of active libuv requests grouped by request type. Every request type is C++ class name.', 'type', () =>
    ctorNames(p._getActiveRequests?.() ?? []),
  );
  // process.memoryUsage()'s heapTotal, heapUsed and external are these fields; it also reads RSS, which
  // process_resident_memory_bytes has already read.
  let heap = getHeapStatistics();
  new Gauge({
    name: 'nodejs_heap_size_total_bytes',
    help: 'Process heap size from Node.js in bytes.',
    registers,
    collectEveryMs,
    collect() {
      heap = getHeapStatistics();
      this.set(heap.total_heap_size);
    },
  });
  new Gauge({
    name: 'nodejs_heap_size_used_bytes',
    help: 'Process heap size used from Node.js in bytes.',
    registers,
    collectEveryMs,
    collect() {
      this.set(heap.used_heap_size);
    },
  });
  new Gauge({
    name: 'nodejs_external_memory_bytes',
    help: 'Node.js external memory size in bytes.',
    registers,
    collectEveryMs,
    collect() {
      this.set(heap.external_memory);
    },
  });
  // Read once per scrape, by the first of the three gauges (they render in this order).
  let spaces = getHeapSpaceStatistics();
  for (const [kind, field] of [
    ['total', 'space_size'],
    ['used', 'space_used_size'],
    ['available', 'space_available_size'],
  ] as const) {
    new Gauge<'space'>({
      name: `nodejs_heap_space_size_${kind}_bytes`,
      help: `Process heap space size ${kind} from Node.js in bytes.`,
      labelNames: ['space'],
      registers,
      collectEveryMs,
      collect() {
        if (kind === 'total') spaces = getHeapSpaceStatistics();
        for (const s of spaces) this.set({ space: s.space_name.replace(/_space$/, '') }, s[field]);
      },
    });
  }
  const [major, minor, patch] = process.versions.node.split('.').map(Number);
  const version = new Gauge<'version' | 'major' | 'minor' | 'patch'>({
    name: 'nodejs_version_info',
    help: 'Node.js version info.',
    labelNames: ['version', 'major', 'minor', 'patch'],
    registers,
  });
  version.set({ version: process.version, major: major ?? 0, minor: minor ?? 0, patch: patch ?? 0 }, 1);
  const gc = new Histogram<'kind'>({
    name: 'nodejs_gc_duration_seconds',
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'],
    buckets: [0.001, 0.01, 0.1, 1, 2, 5],
    registers,
  });
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = GC_KINDS[((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind) ?? -1];
      if (kind) gc.observe({ kind }, e.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}
