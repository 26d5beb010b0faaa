/**
 * Rotation suite: the real PodLogCollector over a temp host root, with a commit
 * log that applies checkpoints only when a batch is committed (as the daemon
 * does in one SQLite transaction). Every written line must be delivered
 * exactly once, or lie in a file reported by a gap signal.
 */
import { statSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PodLogCollector, PodLogCollectorOptions } from '../daemon/collectors/pod-logs.js';
import { CommitLog, ContainerLogDir, type HostRoot, criLine } from './helpers/host-root.js';
import { PodLogHarness } from './helpers/pod-log-harness.js';

let harness: PodLogHarness;
let host: HostRoot;

beforeEach(() => {
  harness = new PodLogHarness({ rotationGraceMs: 3_600_000 });
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

function container(name = 'api'): ContainerLogDir {
  return new ContainerLogDir(host.root, { namespace: 'shop', pod: `${name}-7d9f8c6b5-x2x4z`, uid: `0d2c6a1e-${name}`, container: name });
}

/** Seeds the store as if an earlier run had seen the node, so new files are read from their start. */
async function seedEarlierRun(log: CommitLog): Promise<void> {
  const c = await startCollector(log);
  await stopCollector(c);
}

function expectExactlyOnce(log: CommitLog, ids: string[]): void {
  expect(log.duplicates()).toEqual([]);
  const missing = ids.filter((id) => !log.delivered.has(id));
  expect(missing).toEqual([]);
}

describe('pod-logs rotation', () => {
  it('rename + create: finishes the renamed file through its descriptor, then reads the new one, in order', async () => {
    const log = new CommitLog();
    const api = container();
    api.write(10);
    await seedEarlierRun(log);
    const c = await startCollector(log);
    api.write(50);
    await c.pollNow();
    const unread = api.write(40); // written just before the rotation, not read yet
    const rotated = api.rotate();
    const after = api.write(30);
    await c.pollNow();
    await c.pollNow();
    const all = api.written.map((w) => w.id);
    expectExactlyOnce(log, all);
    expect(log.order).toEqual(all);
    expect(unread.every((id) => log.delivered.get(id) === 1)).toBe(true);
    expect(after.length).toBe(30);
    const restarts = new Set(log.lines.map((l) => l.container?.restart));
    expect([...restarts]).toEqual([0]);
    expect(c.status().detail?.rotations).toBeGreaterThanOrEqual(1);
    expect(log.gaps).toEqual([]);
    expect(rotated).toMatch(/^0\.log\.\d{8}-\d{6}$/);
  });

  it('a rotated file renamed and deleted before it was finished is still read to its end through the open descriptor', async () => {
    const log = new CommitLog();
    const api = container();
    await seedEarlierRun(log);
    // Small per-poll budget: the first poll stops inside the file.
    const c = await startCollector(log, { maxBytesPerPoll: 2048, readChunkBytes: 1024, maxLineBytes: 512 });
    api.write(200);
    await c.pollNow();
    expect(log.delivered.size).toBeGreaterThan(0);
    expect(log.delivered.size).toBeLessThan(200);
    const rotated = api.rotate();
    api.write(20);
    api.gzip(rotated); // kubelet compresses and deletes the plain file
    for (let i = 0; i < 200 && log.delivered.size < 220; i++) await c.pollNow();
    expectExactlyOnce(log, api.written.map((w) => w.id));
    expect(log.order).toEqual(api.written.map((w) => w.id));
    expect(log.gaps).toEqual([]);
  });

  it('kubelet gzip of a rotated file that was already read: the .gz is recognised and never read again', async () => {
    const log = new CommitLog();
    const api = container();
    await seedEarlierRun(log);
    const c = await startCollector(log);
    api.write(30);
    await c.pollNow();
    const r1 = api.rotate();
    api.write(30);
    await c.pollNow();
    const r2 = api.rotate();
    api.write(30);
    await c.pollNow();
    api.gzip(r1);
    await c.pollNow();
    api.gzip(r2);
    api.write(5);
    await c.pollNow();
    await c.pollNow();
    expectExactlyOnce(log, api.written.map((w) => w.id));
    expect(log.delivered.size).toBe(95);
    // The checkpoint remembers the compressed files as finished, so a restart does not read them either.
    const stored = JSON.parse(log.store.get('pod-logs', `shop_api-7d9f8c6b5-x2x4z_0d2c6a1e-api/api`) ?? '{}') as { files: { n: string; x?: number }[] };
    expect(stored.files.filter((f) => f.n.endsWith('.gz')).map((f) => f.x)).toEqual([1, 1]);
    await stopCollector(c);
    await startCollector(log);
    expect(log.duplicates()).toEqual([]);
  });

  it('copytruncate: the copy is finished from the old offset and the truncated file read from 0', async () => {
    const log = new CommitLog();
    const api = container();
    await seedEarlierRun(log);
    const c = await startCollector(log);
    api.write(40);
    await c.pollNow();
    api.write(25); // unread when the copy is made
    api.copyTruncate('0.log.1');
    api.write(15);
    await c.pollNow();
    await c.pollNow();
    expectExactlyOnce(log, api.written.map((w) => w.id));
    expect(log.order).toEqual(api.written.map((w) => w.id));
    expect(c.status().detail?.truncations).toBe(1);
    expect(log.gaps).toEqual([]);
  });

  it('copytruncate without a copy (plain truncation): reads from 0 and reports what may be lost', async () => {
    const log = new CommitLog();
    const api = container();
    await seedEarlierRun(log);
    const c = await startCollector(log);
    api.write(40);
    await c.pollNow();
    const lost = api.write(10);
    writeFileSync(api.path('0.log'), ''); // truncated in place, same inode
    const fresh = api.write(5);
    await c.pollNow();
    expect(c.status().detail?.truncations).toBe(1);
    expectExactlyOnce(log, fresh);
    expect(lost.some((id) => log.delivered.has(id))).toBe(false);
    expect(log.gaps.length).toBe(1);
    expect(log.gaps[0]).toMatch(/shop_api-7d9f8c6b5-x2x4z_0d2c6a1e-api\/api: 0\.log .* before it was read past byte \d+; an unknown number of bytes/);
  });

  it('inode reuse: same inode, different first bytes, file now longer than the old offset → a new file from 0', async () => {
    const log = new CommitLog();
    const api = container();
    await seedEarlierRun(log);
    const c = await startCollector(log);
    api.write(20);
    await c.pollNow();
    const ino = statSync(api.path('0.log')).ino;
    // Rewritten in place (O_TRUNC keeps the inode) with more bytes than were read.
    let data = '';
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const id = api.nextId();
      ids.push(id);
      data += criLine(new Date(Date.UTC(2025, 1, 1, 0, 0, 0, i)), 'stdout', 'F', `replaced content id=${id}`);
    }
    writeFileSync(api.path('0.log'), data);
    expect(statSync(api.path('0.log')).ino).toBe(ino);
    await c.pollNow();
    expectExactlyOnce(log, ids);
    expect(log.lines.filter((l) => l.text.startsWith('replaced content')).length).toBe(60);
  });

  it('stopped across 3 rotations (two of them gzipped meanwhile): resumes in the .gz from the old offset, no gap, no double', async () => {
    const log = new CommitLog();
    const api = container();
    await seedEarlierRun(log);
    let c = await startCollector(log);
    api.write(30);
    await c.pollNow();
    await stopCollector(c);
    api.write(20); // unread part of the checkpointed file
    const r1 = api.rotate();
    api.write(20);
    const r2 = api.rotate();
    api.write(20);
    api.rotate();
    api.write(20);
    api.gzip(r1);
    api.gzip(r2);
    c = await startCollector(log);
    await c.pollNow();
    await c.pollNow();
    expectExactlyOnce(log, api.written.map((w) => w.id));
    expect(log.order).toEqual(api.written.map((w) => w.id));
    expect(log.gaps).toEqual([]);
  });

  it('stopped across 3 rotations with the oldest rotated file deleted: the lost lines are inside a reported gap', async () => {
    const log = new CommitLog();
    const api = container();
    await seedEarlierRun(log);
    let c = await startCollector(log);
    api.write(30);
    await c.pollNow();
    await stopCollector(c);
    const lost = api.write(20);
    const r1 = api.rotate();
    const kept = api.write(20);
    const r2 = api.rotate();
    kept.push(...api.write(20));
    api.rotate();
    kept.push(...api.write(20));
    api.gzip(r2);
    api.gzip(r1);
    api.remove(`${r1}.gz`); // kubelet's max-files cleanup
    c = await startCollector(log);
    await c.pollNow();
    expectExactlyOnce(log, kept);
    expect(lost.filter((id) => log.delivered.has(id))).toEqual([]);
    expect(log.gaps.length).toBe(1);
    expect(log.gaps[0]).toContain('shop_api-7d9f8c6b5-x2x4z_0d2c6a1e-api/api: 0.log');
    expect(log.gaps[0]).toContain('vanished while nodesage was not running');
    expect(c.status().detail?.gaps).toBe(1);
  });

  it('kill -9 in the middle of a batch: the restarted collector re-delivers exactly the uncommitted lines', async () => {
    const log = new CommitLog();
    const api = container();
    const web = container('web');
    await seedEarlierRun(log);
    let c = await startCollector(log);
    api.write(25);
    web.write(25, { stderrEvery: 3 });
    await c.pollNow();
    expect(log.delivered.size).toBe(50);
    log.autoCommit = false;
    api.write(10);
    api.writePartial(4);
    web.writePartial(3, 'stderr');
    web.write(5);
    await c.pollNow();
    // Delivered but never committed: the process dies here.
    const inFlight = log.crash();
    expect(inFlight.length).toBe(17);
    await stopCollector(c);
    log.autoCommit = true;
    c = await startCollector(log);
    await c.pollNow();
    expectExactlyOnce(log, [...api.written, ...web.written].map((w) => w.id));
    expect(log.delivered.size).toBe(67);
  });

  it('kill -9 while a partial line is open: the joined message is delivered once, whole', async () => {
    const log = new CommitLog();
    const api = container();
    await seedEarlierRun(log);
    let c = await startCollector(log);
    const id = api.nextId();
    const t = new Date(Date.UTC(2025, 0, 15, 10, 0, 0));
    api.append(criLine(t, 'stdout', 'P', `first half id=${id} `, 1));
    const between = api.write(3, { stderrEvery: 1 }); // other stream completes meanwhile
    await c.pollNow();
    expect(between.every((b) => log.delivered.get(b) === 1)).toBe(true);
    await stopCollector(c); // committed: the stdout group is still open
    api.append(criLine(t, 'stdout', 'F', 'second half', 2));
    c = await startCollector(log);
    await c.pollNow();
    const joined = log.lines.filter((l) => l.text.includes(`id=${id}`));
    expect(joined.map((l) => l.text)).toEqual([`first half id=${id} second half`]);
    expect(joined[0]?.at).toBe('2025-01-15T10:00:00.000Z');
    expect(log.duplicates()).toEqual([]);
  });

  it('random soak: writes, partial lines, rotations, gzip, deletion, copytruncate, restarts and crashes', async () => {
    let seed = 20250115;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const log = new CommitLog();
    const dirs = [container('api'), container('web'), container('db')];
    const deletedUnread = new Set<string>();
    await seedEarlierRun(log);
    let c = await startCollector(log, { maxBytesPerPoll: 16 * 1024 });
    const rotatedOf = new Map<ContainerLogDir, string[]>();
    for (let step = 0; step < 300; step++) {
      const d = dirs[Math.floor(rand() * dirs.length)]!;
      const r = rand();
      if (r < 0.35) d.write(1 + Math.floor(rand() * 30), { stderrEvery: 4 });
      else if (r < 0.42) d.writePartial(2 + Math.floor(rand() * 3), rand() < 0.5 ? 'stdout' : 'stderr');
      else if (r < 0.5) {
        const list = rotatedOf.get(d) ?? [];
        list.push(d.rotate());
        rotatedOf.set(d, list);
      } else if (r < 0.56) {
        const list = rotatedOf.get(d) ?? [];
        const i = list.findIndex((n) => !n.endsWith('.gz'));
        // kubelet never compresses the latest rotated file
        if (i >= 0 && i < list.length - 1) list[i] = d.gzip(list[i]!);
      } else if (r < 0.59) {
        const list = rotatedOf.get(d) ?? [];
        if (list.length > 3) {
          const name = list.shift()!;
          const base = name.replace(/\.gz$/, '');
          for (const id of d.idsIn(base)) if (!log.delivered.has(id)) deletedUnread.add(id);
          d.remove(name);
        }
      } else if (r < 0.61) {
        const copy = `${d.live}.copy${step}`;
        d.copyTruncate(copy);
        for (const w of d.written) if (w.file === d.live) w.file = copy;
        const list = rotatedOf.get(d) ?? [];
        list.push(copy);
        rotatedOf.set(d, list);
      } else if (r < 0.63) {
        d.restartContainer();
      } else if (r < 0.9) {
        await c.pollNow();
      } else if (r < 0.95) {
        log.autoCommit = false;
        await c.pollNow();
        log.crash();
        await stopCollector(c);
        log.autoCommit = true;
        c = await startCollector(log, { maxBytesPerPoll: 16 * 1024 });
      } else {
        await stopCollector(c);
        c = await startCollector(log, { maxBytesPerPoll: 16 * 1024 });
      }
    }
    for (let i = 0; i < 50; i++) await c.pollNow();
    expect(log.duplicates()).toEqual([]);
    const all = dirs.flatMap((d) => d.written.map((w) => w.id));
    const missing = all.filter((id) => !log.delivered.has(id));
    // Only lines of files deleted before they were read may be missing, and then a gap says so.
    expect(missing.filter((id) => !deletedUnread.has(id))).toEqual([]);
    if (missing.length > 0) expect(log.gaps.length).toBeGreaterThan(0);
    expect(all.length).toBeGreaterThan(1000);
    expect(log.delivered.size).toBeGreaterThan(all.length * 0.8);
  });
});
