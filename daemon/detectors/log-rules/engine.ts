/**
 * The generic matcher behind the log-rule detector: feeds log lines through
 * compiled rules and turns matches into finding drafts.
 *
 * It keeps a small, bounded memory between cycles, as node-problem-detector's
 * log_buffer does: the last lines of each stream (multi-line rules), recent
 * kernel lines (the same line from kmsg and journald counts once), match times
 * of frequency rules and the conditions that still hold. The same sequence of
 * views always gives the same drafts; nothing here does I/O.
 */
import type { KubeContainerStatus, KubePod } from '../../core/kube.js';
import type { Evidence, FindingDraft, LogLine, Severity, Subject, Timestamp } from '../../core/types.js';
import { type CompiledRule, normalizeUnit } from './compile.js';
import { subjectKey } from '../pod-status.js';

/** What the engine needs to know about the node for one run. */
export interface MatchContext {
  nodeName: string;
  /** "Now" of the detection (wall clock live, capturedAt for a bundle). */
  now: Timestamp;
  /** Boot time, for rules that skip the first seconds after boot. */
  bootTime?: Timestamp;
  /** Pods on the node, to name the container of a cgroup. */
  pods?: KubePod[];
}

/** Options of the engine. */
export interface RuleEngineOptions {
  /** Evidence lines kept per draft (first match and the latest ones). Defaults to 5. */
  maxEvidence: number;
  /** Seconds within which the same kernel line from kmsg and from journald counts once. Defaults to 60. */
  kernelDedupSeconds: number;
  /** Streams whose recent lines are kept for multi-line rules (least recently written dropped). Defaults to 2000. */
  maxStreams: number;
  /** Threshold and condition states kept (oldest dropped). Defaults to 10000. */
  maxStates: number;
  /** Redacts evidence text, titles and messages. Defaults to identity. */
  redact: (text: string) => string;
  /** Detector name written into drafts. Defaults to "log-rules". */
  detector: string;
}

/** Defaults of RuleEngineOptions. */
export const RULE_ENGINE_DEFAULTS: RuleEngineOptions = {
  maxEvidence: 5,
  kernelDedupSeconds: 60,
  maxStreams: 2000,
  maxStates: 10_000,
  redact: (t) => t,
  detector: 'log-rules',
};

type Groups = Record<string, string | undefined>;

/** One rule hit on one line (or a window of lines). */
interface Hit {
  ms: number;
  at: Timestamp;
  /** Unredacted evidence lines of this hit. */
  evidence: Evidence[];
  groups: Groups;
  subject: Subject;
  severity: Severity;
  unit: string | undefined;
}

/** Matches of one rule on one subject (and detail). */
interface Aggregate {
  rule: CompiledRule;
  subject: Subject;
  severity: Severity;
  detail: string | undefined;
  firstMs: number;
  firstAt: Timestamp;
  lastMs: number;
  lastAt: Timestamp;
  /** Matches in this aggregate (events: this cycle; conditions: since the condition began). */
  count: number;
  evidence: EvidenceKeeper;
  groups: Groups;
  unit: string | undefined;
}

interface ThresholdState {
  windowMs: number;
  /** Times of the last `count` matches. */
  times: number[];
  /** Matches not reported yet (all within the window). */
  pending: Hit[];
}

/** Keeps the first hit's evidence and the latest ones, bounded. */
class EvidenceKeeper {
  private first: Evidence[] | undefined;
  private recent: Evidence[][] = [];
  constructor(private readonly max: number) {}

  add(ev: Evidence[]): void {
    if (!this.first) {
      this.first = ev;
      return;
    }
    this.recent.push(ev);
    // Every hit has at least one line, so max - 1 hits always fill what is left.
    if (this.recent.length > this.max) this.recent.shift();
  }

  list(): Evidence[] {
    const head = this.first ?? [];
    const room = Math.max(0, this.max - head.length);
    const tail = this.recent.flat();
    return [...head.slice(0, this.max), ...tail.slice(Math.max(0, tail.length - room))];
  }
}

/** The last lines of one stream, for multi-line rules. */
class StreamBuffer {
  readonly lines: LogLine[] = [];
  private cache: Map<number, { text: string; starts: number[] }> | undefined;
  constructor(readonly size: number) {}

  push(line: LogLine): void {
    this.lines.push(line);
    if (this.lines.length > this.size) this.lines.shift();
    this.cache = undefined;
  }

  /** The last `n` lines joined by `\n`, with each line's start offset. */
  joined(n: number): { text: string; starts: number[]; from: number } {
    const from = Math.max(0, this.lines.length - n);
    this.cache ??= new Map();
    let c = this.cache.get(n);
    if (!c) {
      const starts: number[] = [];
      let off = 0;
      const parts: string[] = [];
      for (let i = from; i < this.lines.length; i++) {
        starts.push(off);
        const t = this.lines[i]!.text;
        parts.push(t);
        off += t.length + 1;
      }
      c = { text: parts.join('\n'), starts };
      this.cache.set(n, c);
    }
    return { ...c, from };
  }
}

/** A FIFO of times with O(1) amortised removal at the head. */
class TimeQueue {
  private items: number[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  peek(): number | undefined {
    return this.items[this.head];
  }

  last(): number | undefined {
    return this.items[this.items.length - 1];
  }

  push(ms: number): void {
    this.items.push(ms);
  }

  shift(): void {
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * Recent kernel lines, to count a line once when both kmsg and journald carry
 * it: a line pairs with the oldest unpaired line of the same text from the
 * other source within the tolerance. Identical lines from one source are all
 * counted (a kernel message can really repeat).
 */
class KernelDedup {
  private readonly byText = new Map<string, { kmsg: TimeQueue; journald: TimeQueue }>();
  private latest = Number.NEGATIVE_INFINITY;
  private inserts = 0;
  constructor(
    private readonly toleranceMs: number,
    /** Unpaired lines kept per text and source. */
    private readonly maxPerText = 1000,
    /** Distinct texts kept. */
    private readonly maxTexts = 20_000,
  ) {}

  /** True when this line is the other source's copy of a line already seen. */
  isDuplicate(text: string, ms: number, source: 'kmsg' | 'journald'): boolean {
    const key = text.trim();
    let entry = this.byText.get(key);
    if (!entry) {
      entry = { kmsg: new TimeQueue(), journald: new TimeQueue() };
      this.byText.set(key, entry);
    }
    const other = source === 'kmsg' ? entry.journald : entry.kmsg;
    const own = source === 'kmsg' ? entry.kmsg : entry.journald;
    // Lines of the other source too old to pair with this one cannot pair with later ones either.
    while (other.length > 0 && other.peek()! < ms - this.toleranceMs) other.shift();
    if (other.length > 0 && Math.abs(other.peek()! - ms) <= this.toleranceMs) {
      other.shift();
      return true;
    }
    while (own.length > 0 && (own.peek()! < ms - this.toleranceMs || own.length >= this.maxPerText)) own.shift();
    own.push(ms);
    if (ms > this.latest) this.latest = ms;
    if (++this.inserts % 4096 === 0 || this.byText.size > this.maxTexts) this.sweep();
    return false;
  }

  /** Forgets texts whose lines are all too old to pair. */
  private sweep(): void {
    const horizon = this.latest - this.toleranceMs;
    for (const [key, e] of this.byText) {
      if ((e.kmsg.last() ?? Number.NEGATIVE_INFINITY) < horizon && (e.journald.last() ?? Number.NEGATIVE_INFINITY) < horizon) this.byText.delete(key);
    }
    // Still too many distinct texts (a flood of unique lines): drop the oldest inserted.
    for (const key of this.byText.keys()) {
      if (this.byText.size <= this.maxTexts) break;
      this.byText.delete(key);
    }
  }
}

const POD_UID = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/;
const CONTAINER_ID = /(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])/g;

function bareId(id: string | undefined): string | undefined {
  if (!id) return undefined;
  const i = id.indexOf('://');
  return i >= 0 ? id.slice(i + 3) : id;
}

function statusIds(s: KubeContainerStatus): (string | undefined)[] {
  return [bareId(s.containerID), bareId(s.lastState?.terminated?.containerID), bareId(s.state?.terminated?.containerID)];
}

/**
 * Names the pod and container of a cgroup path or an OOM block: by the pod
 * UID (`pod<uid>` in the path) and the container ids (64 hex) it mentions.
 */
export function subjectFromCgroup(text: string, pods: readonly KubePod[] | undefined): Subject | undefined {
  if (!pods || pods.length === 0) return undefined;
  const uid = POD_UID.exec(text)?.[1]?.replaceAll('_', '-');
  const ids = new Set(text.match(CONTAINER_ID) ?? []);
  const byUid = uid ? pods.find((p) => p.metadata.uid === uid) : undefined;
  const candidates = byUid ? [byUid] : pods;
  for (const pod of candidates) {
    const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])];
    const hit = statuses.find((s) => statusIds(s).some((id) => id !== undefined && ids.has(id)));
    if (hit) return { kind: 'Container', name: pod.metadata.name ?? '', namespace: pod.metadata.namespace ?? 'default', container: hit.name };
  }
  if (!byUid) return undefined;
  const containers = byUid.spec?.containers ?? [];
  const base = { name: byUid.metadata.name ?? '', namespace: byUid.metadata.namespace ?? 'default' };
  // A container id from an earlier restart is not in the status any more; a single-container pod is still unambiguous.
  if (containers.length === 1) return { kind: 'Container', ...base, container: containers[0]!.name };
  return { kind: 'Pod', ...base };
}


function parseMs(at: Timestamp | undefined): number | undefined {
  if (at === undefined) return undefined;
  const ms = Date.parse(at);
  return Number.isNaN(ms) ? undefined : ms;
}

function render(template: string, groups: Groups, count: number, unit: string | undefined): string {
  return template.replace(/\{([A-Za-z][A-Za-z0-9]*)\}/g, (_m, name: string) => {
    if (name === 'count') return String(count);
    if (name === 'unit') return unit ?? 'unknown';
    const v = groups[name];
    return v === undefined || v === '' ? 'unknown' : v;
  });
}

function isKernel(line: LogLine): boolean {
  return line.source === 'kmsg' || (line.source === 'journald' && line.unit === 'kernel');
}

/** Splits a record with embedded newlines (multi-line kernel records) into lines. */
function* physicalLines(line: LogLine): Generator<LogLine> {
  if (line.source === 'podLog' || !line.text.includes('\n')) {
    yield line;
    return;
  }
  for (const text of line.text.split('\n')) if (text.length > 0) yield { ...line, text };
}

/** The rules that apply to one kind of stream, with a combined keyword prefilter. */
interface RuleGroup {
  rules: readonly CompiledRule[];
  /** Every keyword (and clear keyword) of the rules, case-sensitive. */
  exact: readonly string[];
  /** Keywords of ignoreCase rules, lower-cased. */
  folded: readonly string[];
  /** Some rule has no keywords: every line goes through the rules. */
  always: boolean;
  /** Longest window of the rules. */
  window: number;
}

function ruleGroup(rules: readonly CompiledRule[]): RuleGroup {
  let window = 1;
  for (const r of rules) if (r.window > window) window = r.window;
  const exact = new Set<string>();
  const folded = new Set<string>();
  let always = false;
  for (const r of rules) {
    if (r.keywords.length === 0 || (r.clear && r.clearKeywords.length === 0)) always = true;
    for (const k of [...r.keywords, ...r.clearKeywords]) (r.spec.ignoreCase ? folded : exact).add(k);
  }
  return { rules, exact: [...exact], folded: [...folded], always, window };
}

/**
 * True when any keyword of the group is in the line. A loop of includes()
 * (a vectorised substring search) measured faster here than one big regex
 * alternation of the same literals.
 */
function anyKeyword(group: RuleGroup, text: string, lower: () => string): boolean {
  if (group.always) return true;
  for (const k of group.exact) if (text.includes(k)) return true;
  if (group.folded.length === 0) return false;
  const l = lower();
  for (const k of group.folded) if (l.includes(k)) return true;
  return false;
}

/** Runs compiled rules over log lines; keeps the bounded state that spans cycles. */
export class RuleEngine {
  private readonly opts: RuleEngineOptions;
  private readonly kernelRules: RuleGroup;
  private readonly podLogRules: RuleGroup;
  private readonly unitRules = new Map<string, RuleGroup>();
  private readonly dedup: KernelDedup;
  private readonly streams = new Map<string, StreamBuffer>();
  private readonly thresholds = new Map<string, ThresholdState>();
  private readonly conditions = new Map<string, Aggregate>();
  private cycle = new Map<string, Aggregate>();

  constructor(
    private readonly rules: readonly CompiledRule[],
    opts: Partial<RuleEngineOptions> = {},
  ) {
    this.opts = { ...RULE_ENGINE_DEFAULTS, ...opts };
    this.kernelRules = ruleGroup(rules.filter((r) => r.kernel));
    this.podLogRules = ruleGroup(rules.filter((r) => r.podLog));
    this.dedup = new KernelDedup(this.opts.kernelDedupSeconds * 1000);
  }

  private rulesForUnit(unit: string): RuleGroup {
    const u = normalizeUnit(unit);
    let list = this.unitRules.get(u);
    if (!list) {
      list = ruleGroup(this.rules.filter((r) => r.journaldAll || r.units.has(u)));
      // Units are a small set (systemd services), so this cache stays small.
      if (this.unitRules.size < 10_000) this.unitRules.set(u, list);
    }
    return list;
  }

  private streamFor(key: string, size: number): StreamBuffer {
    let buf = this.streams.get(key);
    if (buf) {
      // Re-insert to keep the map in least-recently-written order.
      this.streams.delete(key);
    } else {
      buf = new StreamBuffer(size);
    }
    this.streams.set(key, buf);
    if (this.streams.size > this.opts.maxStreams) {
      const oldest = this.streams.keys().next().value;
      if (oldest !== undefined) this.streams.delete(oldest);
    }
    return buf;
  }

  /**
   * Feeds lines (oldest first) and returns this cycle's drafts: events for the
   * matches of temporary rules, and every condition that still holds.
   */
  run(lines: readonly LogLine[], ctx: MatchContext): FindingDraft[] {
    this.cycle = new Map();
    const bootMs = parseMs(ctx.bootTime);
    for (const raw of lines) {
      for (const line of physicalLines(raw)) this.feed(line, ctx, bootMs);
    }
    return this.finish(ctx);
  }

  private feed(line: LogLine, ctx: MatchContext, bootMs: number | undefined): void {
    const kernel = isKernel(line);
    const group = kernel ? this.kernelRules : line.source === 'journald' ? this.rulesForUnit(line.unit ?? 'unknown') : this.podLogRules;
    if (group.rules.length === 0) return;
    let lower: string | undefined;
    const lowerText = (): string => {
      lower ??= line.text.toLowerCase();
      return lower;
    };
    // Most lines hold no keyword of any rule and stop here. Multi-line rules
    // still need every line of the stream as context, so those streams go on.
    const hit = anyKeyword(group, line.text, lowerText);
    if (!hit && group.window === 1) return;
    let lineMs: number | undefined;
    if (kernel) {
      lineMs = parseMs(line.at);
      if (this.dedup.isDuplicate(line.text, lineMs ?? 0, line.source === 'kmsg' ? 'kmsg' : 'journald')) return;
    }
    let buffer: StreamBuffer | undefined;
    if (group.window > 1) {
      const c = line.container;
      const key = kernel ? 'kernel' : line.source === 'journald' ? `journald:${line.unit ?? 'unknown'}` : c ? `podLog:${c.namespace}/${c.pod}/${c.container}` : 'podLog';
      buffer = this.streamFor(key, group.window);
      buffer.push(line);
    }
    if (!hit) return;
    for (const rule of group.rules) {
      const hay = rule.spec.ignoreCase ? lowerText() : line.text;
      if (rule.clear && (rule.clearKeywords.length === 0 || rule.clearKeywords.some((k) => hay.includes(k)))) {
        const m = rule.clear.exec(line.text);
        if (m) this.clearCondition(rule, m.groups ?? {}, line, ctx);
      }
      if (rule.keywords.length > 0 && !rule.keywords.some((k) => hay.includes(k))) continue;
      const found = matchRule(rule, line, buffer);
      if (!found) continue;
      lineMs ??= parseMs(line.at);
      const ms = lineMs ?? parseMs(ctx.now) ?? 0;
      const skip = rule.spec.skipAfterBootSeconds;
      if (skip && bootMs !== undefined && ms - bootMs < skip * 1000) continue;
      const { subject, severity } = this.subjectOf(rule, found.groups, line, ctx);
      this.record(rule, {
        ms,
        at: line.at,
        evidence: found.lines.map((l) => ({ source: l.source, at: l.at, text: l.text })),
        groups: found.groups,
        subject,
        severity,
        unit: line.source === 'journald' ? line.unit : undefined,
      });
    }
  }

  private subjectOf(rule: CompiledRule, groups: Groups, line: LogLine, ctx: MatchContext): { subject: Subject; severity: Severity } {
    const spec = rule.spec.subject;
    const node: Subject = { kind: 'Node', name: ctx.nodeName };
    const unresolved = { subject: node, severity: spec?.unresolvedSeverity ?? rule.spec.severity };
    if (spec?.cgroup) {
      const text = groups[spec.cgroup];
      const s = text ? subjectFromCgroup(text, ctx.pods) : undefined;
      return s ? { subject: s, severity: rule.spec.severity } : unresolved;
    }
    if (spec?.pod) {
      let name = groups[spec.pod];
      let namespace = spec.namespace ? groups[spec.namespace] : undefined;
      if (!spec.namespace && name?.includes('/')) [namespace, name] = name.split('/', 2) as [string, string];
      if (!name || !namespace) return unresolved;
      const container = spec.container ? groups[spec.container] : undefined;
      const subject: Subject = container ? { kind: 'Container', name, namespace, container } : { kind: 'Pod', name, namespace };
      return { subject, severity: rule.spec.severity };
    }
    if (line.source === 'podLog' && line.container) {
      const c = line.container;
      return { subject: { kind: 'Container', name: c.pod, namespace: c.namespace, container: c.container }, severity: rule.spec.severity };
    }
    return { subject: node, severity: rule.spec.severity };
  }

  private keyOf(rule: CompiledRule, subject: Subject, groups: Groups): { key: string; detail: string | undefined } {
    const values = (rule.spec.subject?.detail ?? []).map((g) => groups[g] ?? '');
    const prefix = rule.spec.subject?.detailPrefix ?? rule.spec.id;
    const parts = prefix === '' ? [] : [prefix];
    if (values.length > 0) parts.push(values.join('/'));
    const detail = parts.length > 0 ? parts.join(':') : undefined;
    return { key: `${rule.spec.id}\u0000${subjectKey(subject)}\u0000${values.join('\u0000')}`, detail };
  }

  private clearCondition(rule: CompiledRule, groups: Groups, line: LogLine, ctx: MatchContext): void {
    const { subject } = this.subjectOf(rule, groups, line, ctx);
    const { key } = this.keyOf(rule, subject, groups);
    this.conditions.delete(key);
    this.thresholds.delete(key);
  }

  private record(rule: CompiledRule, hit: Hit): void {
    const th = rule.spec.threshold;
    if (!th) {
      this.apply(rule, hit);
      return;
    }
    const { key } = this.keyOf(rule, hit.subject, hit.groups);
    let st = this.thresholds.get(key);
    if (!st) {
      st = { windowMs: th.windowSeconds * 1000, times: [], pending: [] };
      this.thresholds.set(key, st);
    }
    const windowMs = th.windowSeconds * 1000;
    st.times.push(hit.ms);
    if (st.times.length > th.count) st.times.shift();
    st.pending.push(hit);
    st.pending = st.pending.filter((p) => p.ms >= hit.ms - windowMs);
    const met = st.times.length >= th.count && hit.ms - st.times[0]! <= windowMs;
    if (!met) return;
    const flush = st.pending;
    st.pending = [];
    for (const p of flush) this.apply(rule, p);
  }

  private apply(rule: CompiledRule, hit: Hit): void {
    const { key, detail } = this.keyOf(rule, hit.subject, hit.groups);
    const map = rule.spec.type === 'permanent' ? this.conditions : this.cycle;
    let agg = map.get(key);
    if (!agg) {
      agg = {
        rule,
        subject: hit.subject,
        severity: hit.severity,
        detail,
        firstMs: hit.ms,
        firstAt: hit.at,
        lastMs: hit.ms,
        lastAt: hit.at,
        count: 0,
        evidence: new EvidenceKeeper(this.opts.maxEvidence),
        groups: hit.groups,
        unit: hit.unit,
      };
      map.set(key, agg);
    }
    agg.count++;
    agg.evidence.add(hit.evidence);
    if (hit.ms >= agg.lastMs) {
      agg.lastMs = hit.ms;
      agg.lastAt = hit.at;
      agg.groups = hit.groups;
      agg.unit = hit.unit;
    }
    if (hit.ms < agg.firstMs) {
      agg.firstMs = hit.ms;
      agg.firstAt = hit.at;
    }
  }

  private finish(ctx: MatchContext): FindingDraft[] {
    const nowMs = parseMs(ctx.now) ?? Date.now();
    const drafts: FindingDraft[] = [];
    for (const agg of this.cycle.values()) drafts.push(this.draft(agg, 'event'));
    this.cycle = new Map();
    for (const [key, agg] of this.conditions) {
      const { holdSeconds, pendingSeconds } = agg.rule.spec;
      if (holdSeconds !== undefined && nowMs - agg.lastMs > holdSeconds * 1000) {
        this.conditions.delete(key);
        continue;
      }
      if (pendingSeconds && nowMs - agg.firstMs < pendingSeconds * 1000) continue;
      drafts.push(this.draft(agg, 'condition'));
    }
    this.prune(nowMs);
    return drafts;
  }

  private prune(nowMs: number): void {
    for (const [key, st] of this.thresholds) {
      const last = st.times[st.times.length - 1] ?? 0;
      if (nowMs - last > st.windowMs) this.thresholds.delete(key);
    }
    for (const map of [this.thresholds, this.conditions] as Map<string, unknown>[]) {
      while (map.size > this.opts.maxStates) {
        const oldest = map.keys().next().value;
        if (oldest === undefined) break;
        map.delete(oldest);
      }
    }
  }

  private draft(agg: Aggregate, lifecycle: 'event' | 'condition'): FindingDraft {
    const { spec } = agg.rule;
    const redact = this.opts.redact;
    const n = agg.count;
    const when = n > 1 && agg.firstAt !== agg.lastAt ? `${n} matching lines from ${agg.firstAt} to ${agg.lastAt}` : `${n} matching line${n > 1 ? 's' : ''} at ${agg.lastAt}`;
    const facts: Record<string, string | number | boolean> = { rule: spec.id, reason: spec.reason };
    const skip = spec.subject?.cgroup;
    for (const [k, v] of Object.entries(agg.groups)) {
      if (v !== undefined && k !== skip) facts[k] = redact(v.length > 200 ? `${v.slice(0, 200)}…` : v);
    }
    if (agg.unit) facts.unit = agg.unit;
    const draft: FindingDraft = {
      category: spec.category,
      severity: agg.severity,
      subject: agg.subject,
      title: redact(render(spec.title, agg.groups, n, agg.unit)),
      message: `${redact(render(spec.message, agg.groups, n, agg.unit))} (${when}; rule ${spec.id}.)`,
      evidence: agg.evidence.list().map((e) => ({ ...e, text: redact(e.text) })),
      at: agg.lastAt,
      occurrences: n,
      lifecycle,
      detector: this.opts.detector,
      facts,
    };
    if (agg.detail !== undefined) draft.detail = agg.detail;
    if (agg.firstAt !== agg.lastAt) draft.firstAt = agg.firstAt;
    return draft;
  }
}

/**
 * Tests one rule on the newest line (the stream buffer, when given, already
 * holds it). Returns the named groups and the lines the match spans.
 */
export function matchRule(rule: CompiledRule, line: LogLine, buffer: StreamBuffer | undefined): { groups: Groups; lines: LogLine[] } | null {
  if (rule.window === 1 || !buffer) {
    const m = rule.re.exec(line.text);
    if (!m) return null;
    if (rule.exclude?.test(line.text)) return null;
    return { groups: { ...m.groups }, lines: [line] };
  }
  const { text, starts, from } = buffer.joined(rule.window);
  const m = rule.re.exec(text);
  if (!m) return null;
  let first = 0;
  while (first + 1 < starts.length && starts[first + 1]! <= m.index) first++;
  const spanText = text.slice(starts[first]!);
  if (rule.exclude?.test(spanText)) return null;
  const firstLine = buffer.lines[from + first]!;
  return { groups: { ...m.groups }, lines: firstLine === line ? [line] : [firstLine, line] };
}

/** Creates a stream buffer sized for a rule (for testing examples outside the engine). */
export function newStreamBuffer(size: number): StreamBuffer {
  return new StreamBuffer(size);
}

export type { StreamBuffer };
