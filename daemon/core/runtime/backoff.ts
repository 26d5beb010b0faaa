/**
 * Bounded exponential backoff with jitter, and the two shapes every source
 * runs in: a supervisor that reruns a long-running task (a child process, a
 * stream) and a poller. Both wait on a Clock and report to a HealthReader, so
 * restarts and failures are counted the same way for every source.
 */
import type { Logger } from 'pino';
import { type Clock, after, systemClock } from './clock.js';
import type { HealthReader } from './health.js';

/** Options of {@link Backoff}. */
export interface BackoffOptions {
  /** First delay, milliseconds. Defaults to 1000. */
  initialMs?: number;
  /** Largest delay, milliseconds (jitter included). Defaults to 60000. */
  maxMs?: number;
  /** Growth per attempt. Defaults to 2. */
  factor?: number;
  /**
   * Fraction of the delay that is randomised (0 = none, 1 = anywhere between
   * 0 and the delay): spreads restarts of many nodes after a shared outage.
   * Defaults to 0.2.
   */
  jitter?: number;
  /** Random source in [0, 1). Defaults to Math.random. */
  random?: () => number;
  /**
   * Milliseconds of success (from the first success after a failure to the
   * next failure) after which past failures are forgotten: a source that
   * flaps keeps its long delays. Defaults to 60000.
   */
  resetAfterMs?: number;
  /** Clock that healthy periods are measured with. Defaults to the system clock. */
  clock?: Clock;
}

/** Raised for backoff options that cannot work (negative delays, jitter outside 0..1). */
export class BackoffOptionsError extends Error {
  readonly code = 'BACKOFF_OPTIONS_INVALID';
  override readonly name = 'BackoffOptionsError';
}

/** Delays for successive failed attempts: initial·factor^n, capped, with jitter, reset after a healthy period. */
export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private readonly resetAfterMs: number;
  private readonly clock: Clock;
  private n = 0;
  private healthySince: number | null = null;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 1000;
    this.maxMs = opts.maxMs ?? 60_000;
    this.factor = opts.factor ?? 2;
    this.jitter = opts.jitter ?? 0.2;
    this.random = opts.random ?? Math.random;
    this.resetAfterMs = opts.resetAfterMs ?? 60_000;
    this.clock = opts.clock ?? systemClock;
    if (!(this.initialMs >= 0) || !(this.maxMs >= this.initialMs)) {
      throw new BackoffOptionsError(`backoff needs 0 <= initialMs <= maxMs (got ${this.initialMs}, ${this.maxMs})`);
    }
    if (!(this.factor >= 1)) throw new BackoffOptionsError(`backoff factor must be >= 1 (got ${this.factor})`);
    if (!(this.jitter >= 0 && this.jitter <= 1)) throw new BackoffOptionsError(`backoff jitter must be in 0..1 (got ${this.jitter})`);
    if (!(this.resetAfterMs >= 0)) throw new BackoffOptionsError(`backoff resetAfterMs must be >= 0 (got ${this.resetAfterMs})`);
  }

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.n;
  }

  /** The delay before the next attempt; counts one more failed attempt. */
  next(): number {
    if (this.healthySince !== null && this.clock.now() - this.healthySince >= this.resetAfterMs) this.n = 0;
    this.healthySince = null;
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.n);
    this.n++;
    // Jitter only shortens the delay, so maxMs stays a hard bound.
    const delay = base * (1 - this.jitter * this.random());
    return Math.max(0, Math.round(delay));
  }

  /** An attempt succeeded: failures are forgotten once success has lasted resetAfterMs. */
  succeeded(): void {
    if (this.n === 0) return;
    this.healthySince ??= this.clock.now();
    if (this.clock.now() - this.healthySince >= this.resetAfterMs) this.reset();
  }

  /** Forgets past failures now: the next delay is the initial one again. */
  reset(): void {
    this.n = 0;
    this.healthySince = null;
  }
}

/** Options of {@link restartLoop}. */
export interface RestartLoopOptions {
  /** Name used in log lines. */
  name: string;
  /** Backoff between attempts. Defaults to `new Backoff({ clock })`. */
  backoff?: Backoff;
  /** A run that lasted at least this long counts as a healthy period: the backoff starts over. Defaults to 60000. */
  resetAfterMs?: number;
  /** Clock. Defaults to the system clock. */
  clock?: Clock;
  /** Reader that failures and restarts are reported to. Defaults to none. */
  reader?: HealthReader;
  /** Logger. Defaults to none. */
  logger?: Logger;
}

/** What the supervisor recorded about its attempts. */
export interface RestartStats {
  /** Attempts started so far (the first run counts as one). */
  attempts: number;
  /** Attempts that ended with an error. */
  failures: number;
  /** Failures since the last stable run or success. */
  consecutiveFailures: number;
  /** True while an attempt runs. */
  running: boolean;
  /** Message of the last error, or null. */
  lastError: string | null;
  /** Clock time the last attempt started, or null. */
  lastStartAt: number | null;
  /** Clock time the last attempt ended, or null. */
  lastExitAt: number | null;
  /** Delay chosen before the next attempt, or null while running or stopped. */
  nextDelayMs: number | null;
}

/** A running supervisor. */
export interface RestartLoop {
  /** Stops rerunning, aborts the current attempt and resolves when it has ended. */
  stop(): Promise<void>;
  /** A copy of the attempt counters. */
  stats(): RestartStats;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Runs `task` and reruns it with backoff whenever it ends, until stopped.
 * The task gets an AbortSignal that fires on stop(); a task that never resolves
 * is a healthy long-running one. Errors never escape: they are counted, logged,
 * reported to the reader and retried.
 */
export function restartLoop(task: (signal: AbortSignal, attempt: number) => Promise<void>, opts: RestartLoopOptions): RestartLoop {
  const clock = opts.clock ?? systemClock;
  const backoff = opts.backoff ?? new Backoff({ clock });
  const resetAfterMs = opts.resetAfterMs ?? 60_000;
  const ac = new AbortController();
  const stats: RestartStats = {
    attempts: 0,
    failures: 0,
    consecutiveFailures: 0,
    running: false,
    lastError: null,
    lastStartAt: null,
    lastExitAt: null,
    nextDelayMs: null,
  };

  const loop = async () => {
    while (!ac.signal.aborted) {
      stats.attempts++;
      if (stats.attempts > 1) opts.reader?.restarted();
      stats.running = true;
      stats.nextDelayMs = null;
      const started = clock.now();
      stats.lastStartAt = started;
      let error: Error | null = null;
      try {
        await task(ac.signal, stats.attempts);
      } catch (err) {
        error = asError(err);
      }
      stats.running = false;
      stats.lastExitAt = clock.now();
      if (stats.lastExitAt - started >= resetAfterMs) {
        backoff.reset();
        stats.consecutiveFailures = 0;
      }
      if (error) {
        stats.failures++;
        stats.consecutiveFailures++;
        stats.lastError = error.message;
        if (!ac.signal.aborted) opts.reader?.fail(error);
      } else {
        stats.consecutiveFailures = 0;
      }
      if (ac.signal.aborted) break;
      const delay = backoff.next();
      stats.nextDelayMs = delay;
      if (error) opts.logger?.warn({ err: error, task: opts.name, attempt: stats.attempts, retryInMs: delay }, 'task failed, retrying');
      else opts.logger?.info({ task: opts.name, attempt: stats.attempts, retryInMs: delay }, 'task ended, restarting');
      await clock.sleep(delay, ac.signal);
    }
    stats.nextDelayMs = null;
  };
  const current = loop();

  return {
    async stop() {
      ac.abort();
      await current;
    },
    stats() {
      return { ...stats };
    },
  };
}

/**
 * Longest wait of an idle log poll (kmsg, syslog, embedded log files), in ms.
 * In the daemon an idle source is also read just before every detection
 * cycle (Periodic.catchUp), so what the cycle sees is current; this bounds
 * the wait where nothing drives it (and where cycles are rarer).
 */
export const IDLE_POLL_MAX_MS = 30_000;

/**
 * What a periodic task resolves when what it reads is not there (no
 * /dev/kmsg or a refused one, none of its log files): the wait then doubles
 * up to ABSENT_POLL_MAX_MS. A file that appears later is read from its
 * start, so the longer wait delays its lines without losing any.
 */
export const ABSENT = 'absent';
/** Longest wait of a task whose source is not there, ms. */
export const ABSENT_POLL_MAX_MS = 60_000;

/** What a run of a polling task found: something new (true), nothing new (false), or no source at all. Any other value counts as true. */
export type RunOutcome = boolean | typeof ABSENT;

/** Options of {@link periodic}. */
export interface PeriodicOptions {
  /** Name used in log lines. */
  name: string;
  /** Milliseconds between successful runs. */
  intervalMs: number;
  /** Backoff used instead of the interval after a failed run. Defaults to `new Backoff({ initialMs: intervalMs, maxMs: max(intervalMs, 60000), clock })`. */
  backoff?: Backoff;
  /** Clock. Defaults to the system clock. */
  clock?: Clock;
  /** Reader told of every run: ok() after a success, fail() after a failure, restarted() for a retry. Defaults to none. */
  reader?: HealthReader;
  /** Logger. Defaults to none. */
  logger?: Logger;
  /**
   * While runs find nothing new (the task resolves `false`), the interval
   * doubles up to this many milliseconds, so an idle source wakes the process
   * rarely; a run that finds something, or a trigger, brings it back at once.
   * While the task resolves {@link ABSENT}, it doubles up to
   * ABSENT_POLL_MAX_MS instead. Defaults to intervalMs (no idle backoff).
   */
  idleMaxMs?: number;
}

/** A task run on an interval, one run at a time. */
export interface Periodic {
  /** Runs the task now (after any run in progress) and resolves when that run ended. Never rejects. */
  runNow(): Promise<void>;
  /** Asks for a run soon (debounced); used by file watchers. */
  trigger(delayMs?: number): void;
  /**
   * Runs the task now, unless one is under way, when its next run is due
   * within `withinMs` or it is backed off because runs find nothing (not
   * because its source is absent): the daemon calls it before each detection
   * cycle, so periodic work shares the cycle's wakeup. Resolves when that run
   * ended, at once otherwise. Never rejects.
   */
  catchUp(withinMs: number): Promise<void>;
  /** Stops scheduling and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * Runs `task` every `intervalMs`, never two at once; a failing run is retried
 * after a backoff delay instead of the interval. Errors never escape.
 */
export function periodic(task: () => Promise<unknown>, opts: PeriodicOptions): Periodic {
  const clock = opts.clock ?? systemClock;
  const backoff = opts.backoff ?? new Backoff({ initialMs: opts.intervalMs, maxMs: Math.max(opts.intervalMs, 60_000), clock });
  let chain: Promise<void> = Promise.resolve();
  let cancel: (() => void) | undefined;
  let timerDue = Number.POSITIVE_INFINITY;
  let stopped = false;
  let running = false;
  let again = false;
  let lastFailed = false;
  let idleMs = opts.intervalMs;
  /** The last run found nothing new (resolved false). */
  let lastIdle = false;

  const clearTimer = () => {
    cancel?.();
    cancel = undefined;
    timerDue = Number.POSITIVE_INFINITY;
  };

  const schedule = (ms: number) => {
    if (stopped) return;
    const due = clock.now() + ms;
    // Keep the earlier of two requests: a watcher trigger must not wait for the next interval.
    if (cancel !== undefined && due >= timerDue) return;
    clearTimer();
    timerDue = due;
    cancel = after(clock, ms, () => {
      cancel = undefined;
      timerDue = Number.POSITIVE_INFINITY;
      void run();
    });
  };

  const runOnce = async () => {
    if (stopped) return;
    let error: Error | null = null;
    running = true;
    again = false;
    if (lastFailed) opts.reader?.restarted();
    try {
      const found = await task();
      lastIdle = found === false;
      const maxMs = found === ABSENT ? ABSENT_POLL_MAX_MS : found === false ? (opts.idleMaxMs ?? opts.intervalMs) : opts.intervalMs;
      idleMs = Math.min(idleMs * 2, Math.max(maxMs, opts.intervalMs));
    } catch (err) {
      error = asError(err);
    }
    running = false;
    lastFailed = error !== null;
    if (!stopped) {
      if (error) opts.reader?.fail(error);
      else opts.reader?.ok();
    }
    // A request made before this run is answered by it; one made during it may not be.
    clearTimer();
    if (error) {
      const delay = backoff.next();
      opts.logger?.warn({ err: error, task: opts.name, retryInMs: delay }, 'run failed, retrying');
      schedule(delay);
    } else {
      backoff.succeeded();
      schedule(again ? 0 : idleMs);
    }
  };

  const run = () => {
    chain = chain.then(runOnce);
    return chain;
  };

  return {
    runNow: run,
    trigger(delayMs = 0) {
      if (running) again = true;
      else schedule(delayMs);
    },
    catchUp(withinMs) {
      if (stopped || running) return Promise.resolve();
      if (timerDue > clock.now() + withinMs && !(lastIdle && idleMs > opts.intervalMs)) return Promise.resolve();
      return run();
    },
    async stop() {
      stopped = true;
      clearTimer();
      await chain;
    },
  };
}
