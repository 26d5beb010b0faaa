/**
 * The real Daemon in-process with scripted sources: a finding reaches the API,
 * and /readyz, /v1/status and /metrics follow the sources through healthy →
 * stale → failing → healthy, with the same words and counters for every source.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../daemon/config.js';
import { ManualClock } from '../daemon/core/runtime/clock.js';
import type { SourceStatus } from '../daemon/core/types.js';
import { Daemon, type DaemonParts } from '../daemon/daemon.js';
import { createDetectors } from '../daemon/detectors/index.js';
import { Store } from '../daemon/store/store.js';
import { tempDir } from './helpers/daemon-process.js';
import { FakeSource } from './helpers/fake-source.js';

const silent = pino({ level: 'silent' });
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
});

function daemonWith(sources: FakeSource[], opts: { intervalSeconds?: number; onCycle?: DaemonParts['onCycle'] } = {}): Daemon {
  const dataDir = tempDir();
  const config = loadConfig({
    env: {
      NODESAGE_DATA_DIR: dataDir,
      NODESAGE_LISTEN: '127.0.0.1:0',
      NODESAGE_DETECT_INTERVAL_SECONDS: String(opts.intervalSeconds ?? 3600),
      NODESAGE_NODE_NAME: 'edge-node-7',
    },
    serviceAccountDir: join(dataDir, 'no-sa'),
  });
  const store = Store.open({ dir: config.dataDir, logger: silent, maxAgeDays: 30, maxSizeMB: 64 });
  const d = new Daemon({ config, logger: silent, store, detectors: createDetectors({}), collectors: sources, ...(opts.onCycle ? { onCycle: opts.onCycle } : {}) });
  daemons.push(d);
  return d;
}

/** One series value of a Prometheus text exposition, or undefined. */
function series(body: string, name: string, labels: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('Daemon with scripted sources', () => {
  it('has the sources catch up right before each cycle, so the cycle sees what they read in the same wakeup', async () => {
    const clock = new ManualClock(Date.now());
    const asked: number[] = [];
    const kmsg: FakeSource = new FakeSource('kmsg', {
      clock,
      catchUp: async (withinMs) => {
        asked.push(withinMs);
        // A read that takes a while (the file system answers later), then hands on what it found.
        await new Promise((r) => setTimeout(r, 50));
        if (asked.length === 1) kmsg.lines(['Buffer I/O error on dev sdb1, logical block 8192, lost async page write']);
      },
    });
    const cycles: string[][] = [];
    const d = daemonWith([kmsg], {
      intervalSeconds: 0.3,
      onCycle: (c) => {
        if (asked.length > 0) cycles.push(c.opened.map((f) => f.category));
      },
    });
    await d.start();
    const until = Date.now() + 10_000;
    while (cycles.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    // The first cycle after a catch-up already has the line it read: the daemon waited for the read.
    expect(cycles[0]).toEqual(['DiskFailure']);
    // Asked for what is due before the next cycle.
    expect(asked[0]).toBe(300);
  });

  it('serves the finding, and readiness, status and metrics follow the sources through every state', async () => {
    const clock = new ManualClock(Date.now());
    const kmsg = new FakeSource('kmsg', { clock, staleAfterMs: 30_000 });
    const journald = new FakeSource('journald', { clock, disabled: 'journalctl not found, and no /var/log/syslog or /var/log/messages' });
    const d = daemonWith([kmsg, journald]);
    await d.start();
    const get = async (url: string) => {
      const r = await d.api.inject({ method: 'GET', url });
      return { status: r.statusCode, body: r.body, json: () => r.json() as unknown };
    };
    const sources = async () => ((await get('/v1/status')).json() as { sources: SourceStatus[] }).sources;
    const kmsgStatus = async () => (await sources()).find((s) => s.name === 'kmsg')!;

    // healthy: the kernel reports a failing disk; the finding is served with its evidence.
    kmsg.lines(['Buffer I/O error on dev sdb1, logical block 8192, lost async page write', 'Buffer I/O error on dev sdb1, logical block 8200, lost async page write']);
    kmsg.drop(3);
    kmsg.gap('kmsg records 41..57 (17) overwritten in the kernel ring buffer before they were read (EPIPE)');
    d.cycle();
    const page = (await get('/v1/findings?status=open')).json() as { items: { category: string; subject: { kind: string; name: string }; evidence: { source: string; text: string }[] }[] };
    expect(page.items).toHaveLength(1);
    expect(page.items[0]).toMatchObject({ category: 'DiskFailure', subject: { kind: 'Node', name: 'edge-node-7' } });
    expect(page.items[0]!.evidence[0]).toMatchObject({ source: 'kmsg', text: expect.stringContaining('Buffer I/O error on dev sdb1') });
    expect((await get('/readyz')).status).toBe(200);
    expect(await kmsgStatus()).toMatchObject({ state: 'healthy', signals: 3, lastError: null, detail: { drops: 3, gaps: 1, restarts: 0 } });
    expect((await sources()).find((s) => s.name === 'journald')).toMatchObject({ state: 'disabled', lastError: expect.stringContaining('journalctl not found') });
    let metrics = (await get('/metrics')).body;
    expect(series(metrics, 'nodesage_source_signals_total', 'source="kmsg"')).toBe(3);
    expect(series(metrics, 'nodesage_source_drops_total', 'source="kmsg"')).toBe(3);
    expect(series(metrics, 'nodesage_source_gaps_total', 'source="kmsg"')).toBe(1);
    expect(series(metrics, 'nodesage_source_restarts_total', 'source="kmsg"')).toBe(0);
    expect(series(metrics, 'nodesage_source_state', 'source="kmsg",state="healthy"')).toBe(1);
    expect(series(metrics, 'nodesage_source_state', 'source="journald",state="disabled"')).toBe(1);
    expect(series(metrics, 'nodesage_source_healthy', 'source="kmsg",state="healthy"')).toBe(1);
    // One counter each for what a source handed on and dropped: the ones every source reports the same way.
    expect(metrics).not.toContain('nodesage_log_lines_dropped_total');
    expect(metrics).not.toMatch(/^nodesage_signals_total/m);

    // stale: no sign of life for longer than staleAfterMs; nothing else is healthy, so not ready.
    clock.advance(30_001);
    expect(await kmsgStatus()).toMatchObject({ state: 'stale', lastError: expect.stringContaining('no sign of life since') });
    const notReady = await get('/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.json()).toEqual({ error: { code: 'NOT_READY', message: expect.stringContaining('no source is healthy') } });
    metrics = (await get('/metrics')).body;
    expect(series(metrics, 'nodesage_source_state', 'source="kmsg",state="stale"')).toBe(1);
    expect(series(metrics, 'nodesage_source_state', 'source="kmsg",state="healthy"')).toBe(0);

    // failing: an error that waiting will not fix.
    kmsg.fail('EIO: i/o error, read');
    expect(await kmsgStatus()).toMatchObject({ state: 'failing', lastError: 'EIO: i/o error, read' });
    expect((await get('/readyz')).status).toBe(503);
    expect(series((await get('/metrics')).body, 'nodesage_source_state', 'source="kmsg",state="failing"')).toBe(1);

    // healthy again after a restart; the counters kept counting.
    kmsg.recover();
    kmsg.lines(['Buffer I/O error on dev sdb1, logical block 8300, lost async page write']);
    d.cycle();
    expect(await kmsgStatus()).toMatchObject({ state: 'healthy', signals: 4, lastError: null, detail: { drops: 3, gaps: 1, restarts: 1 } });
    expect((await get('/readyz')).status).toBe(200);
    metrics = (await get('/metrics')).body;
    expect(series(metrics, 'nodesage_source_signals_total', 'source="kmsg"')).toBe(4);
    expect(series(metrics, 'nodesage_source_restarts_total', 'source="kmsg"')).toBe(1);
    expect(series(metrics, 'nodesage_source_state', 'source="kmsg",state="healthy"')).toBe(1);
    const finding = (await get('/v1/findings?status=open')).json() as { items: { count: number }[] };
    expect(finding.items).toHaveLength(1);
    expect(finding.items[0]!.count).toBeGreaterThanOrEqual(2);
  });
});
