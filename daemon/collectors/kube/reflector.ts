/**
 * List-then-watch of one API-server collection, restarted forever with
 * bounded backoff.
 *
 * Written on the client's `Watch` rather than its `ListWatch`/`makeInformer`:
 * those deserialise list items into Date-bearing models, cannot take an
 * injectable clock, retry on their own fixed schedule and keep every object in
 * an unbounded cache. Here the owner decides what to keep, every attempt is
 * counted, waits go through a Clock, and 410 Gone (our resourceVersion was
 * compacted away) leads to an immediate relist so no change is lost.
 */
import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from '../../core/runtime/backoff.js';
import type { Clock } from '../../core/runtime/clock.js';
import type { HealthReader } from '../../core/runtime/health.js';
import type { ReachabilityGate } from './gate.js';
import { type DescribedFailure, HttpStatusError, ResourceExpiredError } from './errors.js';
import type { KubeTransport } from './transport.js';
import { type WatchEvent, type WireList, type WireObject, withTypeMeta } from './wire.js';

/** What the owner of a reflector receives. Handlers must not throw. */
export interface ReflectorHandler {
  /** A full (re)list: `items` is the whole current collection. */
  sync(items: WireObject[]): void;
  /** One change from the watch stream. */
  change(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: WireObject): void;
  /**
   * Called after a relist that replaced a watch (410 Gone): changes between
   * `sinceMs` (last contact, clock ms) and now were not seen one by one.
   */
  relisted?(sinceMs: number): void;
}

/** Settings of one reflector. */
export interface ReflectorOptions {
  /** Short name for logs and status, e.g. `pods` or `events/shop`. */
  name: string;
  /** Collection path, e.g. `/api/v1/pods`. */
  path: string;
  /** Field selector sent on list and watch. Defaults to none. */
  fieldSelector?: string;
  /** apiVersion and kind of the items, added back to listed items. */
  itemApiVersion: string;
  itemKind: string;
  transport: KubeTransport;
  clock: Clock;
  logger: Logger;
  handler: ReflectorHandler;
  /** Shared wait for failures where the server gave no HTTP answer. Defaults to this reflector's own backoff. */
  gate?: ReachabilityGate;
  /** Turns an error into a status line. */
  describe: (err: unknown) => DescribedFailure;
  /** Retry delays. Defaults to 1 s doubling to 30 s, 20 % jitter. */
  backoff?: BackoffOptions;
  /** Items per list page (limit/continue). Defaults to 500. */
  pageSize?: number;
  /** Server-side watch timeout; each watch picks a value in [t, 2t) like client-go. Defaults to 300. */
  watchTimeoutSeconds?: number;
  /** Random source for the watch timeout. Defaults to Math.random. */
  random?: () => number;
  /** Reader of the source's health this reflector reports to: up while watching, failures, restarts. Defaults to none. */
  reader?: HealthReader;
}

/** Counters and state of one reflector, for status. */
export interface ReflectorStats {
  name: string;
  /** `watching` once a watch is open and the collection is in sync. */
  phase: 'idle' | 'listing' | 'watching' | 'waiting' | 'stopped';
  /** A list has succeeded at least once. */
  synced: boolean;
  /** The watch stream is open right now. */
  connected: boolean;
  lists: number;
  watches: number;
  /** Relists caused by 410 Gone. */
  relists: number;
  /** Failed attempts (each one followed by a backoff wait). */
  failures: number;
  consecutiveFailures: number;
  lastError: DescribedFailure | null;
  /** When the current run of failures began (clock ms), or null. */
  failingSince: number | null;
  resourceVersion: string;
}

/** One collection kept in step with the API server. */
export class Reflector {
  readonly name: string;
  readonly #o: ReflectorOptions;
  readonly #backoff: Backoff;
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #firstAttempt: Promise<void>;
  #firstAttemptDone!: () => void;
  #rv = '';
  #expiredInRow = 0;
  /** Clock time of the last list or watch event. */
  #lastContactMs = 0;
  #stats: ReflectorStats;

  constructor(opts: ReflectorOptions) {
    this.name = opts.name;
    this.#o = opts;
    this.#backoff = new Backoff({ initialMs: 1000, maxMs: 30_000, jitter: 0.2, clock: opts.clock, ...opts.backoff });
    this.#firstAttempt = new Promise((r) => {
      this.#firstAttemptDone = r;
    });
    this.#stats = {
      name: opts.name,
      phase: 'idle',
      synced: false,
      connected: false,
      lists: 0,
      watches: 0,
      relists: 0,
      failures: 0,
      consecutiveFailures: 0,
      lastError: null,
      failingSince: null,
      resourceVersion: '',
    };
  }

  /** Starts the loop; resolves once the first list attempt finished, ok or not. */
  start(): Promise<void> {
    this.#loop ??= this.#run().catch((err: unknown) => {
      this.#o.logger.error({ err, reflector: this.name }, 'kube reflector loop ended unexpectedly');
    });
    return this.#firstAttempt;
  }

  /** Aborts the open request or wait and resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.#abort.abort();
    this.#stats.phase = 'stopped';
    this.#firstAttemptDone();
    await this.#loop;
    this.#o.reader?.down();
  }

  /** A copy of the counters. */
  stats(): ReflectorStats {
    return { ...this.#stats, resourceVersion: this.#rv };
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        if (!this.#rv) {
          this.#stats.phase = 'listing';
          await this.#list(signal);
          this.#firstAttemptDone();
        }
        if (signal.aborted) break;
        const outcome = await this.#watch(signal);
        if (outcome === 'expired') {
          if (this.#expired()) continue;
          this.#fail(new ResourceExpiredError('the API server keeps answering 410 Gone to fresh resourceVersions'));
          await this.#o.clock.sleep(this.#backoff.next(), signal);
        } else if (outcome === 'too-short') {
          // A clean close right after opening, again and again, would be a busy loop.
          this.#fail(new Error('the API server closed the watch immediately'));
          await this.#o.clock.sleep(this.#backoff.next(), signal);
          if (!signal.aborted) this.#o.reader?.restarted();
        }
      } catch (err) {
        if (signal.aborted) break;
        this.#firstAttemptDone();
        // HTTP 410 on the watch request itself (some servers and proxies answer this way).
        if (err instanceof HttpStatusError && err.status === 410 && this.#rv && this.#expired()) continue;
        this.#fail(err);
        this.#stats.phase = 'waiting';
        if (this.#o.gate && !(err instanceof HttpStatusError)) await this.#o.gate.unreachable(signal);
        else await this.#o.clock.sleep(this.#backoff.next(), signal);
        if (!signal.aborted) this.#o.reader?.restarted();
      }
    }
    this.#stats.phase = 'stopped';
  }

  /**
   * Forgets the resourceVersion so the next round relists. Returns false when
   * expiries keep coming without any watch event in between: then the caller
   * waits like after any other failure instead of relisting in a tight loop.
   */
  #expired(): boolean {
    this.#stats.relists++;
    this.#expiredInRow++;
    this.#rv = '';
    this.#o.logger.info({ reflector: this.name }, 'watch resourceVersion expired (410 Gone); relisting');
    return this.#expiredInRow <= 3;
  }

  #fail(err: unknown): void {
    // An HTTP error still proves the server is there: let the loops waiting on the gate go.
    if (err instanceof HttpStatusError) this.#o.gate?.reachable();
    const described = this.#o.describe(err);
    this.#stats.connected = false;
    const first = this.#stats.consecutiveFailures === 0;
    this.#stats.failures++;
    this.#stats.consecutiveFailures++;
    this.#stats.lastError = described;
    this.#stats.failingSince ??= this.#o.clock.now();
    this.#o.reader?.fail(described.message, { transient: !described.permanent });
    // Log the first failure of a run and then sparingly: an outage of hours must not flood the log.
    const n = this.#stats.consecutiveFailures;
    if (first || (n & (n - 1)) === 0) {
      this.#o.logger.warn({ reflector: this.name, attempt: n, err: described.message }, 'kube list/watch failed; retrying with backoff');
    }
  }

  /**
   * The list succeeded and the watch is open: the collection is current, so
   * status shows healthy. The backoff is kept until the stream proves itself
   * (an event, or a clean end), so a server that accepts and then drops every
   * watch is still retried slowly.
   */
  #connected(): void {
    this.#o.gate?.reachable();
    if (this.#stats.consecutiveFailures > 0) {
      this.#o.logger.info({ reflector: this.name, failedAttempts: this.#stats.consecutiveFailures }, 'kube list/watch recovered');
    }
    this.#stats.consecutiveFailures = 0;
    this.#stats.failingSince = null;
    this.#stats.connected = true;
    this.#o.reader?.up();
  }

  #recovered(): void {
    this.#expiredInRow = 0;
    this.#backoff.succeeded();
  }

  async #list(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const items: WireObject[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const page: WireList = await o.transport.get(
        o.path,
        { fieldSelector: o.fieldSelector, limit: o.pageSize ?? 500, continue: cont },
        signal,
      );
      for (const item of page.items ?? []) items.push(withTypeMeta(item, o.itemApiVersion, o.itemKind));
      rv = page.metadata?.resourceVersion ?? '';
      cont = page.metadata?.continue || undefined;
    } while (cont && !signal.aborted);
    if (signal.aborted) return;
    this.#o.gate?.reachable();
    const relist = this.#stats.lists > 0;
    const since = this.#lastContactMs;
    this.#stats.lists++;
    this.#stats.synced = true;
    this.#o.reader?.ok();
    this.#rv = rv;
    this.#lastContactMs = o.clock.now();
    o.handler.sync(items);
    if (relist) o.handler.relisted?.(since);
  }

  async #watch(signal: AbortSignal): Promise<'closed' | 'expired' | 'too-short' | 'aborted'> {
    const o = this.#o;
    const stream = new AbortController();
    const both = AbortSignal.any([signal, stream.signal]);
    const t = o.watchTimeoutSeconds ?? 300;
    const timeoutSeconds = Math.floor(t * (1 + (o.random ?? Math.random)()));
    let expired = false;
    let events = 0;
    let failure: Error | undefined;
    // Real time, not the injectable clock: what must not happen is spinning the CPU.
    const openedAt = performance.now();
    this.#stats.watches++;
    this.#stats.phase = 'watching';
    const onEvent = (ev: WatchEvent) => {
      if (both.aborted) return;
      try {
        const obj = ev.object;
        if (ev.type === 'ERROR') {
          const code = (obj as { code?: unknown }).code;
          if (code === 410) expired = true;
          else failure = new HttpStatusError(typeof code === 'number' ? code : 500, o.path, String((obj as { message?: unknown }).message ?? 'watch error'));
          stream.abort();
          return;
        }
        events++;
        this.#lastContactMs = o.clock.now();
        if (events === 1) this.#recovered();
        const rv = obj.metadata?.resourceVersion;
        if (rv) this.#rv = rv;
        if (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED') {
          o.handler.change(ev.type, withTypeMeta(obj, o.itemApiVersion, o.itemKind));
        }
      } catch (err) {
        o.logger.error({ err, reflector: this.name }, 'watch event handler failed');
      }
    };
    await o.transport.watch(o.path, {
      query: { resourceVersion: this.#rv, fieldSelector: o.fieldSelector, allowWatchBookmarks: true, timeoutSeconds },
      onEvent,
      onOpen: () => this.#connected(),
      signal: both,
      inactivityMs: (timeoutSeconds + 30) * 1000,
    });
    this.#stats.connected = false;
    this.#o.reader?.down();
    if (signal.aborted) return 'aborted';
    if (failure) throw failure;
    if (expired) return 'expired';
    if (events === 0 && performance.now() - openedAt < 1000) return 'too-short';
    if (events === 0) this.#recovered();
    return 'closed';
  }
}
