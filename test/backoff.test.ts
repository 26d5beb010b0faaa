/**
 * Backoff, restartLoop and periodic with a manual clock and timers: hours of
 * retries pass in milliseconds, and the delays chosen are exactly checkable.
 */
import { describe, expect, it } from 'vitest';
import { Backoff, BackoffOptionsError, type Timers, periodic, restartLoop } from '../daemon/collectors/backoff.js';

/** Timers and a clock that only move when the test advances them. */
class ManualTimers implements Timers {
  now = 0;
  private seq = 0;
  private readonly pending = new Map<number, { due: number; fn: () => void }>();
  /** Delays requested, in order. */
  readonly requested: number[] = [];

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { due: this.now + ms, fn });
    this.requested.push(ms);
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Moves time forward, firing due timers in order, letting promises settle in between. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      await flush();
      let next: [number, { due: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].due <= end && (!next || e[1].due < next[1].due)) next = e;
      if (!next) break;
      this.pending.delete(next[0]);
      this.now = next[1].due;
      next[1].fn();
    }
    this.now = end;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

describe('Backoff', () => {
  it('doubles from initialMs up to maxMs, and reset starts over', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(b.attempts).toBe(6);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it('jitter only shortens the delay, so maxMs stays a hard bound', () => {
    const high = new Backoff({ initialMs: 1000, maxMs: 8000, jitter: 0.5, random: () => 0.999999 });
    const low = new Backoff({ initialMs: 1000, maxMs: 8000, jitter: 0.5, random: () => 0 });
    expect([high.next(), high.next(), high.next(), high.next(), high.next()]).toEqual([500, 1000, 2000, 4000, 4000]);
    expect([low.next(), low.next(), low.next(), low.next(), low.next()]).toEqual([1000, 2000, 4000, 8000, 8000]);
    let r = 0;
    const spread = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.2, random: () => (r++ % 10) / 10 });
    const delays = Array.from({ length: 10 }, () => spread.next());
    expect(Math.min(...delays)).toBe(820);
    expect(Math.max(...delays)).toBe(1000);
  });

  it('rejects options that cannot work, with a stable code', () => {
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow(BackoffOptionsError);
    expect(() => new Backoff({ jitter: 1.5 })).toThrow(expect.objectContaining({ code: 'BACKOFF_OPTIONS_INVALID' }));
    expect(() => new Backoff({ factor: 0.5 })).toThrow(/factor/);
  });
});

describe('restartLoop', () => {
  it('reruns a failing task with growing delays, records the attempts, and resets after a stable run', async () => {
    const t = new ManualTimers();
    const runs: number[] = [];
    let mode: 'fail' | 'long' = 'fail';
    const loop = restartLoop(
      async (signal, attempt) => {
        runs.push(t.now);
        if (mode === 'fail' && attempt <= 4) throw new Error(`journalctl exited with code ${attempt}`);
        // A long healthy run: ends after 120 s of clock time, or on stop.
        await new Promise<void>((resolve) => {
          const h = t.setTimeout(resolve, 120_000);
          signal.addEventListener('abort', () => {
            t.clearTimeout(h);
            resolve();
          });
        });
        mode = 'fail';
        throw new Error('exited after a long run');
      },
      { name: 'journalctl', backoff: new Backoff({ initialMs: 1000, maxMs: 10_000, jitter: 0, now: () => t.now }), timers: t, resetAfterMs: 60_000 },
    );
    await t.advance(0);
    expect(loop.stats()).toMatchObject({ attempts: 1, failures: 1, consecutiveFailures: 1, running: false, nextDelayMs: 1000, lastError: 'journalctl exited with code 1' });
    await t.advance(1000 + 2000 + 4000);
    expect(runs).toEqual([0, 1000, 3000, 7000]);
    expect(loop.stats()).toMatchObject({ attempts: 4, failures: 4, nextDelayMs: 8000 });
    await t.advance(8000); // 5th attempt runs long
    expect(loop.stats()).toMatchObject({ attempts: 5, running: true, nextDelayMs: null });
    await t.advance(120_000);
    // The run lasted longer than resetAfterMs: the next delay is the initial one again.
    expect(loop.stats()).toMatchObject({ attempts: 5, failures: 5, consecutiveFailures: 1, nextDelayMs: 1000, lastError: 'exited after a long run' });
    await t.advance(1000);
    expect(loop.stats().running).toBe(true);
    await loop.stop();
    expect(loop.stats()).toMatchObject({ attempts: 6, running: false });
    expect(t.size).toBe(0);
  });

  it('stop() during the wait between attempts resolves at once and never reruns', async () => {
    const t = new ManualTimers();
    let calls = 0;
    const loop = restartLoop(
      async () => {
        calls++;
        throw new Error('boom');
      },
      { name: 'x', backoff: new Backoff({ initialMs: 5000, jitter: 0, now: () => t.now }), timers: t },
    );
    await t.advance(0);
    await loop.stop();
    await t.advance(60_000);
    expect(calls).toBe(1);
  });
});

describe('periodic', () => {
  it('runs on the interval, backs off after failures, and a trigger during a run asks for another one', async () => {
    const t = new ManualTimers();
    const at: number[] = [];
    let fail = 0;
    let gate: (() => void) | undefined;
    const p = periodic(
      async () => {
        at.push(t.now);
        if (gate === undefined && fail > 0) {
          fail--;
          throw new Error('EIO');
        }
        if (gate) await new Promise<void>((r) => (gate = r));
      },
      { name: 'poll', intervalMs: 1000, backoff: new Backoff({ initialMs: 250, maxMs: 4000, jitter: 0, now: () => t.now }), timers: t },
    );
    await p.runNow();
    await t.advance(2000);
    expect(at).toEqual([0, 1000, 2000]);
    fail = 3;
    await t.advance(1000); // fails at 3000 → retry after 250, 500, 1000
    await t.advance(250 + 500 + 1000);
    expect(at).toEqual([0, 1000, 2000, 3000, 3250, 3750, 4750]);
    await t.advance(1000); // back on the interval after a success
    expect(at.at(-1)).toBe(5750);
    // A watcher trigger while a run is in progress: one more run right after it.
    gate = () => undefined;
    const running = p.runNow();
    await flush();
    p.trigger(0);
    const release = gate;
    gate = undefined;
    release?.();
    await running;
    await t.advance(0);
    expect(at.slice(-2)).toEqual([5750, 5750]);
    await p.stop();
    await t.advance(10_000);
    expect(at.length).toBe(10);
  });
});
