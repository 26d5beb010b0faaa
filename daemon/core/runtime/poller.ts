/**
 * The lifecycle every polling source shares (kmsg, pod logs, host metrics):
 * start runs the first poll before it resolves, so a source reports what is
 * there at once; pollNow reads now for tests and `--once` runs; stop waits for
 * a poll in progress. Runs go through periodic(), so intervals, idle backoff,
 * retries and health reporting are the same for each.
 */
import { type Periodic, type PeriodicOptions, periodic } from './backoff.js';

/** A poll function run on an interval between start() and stop(). */
export class Poller {
  #task: Periodic | undefined;
  #stopped = false;

  /**
   * `poll` resolves false when it found nothing new, ABSENT when its source
   * is not there (the interval then backs off, see PeriodicOptions.idleMaxMs);
   * `opts` are periodic()'s.
   */
  constructor(
    private readonly poll: () => Promise<unknown>,
    private readonly opts: PeriodicOptions,
  ) {}

  /**
   * True from stop() until the next start(): a poll that was under way when
   * the source stopped drops what it read instead of emitting it.
   */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Starts polling and resolves once the first poll has ended. */
  async start(): Promise<void> {
    this.#stopped = false;
    this.#task = periodic(this.poll, this.opts);
    await this.#task.runNow();
  }

  /** Polls now (after a poll in progress); before start(), runs the poll once directly. */
  async pollNow(): Promise<void> {
    if (this.#task) await this.#task.runNow();
    else await this.poll();
  }

  /** Polls now when the next poll is due within `withinMs` or it idles (see Periodic.catchUp); resolves when done. */
  async catchUp(withinMs: number): Promise<void> {
    await this.#task?.catchUp(withinMs);
  }

  /** Asks for a poll soon (debounced); used by file watchers. Does nothing while stopped. */
  trigger(delayMs?: number): void {
    this.#task?.trigger(delayMs);
  }

  /** Stops scheduling and waits for a poll in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#task?.stop();
    this.#task = undefined;
  }
}
