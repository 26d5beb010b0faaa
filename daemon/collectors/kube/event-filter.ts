/**
 * Decides which Kubernetes Events become signals: those about this node and
 * about pods bound to it, each new event or new occurrence once.
 *
 * Pod events are watched per namespace (only namespaces that have a pod on this
 * node), so events about other nodes' pods in those namespaces arrive too and
 * are dropped here. An event can arrive a moment before its pod shows up in the
 * pod watch; a small buffer keeps unmatched ones and replays them when the pod
 * appears. Both the "already emitted" memory and that buffer are bounded.
 */
import type { KubeEvent, KubePod } from '../../core/kube.js';

/** Limits of the event filter. */
export interface EventFilterOptions {
  /** Events remembered (uid → resourceVersion) to avoid emitting one twice, e.g. after a relist. Defaults to 4096. */
  maxTracked?: number;
  /** Pod events kept while their pod is not (yet) known. Defaults to 256. */
  maxPending?: number;
}

/** Filters and de-duplicates events; `accept` returns the events to emit now. */
export class EventFilter {
  readonly #maxTracked: number;
  readonly #maxPending: number;
  /** Insertion-ordered: the oldest entry is evicted first. */
  readonly #seen = new Map<string, string>();
  #pending: KubeEvent[] = [];
  #podUids = new Set<string>();
  #podKeys = new Set<string>();
  /** Events dropped because they were about pods on other nodes (or pods gone). */
  dropped = 0;

  constructor(opts: EventFilterOptions = {}) {
    this.#maxTracked = Math.max(16, opts.maxTracked ?? 4096);
    this.#maxPending = Math.max(0, opts.maxPending ?? 256);
  }

  /** Entries in the de-duplication memory. */
  get tracked(): number {
    return this.#seen.size;
  }

  /** Sets the pods on this node; returns buffered events that now match one of them. */
  setPods(pods: KubePod[]): KubeEvent[] {
    this.#podUids = new Set(pods.map((p) => p.metadata.uid).filter((u): u is string => !!u));
    this.#podKeys = new Set(pods.map((p) => `${p.metadata.namespace ?? ''}/${p.metadata.name ?? ''}`));
    const out: KubeEvent[] = [];
    const keep: KubeEvent[] = [];
    for (const ev of this.#pending) {
      if (this.#isOurPod(ev)) {
        if (this.#fresh(ev)) out.push(ev);
      } else keep.push(ev);
    }
    this.#pending = keep;
    return out;
  }

  /** An event about this Node (already selected by the server): emitted unless seen before. */
  acceptNodeEvent(ev: KubeEvent): KubeEvent[] {
    return this.#fresh(ev) ? [ev] : [];
  }

  /** An event from a namespace watch about some Pod. */
  acceptPodEvent(ev: KubeEvent): KubeEvent[] {
    if (this.#isOurPod(ev)) return this.#fresh(ev) ? [ev] : [];
    if (this.#maxPending > 0) {
      this.#pending.push(ev);
      if (this.#pending.length > this.#maxPending) {
        this.#pending.shift();
        this.dropped++;
      }
    } else this.dropped++;
    return [];
  }

  /** The event expired on the server: forget it. */
  forget(ev: KubeEvent): void {
    this.#seen.delete(eventKey(ev));
  }

  #isOurPod(ev: KubeEvent): boolean {
    const o = ev.involvedObject ?? ev.regarding;
    if (!o) return false;
    if (o.uid) return this.#podUids.has(o.uid);
    return this.#podKeys.has(`${o.namespace ?? ev.metadata.namespace ?? ''}/${o.name ?? ''}`);
  }

  /** True the first time an event (uid) is seen at a given resourceVersion. */
  #fresh(ev: KubeEvent): boolean {
    const key = eventKey(ev);
    const rv = ev.metadata.resourceVersion ?? '';
    const prev = this.#seen.get(key);
    if (prev !== undefined && prev === rv) return false;
    this.#seen.delete(key);
    this.#seen.set(key, rv);
    if (this.#seen.size > this.#maxTracked) {
      const oldest = this.#seen.keys().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
    return true;
  }
}

function eventKey(ev: KubeEvent): string {
  return ev.metadata.uid ?? `${ev.metadata.namespace ?? ''}/${ev.metadata.name ?? ''}`;
}
