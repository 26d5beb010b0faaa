/**
 * Bounded exponential backoff with jitter, and a supervisor that reruns a
 * failing long-running task (a child process, a watch) with that backoff.
 * Clock and timers are injectable so tests can drive them without sleeping.
 */
import type { Logger } from 'pino';

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
  /** Clock in milliseconds. Defaults to Date.now. */
  now?: () => number;
}

/** Raised for backoff options that cannot work (negative delays, jitter outside 0..1). */
export class BackoffOptionsError extends Error {
  readonly code = 'BACKOFF_OPTIONS_INVALID';
  override readonly name = 'BackoffOptionsError';
}

/** Delays for successive failed attempts: initial·factor^n, capped, with jitter. */
export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  /** The clock the owner of this backoff measures attempts with. */
  readonly now: () => number;
  private n = 0;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 1000;
    this.maxMs = opts.maxMs ?? 60_000;
    this.factor = opts.factor ?? 2;
    this.jitter = opts.jitter ?? 0.2;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    if (!(this.initialMs >= 0) || !(this.maxMs >= this.initialMs)) {
      throw new BackoffOptionsError(`backoff needs 0 <= initialMs <= maxMs (got ${this.initialMs}, ${this.maxMs})`);
    }
    if (!(this.factor >= 1)) throw new BackoffOptionsError(`backoff factor must be >= 1 (got ${this.factor})`);
    if (!(this.jitter >= 0 && this.jitter <= 1)) throw new BackoffOptionsError(`backoff jitter must be in 0..1 (got ${this.jitter})`);
  }

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.n;
  }

  /** The delay before the next attempt; counts one more failed attempt. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.n);
    this.n++;
    // Jitter only shortens the delay, so maxMs stays a hard bound.
    const delay = base * (1 - this.jitter * this.random());
    return Math.max(0, Math.round(delay));
  }

  /** Forgets past failures: the next delay is the initial one again. */
  reset(): void {
    this.n = 0;
  }
}

/** Timer functions, injectable for tests. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The process timers, unref'd so a pending retry never keeps the process alive. */
export const realTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** Options of {@link restartLoop}. */
export interface RestartLoopOptions {
  /** Name used in log lines. */
  name: string;
  /** Backoff between attempts. Defaults to `new Backoff()`. */
  backoff?: Backoff;
  /** A run that lasted at least this long resets the backoff first. Defaults to 60000. */
  resetAfterMs?: number;
  /** Rerun the task also when it ended without error. Defaults to true. */
  restartOnSuccess?: boolean;
  /** Timers. Defaults to {@link realTimers}. */
  timers?: Timers;
  /** Logger. Defaults to none. */
  logger?: Logger;
  /** Called after every attempt, with its error (null when it resolved). Defaults to none. */
  onExit?: (err: Error | null, stats: RestartStats) => void;
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

/**
 * Runs `task` and reruns it with backoff whenever it ends, until stopped.
 * The task gets an AbortSignal that fires on stop(); a task that never resolves
 * is a healthy long-running one. Errors never escape: they are counted, logged
 * and retried.
 */
export function restartLoop(task: (signal: AbortSignal, attempt: number) => Promise<void>, opts: RestartLoopOptions): RestartLoop {
  const backoff = opts.backoff ?? new Backoff();
  const timers = opts.timers ?? realTimers;
  const resetAfterMs = opts.resetAfterMs ?? 60_000;
  const restartOnSuccess = opts.restartOnSuccess ?? true;
  const now = backoff.now;
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
  let timer: unknown;
  let wake: (() => void) | undefined;
  let current: Promise<void> = Promise.resolve();

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      timer = timers.setTimeout(() => {
        timer = undefined;
        wake = undefined;
        resolve();
      }, ms);
    });

  const loop = async () => {
    while (!ac.signal.aborted) {
      stats.attempts++;
      stats.running = true;
      stats.nextDelayMs = null;
      const started = now();
      stats.lastStartAt = started;
      let error: Error | null = null;
      try {
        await task(ac.signal, stats.attempts);
      } catch (err) {
        error = err instanceof Error ? err : new Error(String(err));
      }
      stats.running = false;
      stats.lastExitAt = now();
      if (now() - started >= resetAfterMs) {
        backoff.reset();
        stats.consecutiveFailures = 0;
      }
      if (error) {
        stats.failures++;
        stats.consecutiveFailures++;
        stats.lastError = error.message;
      } else {
        stats.consecutiveFailures = 0;
      }
      try {
        opts.onExit?.(error, { ...stats });
      } catch (hookErr) {
        opts.logger?.error({ err: hookErr, task: opts.name }, 'restart hook failed');
      }
      if (ac.signal.aborted) break;
      if (!error && !restartOnSuccess) break;
      const delay = backoff.next();
      stats.nextDelayMs = delay;
      if (error) opts.logger?.warn({ err: error, task: opts.name, attempt: stats.attempts, retryInMs: delay }, 'task failed, retrying');
      else opts.logger?.info({ task: opts.name, attempt: stats.attempts, retryInMs: delay }, 'task ended, restarting');
      await sleep(delay);
    }
    stats.nextDelayMs = null;
  };
  current = loop();

  return {
    async stop() {
      ac.abort();
      if (timer !== undefined) timers.clearTimeout(timer);
      timer = undefined;
      wake?.();
      wake = undefined;
      await current;
    },
    stats() {
      return { ...stats };
    },
  };
}

/** Options of {@link periodic}. */
export interface PeriodicOptions {
  /** Name used in log lines. */
  name: string;
  /** Milliseconds between successful runs. */
  intervalMs: number;
  /** Backoff used instead of the interval after a failed run. Defaults to `new Backoff({ initialMs: intervalMs })`. */
  backoff?: Backoff;
  /** Timers. Defaults to {@link realTimers}. */
  timers?: Timers;
  /** Logger. Defaults to none. */
  logger?: Logger;
  /** Called after every run with its error (null on success). Defaults to none. */
  onRun?: (err: Error | null) => void;
}

/** A task run on an interval, one run at a time. */
export interface Periodic {
  /** Runs the task now (after any run in progress) and resolves when that run ended. Never rejects. */
  runNow(): Promise<void>;
  /** Asks for a run soon (debounced); used by file watchers. */
  trigger(delayMs?: number): void;
  /** Stops scheduling and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * Runs `task` every `intervalMs`, never two at once; a failing run is retried
 * after a backoff delay instead of the interval. Errors never escape.
 */
export function periodic(task: () => Promise<void>, opts: PeriodicOptions): Periodic {
  const timers = opts.timers ?? realTimers;
  const backoff = opts.backoff ?? new Backoff({ initialMs: opts.intervalMs, maxMs: Math.max(opts.intervalMs, 60_000) });
  let chain: Promise<void> = Promise.resolve();
  let timer: unknown;
  let timerDue = Number.POSITIVE_INFINITY;
  let stopped = false;
  let running = false;
  let again = false;

  const schedule = (ms: number) => {
    if (stopped) return;
    const due = backoff.now() + ms;
    // Keep the earlier of two requests: a watcher trigger must not wait for the next interval.
    if (timer !== undefined && due >= timerDue) return;
    if (timer !== undefined) timers.clearTimeout(timer);
    timerDue = due;
    timer = timers.setTimeout(() => {
      timer = undefined;
      timerDue = Number.POSITIVE_INFINITY;
      void run();
    }, ms);
  };

  const runOnce = async () => {
    if (stopped) return;
    let error: Error | null = null;
    running = true;
    again = false;
    try {
      await task();
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
    }
    running = false;
    try {
      opts.onRun?.(error);
    } catch (hookErr) {
      opts.logger?.error({ err: hookErr, task: opts.name }, 'run hook failed');
    }
    // A request made before this run is answered by it; one made during it may not be.
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
    timerDue = Number.POSITIVE_INFINITY;
    if (error) {
      const delay = backoff.next();
      opts.logger?.warn({ err: error, task: opts.name, retryInMs: delay }, 'run failed, retrying');
      schedule(delay);
    } else {
      backoff.reset();
      schedule(again ? 0 : opts.intervalMs);
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
    async stop() {
      stopped = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      timer = undefined;
      await chain;
    },
  };
}
