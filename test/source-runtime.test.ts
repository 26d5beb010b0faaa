/**
 * The source runtime on a manual clock: backoff delays, restartLoop and
 * periodic (hours of retries pass in milliseconds, the delays chosen are
 * exactly checkable), and the health tracker's states and counters.
 */
import { describe, expect, it } from 'vitest';
import { ABSENT, ABSENT_POLL_MAX_MS, Backoff, BackoffOptionsError, periodic, type RunOutcome, restartLoop } from '../daemon/core/runtime/backoff.js';
import { ManualClock } from '../daemon/core/runtime/clock.js';
import { Poller } from '../daemon/core/runtime/poller.js';
import { SourceHealth } from '../daemon/core/runtime/health.js';
import type { Signal } from '../daemon/core/types.js';

/** Moves the clock forward, waking due waits one at a time in order and letting promises settle in between. */
async function step(clock: ManualClock, ms: number): Promise<void> {
  let left = ms;
  for (;;) {
    await flush();
    const next = clock.pendingDelays()[0];
    if (next === undefined || next > left) break;
    clock.advance(next);
    left -= next;
  }
  clock.advance(left);
  await flush();
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

describe('Backoff reset after a healthy period', () => {
  it('keeps growing while a source flaps, and starts over once success has lasted resetAfterMs', () => {
    const clock = new ManualClock(0);
    const b = new Backoff({ initialMs: 100, maxMs: 10_000, jitter: 0, resetAfterMs: 60_000, clock });
    expect([b.next(), b.next(), b.next()]).toEqual([100, 200, 400]);
    // One success between failures is a flap: the delays keep growing.
    b.succeeded();
    clock.advance(5_000);
    expect(b.next()).toBe(800);
    // A minute of success: the next failure starts from the first delay.
    b.succeeded();
    clock.advance(60_000);
    b.succeeded();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(100);
  });
});

describe('restartLoop', () => {
  it('reruns a failing task with growing delays, records the attempts, and resets after a stable run', async () => {
    const t = new ManualClock(0);
    const runs: number[] = [];
    let mode: 'fail' | 'long' = 'fail';
    const loop = restartLoop(
      async (signal, attempt) => {
        runs.push(t.now());
        if (mode === 'fail' && attempt <= 4) throw new Error(`journalctl exited with code ${attempt}`);
        // A long healthy run: ends after 120 s of clock time, or on stop.
        await t.sleep(120_000, signal);
        mode = 'fail';
        throw new Error('exited after a long run');
      },
      { name: 'journalctl', backoff: new Backoff({ initialMs: 1000, maxMs: 10_000, jitter: 0, clock: t }), clock: t, resetAfterMs: 60_000 },
    );
    await step(t, 0);
    expect(loop.stats()).toMatchObject({ attempts: 1, failures: 1, consecutiveFailures: 1, running: false, nextDelayMs: 1000, lastError: 'journalctl exited with code 1' });
    await step(t, 1000 + 2000 + 4000);
    expect(runs).toEqual([0, 1000, 3000, 7000]);
    expect(loop.stats()).toMatchObject({ attempts: 4, failures: 4, nextDelayMs: 8000 });
    await step(t, 8000); // 5th attempt runs long
    expect(loop.stats()).toMatchObject({ attempts: 5, running: true, nextDelayMs: null });
    await step(t, 120_000);
    // The run lasted longer than resetAfterMs: the next delay is the initial one again.
    expect(loop.stats()).toMatchObject({ attempts: 5, failures: 5, consecutiveFailures: 1, nextDelayMs: 1000, lastError: 'exited after a long run' });
    await step(t, 1000);
    expect(loop.stats().running).toBe(true);
    await loop.stop();
    expect(loop.stats()).toMatchObject({ attempts: 6, running: false });
    expect(t.sleeping).toBe(0);
  });

  it('stop() during the wait between attempts resolves at once and never reruns', async () => {
    const t = new ManualClock(0);
    let calls = 0;
    const loop = restartLoop(
      async () => {
        calls++;
        throw new Error('boom');
      },
      { name: 'x', backoff: new Backoff({ initialMs: 5000, jitter: 0, clock: t }), clock: t },
    );
    await step(t, 0);
    await loop.stop();
    await step(t, 60_000);
    expect(calls).toBe(1);
  });
});

describe('periodic', () => {
  it('runs on the interval, backs off after failures, and a trigger during a run asks for another one', async () => {
    const t = new ManualClock(0);
    const at: number[] = [];
    let fail = 0;
    let gate: (() => void) | undefined;
    const p = periodic(
      async () => {
        at.push(t.now());
        if (gate === undefined && fail > 0) {
          fail--;
          throw new Error('EIO');
        }
        if (gate) await new Promise<void>((r) => (gate = r));
      },
      { name: 'poll', intervalMs: 1000, backoff: new Backoff({ initialMs: 250, maxMs: 4000, jitter: 0, clock: t }), clock: t },
    );
    await p.runNow();
    await step(t, 2000);
    expect(at).toEqual([0, 1000, 2000]);
    fail = 3;
    await step(t, 1000); // fails at 3000 → retry after 250, 500, 1000
    await step(t, 250 + 500 + 1000);
    expect(at).toEqual([0, 1000, 2000, 3000, 3250, 3750, 4750]);
    await step(t, 1000); // back on the interval after a success
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
    await step(t, 0);
    expect(at.slice(-2)).toEqual([5750, 5750]);
    await p.stop();
    await step(t, 10_000);
    expect(at.length).toBe(10);
  });
});

describe('Poller', () => {
  it('polls once before start() resolves, on the interval after, and tells a poll under way at stop() that the source stopped', async () => {
    const t = new ManualClock(0);
    const emitted: number[] = [];
    let hold: Promise<void> | undefined;
    const poller: Poller = new Poller(
      async () => {
        const at = t.now();
        await hold;
        // What a source does with what it read: nothing once it has stopped.
        if (!poller.stopped) emitted.push(at);
      },
      { name: 'poll', intervalMs: 1000, clock: t },
    );
    await poller.pollNow(); // before start: one direct poll
    expect(emitted).toEqual([0]);
    await poller.start();
    expect(emitted).toEqual([0, 0]);
    await step(t, 2000);
    expect(emitted).toEqual([0, 0, 1000, 2000]);
    let release: (() => void) | undefined;
    hold = new Promise<void>((r) => (release = r));
    const polling = poller.pollNow();
    await flush();
    const stopping = poller.stop();
    expect(poller.stopped).toBe(true);
    release?.();
    await Promise.all([polling, stopping]);
    await step(t, 10_000);
    expect(emitted).toEqual([0, 0, 1000, 2000]);
    hold = undefined;
    await poller.start();
    expect(poller.stopped).toBe(false);
    expect(emitted).toEqual([0, 0, 1000, 2000, 12_000]);
    await poller.stop();
  });
});

describe('SourceHealth', () => {
  const log = (text: string): Signal => ({ type: 'log', line: { source: 'kmsg', at: '2025-03-14T08:00:00.000Z', text } });

  it('means the same for every source: healthy, stale, failing, disabled, with drops, gaps and restarts counted', async () => {
    const clock = new ManualClock(Date.parse('2025-03-14T08:00:00Z'));
    const h = new SourceHealth({ name: 'kmsg', clock, staleAfterMs: 30_000 });
    const delivered: Signal[][] = [];
    // Not started: no reader has shown life yet.
    expect(h.status()).toMatchObject({ state: 'stale', signals: 0, lastSignalAt: null, lastError: null });
    h.main.ok();
    h.emit((b) => delivered.push(b), [log('a'), log('b'), { type: 'checkpoint', source: 'kmsg', key: 'position', value: '2' }]);
    h.emit((b) => delivered.push(b), [{ type: 'gap', at: '2025-03-14T08:00:00.000Z', source: 'kmsg', detail: 'records 3..9 overwritten' }]);
    h.drop(4);
    expect(delivered).toHaveLength(2);
    expect(h.status()).toEqual({
      name: 'kmsg',
      state: 'healthy',
      signals: 3,
      lastSignalAt: '2025-03-14T08:00:00.000Z',
      lastError: null,
      detail: { drops: 4, gaps: 1, restarts: 0 },
    });
    clock.advance(30_001);
    expect(h.status()).toMatchObject({ state: 'stale', lastError: expect.stringContaining('no sign of life since 2025-03-14T08:00:00.000Z') });
    h.main.fail(new Error('cannot reach the kubelet (ECONNREFUSED)'), { transient: true });
    expect(h.status()).toMatchObject({ state: 'stale', lastError: 'cannot reach the kubelet (ECONNREFUSED)' });
    h.main.fail(new Error('EIO: i/o error, read'));
    expect(h.status()).toMatchObject({ state: 'failing', lastError: 'EIO: i/o error, read' });
    h.main.restarted();
    h.main.ok();
    expect(h.status()).toMatchObject({ state: 'healthy', lastError: null, detail: { restarts: 1 } });
    h.main.disable('/dev/kmsg not found');
    expect(h.status()).toMatchObject({ state: 'disabled', lastError: '/dev/kmsg not found' });
  });

  it('a stream reader is healthy while up however quiet, and the source shows its worst reader', () => {
    const clock = new ManualClock();
    const h = new SourceHealth({ name: 'journald', clock, staleAfterMs: 10_000 });
    h.reader('journal').up();
    h.reader('embedded').disable('no embedded component log file present');
    clock.advance(3_600_000);
    expect(h.status().state).toBe('healthy');
    h.reader('journal').down();
    clock.advance(10_001);
    expect(h.status().state).toBe('stale');
    h.reader('journal').up();
    h.reader('embedded').enable();
    h.reader('embedded').fail('EACCES: permission denied');
    expect(h.status()).toMatchObject({ state: 'failing', lastError: 'EACCES: permission denied' });
    h.removeReader('embedded');
    expect(h.status().state).toBe('healthy');
  });

  it('restartLoop and periodic report failures, recoveries and restarts to their reader', async () => {
    const clock = new ManualClock(0);
    const h = new SourceHealth({ name: 'host', clock, staleAfterMs: 60_000 });
    let fail = 2;
    const p = periodic(
      async () => {
        if (fail-- > 0) throw new Error('EIO');
      },
      { name: 'sample', intervalMs: 1000, clock, reader: h.main, backoff: new Backoff({ initialMs: 100, jitter: 0, clock }) },
    );
    await p.runNow();
    expect(h.status()).toMatchObject({ state: 'failing', lastError: 'EIO', detail: { restarts: 0 } });
    await step(clock, 100 + 200);
    expect(h.status()).toMatchObject({ state: 'healthy', lastError: null, detail: { restarts: 2 } });
    await p.stop();

    const j = new SourceHealth({ name: 'journald', clock });
    const loop = restartLoop(
      async () => {
        throw new Error('journalctl exited with code 1');
      },
      { name: 'journalctl', clock, reader: j.main, backoff: new Backoff({ initialMs: 1000, jitter: 0, clock }) },
    );
    await step(clock, 1000 + 2000);
    expect(j.status()).toMatchObject({ state: 'failing', lastError: 'journalctl exited with code 1', detail: { restarts: 2 } });
    await loop.stop();
  });
});

describe('periodic while idle', () => {
  /** A task run every second on a manual clock (no jitter): records when it ran and resolves what `outcome()` says. */
  const scripted = (t: ManualClock, idleMaxMs: number, outcome: () => RunOutcome) => {
    const at: number[] = [];
    const p = periodic(
      async () => {
        at.push(t.now());
        return outcome();
      },
      { name: 'poll', intervalMs: 1000, idleMaxMs, backoff: new Backoff({ initialMs: 1000, jitter: 0, clock: t }), clock: t },
    );
    return { p, at };
  };

  it('doubles the interval up to idleMaxMs while runs find nothing, and is back at the interval after a find or a trigger', async () => {
    const t = new ManualClock(0);
    let found = false;
    const { p, at } = scripted(t, 5000, () => found);
    await p.runNow(); // at 0, nothing: next in 2 s
    await step(t, 20_000);
    expect(at).toEqual([0, 2000, 6000, 11_000, 16_000]);
    // A watcher trigger wakes it at once; the run finds lines, so the 1 s pace is back.
    found = true;
    p.trigger(100);
    await step(t, 2100);
    expect(at.slice(5)).toEqual([t.now() - 2000, t.now() - 1000, t.now()]);
    await p.stop();
  });

  it('catches up (runs at once) when the next run is due within the window or the task idles, never for an absent source', async () => {
    const t = new ManualClock(0);
    let outcome: RunOutcome = true;
    const { p, at } = scripted(t, 30_000, () => outcome);
    await p.runNow();
    expect(at.length).toBe(1);
    // Busy: next run in 1 s. Not due within 500 ms; due within 1.5 s.
    await p.catchUp(500);
    expect(at.length).toBe(1);
    await p.catchUp(1500);
    expect(at.length).toBe(2);
    // Idle (found nothing): caught up whatever the window, so the caller's wakeup reads it.
    outcome = false;
    await p.catchUp(1500);
    expect(at.length).toBe(3);
    await p.catchUp(1500);
    expect(at.length).toBe(4);
    await p.catchUp(0);
    expect(at.length).toBe(5);
    // Absent: only its own (long) schedule or a due time inside the window brings a run.
    outcome = ABSENT;
    await p.catchUp(0);
    expect(at.length).toBe(6);
    await p.catchUp(10_000);
    expect(at.length).toBe(6);
    await p.stop();
    await p.catchUp(Number.POSITIVE_INFINITY);
    expect(at.length).toBe(6);
  });

  it('looks for a source that is not there at most once a minute, and is back at the interval once it is', async () => {
    const t = new ManualClock(0);
    let outcome: RunOutcome = ABSENT;
    const { p, at } = scripted(t, 5000, () => outcome);
    await p.runNow();
    await step(t, 300_000);
    // 2, 4, 8, 16, 32 s, then every 60 s (not the 5 s of an idle source that is there).
    expect(at.slice(0, 9)).toEqual([0, 2000, 6000, 14_000, 30_000, 62_000, 122_000, 182_000, 242_000]);
    expect(ABSENT_POLL_MAX_MS).toBe(60_000);
    // The file appears and has lines: the next run reads them and the 1 s pace is back.
    outcome = true;
    const n = at.length;
    await step(t, 62_000);
    expect(at.length - n).toBeGreaterThanOrEqual(2);
    expect(at.at(-1)! - at.at(-2)!).toBe(1000);
    // Idle but there: the idle backoff (up to 5 s), not the absent one.
    outcome = false;
    const m = at.length;
    await step(t, 30_000);
    const gaps = at.slice(m).map((x, i, a) => (i === 0 ? 0 : x - a[i - 1]!)).slice(1);
    expect(Math.max(...gaps)).toBe(5000);
    await p.stop();
  });
});
