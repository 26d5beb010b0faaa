/**
 * A scrape of the running daemon passes `promtool check metrics` (Prometheus'
 * own linter, Debian package prometheus) and carries the metrics an operator
 * alerts on.
 */
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { EventLoopWindow } from '../daemon/api/metrics.js';
import { type DaemonProcess, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';

let running: DaemonProcess | undefined;
afterEach(async () => {
  await running?.kill('SIGKILL');
  running = undefined;
});

describe('/metrics', () => {
  it('passes promtool check metrics and exports findings, sources and database size', async () => {
    const promtool = spawnSync('promtool', ['--version']);
    expect(promtool.error, 'promtool is missing: apt-get install prometheus (.ci/run does)').toBeUndefined();
    running = await startDaemon({
      env: { NODESAGE_DATA_DIR: tempDir(), NODESAGE_DISK_WARN_PERCENT: '1', NODESAGE_DETECT_INTERVAL_SECONDS: '0.2' },
    });
    const body = await waitFor(async () => {
      const text = await (await fetch(`${running!.url}/metrics`)).text();
      return text.includes('nodesage_findings_open{category="DiskFull"') && text.includes('nodesage_diagnoses_total{') ? text : null;
    });
    const check = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
    for (const name of [
      'nodesage_findings_opened_total',
      'nodesage_source_healthy',
      'nodesage_source_state{source="host",state="healthy"} 1',
      'nodesage_source_signals_total{source="host"}',
      'nodesage_source_drops_total{source="host"} 0',
      'nodesage_source_gaps_total{source="host"} 0',
      'nodesage_source_restarts_total{source="host"} 0',
      'nodesage_detection_cycle_duration_seconds_bucket',
      'nodesage_database_size_bytes',
      'nodesage_diagnosis_queue_depth',
      'nodesage_diagnoses_total{diagnoser="rule-hint",outcome="ok"}',
      'nodesage_diagnosis_duration_seconds_bucket',
      'nodesage_log_lines_read_total',
      'process_resident_memory_bytes',
      'nodesage_event_loop_delay_p50_seconds',
      'nodesage_event_loop_delay_p99_seconds',
      'nodesage_event_loop_delay_max_seconds',
    ]) {
      expect(body, name).toContain(name);
    }
    expect(body).toMatch(/nodesage_source_healthy\{source="host",state="healthy"\} 1/);
    // A delay is a small non-negative number of seconds, p50 ≤ p99 ≤ max.
    const [p50, p99, max] = ['p50', 'p99', 'max'].map((k) => Number(new RegExp(`^nodesage_event_loop_delay_${k}_seconds (\\S+)$`, 'm').exec(body)?.[1]));
    expect(p50).toBeGreaterThanOrEqual(0);
    expect(p99).toBeGreaterThanOrEqual(p50!);
    expect(max).toBeGreaterThanOrEqual(p99!);
    expect(max).toBeLessThan(60);
  });
});

describe('event-loop delay', () => {
  const until = async (ok: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error('timed out waiting');
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const spin = (ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end);
  };

  it('a driven window ends its slices on the caller’s ticks once they are nearly over, with no timer of its own', async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const w = new EventLoopWindow({ sliceMs: 1000, slices: 2, driven: true });
    try {
      await sleep(150);
      spin(200);
      await sleep(150);
      // Too early (under 90% of a slice): the slice goes on, the stall is still in it.
      w.advance();
      const stalled = w.read().max;
      expect(stalled).toBeGreaterThan(0.08);
      // Two slices later (two are kept, the current one included) the stall has left the window.
      await sleep(450);
      w.advance();
      await sleep(950);
      w.advance();
      expect(w.read().max).toBeLessThan(stalled);
      // That slice was idle: the monitor stopped.
      expect(w.resolutionMs).toBe(1000);
      // A busy slice that nobody ends stays open (no timer of its own); the next tick ends it and the monitor is back.
      spin(300);
      await sleep(1500);
      expect(w.resolutionMs).toBe(1000);
      w.advance();
      expect(w.resolutionMs).toBe(100);
    } finally {
      w.close();
    }
  });

  it('stops the monitor while the loop is idle, brings it back once it works, and reports a stall either way', async () => {
    const w = new EventLoopWindow({ sliceMs: 300 });
    try {
      expect(w.resolutionMs).toBe(100);
      // Idle: after a slice with the loop busy under 1% of the time, only the slice's own timer is left.
      await until(() => w.resolutionMs === 300, 5000);
      // A stall longer than the slice makes its timer late by at least the difference.
      spin(450);
      // The overdue slice timer runs before this one.
      await new Promise((r) => setTimeout(r, 20));
      expect(w.read().max).toBeGreaterThan(0.14);
      expect(w.read().max).toBeLessThan(5);
      // That slice was busy, so the 100 ms monitor is back.
      await until(() => w.resolutionMs === 100, 2000);
      // A 250 ms stall delays the monitor's next tick by about its length (a new monitor's first tick only starts its clock).
      const fresh = new EventLoopWindow({ sliceMs: 5000 });
      try {
        await new Promise((r) => setTimeout(r, 150));
        spin(250);
        await new Promise((r) => setTimeout(r, 150));
        expect(fresh.resolutionMs).toBe(100);
        expect(fresh.read().max).toBeGreaterThan(0.15);
        expect(fresh.read().max).toBeLessThan(5);
      } finally {
        fresh.close();
      }
    } finally {
      w.close();
    }
  });
});
