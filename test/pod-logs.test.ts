/**
 * PodLogCollector and CriReader: what a user sees from container logs — the
 * lines with their container and stream, joined partial lines, cut lines,
 * garbage skipped and counted, the first-start tail, rate limits, forgotten
 * containers, health — over real files in a temp host root.
 */
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../daemon/core/runtime/clock.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PodLogCollector, PodLogCollectorOptions } from '../daemon/collectors/pod-logs.js';
import { CriReader } from '../daemon/collectors/parse.js';
import type { LogLine } from '../daemon/core/types.js';
import { CommitLog, ContainerLogDir, type HostRoot, criLine, lineId } from './helpers/host-root.js';
import { PodLogHarness } from './helpers/pod-log-harness.js';

let harness: PodLogHarness;
let host: HostRoot;

beforeEach(() => {
  harness = new PodLogHarness();
  host = harness.host;
});

afterEach(async () => {
  await harness.cleanup();
});

/** Starts a collector driven by pollNow() only (no timer, no watch), so each step is deterministic. */
function startCollector(log: CommitLog, opts: PodLogCollectorOptions = {}): Promise<PodLogCollector> {
  return harness.start(log, opts);
}

function stopCollector(c: PodLogCollector): Promise<void> {
  return harness.stop(c);
}

/** A store that has seen the node before (so new containers are read from their start). */
function knownNode(): CommitLog {
  const log = new CommitLog();
  log.store.commit([{ type: 'checkpoint', source: 'pod-logs', key: 'kube-system_coredns-5d78c9869d-abcde_11111111/coredns', value: '{"v":1,"files":[]}' }]);
  return log;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('pod-logs lines', () => {
  it('CRI lines become LogLines with container, stream and ISO time; partial lines are joined per stream', async () => {
    const log = knownNode();
    const dir = new ContainerLogDir(host.root, { namespace: 'payments', pod: 'api-7c9d8f6b5-q8z2x', uid: '3f2a1b0c-9d8e-4f7a-b6c5-d4e3f2a1b0c9', container: 'api' });
    dir.append(
      criLine(new Date('2025-01-15T08:00:00.001Z'), 'stdout', 'P', '{"level":"error","msg":"upstream ', 1) +
        criLine(new Date('2025-01-15T08:00:00.002Z'), 'stderr', 'F', 'panic: runtime error: invalid memory address or nil pointer dereference', 2) +
        criLine(new Date('2025-01-15T08:00:00.003Z'), 'stdout', 'P', 'connect error: dial tcp 10.0.3.17:5432: ', 3) +
        criLine(new Date('2025-01-15T08:00:00.004Z'), 'stdout', 'F', 'connect: connection refused"}', 4) +
        '2025-01-15T10:00:00.5+02:00 stdout F time with an offset and one fraction digit\n' +
        '2025-01-15T08:00:01Z stderr F no fraction\n' +
        '2025-01-15T08:00:02.000000000Z stdout F\n',
    );
    const c = await startCollector(log);
    const ref = { namespace: 'payments', pod: 'api-7c9d8f6b5-q8z2x', uid: '3f2a1b0c-9d8e-4f7a-b6c5-d4e3f2a1b0c9', container: 'api', restart: 0 };
    expect(log.lines).toEqual<LogLine[]>([
      { source: 'podLog', at: '2025-01-15T08:00:00.002Z', text: 'panic: runtime error: invalid memory address or nil pointer dereference', stream: 'stderr', container: ref },
      { source: 'podLog', at: '2025-01-15T08:00:00.001Z', text: '{"level":"error","msg":"upstream connect error: dial tcp 10.0.3.17:5432: connect: connection refused"}', stream: 'stdout', container: ref },
      { source: 'podLog', at: '2025-01-15T08:00:00.500Z', text: 'time with an offset and one fraction digit', stream: 'stdout', container: ref },
      { source: 'podLog', at: '2025-01-15T08:00:01.000Z', text: 'no fraction', stream: 'stderr', container: ref },
      { source: 'podLog', at: '2025-01-15T08:00:02.000Z', text: '', stream: 'stdout', container: ref },
    ]);
    expect(c.status()).toMatchObject({ name: 'pod-logs', state: 'healthy', signals: 5, lastError: null });
  });

  it('a message over maxLineBytes is cut on a character boundary and marked truncated, joined or not', async () => {
    const log = knownNode();
    const dir = new ContainerLogDir(host.root, { namespace: 'ml', pod: 'trainer-0', uid: 'aa11', container: 'trainer' });
    const t = new Date('2025-01-15T08:00:00Z');
    const long = 'é'.repeat(3000); // 6000 bytes, two bytes per character
    dir.append(
      criLine(t, 'stdout', 'F', `A${long}`, 1) +
        criLine(t, 'stdout', 'P', 'B'.repeat(150), 2) +
        criLine(t, 'stdout', 'P', 'C'.repeat(150), 3) +
        criLine(t, 'stdout', 'F', 'D'.repeat(150), 4) +
        // A physical line without a newline longer than any read: cut, and the rest skipped.
        criLine(t, 'stderr', 'F', `E${'x'.repeat(20_000)}`, 5) +
        criLine(t, 'stdout', 'F', 'after the long ones', 6),
    );
    const c = await startCollector(log, { maxLineBytes: 256, readChunkBytes: 1024 });
    const texts = log.lines.map((l) => l.text);
    expect(texts.length).toBe(4);
    expect(texts[0]).toBe(`A${'é'.repeat(127)}`); // 1 + 254 bytes: a 2-byte character does not fit in the last byte
    expect(Buffer.byteLength(texts[1]!)).toBe(256);
    expect(texts[1]).toBe('B'.repeat(150) + 'C'.repeat(106));
    expect(texts[2]).toBe(`E${'x'.repeat(255)}`);
    expect(texts[3]).toBe('after the long ones');
    expect(log.lines.map((l) => l.truncated ?? false)).toEqual([true, true, true, false]);
    expect(c.status().detail?.truncatedLines).toBe(3);
  });

  it('binary garbage, invalid UTF-8 and foreign formats are skipped and counted; the reader goes on', async () => {
    const log = knownNode();
    const dir = new ContainerLogDir(host.root, { namespace: 'default', pod: 'legacy-6b7c', uid: 'bb22', container: 'app' });
    const t = new Date('2025-01-15T08:00:00Z');
    dir.append(criLine(t, 'stdout', 'F', 'before id=app-1', 1));
    dir.append(Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a])); // binary line
    dir.append('{"log":"docker json-file line\\n","stream":"stdout","time":"2025-01-15T08:00:00Z"}\n');
    dir.append('2025-13-45T99:99:99.000Z stdout F impossible time\n');
    dir.append(Buffer.concat([Buffer.from('2025-01-15T08:00:00.100Z stdout F bad bytes \xc3\x28 inside id=app-2', 'latin1'), Buffer.from('\n')]));
    dir.append(criLine(t, 'stderr', 'F', 'after id=app-3', 2));
    const c = await startCollector(log);
    expect(log.lines.map((l) => lineId(l.text))).toEqual(['app-1', 'app-2', 'app-3']);
    expect(log.lines[1]?.text).toBe('bad bytes \ufffd( inside id=app-2');
    expect(c.status().detail?.unparseableLines).toBe(3);
  });
});

describe('pod-logs start positions', () => {
  it('first start with no checkpoint at all: only the last initialTailBytes of live files, no history replayed', async () => {
    const log = new CommitLog();
    const api = new ContainerLogDir(host.root, { namespace: 'shop', pod: 'api-1', uid: 'u1', container: 'api' });
    api.write(500); // ~55 KB of history
    const rotated = api.rotate();
    api.write(2000);
    api.restartContainer(); // 1.log is live now; 0.log is an old restart
    api.write(300);
    const c = await startCollector(log, { initialTailBytes: 4096 });
    const ids = log.lines.map((l) => lineId(l.text)!);
    const live = api.idsIn('1.log');
    expect(ids.length).toBeGreaterThan(20);
    expect(ids.length).toBeLessThan(45);
    // A contiguous tail of the live file, starting on a line boundary (no cut first line).
    expect(ids).toEqual(live.slice(live.length - ids.length));
    expect(log.lines.every((l) => l.text.startsWith('level=info'))).toBe(true);
    expect(api.idsIn(rotated).some((id) => log.delivered.has(id))).toBe(false);
    // From now on everything is read, including a container that appears later, from its start.
    const web = new ContainerLogDir(host.root, { namespace: 'shop', pod: 'web-1', uid: 'u2', container: 'web' });
    web.write(700);
    const more = api.write(10);
    await c.pollNow();
    expect(web.written.every((w) => log.delivered.get(w.id) === 1)).toBe(true);
    expect(more.every((id) => log.delivered.get(id) === 1)).toBe(true);
    expect(log.duplicates()).toEqual([]);
  });

  it('with checkpoints, a container that appeared while the daemon was down is read from its beginning', async () => {
    const log = knownNode();
    const db = new ContainerLogDir(host.root, { namespace: 'data', pod: 'postgres-0', uid: 'u3', container: 'postgres' });
    db.write(400);
    const r = db.rotate();
    db.write(100);
    db.gzip(r);
    await startCollector(log);
    expect(log.order).toEqual(db.written.map((w) => w.id));
  });
});

describe('pod-logs limits and lifecycle', () => {
  it('per-container rate limit: lines above the bucket are dropped, counted, and not re-read after a restart', async () => {
    const log = knownNode();
    const clock = new ManualClock(Date.parse('2025-01-15T08:00:00Z'));
    const noisy = new ContainerLogDir(host.root, { namespace: 'ci', pod: 'spammer', uid: 'u4', container: 'loop' });
    const quiet = new ContainerLogDir(host.root, { namespace: 'ci', pod: 'quiet', uid: 'u5', container: 'app' });
    noisy.write(100);
    quiet.write(5);
    let c = await startCollector(log, { rateLimit: { linesPerSecond: 10, burst: 20 }, clock });
    expect(log.lines.filter((l) => l.container?.pod === 'spammer').length).toBe(20);
    expect(log.lines.filter((l) => l.container?.pod === 'quiet').length).toBe(5);
    expect(c.status().detail?.droppedLines).toBe(80);
    clock.advance(1000);
    noisy.write(100);
    await c.pollNow();
    expect(log.lines.filter((l) => l.container?.pod === 'spammer').length).toBe(30);
    expect(c.status().detail?.droppedLines).toBe(170);
    await stopCollector(c);
    c = await startCollector(log, { rateLimit: { linesPerSecond: 10, burst: 20 }, clock });
    expect(log.lines.length).toBe(35);
    expect(log.duplicates()).toEqual([]);
  });

  it('a container whose directory is deleted is finished and forgotten: its checkpoint key is removed', async () => {
    const log = knownNode();
    const job = new ContainerLogDir(host.root, { namespace: 'batch', pod: 'report-28937', uid: 'u6', container: 'report' });
    job.write(20);
    const c = await startCollector(log);
    const key = 'batch_report-28937_u6/report';
    expect(log.store.get('pod-logs', key)).toBeDefined();
    const last = job.write(5); // written just before the kubelet removes the pod
    rmSync(join(host.root, 'var/log/pods/batch_report-28937_u6'), { recursive: true });
    await c.pollNow();
    expect(last.every((id) => log.delivered.get(id) === 1)).toBe(true);
    expect(log.store.get('pod-logs', key)).toBeUndefined();
    expect(log.gaps).toEqual([]);
    expect(c.status().detail?.containers).toBe(0);
  });

  it('a log file that cannot be read shows as lastError until the next pass reads everything again', async () => {
    const log = knownNode();
    const dir = new ContainerLogDir(host.root, { namespace: 'web', pod: 'front-1', uid: 'u9', container: 'nginx' });
    dir.write(3);
    // A symlink to itself: stat fails with ELOOP, which is not a file that merely vanished.
    symlinkSync('1.log', join(dir.dir, '1.log'));
    const c = await startCollector(log);
    expect(c.status()).toMatchObject({ state: 'healthy', lastError: expect.stringMatching(/web_front-1_u9\/nginx\/1\.log: .*ELOOP|too many/i) });
    rmSync(join(dir.dir, '1.log'));
    await c.pollNow();
    expect(c.status()).toMatchObject({ state: 'healthy', lastError: null });
  });

  it('a pod deleted while the daemon was down: a gap for its unfinished file, then its key is removed', async () => {
    const log = knownNode();
    const job = new ContainerLogDir(host.root, { namespace: 'batch', pod: 'report-1', uid: 'u7', container: 'report' });
    job.write(20);
    const c = await startCollector(log);
    await stopCollector(c);
    rmSync(join(host.root, 'var/log/pods/batch_report-1_u7'), { recursive: true });
    await startCollector(log);
    expect(log.gaps).toHaveLength(1);
    expect(log.gaps[0]).toMatch(/^batch_report-1_u7\/report: 0\.log \(dev \d+ inode \d+\) vanished while nodesage was not running before it was read past byte \d+/);
    expect(log.store.get('pod-logs', 'batch_report-1_u7/report')).toBeUndefined();
  });

  it('without /var/log/pods the source fails with the reason and recovers once it exists', async () => {
    rmSync(join(host.root, 'var/log/pods'), { recursive: true });
    const log = knownNode();
    const c = await startCollector(log);
    expect(c.status()).toMatchObject({ state: 'failing', lastError: `${join(host.root, 'var/log/pods')} not found` });
    mkdirSync(join(host.root, 'var/log/pods'));
    const app = new ContainerLogDir(host.root, { namespace: 'a', pod: 'b', uid: 'c', container: 'd' });
    app.write(3);
    await c.pollNow();
    expect(c.status().state).toBe('healthy');
    expect(log.lines.length).toBe(3);
  });

  it('open files stay bounded by maxOpenFiles while every container is read', async () => {
    const log = knownNode();
    const dirs = Array.from({ length: 6 }, (_, i) => new ContainerLogDir(host.root, { namespace: 'ns', pod: `p${i}`, uid: `u${i}`, container: `c${i}` }));
    const c = await startCollector(log, { maxOpenFiles: 2 });
    for (let round = 0; round < 3; round++) {
      for (const d of dirs) d.write(7);
      await c.pollNow();
      expect(c.status().detail?.filesOpen).toBeLessThanOrEqual(2);
    }
    expect(log.delivered.size).toBe(6 * 21);
    expect(log.duplicates()).toEqual([]);
  });

  it('stale when no poll succeeded for staleAfterMs', async () => {
    const clock = new ManualClock(Date.parse('2025-01-15T08:00:00Z'));
    const log = knownNode();
    const c = await startCollector(log, { staleAfterMs: 30_000, pollIntervalMs: 3_600_000, clock });
    expect(c.status().state).toBe('healthy');
    clock.advance(31_000);
    expect(c.status().state).toBe('stale');
    await c.pollNow();
    expect(c.status().state).toBe('healthy');
  });
});

describe('pod-logs live', () => {
  it('polling alone delivers new lines and new containers (no watch)', async () => {
    const log = knownNode();
    await startCollector(log, { pollIntervalMs: 30, scanIntervalMs: 30 });
    const a = new ContainerLogDir(host.root, { namespace: 'x', pod: 'y', uid: 'z', container: 'w' });
    a.write(5);
    await until(() => log.delivered.size === 5);
    a.write(5);
    await until(() => log.delivered.size === 10);
  });

  it('with fs.watch, a write is picked up long before the next poll', async () => {
    const log = knownNode();
    const a = new ContainerLogDir(host.root, { namespace: 'x', pod: 'y', uid: 'z', container: 'w' });
    const c = await startCollector(log, { pollIntervalMs: 600_000, scanIntervalMs: 600_000, watch: true });
    if (c.status().detail?.watch !== 'inotify') {
      // inotify unavailable or exhausted here: the collector must say it is polling.
      expect(c.status().detail?.watch).toBe('polling');
      return;
    }
    a.write(3);
    await until(() => log.delivered.size === 3, 3000);
    // A new pod directory is noticed through the watch on /var/log/pods too.
    const b = new ContainerLogDir(host.root, { namespace: 'x', pod: 'new', uid: 'q', container: 'sidecar' });
    b.write(2);
    await until(() => log.delivered.size === 5, 3000);
  });
});

describe('CriReader positions', () => {
  /** Random CRI bytes: two streams, P…F groups, interleaved. */
  function randomCri(seed: number, n: number): Buffer {
    let s = seed;
    const rand = () => {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      return s / 2 ** 31;
    };
    let out = '';
    let id = 0;
    const open: Record<string, number> = { stdout: 0, stderr: 0 };
    for (let i = 0; i < n; i++) {
      const stream = rand() < 0.5 ? 'stdout' : 'stderr';
      const partial = rand() < 0.4;
      const msg = open[stream] === 0 ? `m${++id}-` : 'more-';
      out += criLine(new Date(Date.UTC(2025, 0, 15, 8, 0, 0, i)), stream, partial ? 'P' : 'F', `${msg}${'z'.repeat(Math.floor(rand() * 30))}`, i);
      open[stream] = partial ? open[stream]! + 1 : 0;
    }
    return Buffer.from(out);
  }

  it('restoring position() at any read boundary reproduces exactly the rest of an uninterrupted read', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const data = randomCri(seed, 200);
      const whole: LogLine[] = [];
      const r = new CriReader();
      r.consume(data, 0, data.length, whole);
      r.flush(whole);
      const expected = whole.map((l) => `${l.stream}:${l.text}`);

      // Read in random chunks, "crash" after each chunk, resume a new reader from the position.
      const got: string[] = [];
      let pos = { offset: 0, skip: 0 };
      let step = seed;
      let stuck = 0;
      while (pos.offset < data.length) {
        const reader = new CriReader();
        reader.setPosition(pos);
        // Each read ends anywhere after the resume point, often before where the previous one ended
        // (reads grow while the resume point does not move, as an open group may be long).
        step = (step * 1103515245 + 12345) % 2 ** 31;
        const cut = Math.min(data.length, reader.offset + 1 + (step % 400) + stuck * 400);
        const out: LogLine[] = [];
        reader.consume(data.subarray(reader.offset, cut), 0, cut - reader.offset, out);
        got.push(...out.map((l) => `${l.stream}:${l.text}`));
        const before = pos.offset;
        pos = reader.position();
        stuck = pos.offset === before ? stuck + 1 : 0;
        if (cut === data.length) {
          const tail: LogLine[] = [];
          reader.flush(tail);
          got.push(...tail.map((l) => `${l.stream}:${l.text}`));
          break;
        }
      }
      expect(got).toEqual(expected);
    }
  });
});

describe('pod-logs renamed directory edge', () => {
  it('files named like kubelet rotations but in a foreign scheme are still read once (copy suffixes)', async () => {
    const log = knownNode();
    const d = new ContainerLogDir(host.root, { namespace: 'legacy', pod: 'app', uid: 'u9', container: 'main' });
    d.write(10);
    const c = await startCollector(log);
    d.write(10);
    // A logrotate-style numbered rename (no kubelet timestamp) plus a new live file.
    renameSync(d.path('0.log'), d.path('0.log.1'));
    writeFileSync(d.path('0.log'), '');
    for (const w of d.written) w.file = '0.log.1';
    d.write(10);
    await c.pollNow();
    await c.pollNow();
    expect(log.order).toEqual(d.written.map((w) => w.id));
  });
});
