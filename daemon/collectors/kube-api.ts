/**
 * The API-server source: this node's pods, the Node object, and the events
 * about both, by list+watch through @kubernetes/client-node.
 *
 * What is watched, and why it stays small in a big cluster:
 * - pods: `/api/v1/pods?fieldSelector=spec.nodeName=<node>` (what the kubelet itself watches);
 * - the Node: `/api/v1/nodes?fieldSelector=metadata.name=<node>`;
 * - Node events: `/api/v1/events?fieldSelector=involvedObject.kind=Node,involvedObject.name=<node>`;
 * - pod events: one watch per namespace that has a pod on this node, with
 *   `fieldSelector=involvedObject.kind=Pod`, filtered here to this node's pods.
 *   The API server cannot select events by node (`source.host` is not a
 *   supported field label) and a per-pod watch would open ~100 streams per
 *   node; a per-namespace watch is a handful of streams and never the whole
 *   cluster's events. Namespaces beyond `maxEventNamespaces` are skipped and
 *   counted in status.
 *
 * Objects are emitted in JSON wire form (see kube/transport.ts). When the API
 * server is away, the other sources are unaffected: this one shows `stale`
 * with the reason, and retries with bounded, jittered backoff.
 */
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { type Logger, pino } from 'pino';
import type { KubeEvent, KubeNode, KubePod } from '../core/kube.js';
import { eventLastTime } from '../core/kube.js';
import type { Collector, Signal, SignalSink, SourceStatus, Timestamp } from '../core/types.js';
import type { BackoffOptions } from '../core/runtime/backoff.js';
import { type Clock, isoAt, systemClock } from '../core/runtime/clock.js';
import { SourceHealth } from '../core/runtime/health.js';
import {
  CredentialFileError,
  type DescribedFailure,
  HttpStatusError,
  KubeSourceConfigError,
  isTimeout,
  networkFailureCode,
  oneLine,
  tlsFailureCode,
} from './kube/errors.js';
import { kubeClient } from './kube/client.js';
import { EventFilter } from './kube/event-filter.js';
import { ReachabilityGate } from './kube/gate.js';
import { Reflector, type ReflectorHandler } from './kube/reflector.js';
import { KubeTransport } from './kube/transport.js';
import { objectKey } from './kube/wire.js';

/** Options of the API-server collector. */
export interface KubeApiCollectorOptions {
  /** This node's name (`spec.nodeName` of its pods). Required. */
  nodeName: string;
  /**
   * Path of a kubeconfig file (the daemon passes `$KUBECONFIG`). Defaults to the
   * in-cluster service account (token and CA under /var/run/secrets/kubernetes.io/serviceaccount).
   */
  kubeconfigPath?: string;
  /** Context to use from the kubeconfig. Defaults to its current-context. */
  context?: string;
  /** A ready KubeConfig; wins over `kubeconfigPath`. Defaults to none. */
  kubeConfig?: KubeConfig;
  /** Retry delays after failures. Defaults to 1 s doubling to 30 s with 20 % jitter. */
  backoff?: BackoffOptions;
  /** Time source for retry waits and signal times. Defaults to the system clock. */
  clock?: Clock;
  /** A collection not watched (stream closed, not reopened) for this long makes the source stale. Defaults to 60000. */
  staleAfterMs?: number;
  /** Quiet time before the full pod list is emitted after a change. Defaults to 200. */
  podsDebounceMs?: number;
  /** Limit for one list request. Defaults to 30000. */
  requestTimeoutMs?: number;
  /** Server-side watch timeout base (each watch uses [t, 2t)). Defaults to 300. */
  watchTimeoutSeconds?: number;
  /** Most namespaces whose pod events are watched at once. Defaults to 64. */
  maxEventNamespaces?: number;
  /** Events remembered to avoid duplicates. Defaults to 4096. */
  maxTrackedEvents?: number;
  /** Items per list page. Defaults to 500. */
  pageSize?: number;
  /** Logger. Defaults to a pino logger named `kube-api`. */
  logger?: Logger;
  /** Random source (jitter, watch timeouts). Defaults to Math.random. */
  random?: () => number;
}

/** Loads the KubeConfig the options ask for. Throws CredentialFileError or KubeSourceConfigError. */
export async function loadKubeConfig(opts: Pick<KubeApiCollectorOptions, 'kubeconfigPath' | 'context' | 'kubeConfig'>): Promise<KubeConfig> {
  if (opts.kubeConfig) return opts.kubeConfig;
  const { KubeConfig } = await kubeClient();
  const kc = new KubeConfig();
  if (opts.kubeconfigPath) {
    try {
      kc.loadFromFile(opts.kubeconfigPath);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') throw new CredentialFileError(opts.kubeconfigPath, 'kubeconfig', err);
      throw new KubeSourceConfigError(`kubeconfig ${opts.kubeconfigPath} is not valid: ${(err as Error).message}`, { cause: err });
    }
  } else {
    kc.loadFromCluster();
    // Outside a pod the service host is unset and the client builds "https://undefined:undefined".
    if (/^https?:\/\/(undefined|\[undefined\])(:|$)/.test(kc.getCurrentCluster()?.server ?? '')) {
      throw new KubeSourceConfigError('not running in a Kubernetes pod (no KUBERNETES_SERVICE_HOST) and no kubeconfig given');
    }
  }
  if (opts.context) kc.setCurrentContext(opts.context);
  if (!kc.getCurrentCluster()) throw new KubeSourceConfigError('the kubeconfig names no current cluster');
  return kc;
}

/** What each resource needs in RBAC, for 403 messages. */
const RBAC_NEEDS: Record<string, string> = {
  pods: 'list and watch on pods (cluster-wide, filtered by spec.nodeName)',
  nodes: 'list and watch on nodes (filtered by metadata.name)',
  events: 'list and watch on events',
};

/** Puts an API-server failure in plain words. */
export function describeApiFailure(err: unknown, server: string, resource: string): DescribedFailure {
  if (err instanceof HttpStatusError) {
    if (err.status === 401) {
      return {
        permanent: true,
        message: `the API server ${server} rejected the service-account token (401 Unauthorized) on ${err.path}: the token is missing, expired or from another cluster`,
      };
    }
    if (err.status === 403) {
      return {
        permanent: true,
        message: `the API server refused ${err.path} (403 Forbidden): the service account needs RBAC ${RBAC_NEEDS[resource] ?? `list and watch on ${resource}`}${err.serverMessage ? ` — server said: ${err.serverMessage}` : ''}`,
      };
    }
    if (err.status === 400 || err.status === 404) {
      return { permanent: true, message: `the API server cannot serve ${err.path} (HTTP ${err.status})${err.serverMessage ? `: ${err.serverMessage}` : ''}` };
    }
    return { permanent: false, message: `the API server answered ${err.path} with HTTP ${err.status}${err.serverMessage ? `: ${err.serverMessage}` : ''}` };
  }
  if (err instanceof CredentialFileError || err instanceof KubeSourceConfigError) return { permanent: true, message: err.message };
  const tls = tlsFailureCode(err);
  if (tls) {
    return {
      permanent: true,
      message: `TLS verification of the API server ${server} failed (${tls}): its certificate is not trusted by the configured CA`,
    };
  }
  const net = networkFailureCode(err);
  if (net) return { permanent: false, message: `cannot reach the API server ${server} (${net})` };
  if (isTimeout(err)) return { permanent: false, message: `the API server ${server} did not answer in time` };
  if ((err as { code?: unknown })?.code === 'ENOENT') {
    return { permanent: true, message: `a credential file is missing: ${oneLine((err as Error).message)}` };
  }
  return { permanent: false, message: `API server request failed: ${oneLine(err instanceof Error ? err.message : String(err))}` };
}

/** The API-server collector (`kube-api`). */
export class KubeApiCollector implements Collector {
  readonly name = 'kube-api' as const;
  readonly #o: KubeApiCollectorOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #health: SourceHealth;
  #transport: KubeTransport | undefined;
  #gate: ReachabilityGate | undefined;
  #sink: SignalSink | undefined;
  #running = false;
  #pods = new Map<string, KubePod>();
  #podsTimer: NodeJS.Timeout | undefined;
  #podsDirty = false;
  #filter: EventFilter;
  #core: Reflector[] = [];
  #eventNs = new Map<string, Reflector>();
  #skippedNamespaces = 0;
  #eventsEmitted = 0;
  #gapNames = new Set<string>();
  #gapSince = Number.POSITIVE_INFINITY;
  #gapTimer: NodeJS.Timeout | undefined;

  constructor(opts: KubeApiCollectorOptions) {
    if (!opts.nodeName) throw new KubeSourceConfigError('kube-api collector needs nodeName');
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? pino({ name: 'kube-api' });
    this.#health = new SourceHealth({ name: 'kube-api', clock: this.#clock, staleAfterMs: opts.staleAfterMs ?? 60_000 });
    this.#filter = new EventFilter({ maxTracked: opts.maxTrackedEvents });
  }

  /** Opens the watches; resolves once the first list of each has been tried. */
  async start(sink: SignalSink): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#sink = sink;
    const config = this.#health.reader('config');
    try {
      this.#transport = new KubeTransport(await loadKubeConfig(this.#o), { requestTimeoutMs: this.#o.requestTimeoutMs });
      this.#health.removeReader('config');
    } catch (err) {
      // Bad credentials or config: nothing to retry until someone fixes it; status says why.
      const failure = describeApiFailure(err, '', 'config');
      config.fail(failure.message);
      this.#log.error({ err: failure.message }, 'kube-api source cannot start');
      return;
    }
    this.#gate = new ReachabilityGate(this.#clock, { initialMs: 1000, maxMs: 30_000, jitter: 0.2, random: this.#o.random, ...this.#o.backoff });
    const node = this.#o.nodeName;
    this.#core = [
      this.#reflector('pods', '/api/v1/pods', `spec.nodeName=${node}`, 'Pod', {
        sync: (items) => {
          this.#pods = new Map(items.map((p) => [objectKey(p), p as unknown as KubePod]));
          this.#podsChanged();
        },
        change: (type, obj) => {
          if (type === 'DELETED') this.#pods.delete(objectKey(obj));
          else this.#pods.set(objectKey(obj), obj as unknown as KubePod);
          this.#podsChanged();
        },
      }),
      this.#reflector('node', '/api/v1/nodes', `metadata.name=${node}`, 'Node', {
        sync: (items) => {
          for (const n of items) this.#emit([{ type: 'node', at: this.#now(), node: n as unknown as KubeNode }]);
        },
        change: (type, obj) => {
          if (type !== 'DELETED') this.#emit([{ type: 'node', at: this.#now(), node: obj as unknown as KubeNode }]);
        },
      }),
      this.#reflector('events/node', '/api/v1/events', `involvedObject.kind=Node,involvedObject.name=${node}`, 'Event', {
        sync: (items) => this.#emitEvents(items.flatMap((e) => this.#filter.acceptNodeEvent(e as unknown as KubeEvent))),
        change: (type, obj) => {
          const ev = obj as unknown as KubeEvent;
          if (type === 'DELETED') this.#filter.forget(ev);
          else this.#emitEvents(this.#filter.acceptNodeEvent(ev));
        },
      }),
    ];
    await Promise.all(this.#core.map((r) => r.start()));
    // Namespace event watches were opened by the first pod list; wait for their first lists too.
    await Promise.all([...this.#eventNs.values()].map((r) => r.start()));
    this.#flushPods();
  }

  /** Closes every watch and timer. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#podsTimer) clearTimeout(this.#podsTimer);
    this.#podsTimer = undefined;
    if (this.#gapTimer) clearTimeout(this.#gapTimer);
    this.#gapTimer = undefined;
    const all = [...this.#core, ...this.#eventNs.values()];
    this.#core = [];
    this.#eventNs.clear();
    await Promise.all(all.map((r) => r.stop()));
  }

  /** Health: healthy while every watch is in sync, stale while any retries, failing on errors that need a fix. */
  status(): SourceStatus {
    const stats = [...this.#core, ...this.#eventNs.values()].map((r) => r.stats());
    const sum = (k: 'lists' | 'watches' | 'relists' | 'failures') => stats.reduce((n, s) => n + s[k], 0);
    const failingSince = stats.map((s) => s.failingSince).filter((t): t is number => t !== null);
    const detail: Record<string, string | number | boolean> = {
      server: this.#transport?.server ?? '',
      retries: sum('failures'),
      waitingForServer: this.#gate?.waiting ?? 0,
      lists: sum('lists'),
      watches: sum('watches'),
      relists: sum('relists'),
      pods: this.#pods.size,
      eventNamespaces: this.#eventNs.size,
      skippedEventNamespaces: this.#skippedNamespaces,
      eventsEmitted: this.#eventsEmitted,
      eventsTracked: this.#filter.tracked,
      unmatchedEventsDropped: this.#filter.dropped,
    };
    if (failingSince.length > 0) detail.failingSince = isoAt(Math.min(...failingSince));
    return this.#health.status(detail);
  }

  #now(): Timestamp {
    return isoAt(this.#clock.now());
  }

  /**
   * Reflectors relist together after an outage; one gap signal says which
   * collections were relisted and since when their changes were not followed.
   */
  #noteGap(name: string, sinceMs: number): void {
    this.#gapNames.add(name);
    this.#gapSince = Math.min(this.#gapSince, sinceMs);
    this.#gapTimer ??= setTimeout(() => {
      this.#gapTimer = undefined;
      const names = [...this.#gapNames].sort();
      const since = isoAt(this.#gapSince);
      this.#gapNames.clear();
      this.#gapSince = Number.POSITIVE_INFINITY;
      this.#emit([
        {
          type: 'gap',
          at: this.#now(),
          source: 'kube-api',
          detail: `${names.join(', ')} relisted after the watch expired (410 Gone): changes since ${since} are seen only as their end state; events that came and went in between are missing`,
        },
      ]);
    }, 250);
  }

  #reflector(name: string, path: string, fieldSelector: string, kind: string, handler: ReflectorHandler): Reflector {
    const transport = this.#transport!;
    handler.relisted ??= (since) => this.#noteGap(name, since);
    const resource = path.split('/').pop() ?? path;
    return new Reflector({
      name,
      path,
      fieldSelector,
      itemApiVersion: 'v1',
      itemKind: kind,
      transport,
      clock: this.#clock,
      logger: this.#log,
      handler,
      describe: (err) => describeApiFailure(err, transport.server, resource),
      gate: this.#gate,
      backoff: { random: this.#o.random, ...this.#o.backoff },
      pageSize: this.#o.pageSize,
      watchTimeoutSeconds: this.#o.watchTimeoutSeconds,
      random: this.#o.random,
      reader: this.#health.reader(name),
    });
  }

  #emit(signals: Signal[]): void {
    if (!this.#running) return;
    try {
      this.#health.emit(this.#sink, signals);
    } catch (err) {
      this.#log.error({ err }, 'signal sink threw');
    }
  }

  #emitEvents(events: KubeEvent[]): void {
    if (events.length === 0) return;
    this.#eventsEmitted += events.length;
    this.#emit(events.map((event): Signal => ({ type: 'event', at: eventLastTime(event) ?? this.#now(), event })));
  }

  #podsChanged(): void {
    const pods = [...this.#pods.values()];
    // Match events to new pods right away (an event can beat its pod), and follow the namespaces.
    this.#emitEvents(this.#filter.setPods(pods));
    this.#reconcileEventNamespaces(pods);
    this.#podsDirty = true;
    if (!this.#podsTimer) {
      this.#podsTimer = setTimeout(() => this.#flushPods(), this.#o.podsDebounceMs ?? 200);
    }
  }

  #flushPods(): void {
    if (this.#podsTimer) clearTimeout(this.#podsTimer);
    this.#podsTimer = undefined;
    if (!this.#podsDirty) return;
    this.#podsDirty = false;
    this.#emit([{ type: 'pods', at: this.#now(), pods: [...this.#pods.values()] }]);
  }

  #reconcileEventNamespaces(pods: KubePod[]): void {
    if (!this.#running || !this.#transport) return;
    const wanted = [...new Set(pods.map((p) => p.metadata.namespace).filter((n): n is string => !!n))].sort();
    const max = this.#o.maxEventNamespaces ?? 64;
    const keep = new Set(wanted.filter((ns) => this.#eventNs.has(ns)));
    for (const ns of wanted) {
      if (keep.size >= max) break;
      keep.add(ns);
    }
    this.#skippedNamespaces = wanted.length - keep.size;
    for (const [ns, r] of this.#eventNs) {
      if (!keep.has(ns)) {
        this.#eventNs.delete(ns);
        this.#health.removeReader(r.name);
        void r.stop();
      }
    }
    for (const ns of keep) {
      if (this.#eventNs.has(ns)) continue;
      const r = this.#reflector(`events/${ns}`, `/api/v1/namespaces/${encodeURIComponent(ns)}/events`, 'involvedObject.kind=Pod', 'Event', {
        sync: (items) => this.#emitEvents(items.flatMap((e) => this.#filter.acceptPodEvent(e as unknown as KubeEvent))),
        change: (type, obj) => {
          const ev = obj as unknown as KubeEvent;
          if (type === 'DELETED') this.#filter.forget(ev);
          else this.#emitEvents(this.#filter.acceptPodEvent(ev));
        },
      });
      this.#eventNs.set(ns, r);
      void r.start();
    }
  }
}
