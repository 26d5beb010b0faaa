/**
 * The latest known state of the node, built from signals. Detectors read it as
 * a NodeView; it is the "small window of recent context" DESIGN.md allows them.
 * Everything here is bounded so a chatty node cannot grow the daemon's memory.
 */
import { eventLastTime, type KubeEvent } from '../core/kube.js';
import { containerKey } from '../core/fingerprint.js';
import type { LogLine, NodeView, Signal, TemplateStat, Timestamp } from '../core/types.js';

/** How far back kernel lines stay as context: a kernel OOM report spans well under 10 s. */
const KERNEL_CONTEXT_MS = 15_000;
/** At most this many context lines (a report is a few dozen; a kernel flood must not grow it). */
const KERNEL_CONTEXT_LINES = 400;

function isKernelLine(l: LogLine): boolean {
  return l.source === 'kmsg' || (l.source === 'journald' && l.unit === 'kernel');
}

/** Bounds of the node state. */
export interface NodeStateLimits {
  /** Events kept (newest win). Defaults to 2000. */
  maxEvents: number;
  /** Lines kept per container for crash evidence. Defaults to 50. */
  tailLines: number;
  /** Containers whose tail is kept (least recently written are dropped). Defaults to 500. */
  maxContainers: number;
  /** New log lines buffered between two detection cycles (oldest dropped and counted). Defaults to 50000. */
  maxPendingLines: number;
}

const DEFAULT_LIMITS: NodeStateLimits = { maxEvents: 2000, tailLines: 50, maxContainers: 500, maxPendingLines: 50_000 };

type SignalOf<T extends Signal['type']> = Extract<Signal, { type: T }>;

/**
 * Signals whose value replaces the last one, by the field that carries it.
 * The view field named like the signal type holds it; the `satisfies` type
 * makes a field whose value does not fit that view field a compile error.
 */
const LATEST_FIELD = { node: 'node', pods: 'pods', statsSummary: 'summary', host: 'snapshot' } as const satisfies {
  [T in Signal['type'] & keyof NodeView]?: { [F in keyof SignalOf<T>]: SignalOf<T>[F] extends NodeView[T] ? F : never }[keyof SignalOf<T>];
};

type LatestType = keyof typeof LATEST_FIELD;
type LatestSignal = SignalOf<LatestType>;

function isLatest(s: Signal): s is LatestSignal {
  return Object.hasOwn(LATEST_FIELD, s.type);
}

/** Accumulates signals into the node's current state. */
export class NodeState {
  private readonly limits: NodeStateLimits;
  /** The view fields that only ever hold the latest value: those of LATEST_FIELD, and the kubelet's health. */
  private readonly latest: Pick<NodeView, LatestType | 'kubeletHealth'> = {};
  private readonly events = new Map<string, KubeEvent>();
  private pending: LogLine[] = [];
  private readonly tails = new Map<string, LogLine[]>();
  /** Lines dropped because detection fell behind. */
  droppedLines = 0;

  constructor(
    readonly nodeName: string,
    limits: Partial<NodeStateLimits> = {},
    private bootTime?: Timestamp,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** Applies signals in order. */
  ingest(signals: Iterable<Signal>): void {
    for (const s of signals) {
      if (isLatest(s)) {
        this.keepLatest(s);
        continue;
      }
      switch (s.type) {
        case 'log':
          this.addLine(s.line);
          break;
        case 'event':
          this.addEvent(s.event);
          break;
        case 'kubeletHealth':
          this.latest.kubeletHealth = { at: s.at, ok: s.ok, body: s.body };
          break;
        case 'gap':
        case 'checkpoint':
          break;
        default:
          // A new signal type is handled here or listed in LATEST_FIELD.
          s satisfies never;
      }
    }
  }

  private keepLatest(s: LatestSignal): void {
    // LATEST_FIELD's check ties each type's field to the view field of its name; TS cannot follow that through the union.
    (this.latest as Record<LatestType, unknown>)[s.type] = (s as Record<string, unknown>)[LATEST_FIELD[s.type]];
  }

  /** Removes a deleted event (watch DELETED). */
  deleteEvent(event: KubeEvent): void {
    this.events.delete(eventKey(event));
  }

  private addEvent(e: KubeEvent): void {
    const key = eventKey(e);
    this.events.delete(key);
    this.events.set(key, e);
    if (this.events.size > this.limits.maxEvents) {
      // Evict the event seen longest ago rather than the oldest inserted.
      let oldestKey: string | undefined;
      let oldestAt = '\uffff';
      for (const [k, v] of this.events) {
        const at = eventLastTime(v) ?? '';
        if (at < oldestAt) {
          oldestAt = at;
          oldestKey = k;
        }
      }
      if (oldestKey !== undefined) this.events.delete(oldestKey);
    }
  }

  private addLine(line: LogLine): void {
    this.pending.push(line);
    if (this.pending.length > this.limits.maxPendingLines) {
      const over = this.pending.length - this.limits.maxPendingLines;
      this.pending.splice(0, over);
      this.droppedLines += over;
    }
    if (line.source === 'podLog' && line.container) {
      const key = containerKey(line.container.namespace, line.container.pod, line.container.container);
      let tail = this.tails.get(key);
      if (tail) this.tails.delete(key);
      else tail = [];
      tail.push(line);
      if (tail.length > this.limits.tailLines) tail.shift();
      this.tails.set(key, tail);
      if (this.tails.size > this.limits.maxContainers) {
        const first = this.tails.keys().next().value;
        if (first !== undefined) this.tails.delete(first);
      }
    }
  }

  /** Kernel lines of recent cycles (see `NodeView.kernelContext`). */
  private kernelTail: LogLine[] = [];

  /** Number of log lines waiting for the next detection cycle. */
  get pendingLines(): number {
    return this.pending.length;
  }

  /**
   * The view for one detection cycle. Takes (and clears) the pending log lines,
   * so each line is seen by the detectors exactly once.
   */
  takeView(now: Timestamp, templates: TemplateStat[] = []): NodeView {
    const logs = this.pending;
    this.pending = [];
    const kernelContext = this.kernelTail;
    // The kernel lines of the last KERNEL_CONTEXT_MS stay as context for the next cycle.
    const since = new Date(Date.parse(now) - KERNEL_CONTEXT_MS).toISOString();
    this.kernelTail = [...kernelContext, ...logs.filter(isKernelLine)].filter((l) => l.at >= since).slice(-KERNEL_CONTEXT_LINES);
    const view: NodeView = {
      nodeName: this.nodeName,
      now,
      events: [...this.events.values()],
      logs,
      kernelContext,
      containerLogTail: new Map([...this.tails].map(([k, v]) => [k, [...v]])),
      templates,
    };
    if (this.bootTime) view.bootTime = this.bootTime;
    return Object.assign(view, this.latest);
  }

  /** Sets the boot time once known (kmsg collector). */
  setBootTime(t: Timestamp): void {
    this.bootTime = t;
  }
}

function eventKey(e: KubeEvent): string {
  return e.metadata.uid ?? `${e.metadata.namespace ?? ''}/${e.metadata.name ?? ''}`;
}
