/**
 * A source the test scripts: it hands the daemon whatever signals the test
 * gives it, and its health is the real source runtime's (core/runtime/health),
 * driven by hand. With it the real Daemon runs in-process without hosts,
 * journals or API servers, and its readiness, status and metrics can be
 * watched through every state a real source goes through.
 */
import type { Clock } from '../../daemon/core/runtime/clock.js';
import { isoAt } from '../../daemon/core/runtime/clock.js';
import { SourceHealth } from '../../daemon/core/runtime/health.js';
import type { Collector, LogLine, Signal, SignalSink, SourceName, SourceStatus } from '../../daemon/core/types.js';

/** Options of {@link FakeSource}. */
export interface FakeSourceOptions {
  /** Clock of its health (a ManualClock lets the test make it stale). */
  clock: Clock;
  /** Defaults to 30000. */
  staleAfterMs?: number;
  /** Starts disabled, for this reason. Defaults to enabled. */
  disabled?: string;
  /** What the source does when the daemon has it catch up before a cycle (Collector.catchUp). Defaults to nothing. */
  catchUp?: (withinMs: number) => Promise<void>;
}

/** A scripted source: emit(), fail(), recover(), drop(), disable(). */
export class FakeSource implements Collector {
  readonly health: SourceHealth;
  private sink: SignalSink | undefined;
  private position = 0;

  constructor(
    readonly name: SourceName,
    private readonly opts: FakeSourceOptions,
  ) {
    this.health = new SourceHealth({ name, clock: opts.clock, staleAfterMs: opts.staleAfterMs ?? 30_000 });
  }

  async start(sink: SignalSink): Promise<void> {
    this.sink = sink;
    if (this.opts.disabled) this.health.main.disable(this.opts.disabled);
    else this.health.main.ok();
  }

  async stop(): Promise<void> {
    this.sink = undefined;
  }

  status(): SourceStatus {
    return this.health.status({ scripted: true });
  }

  async catchUp(withinMs: number): Promise<void> {
    await this.opts.catchUp?.(withinMs);
  }

  /** Hands signals on, as a successful read that produced them. */
  emit(signals: Signal[]): void {
    this.health.main.ok();
    this.health.emit(this.sink, signals);
  }

  /** Log lines of this source (with priority 3), then the read position after them, as the real sources send them. */
  lines(texts: string[], extra: Partial<LogLine> = {}): void {
    const source: LogLine['source'] = this.name === 'pod-logs' ? 'podLog' : this.name === 'journald' ? 'journald' : 'kmsg';
    const at = isoAt(this.opts.clock.now());
    const signals: Signal[] = texts.map((text) => ({ type: 'log', line: { source, at, priority: 3, text, ...extra } }));
    this.position += texts.length;
    signals.push({ type: 'checkpoint', source: this.name, key: 'position', value: String(this.position) });
    this.emit(signals);
  }

  /** A stretch the source could not read. */
  gap(detail: string): void {
    this.emit([{ type: 'gap', at: isoAt(this.opts.clock.now()), source: this.name, detail }]);
  }

  /** Records read but not handed on. */
  drop(n: number): void {
    this.health.drop(n);
  }

  /** The source's reads fail (transient: it waits for a peer and shows stale). */
  fail(message: string, transient = false): void {
    this.health.main.fail(new Error(message), { transient });
  }

  /** A read succeeds again after a restart. */
  recover(): void {
    this.health.main.restarted();
    this.health.main.ok();
  }
}
