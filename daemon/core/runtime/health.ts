/**
 * One health tracker for every source, so the words in `/v1/status` and the
 * counters in `/metrics` mean the same whichever source they are about.
 *
 * A source has one or more readers (the journald source: journalctl and the
 * embedded log files; the kube-api source: one list+watch per collection).
 * Each reader reports what happened to its attempts; the source's state is the
 * worst of its readers' states.
 *
 * States (SourceStatus.state):
 * - `healthy`  — every reader is live: its stream is open, or its last attempt
 *   (poll, sample, list) succeeded less than `staleAfterMs` ago. A quiet
 *   source (an empty journal, a kernel that says nothing) is healthy.
 * - `stale`    — a reader has shown no life for longer than `staleAfterMs`
 *   without an error to report (a read that hangs, a stream that closed and
 *   did not come back, not started yet), or it is retrying a transient failure
 *   (peer unreachable, timeout, HTTP 5xx) that waiting may fix. Its data is
 *   getting old; it retries by itself with bounded backoff.
 * - `failing`  — a reader's last attempt failed with an error that waiting
 *   alone will not fix (permission, credentials, RBAC, TLS, a missing folder,
 *   an I/O error, a reader process that exited with an error). It still
 *   retries with bounded backoff, and `lastError` says what to fix.
 * - `disabled` — the source cannot run on this node by design or config (no
 *   /dev/kmsg in an unprivileged container, no journal and no syslog, not a
 *   Kubernetes node); `lastError` says why. Not an outage.
 *
 * Counters (SourceStatus.signals and detail.drops / gaps / restarts):
 * - signals  — signals handed to the daemon (log lines, gaps, host samples,
 *   Kubernetes objects); read positions (checkpoints) are not counted.
 * - drops    — records the source read but did not hand on: over a rate
 *   limit, unparseable, cut for backlog. Known and counted, never silent.
 * - gaps     — `gap` signals: stretches the source knows it could not read
 *   (ring buffer overrun, a file gone before it was read to its end, a watch
 *   that expired, a journal cursor that vanished).
 * - restarts — times a reader was started again after it ended or failed (a
 *   new journalctl, a poll retried after a failed one, a list+watch reopened
 *   after an error).
 */
import type { Signal, SignalSink, SourceName, SourceStatus, Timestamp } from '../types.js';
import { type Clock, isoAt, systemClock } from './clock.js';

/** One of the states defined above. */
export type SourceState = SourceStatus['state'];

/** Every state, healthiest first (the order of the `nodesage_source_state` series). */
export const SOURCE_STATES: readonly SourceState[] = ['healthy', 'stale', 'failing', 'disabled'];

/** Options of {@link SourceHealth}. */
export interface SourceHealthOptions {
  /** The source's name in /v1/status. */
  name: SourceName;
  /** No sign of life from a reader for this long makes the source stale. Defaults to 60000. */
  staleAfterMs?: number;
  /** Clock. Defaults to the system clock. */
  clock?: Clock;
}

/** How a failure is reported: `transient` failures make the source stale rather than failing. */
export interface FailureKind {
  /** Waiting may fix it (peer unreachable, timeout, HTTP 5xx). Defaults to false. */
  transient?: boolean;
}

/** What one reader of a source reports. */
export class HealthReader {
  #failure: { message: string; transient: boolean } | null = null;
  #disabled: string | null = null;
  #lastOkAt: number | null = null;
  #up = false;

  constructor(
    /** Name of the reader inside its source (for logs). */
    readonly name: string,
    private readonly owner: SourceHealth,
  ) {}

  /** An attempt succeeded (a poll, a sample, a list): the reader is live now and any failure is over. */
  ok(): void {
    this.#lastOkAt = this.owner.clock.now();
    this.#failure = null;
  }

  /** The reader's stream is open (a running journalctl, an open watch): live until down(). */
  up(): void {
    this.ok();
    this.#up = true;
  }

  /** The stream closed; staleness counts from now unless it comes up again. */
  down(): void {
    if (this.#up) this.#lastOkAt = this.owner.clock.now();
    this.#up = false;
  }

  /** An attempt failed. */
  fail(err: unknown, kind: FailureKind = {}): void {
    const message = err instanceof Error ? err.message : String(err);
    this.#failure = { message, transient: kind.transient ?? false };
    this.#up = false;
  }

  /** The reader cannot run here, for `reason`, until enable() (a device that may appear). */
  disable(reason: string): void {
    this.#disabled = reason;
    this.#up = false;
  }

  /** The reader can run again. */
  enable(): void {
    this.#disabled = null;
  }

  /** The reader was started again after it ended or failed. */
  restarted(): void {
    this.owner.restarts++;
  }

  /** This reader's state and the message that goes with it. */
  state(now: number, staleAfterMs: number): { state: SourceState; error: string | null } {
    if (this.#disabled !== null) return { state: 'disabled', error: this.#disabled };
    if (this.#failure) return { state: this.#failure.transient ? 'stale' : 'failing', error: this.#failure.message };
    if (this.#up) return { state: 'healthy', error: null };
    if (this.#lastOkAt === null) return { state: 'stale', error: null };
    if (now - this.#lastOkAt > staleAfterMs) {
      return { state: 'stale', error: `${this.name}: no sign of life since ${isoAt(this.#lastOkAt)} (more than ${Math.round(staleAfterMs / 1000)} s)` };
    }
    return { state: 'healthy', error: null };
  }
}

const RANK: Record<SourceState, number> = { disabled: 0, healthy: 1, stale: 2, failing: 3 };

/** Health and counters of one source. */
export class SourceHealth {
  readonly name: SourceName;
  /** The clock staleness is measured with. */
  readonly clock: Clock;
  /** See the module comment. */
  readonly staleAfterMs: number;
  signals = 0;
  lastSignalAt: Timestamp | null = null;
  drops = 0;
  gaps = 0;
  restarts = 0;
  #note: string | null = null;
  readonly #readers = new Map<string, HealthReader>();

  constructor(opts: SourceHealthOptions) {
    this.name = opts.name;
    this.clock = opts.clock ?? systemClock;
    this.staleAfterMs = opts.staleAfterMs ?? 60_000;
  }

  /** The reader of a source that has only one (named after the source). */
  get main(): HealthReader {
    return this.reader(this.name);
  }

  /** The reader called `name`, created on first use. */
  reader(name: string): HealthReader {
    let r = this.#readers.get(name);
    if (!r) {
      r = new HealthReader(name, this);
      this.#readers.set(name, r);
    }
    return r;
  }

  /** Forgets a reader that is gone for good (a namespace no pod runs in any more). */
  removeReader(name: string): void {
    this.#readers.delete(name);
  }

  /** A fact shown as lastError while nothing fails (a fallback in use, a mount skipped); null clears it. */
  note(message: string | null): void {
    this.#note = message;
  }

  /** Counts `n` records read but not handed on. */
  drop(n = 1): void {
    this.drops += n;
  }

  /**
   * Hands `signals` to `sink` and counts them (checkpoints are positions, not
   * signals). An empty batch is not delivered.
   */
  emit(sink: SignalSink | undefined, signals: Signal[]): void {
    if (signals.length === 0 || !sink) return;
    let counted = 0;
    for (const s of signals) {
      if (s.type === 'checkpoint') continue;
      counted++;
      if (s.type === 'gap') this.gaps++;
    }
    if (counted > 0) {
      this.signals += counted;
      this.lastSignalAt = isoAt(this.clock.now());
    }
    sink(signals);
  }

  /** The source's state: the worst of its readers' (disabled only when all are; stale before any reader exists). */
  state(): { state: SourceState; error: string | null } {
    if (this.#readers.size === 0) return { state: 'stale', error: null };
    const now = this.clock.now();
    let worst: { state: SourceState; error: string | null } = { state: 'disabled', error: null };
    let disabledError: string | null = null;
    for (const r of this.#readers.values()) {
      const s = r.state(now, this.staleAfterMs);
      if (s.state === 'disabled') disabledError ??= s.error;
      if (RANK[s.state] > RANK[worst.state]) worst = s;
      else if (s.state === worst.state && worst.error === null) worst = s;
    }
    if (worst.state === 'disabled') return { state: 'disabled', error: disabledError };
    return worst;
  }

  /** The /v1/status entry, with the shared counters merged into `detail`. */
  status(detail: Record<string, string | number | boolean> = {}): SourceStatus {
    const { state, error } = this.state();
    return {
      name: this.name,
      state,
      signals: this.signals,
      lastSignalAt: this.lastSignalAt,
      lastError: error ?? this.#note,
      detail: { ...detail, drops: this.drops, gaps: this.gaps, restarts: this.restarts },
    };
  }
}
