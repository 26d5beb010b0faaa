/**
 * Template statistics per log stream, the input of the LogErrorSpike detector.
 *
 * A stream is one container's log (`podLog:<ns>/<pod>/<container>`, across
 * its restarts) or one journald unit (`journald:<unit>`). Each stream has two
 * miners, one for error-level lines and one for the rest, so an error line
 * never shares a template with an info line that looks like it
 * (`level=info msg=...` / `level=error msg=...`). Counts are kept per
 * template in fixed time buckets (by the lines' own timestamps), bounded to
 * the baseline window.
 *
 * Persistence: `takeChanges()` hands the store plain rows (templates and
 * bucket counts, with absolute values to upsert, and the keys to delete);
 * `restore()` takes the same rows back at start, so a restart keeps baselines
 * and template ids.
 */
import type { LogLine, TemplateStat, Timestamp } from '../../core/types.js';
import { isErrorLine } from './level.js';
import { type TemplateCluster, TemplateMiner, type TemplateMinerOptions } from './miner.js';

/** Tunables of TemplateStats. */
export interface TemplateStatsOptions {
  /** Width of a count bucket in milliseconds. Defaults to 300000 (5 minutes). */
  bucketMs: number;
  /** Buckets before the current one that form the baseline. Defaults to 12 (one hour). */
  baselineBuckets: number;
  /** Streams kept; the one idle longest is dropped beyond that. Defaults to 500. */
  maxStreams: number;
  /** Templates kept per stream and level class (least recently used evicted). Defaults to 200. */
  maxTemplatesPerStream: number;
  /** Templates kept over all streams; beyond that the stream idle longest is dropped. Defaults to 20000. */
  maxTemplates: number;
  /** A stream without lines for this long is dropped with its templates. Defaults to 86400000 (24 h). */
  streamIdleMs: number;
  /** Characters kept of a template's example line. Defaults to 500. */
  maxExampleLength: number;
  /** Applied to every example line before it is kept. Defaults to identity. */
  redact: (text: string) => string;
  /** Options of the per-stream miners (maxClusters comes from maxTemplatesPerStream). Defaults to the miner's defaults. */
  miner: Partial<Omit<TemplateMinerOptions, 'maxClusters' | 'onEvict' | 'onMerge' | 'idSalt'>>;
}

/** Defaults of TemplateStatsOptions. */
export const TEMPLATE_STATS_DEFAULTS: Readonly<TemplateStatsOptions> = Object.freeze({
  bucketMs: 5 * 60_000,
  baselineBuckets: 12,
  maxStreams: 500,
  maxTemplatesPerStream: 200,
  maxTemplates: 20_000,
  streamIdleMs: 24 * 3_600_000,
  maxExampleLength: 500,
  redact: (text: string) => text,
  miner: {},
});

/** One template of one stream, as the store keeps it (key: stream + templateId). */
export interface TemplateRow {
  stream: string;
  templateId: string;
  template: string;
  isError: boolean;
  firstSeen: Timestamp;
  lastSeen: Timestamp;
  /** Lines seen in total. */
  count: number;
  /** Last example line, redacted. */
  example: string;
}

/** Lines of one template in one bucket (key: stream + templateId + bucketStart). */
export interface TemplateBucketRow {
  stream: string;
  templateId: string;
  /** Start of the bucket, RFC3339. */
  bucketStart: Timestamp;
  count: number;
}

/** What changed since the previous `takeChanges()`: rows to upsert, keys to delete. */
export interface TemplateStatsChanges {
  templates: TemplateRow[];
  buckets: TemplateBucketRow[];
  /** Templates gone (merged into another, evicted, stream expired): delete them and their buckets. */
  removed: { stream: string; templateId: string }[];
  /**
   * Bucket rows that start before this are outside every baseline: delete
   * them. Absent while it has not moved since the previous `takeChanges()`
   * (no bucket older than it is ever added after).
   */
  pruneBefore?: Timestamp;
}

/**
 * A TemplateStat with the extra facts TemplateStats knows. The LogErrorSpike
 * detector uses them when present and derives them from the view otherwise.
 */
export interface MinedTemplateStat extends TemplateStat {
  /** Time of the template's latest line. */
  lastSeen: Timestamp;
  /** Time of the stream's first line (its warm-up starts there). */
  streamFirstSeen: Timestamp;
  /** Bucket width in milliseconds (recentCount is per bucket). */
  bucketMs: number;
  /** Lines seen in total. */
  count: number;
}

interface Entry {
  stream: string;
  id: string;
  template: string;
  isError: boolean;
  firstSeen: number;
  lastSeen: number;
  count: number;
  /** Redacted example, as of the last time it was read. */
  example: string;
  /** Latest line, not yet redacted (redaction runs when the example is read, not per line). */
  raw: string | null;
  /** Bucket start (ms) → lines. */
  buckets: Map<number, number>;
  /** Changed since the last takeChanges(): the template row, and these buckets. */
  dirty: boolean;
  dirtyBuckets: Set<number>;
}

interface Stream {
  key: string;
  firstSeen: number;
  lastSeen: number;
  normal: TemplateMiner;
  error: TemplateMiner;
  entries: Map<string, Entry>;
}

// Collectors reuse one ContainerRef per log file: its key is built once.
const containerKeys = new WeakMap<object, string>();

/** The stream key of a log line, or null for lines that are not mined (kmsg). */
export function streamKey(line: LogLine): string | null {
  if (line.source === 'podLog') {
    const c = line.container;
    if (!c) return null;
    let key = containerKeys.get(c);
    if (key === undefined) {
      key = `podLog:${c.namespace}/${c.pod}/${c.container}`;
      containerKeys.set(c, key);
    }
    return key;
  }
  if (line.source === 'journald') return `journald:${line.unit ?? 'unknown'}`;
  return null;
}

function iso(ms: number): Timestamp {
  return new Date(ms).toISOString();
}

/** Per-stream template mining and bucket counts, bounded in memory. */
export class TemplateStats {
  readonly #o: TemplateStatsOptions;
  readonly #streams = new Map<string, Stream>();
  readonly #dirty = new Set<Entry>();
  #removed: { stream: string; templateId: string }[] = [];
  /** What the last `takeChanges()` said to prune before, ms. */
  #prunedBefore: number | undefined;
  #latest = 0;
  #lastExpiry = 0;
  /** Entries over all streams. */
  #templates = 0;

  /** Creates empty statistics; options are merged over TEMPLATE_STATS_DEFAULTS. */
  constructor(opts: Partial<TemplateStatsOptions> = {}) {
    this.#o = Object.freeze({ ...TEMPLATE_STATS_DEFAULTS, ...opts });
  }

  /** Number of streams tracked. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Mines one log line into its stream. Lines of other sources (kmsg) are ignored. */
  observe(line: LogLine): void {
    const key = streamKey(line);
    if (key === null) return;
    let at = Date.parse(line.at);
    if (Number.isNaN(at)) at = this.#latest;
    if (at > this.#latest) this.#latest = at;
    const s = this.#stream(key, at);
    if (at > s.lastSeen) s.lastSeen = at;
    if (at < s.firstSeen) s.firstSeen = at;
    const isError = isErrorLine(line);
    const cluster = (isError ? s.error : s.normal).addCluster(line.text);
    const e = this.#entry(s, cluster, isError, at);
    e.count++;
    if (at >= e.lastSeen) {
      e.lastSeen = at;
      e.raw = line.text;
    }
    if (at < e.firstSeen) e.firstSeen = at;
    const b = this.#bucket(at);
    e.buckets.set(b, (e.buckets.get(b) ?? 0) + 1);
    this.#pruneBuckets(e);
    this.#markDirty(e, b);
    this.#maybeExpire(at);
    while (this.#templates > this.#o.maxTemplates && this.#streams.size > 1) {
      const idlest = this.#idlest(s);
      if (!idlest) break;
      this.#dropStream(idlest);
    }
  }

  /** Number of templates over all streams. */
  get templateCount(): number {
    return this.#templates;
  }

  /** Mines every line, oldest first. */
  observeAll(lines: Iterable<LogLine>): void {
    for (const l of lines) this.observe(l);
  }

  /**
   * Statistics at `now` for NodeView.templates: every template with lines in
   * the current bucket, plus each such stream's oldest template (so a reader
   * of TemplateStat alone can tell the stream's age).
   */
  snapshot(now: Timestamp): MinedTemplateStat[] {
    const nowMs = Date.parse(now);
    const cur = this.#bucket(nowMs);
    const { bucketMs, baselineBuckets } = this.#o;
    const out: MinedTemplateStat[] = [];
    for (const s of this.#streams.values()) {
      // Buckets of baseline the stream has lived through (none during its first bucket).
      const firstBucket = this.#bucket(s.firstSeen);
      const span = Math.max(0, Math.min(baselineBuckets, (cur - firstBucket) / bucketMs));
      let oldest: Entry | undefined;
      let any = false;
      for (const e of s.entries.values()) {
        if (!oldest || e.firstSeen < oldest.firstSeen) oldest = e;
        const recent = e.buckets.get(cur) ?? 0;
        if (recent === 0) continue;
        any = true;
        out.push(this.#stat(s, e, recent, this.#baseline(e, cur, span), bucketMs));
      }
      if (any && oldest && (oldest.buckets.get(cur) ?? 0) === 0) out.push(this.#stat(s, oldest, 0, this.#baseline(oldest, cur, span), bucketMs));
    }
    return out;
  }

  /** Rows changed since the previous call, for the store to write in one transaction. */
  takeChanges(): TemplateStatsChanges {
    const templates: TemplateRow[] = [];
    const buckets: TemplateBucketRow[] = [];
    for (const e of this.#dirty) {
      if (e.dirty) templates.push(this.#row(e));
      for (const b of e.dirtyBuckets) {
        const count = e.buckets.get(b);
        if (count !== undefined) buckets.push({ stream: e.stream, templateId: e.id, bucketStart: iso(b), count });
      }
      e.dirty = false;
      e.dirtyBuckets.clear();
    }
    const removed = this.#removed;
    this.#dirty.clear();
    this.#removed = [];
    const from = this.#retainFrom();
    const moved = from !== this.#prunedBefore;
    this.#prunedBefore = from;
    return { templates, buckets, removed, ...(moved ? { pruneBefore: iso(from) } : {}) };
  }

  /** Every row, e.g. for a full rewrite of the store's tables. */
  rows(): { templates: TemplateRow[]; buckets: TemplateBucketRow[] } {
    const templates: TemplateRow[] = [];
    const buckets: TemplateBucketRow[] = [];
    for (const s of this.#streams.values()) {
      for (const e of s.entries.values()) {
        templates.push(this.#row(e));
        for (const [b, count] of e.buckets) buckets.push({ stream: s.key, templateId: e.id, bucketStart: iso(b), count });
      }
    }
    return { templates, buckets };
  }

  /**
   * Loads stored rows (at start, before the first line). Templates are put
   * back into the miners under their ids, so the same lines keep their ids
   * and baselines. Bucket rows of unknown templates are ignored.
   */
  restore(templates: Iterable<TemplateRow>, buckets: Iterable<TemplateBucketRow> = []): void {
    for (const r of templates) {
      const first = Date.parse(r.firstSeen);
      const last = Date.parse(r.lastSeen);
      if (Number.isNaN(first) || Number.isNaN(last)) continue;
      const s = this.#stream(r.stream, first);
      if (first < s.firstSeen) s.firstSeen = first;
      if (last > s.lastSeen) s.lastSeen = last;
      if (last > this.#latest) this.#latest = last;
      const cluster = (r.isError ? s.error : s.normal).restore(r.templateId, r.template, r.count);
      const e = this.#entry(s, cluster, r.isError, first);
      if (e.id === r.templateId && e.count === 0) {
        e.count = r.count;
        e.firstSeen = first;
        e.lastSeen = last;
        e.example = r.example;
        // Restored as stored: nothing to write back.
        e.dirty = false;
        this.#dirty.delete(e);
      } else {
        // Another row already holds this template: fold this one into it.
        e.count += r.count;
        e.firstSeen = Math.min(e.firstSeen, first);
        if (last >= e.lastSeen) {
          e.lastSeen = last;
          e.example = r.example;
          e.raw = null;
        }
        this.#removed.push({ stream: r.stream, templateId: r.templateId });
        this.#markDirty(e);
      }
    }
    for (const r of buckets) {
      const s = this.#streams.get(r.stream);
      const b = Date.parse(r.bucketStart);
      if (!s || Number.isNaN(b)) continue;
      const id = s.error.get(r.templateId)?.id ?? s.normal.get(r.templateId)?.id;
      const e = id === undefined ? undefined : s.entries.get(id);
      if (!e) continue;
      const start = this.#bucket(b);
      e.buckets.set(start, (e.buckets.get(start) ?? 0) + r.count);
      this.#pruneBuckets(e);
      if (e.id !== r.templateId) this.#markDirty(e, start);
    }
  }

  #stat(s: Stream, e: Entry, recent: number, baseline: number, bucketMs: number): MinedTemplateStat {
    return {
      stream: s.key,
      templateId: e.id,
      template: e.template,
      isError: e.isError,
      firstSeen: iso(e.firstSeen),
      recentCount: recent,
      baselinePerBucket: baseline,
      example: this.#exampleOf(e),
      lastSeen: iso(e.lastSeen),
      streamFirstSeen: iso(s.firstSeen),
      bucketMs,
      count: e.count,
    };
  }

  /** Mean lines per bucket over the `span` buckets before `cur`. */
  #baseline(e: Entry, cur: number, span: number): number {
    if (span <= 0) return 0;
    const from = cur - span * this.#o.bucketMs;
    let sum = 0;
    for (const [b, count] of e.buckets) if (b >= from && b < cur) sum += count;
    return sum / span;
  }

  #row(e: Entry): TemplateRow {
    return {
      stream: e.stream,
      templateId: e.id,
      template: e.template,
      isError: e.isError,
      firstSeen: iso(e.firstSeen),
      lastSeen: iso(e.lastSeen),
      count: e.count,
      example: this.#exampleOf(e),
    };
  }

  #bucket(ms: number): number {
    return Math.floor(ms / this.#o.bucketMs) * this.#o.bucketMs;
  }

  #retainFrom(): number {
    return this.#bucket(this.#latest) - this.#o.baselineBuckets * this.#o.bucketMs;
  }

  #exampleOf(e: Entry): string {
    if (e.raw !== null) {
      // Redact the whole line first: a cut could split a secret so the redactor misses it.
      const t = this.#o.redact(e.raw);
      const cut = t.length > this.#o.maxExampleLength ? t.slice(0, this.#o.maxExampleLength) : t;
      // A copy, so the example does not keep the collector's read buffer alive.
      e.example = Buffer.from(cut, 'utf8').toString('utf8');
      e.raw = null;
    }
    return e.example;
  }

  #pruneBuckets(e: Entry): void {
    if (e.buckets.size <= this.#o.baselineBuckets + 1) return;
    const from = this.#retainFrom();
    for (const b of e.buckets.keys()) if (b < from) e.buckets.delete(b);
  }

  #stream(key: string, at: number): Stream {
    const existing = this.#streams.get(key);
    if (existing) return existing;
    const minerFor = (idSalt: string) =>
      new TemplateMiner({
        ...this.#o.miner,
        idSalt,
        maxClusters: this.#o.maxTemplatesPerStream,
        onMerge: (from, into) => this.#merged(s, from, into),
        onEvict: (c) => this.#dropEntry(s, c.id),
      });
    const s: Stream = {
      key,
      firstSeen: at,
      lastSeen: at,
      normal: minerFor(''),
      error: minerFor('error'),
      entries: new Map(),
    };
    this.#streams.set(key, s);
    if (this.#streams.size > this.#o.maxStreams) {
      const idlest = this.#idlest(s);
      if (idlest) this.#dropStream(idlest);
    }
    return s;
  }

  #idlest(except: Stream): Stream | undefined {
    let idlest: Stream | undefined;
    for (const o of this.#streams.values()) if (o !== except && (!idlest || o.lastSeen < idlest.lastSeen)) idlest = o;
    return idlest;
  }

  #entry(s: Stream, c: TemplateCluster, isError: boolean, at: number): Entry {
    let e = s.entries.get(c.id);
    if (!e) {
      e = {
        stream: s.key,
        id: c.id,
        template: c.template,
        isError,
        firstSeen: at,
        lastSeen: at,
        count: 0,
        example: '',
        raw: null,
        buckets: new Map(),
        dirty: false,
        dirtyBuckets: new Set(),
      };
      s.entries.set(c.id, e);
      this.#templates++;
      this.#markDirty(e);
    }
    if (e.template !== c.template) {
      e.template = c.template;
      this.#markDirty(e);
    }
    return e;
  }

  #merged(s: Stream, from: TemplateCluster, into: TemplateCluster): void {
    const a = s.entries.get(from.id);
    if (!a) return;
    s.entries.delete(from.id);
    this.#templates--;
    this.#removed.push({ stream: s.key, templateId: from.id });
    a.dirty = false;
    this.#dirty.delete(a);
    let b = s.entries.get(into.id);
    if (!b) {
      b = { ...a, id: into.id, count: 0, buckets: new Map(), dirtyBuckets: new Set() };
      s.entries.set(into.id, b);
      this.#templates++;
    }
    b.template = into.template;
    b.count += a.count;
    b.firstSeen = Math.min(b.firstSeen, a.firstSeen);
    if (a.lastSeen > b.lastSeen) {
      b.lastSeen = a.lastSeen;
      b.example = a.example;
      b.raw = a.raw;
    }
    for (const [start, count] of a.buckets) {
      b.buckets.set(start, (b.buckets.get(start) ?? 0) + count);
      this.#markDirty(b, start);
    }
    this.#markDirty(b);
  }

  #dropEntry(s: Stream, id: string): void {
    const e = s.entries.get(id);
    if (!e) return;
    s.entries.delete(id);
    this.#dirty.delete(e);
    this.#templates--;
    this.#removed.push({ stream: s.key, templateId: id });
  }

  #dropStream(s: Stream): void {
    this.#streams.delete(s.key);
    this.#templates -= s.entries.size;
    for (const e of s.entries.values()) {
      this.#removed.push({ stream: s.key, templateId: e.id });
      this.#dirty.delete(e);
    }
  }

  #maybeExpire(at: number): void {
    // At most once per bucket: a scan over the streams.
    if (at - this.#lastExpiry < this.#o.bucketMs) return;
    this.#lastExpiry = at;
    for (const s of [...this.#streams.values()]) if (at - s.lastSeen > this.#o.streamIdleMs) this.#dropStream(s);
  }

  /** Marks an entry's row (and a bucket of it) for the next takeChanges(). */
  #markDirty(e: Entry, bucket?: number): void {
    if (bucket === undefined) e.dirty = true;
    else {
      e.dirty = true;
      e.dirtyBuckets.add(bucket);
    }
    this.#dirty.add(e);
  }
}
