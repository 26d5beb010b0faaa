/**
 * The exposition writer behind /metrics: label values with quotes, backslashes
 * and newlines, histograms with labels, and counters that refuse to go down,
 * checked by Prometheus' own linter (promtool, Debian package prometheus).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Counter, Gauge, Histogram, Registry } from '../daemon/api/prometheus.js';

describe('Prometheus text writer', () => {
  it('writes escaped labels, cumulative buckets and collected gauges that promtool accepts', async () => {
    const registry = new Registry();
    const registers = [registry];
    const c = new Counter({ name: 'demo_lines_total', help: 'Lines.\nSecond line with a \\ backslash.', labelNames: ['source'], registers });
    c.inc({ source: 'pod "a"\\b\nc' });
    c.inc({ source: 'kmsg' }, 2);
    expect(() => c.inc({ source: 'kmsg' }, -1)).toThrow(/cannot decrease/);
    const h = new Histogram({ name: 'demo_duration_seconds', help: 'Durations.', labelNames: ['kind'], buckets: [0.1, 1], registers });
    h.observe({ kind: 'x' }, 0.05);
    h.observe({ kind: 'x' }, 0.5);
    h.observe({ kind: 'x' }, 7);
    let depth = 3;
    new Gauge({
      name: 'demo_depth',
      help: 'Depth.',
      registers,
      collect() {
        this.set(depth);
      },
    });
    const body = await registry.metrics();
    expect(body).toContain('demo_lines_total{source="pod \\"a\\"\\\\b\\nc"} 1');
    expect(body).toContain('demo_lines_total{source="kmsg"} 2');
    expect(body).toContain('# HELP demo_lines_total Lines.\\nSecond line with a \\\\ backslash.');
    expect(body).toContain('demo_duration_seconds_bucket{kind="x",le="0.1"} 1\ndemo_duration_seconds_bucket{kind="x",le="1"} 2\ndemo_duration_seconds_bucket{kind="x",le="+Inf"} 3');
    expect(body).toContain('demo_duration_seconds_sum{kind="x"} 7.55\ndemo_duration_seconds_count{kind="x"} 3');
    expect(body).toContain('demo_depth 3');
    depth = 5;
    expect(await registry.metrics()).toContain('demo_depth 5');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    expect(check.error, 'promtool is missing: apt-get install prometheus (.ci/run does)').toBeUndefined();
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
    expect(() => new Gauge({ name: 'demo_depth', help: 'again', registers })).toThrow(/already registered/);
  });

  it('samples a rate-limited collect at most once per interval, while written series show at once', async () => {
    const registry = new Registry();
    const registers = [registry];
    let reads = 0;
    new Gauge({
      name: 'demo_sampled',
      help: 'Sampled.',
      registers,
      collectEveryMs: 60_000,
      collect() {
        this.set(++reads);
      },
    });
    const c = new Counter({ name: 'demo_events_total', help: 'Events.', registers });
    const first = await registry.metrics();
    expect(first).toContain('demo_sampled 1');
    expect(first).toContain('demo_events_total 0');
    c.inc();
    const second = await registry.metrics();
    expect(second).toContain('demo_sampled 1');
    expect(second).toContain('demo_events_total 1');
    expect(reads).toBe(1);
  });
});
