/**
 * Faults that edge nodes have, each ending with "nothing lost": the state disk
 * fills up, the API server is away for hours, a reader holds the WAL open.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeConfig } from '@kubernetes/client-node';
import { loadConfig } from '../daemon/config.js';
import type { Collector, Signal, SignalSink, SourceStatus } from '../daemon/core/types.js';
import { Daemon, type DaemonParts } from '../daemon/daemon.js';
import { createDetectors } from '../daemon/detectors/index.js';
import { ConditionsExporter, type ExportedCondition } from '../daemon/exporters/conditions.js';
import { type EventBody, EventsExporter } from '../daemon/exporters/events.js';
import { KubeWriters } from '../daemon/exporters/kube-writers.js';
import { foldBatches } from '../daemon/store/fold.js';
import { type CommitBatch, Store } from '../daemon/store/store.js';
import type { TrackedFinding } from '../daemon/tracker/tracker.js';
import { FakeApiServer } from './harness/fake-apiserver.js';
import { ManualClock } from '../daemon/core/runtime/clock.js';
import { tempDir } from './helpers/daemon-process.js';

const silent = pino({ level: 'silent' });
const NODE = 'edge-node-1';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A kernel log source the test feeds by hand: lines with their read position, as the kmsg collector sends them. */
class FedKmsg implements Collector {
  readonly name = 'kmsg' as const;
  private sink: SignalSink | undefined;
  private seq = 0;
  async start(sink: SignalSink): Promise<void> {
    this.sink = sink;
  }
  async stop(): Promise<void> {}
  status(): SourceStatus {
    return { name: 'kmsg', state: 'healthy', signals: this.seq, lastSignalAt: null, lastError: null };
  }
  /** Sends a kernel I/O error for each of these disks (one finding per disk), then the read position after them. */
  diskErrors(disks: string[], at = new Date().toISOString()): number {
    return this.lines(
      disks.map((disk) => `Buffer I/O error on dev ${disk}1, logical block ${8192 + this.seq}, lost async page write`),
      at,
    );
  }
  /** Sends kernel lines, then the read position after them. */
  lines(texts: string[], at = new Date().toISOString()): number {
    const signals: Signal[] = texts.map((text) => ({ type: 'log', line: { source: 'kmsg', at, priority: 3, text } }));
    this.seq += texts.length;
    signals.push({ type: 'checkpoint', source: 'kmsg', key: 'seq', value: String(this.seq) });
    this.sink!(signals);
    return this.seq;
  }
}

async function startDaemon(collectors: Collector[], extra: { onCycle?: DaemonParts['onCycle'] } = {}) {
  const dataDir = tempDir('nodesage-faults-');
  const config = loadConfig({
    env: { NODESAGE_DATA_DIR: dataDir, NODESAGE_LISTEN: '127.0.0.1:0', NODESAGE_DETECT_INTERVAL_SECONDS: '3600', NODESAGE_NODE_NAME: NODE },
    serviceAccountDir: join(dataDir, 'no-sa'),
  });
  const store = Store.open({ dir: config.dataDir, logger: silent, maxAgeDays: 30, maxSizeMB: 64 });
  const daemon = new Daemon({ config, logger: silent, store, detectors: createDetectors({}), collectors, ...extra });
  await daemon.start();
  cleanups.push(() => daemon.stop());
  // The start's retention run, so that what the test stores afterwards is what it finds.
  await store.prune();
  return { daemon, store, url: daemon.address };
}

// The store's one shared connection (daemon/store/db.ts), to make the disk "fill" under it.
const connectionOf = (store: Store) => (store as unknown as { s: { db: Database.Database } }).s.db;

function storedFinding(id: string, lastSeenMs: number, status: 'open' | 'resolved', evidenceBytes: number): TrackedFinding {
  const at = new Date(lastSeenMs).toISOString();
  return {
    id,
    category: 'CrashLoop',
    severity: 'warning',
    subject: { kind: 'Container', namespace: 'shop', name: `pod-${id}`, container: 'app' },
    title: `crash loop ${id}`,
    message: `container app of pod-${id} keeps restarting`,
    evidence: Array.from({ length: 4 }, (_, i) => ({ source: 'podLog' as const, at, text: `${id} line ${i} ${'x'.repeat(evidenceBytes)}` })),
    firstSeen: at,
    lastSeen: at,
    count: 3,
    status,
    resolvedAt: status === 'resolved' ? at : null,
    diagnosis: null,
    detector: 'test',
    lifecycle: 'event',
  };
}

const commitOf = (findings: TrackedFinding[]) => ({ at: new Date().toISOString(), findings, checkpoints: [], gaps: [], lineCounts: new Map<string, number>() });

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

describe('the state disk fills up', () => {
  it('keeps detecting and serving, prunes, resumes writing, and loses nothing stored', async () => {
    const kmsg = new FedKmsg();
    const { daemon, store, url } = await startDaemon([kmsg]);
    const db = connectionOf(store);

    // History retention may delete: resolved findings older than maxAgeDays, with bulky evidence.
    const old = Array.from({ length: 60 }, (_, i) => storedFinding(`old-${i}`, Date.now() - 60 * 86_400_000, 'resolved', 2000));
    store.commit(commitOf(old));
    // Findings detected before the fill.
    kmsg.diskErrors(['sda', 'sdb']);
    expect(daemon.cycle()).toBe(2);
    expect(store.getCheckpoint('kmsg', 'seq')).toBe('2');

    // The disk fills: the file may not grow past its current pages, and recent history takes the free ones.
    db.pragma('incremental_vacuum');
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    const recent: TrackedFinding[] = [];
    let full: unknown;
    for (let i = 0; full === undefined; i++) {
      const f = storedFinding(`recent-${i}`, Date.now() - 3_600_000, 'resolved', 300);
      try {
        store.commit(commitOf([f]));
        recent.push(f);
      } catch (err) {
        full = err;
      }
    }
    expect((full as { code?: string }).code).toBe('SQLITE_FULL');
    const before = [...store.listFindings({ limit: 500 }).items].filter((f) => !f.id.startsWith('old-'));
    expect(before).toHaveLength(2 + recent.length);

    // Detection goes on: new kills are detected while their cycle cannot be stored.
    kmsg.diskErrors(['sdc', 'sdd', 'sde']);
    expect(daemon.cycle()).toBe(3);
    expect(await metric(url, 'nodesage_store_commit_failures_total')).toBe(1);
    // The operator sees why in the status, and for how long.
    const failing = (await getJson(`${url}/v1/status`)).body as { store: { writeFailure: { code: string; cyclesKept: number; since: string } | null } };
    expect(failing.store.writeFailure).toMatchObject({ code: 'SQLITE_FULL', cyclesKept: 1 });
    expect(Date.parse(failing.store.writeFailure!.since)).toBeGreaterThan(Date.now() - 60_000);
    // The read position did not move past lines whose findings are not stored.
    expect(store.getCheckpoint('kmsg', 'seq')).toBe('2');
    expect((await getJson(`${url}/healthz`)).status).toBe(200);
    const listed = await getJson(`${url}/v1/findings?limit=200&status=open`);
    expect(listed.status).toBe(200);
    expect((listed.body as { items: { title: string }[] }).items.map((f) => f.title).sort()).toEqual(
      before.filter((f) => f.status === 'open').map((f) => f.title).sort(),
    );

    // Retention (started by the failed commit) deletes the expired history and so frees pages inside the file.
    await store.prune();
    expect(store.getFinding('old-0')).toBeUndefined();

    // Writing resumes: the kept cycle is stored with the next one, in order.
    kmsg.diskErrors(['sdf']);
    expect(daemon.cycle()).toBe(1);
    expect(store.getCheckpoint('kmsg', 'seq')).toBe('6');
    expect(((await getJson(`${url}/v1/status`)).body as { store: { writeFailure: unknown } }).store.writeFailure).toBeNull();
    const open = store.listFindings({ status: 'open', limit: 100 }).items;
    expect(open.map((f) => f.title).sort()).toEqual(['sda', 'sdb', 'sdc', 'sdd', 'sde', 'sdf'].map((d) => `Disk ${d} is failing`));
    for (const f of open) expect(f.evidence.length).toBeGreaterThan(0);

    // The disk gets space back: writing goes on past the old limit.
    db.pragma('max_page_count = 1073741823');
    const more = Array.from({ length: 50 }, (_, i) => storedFinding(`later-${i}`, Date.now(), 'resolved', 3000));
    store.commit(commitOf(more));
    kmsg.diskErrors(['sdg']);
    expect(daemon.cycle()).toBe(1);
    expect(store.getCheckpoint('kmsg', 'seq')).toBe('7');

    // Nothing stored before the fill is gone, evidence included.
    for (const f of before) {
      const now = store.getFinding(f.id);
      expect(now?.title).toBe(f.title);
      expect(now?.evidence).toEqual(f.evidence);
    }
  });
});

describe('cycles kept while the disk is full', () => {
  it('fold into at most two batches that leave the store as the cycles one by one would', () => {
    const t = (id: string, count: number) => ({ stream: 'kmsg:', templateId: id, template: `disk <*> error ${id}`, isError: true, firstSeen: '2026-03-01T10:00:00.000Z', lastSeen: `2026-03-01T10:0${count}:00.000Z`, count, example: `disk sda error ${id}` });
    const bucket = (id: string, minute: number, count: number) => ({ stream: 'kmsg:', templateId: id, bucketStart: `2026-03-01T10:0${minute}:00.000Z`, count });
    const a1 = storedFinding('aa01', Date.parse('2026-03-01T10:00:00Z'), 'open', 10);
    // A finding keeps its first sighting as the tracker updates it.
    const a2 = { ...storedFinding('aa01', Date.parse('2026-03-01T10:01:00Z'), 'open', 20), count: 4, firstSeen: a1.firstSeen };
    const b1 = storedFinding('bb01', Date.parse('2026-03-01T10:01:00Z'), 'open', 10);
    const b2 = { ...storedFinding('bb01', Date.parse('2026-03-01T10:02:00Z'), 'resolved', 10), firstSeen: b1.firstSeen };
    const cycles: CommitBatch[] = [
      {
        at: '2026-03-01T10:00:00.000Z',
        findings: [a1],
        checkpoints: [{ source: 'kmsg', key: 'seq', value: '1' }, { source: 'journald', key: 'cursor', value: 's=1' }],
        gaps: [],
        lineCounts: new Map([['kmsg:', 3]]),
        templates: [t('T1', 1), t('T2', 1)],
        templateBuckets: [bucket('T1', 0, 1), bucket('T2', 0, 1)],
        templateBucketsBefore: '2026-02-01T00:00:00.000Z',
      },
      {
        at: '2026-03-01T10:01:00.000Z',
        findings: [a2, b1],
        checkpoints: [{ source: 'kmsg', key: 'seq', value: '2' }],
        gaps: [{ source: 'kmsg', at: '2026-03-01T10:01:00.000Z', detail: 'ring buffer overrun: 12 messages lost' }],
        lineCounts: new Map([['kmsg:', 2]]),
        templates: [t('T1', 2)],
        templateBuckets: [bucket('T1', 0, 2), bucket('T1', 1, 1)],
        templatesRemoved: [{ stream: 'kmsg:', templateId: 'T2' }],
      },
      {
        at: '2026-03-01T10:02:00.000Z',
        findings: [b2],
        checkpoints: [{ source: 'journald', key: 'cursor', value: null }],
        gaps: [],
        lineCounts: new Map([['kmsg:', 1], ['journald:kubelet.service', 4]]),
        templates: [t('T2', 2)],
        templateBuckets: [bucket('T2', 2, 1)],
        templateBucketsBefore: '2026-02-02T00:00:00.000Z',
      },
    ];
    const oneByOne = Store.open({ dir: tempDir() });
    const folded = Store.open({ dir: tempDir() });
    cleanups.push(() => oneByOne.close(), () => folded.close());
    for (const c of cycles) oneByOne.commit(c);
    const batches = foldBatches(cycles);
    expect(batches.length).toBeLessThanOrEqual(2);
    folded.commit(...batches);
    const contents = (s: Store) => ({
      findings: s.listFindings({ limit: 10 }).items.map(({ diagnosis: _d, ...f }) => f),
      kmsg: [...s.listCheckpoints('kmsg')],
      journald: [...s.listCheckpoints('journald')],
      lines: [...s.lineCounts()].sort(),
      gaps: s.listGaps(),
      templates: s.listTemplates().sort((x, y) => x.templateId.localeCompare(y.templateId)),
      buckets: s.listTemplateBuckets('2000-01-01T00:00:00.000Z').sort((x, y) => `${x.templateId}${x.bucketStart}`.localeCompare(`${y.templateId}${y.bucketStart}`)),
    });
    const expected = contents(oneByOne);
    expect(expected.templates.map((x) => [x.templateId, x.count])).toEqual([['T1', 2], ['T2', 2]]);
    expect(expected.buckets.map((x) => [x.templateId, x.bucketStart.slice(11, 16), x.count])).toEqual([['T1', '10:00', 2], ['T1', '10:01', 1], ['T2', '10:02', 1]]);
    expect(contents(folded)).toEqual(expected);
  });
});

/** The fake API server with the fixture node, and the exporters' real client writing to it. */
async function apiServer() {
  const fake = await FakeApiServer.create({ bundleDir: join(import.meta.dirname, 'fixtures/kube') });
  cleanups.push(() => fake.close());
  const kc = new KubeConfig();
  kc.loadFromFile(fake.writeKubeconfig(join(tempDir(), 'kubeconfig')));
  return { fake, writers: new KubeWriters(kc) };
}

describe('the API server is down for 6 hours', () => {
  const MIN = 60_000;
  /** nodesage's events on the fake API server. */
  const ourEvents = (fake: FakeApiServer) =>
    fake.objects('events').filter((e) => (e as { source?: { component?: string } }).source?.component === 'nodesage') as unknown as {
      metadata: { name: string };
      reason: string;
      message: string;
      count: number;
    }[];
  const condition = (fake: FakeApiServer, type: string) =>
    (fake.objects('nodes').find((n) => n.metadata.name === NODE) as unknown as { status: { conditions: { type: string; status: string; reason: string }[] } }).status.conditions.find(
      (c) => c.type === type,
    );

  it('keeps analysing locally, then resyncs conditions and events without duplicates', async () => {
    const { fake, writers } = await apiServer();
    const clock = new ManualClock(Date.now());
    const conditions = new ConditionsExporter({ nodeName: NODE, writer: writers, clock });
    const events = new EventsExporter({ nodeName: NODE, writer: writers, clock });
    cleanups.push(() => {
      conditions.stop();
      events.stop();
    });
    const kmsg = new FedKmsg();
    // Wired as main.ts wires them: after each committed cycle.
    const { daemon, store } = await startDaemon([kmsg], {
      onCycle: ({ open, opened }) => {
        conditions.update(open);
        events.publish(opened);
      },
    });
    const at = () => new Date(clock.now()).toISOString();
    /** Lets manual time pass in steps, with real time for the real I/O in between, until `done`. */
    const passUntil = async (done: () => boolean, what: string, stepMs = 1000) => {
      for (let i = 0; i < 500 && !done(); i++) {
        clock.advance(stepMs);
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(done(), what).toBe(true);
    };

    kmsg.diskErrors(['sdb'], at());
    daemon.cycle(at());
    await passUntil(() => ourEvents(fake).length === 1 && conditions.stats.writes >= 1, 'first event and conditions written');
    expect(condition(fake, 'KernelDeadlock')).toMatchObject({ status: 'False' });

    // Six hours without the API server.
    await fake.stop();
    // A kernel task hangs early in the outage (its finding resolves after the quiet period) and again at its end.
    kmsg.lines(['INFO: task jbd2/sda1-8:412 blocked for more than 122 seconds.'], at());
    daemon.cycle(at());
    // The first ten minutes with a detection cycle every 10 s: the exporters retry on their backoff (at most every
    // 30 s), not on every cycle.
    for (let i = 0; i < 60; i++) {
      clock.advance(10_000);
      await new Promise((r) => setTimeout(r, 5));
      daemon.cycle(at());
    }
    expect(conditions.stats.failures).toBeGreaterThan(3);
    expect(conditions.stats.failures).toBeLessThanOrEqual(30);
    expect(events.stats.failures).toBeGreaterThan(3);
    expect(events.stats.failures).toBeLessThanOrEqual(30);
    // The rest of the six hours, one detection cycle per 10 minutes.
    const seen: number[] = [];
    for (let step = 1; step <= 35; step++) {
      clock.advance(10 * MIN);
      // The retries that fell due run (and fail) before the cycle.
      await new Promise((r) => setTimeout(r, 5));
      if (step === 34) kmsg.lines(['INFO: task jbd2/sda1-8:412 blocked for more than 122 seconds.'], at());
      if (step === 5) kmsg.diskErrors(['sdc'], at());
      // sdb fails again twice, each time after its finding went quiet and resolved.
      if (step === 17 || step === 29) kmsg.diskErrors(['sdb'], at());
      daemon.cycle(at());
      seen.push(kmsg.lines([], at()));
      daemon.cycle(at());
    }
    // Local analysis went on: every problem of the outage is stored, and the read position followed.
    expect(store.listFindings({ limit: 100 }).items.map((f) => f.title).sort()).toEqual(
      ['Disk sdb is failing', 'Disk sdc is failing', 'Kernel task jbd2/sda1-8 blocked for more than 122 s'].sort(),
    );
    expect(store.getCheckpoint('kmsg', 'seq')).toBe(String(seen.at(-1)));
    expect(ourEvents(fake)).toHaveLength(1);

    await fake.start();
    await passUntil(() => condition(fake, 'KernelDeadlock')?.status === 'True' && events.depth() === 0, 'resync after the outage', 5000);
    // One event per problem that happened while away: a problem that came back while queued updates its event's count.
    const countOf = (title: string) => store.listFindings({ limit: 100 }).items.find((f) => f.title === title)!.count;
    const sent = ourEvents(fake);
    expect(new Set(sent.map((e) => e.metadata.name)).size).toBe(sent.length);
    expect(sent.map((e) => e.message.split(':')[0]).sort()).toEqual(
      ['Disk sdb is failing', 'Disk sdb is failing', 'Disk sdc is failing', 'Kernel task jbd2/sda1-8 blocked for more than 122 s'].sort(),
    );
    expect(sent.filter((e) => e.message.startsWith('Disk sdb')).map((e) => e.count)).toEqual([1, countOf('Disk sdb is failing')]);
    expect(sent.find((e) => e.message.startsWith('Kernel task'))?.count).toBe(countOf('Kernel task jbd2/sda1-8 blocked for more than 122 s'));
    expect(condition(fake, 'KernelDeadlock')).toMatchObject({ status: 'True', reason: 'TaskHung' });
    // Nothing is sent twice afterwards: more time passes, heartbeats only.
    const posts = fake.requests.filter((r) => r.method === 'POST').length;
    const writes = conditions.stats.writes;
    await passUntil(() => conditions.stats.writes >= writes + 3, 'heartbeats', 60_000);
    expect(fake.requests.filter((r) => r.method === 'POST').length).toBe(posts);
  });

  it('writes a condition change made while the previous write was on the wire right after it', async () => {
    const { fake, writers } = await apiServer();
    let release: () => void = () => undefined;
    const onWire = new Promise<void>((r) => {
      release = r;
    });
    let slow = true;
    // The first write is slow to answer (a busy API server).
    const writer = {
      async patchConditions(name: string, c: ExportedCondition[]): Promise<void> {
        await writers.patchConditions(name, c);
        if (slow) await onWire;
      },
    };
    const clock = new ManualClock(Date.now());
    const conditions = new ConditionsExporter({ nodeName: NODE, writer, clock, heartbeatMs: 600_000 });
    cleanups.push(() => conditions.stop());
    const hung = { ...storedFinding('bb00000000000001', clock.now(), 'open', 10), category: 'KernelHungTask' as const, title: 'Kernel task jbd2 blocked' };
    conditions.update([]);
    clock.advance(1);
    for (let i = 0; i < 100 && fake.requests.filter((r) => r.method === 'PATCH').length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    conditions.update([hung]);
    slow = false;
    release();
    for (let i = 0; i < 100 && condition(fake, 'KernelDeadlock')?.status !== 'True'; i++) {
      clock.advance(1000);
      await new Promise((r) => setTimeout(r, 10));
    }
    // Seconds later, not at the next heartbeat ten minutes on.
    expect(condition(fake, 'KernelDeadlock')).toMatchObject({ status: 'True', reason: 'TaskHung' });
  });

  it('does not send an event twice when the answer to its creation was lost', async () => {
    const { fake, writers } = await apiServer();
    let cut = 1;
    // The connection drops after the API server stored the event, before its answer arrived.
    const writer = {
      async createEvent(e: EventBody): Promise<void> {
        await writers.createEvent(e);
        if (cut-- > 0) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      },
    };
    const clock = new ManualClock(Date.now());
    const events = new EventsExporter({ nodeName: NODE, writer, clock });
    cleanups.push(() => events.stop());
    const f = storedFinding('aa00000000000001', clock.now(), 'open', 10);
    events.publish([{ ...f, category: 'KernelOOM', subject: { kind: 'Node', name: NODE } }]);
    for (let i = 0; i < 100 && events.depth() > 0; i++) {
      clock.advance(5000);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(events.depth()).toBe(0);
    expect(events.stats.sent).toBe(1);
    expect(ourEvents(fake)).toHaveLength(1);
  });
});

describe('a long-lived reader holds the WAL', () => {
  it('keeps writing and serving without waiting for it, and checkpoints back once it is gone', async () => {
    const kmsg = new FedKmsg();
    const { daemon, store, url } = await startDaemon([kmsg]);
    const wal = () => statSync(`${store.path}-wal`).size;
    const at = new Date().toISOString();
    store.commit(commitOf([storedFinding('before-0', Date.now(), 'open', 1000)]));

    // sqlite3 or a backup tool on the node: a read transaction on its own connection, left open.
    const reader = new Database(store.path, { readonly: true });
    cleanups.push(() => void reader.close());
    reader.prepare('BEGIN').run();
    expect(reader.prepare('SELECT count(*) AS n FROM findings').get()).toEqual({ n: 1 });

    const written: TrackedFinding[] = [];
    for (let i = 0; i < 150; i++) {
      const f = storedFinding(`held-${i % 40}`, Date.parse(at) + i, 'open', 1000);
      store.commit(commitOf([f]));
      written[i % 40] = f;
    }
    kmsg.diskErrors(['sdb']);
    expect(daemon.cycle()).toBe(1);
    const held = wal();
    // The checkpoint cannot pass the reader's snapshot: the WAL holds what was written meanwhile...
    expect(held).toBeGreaterThan(4 * 1024 * 1024);
    // ...but nothing waits for the reader: retention's checkpoint gives up at once instead of after the busy timeout.
    const started = Date.now();
    await store.prune();
    expect(Date.now() - started).toBeLessThan(2500);
    expect((await getJson(`${url}/healthz`)).status).toBe(200);
    // And nothing written twice: more commits add only their own frames.
    store.commit(commitOf([storedFinding('held-last', Date.now(), 'open', 1000)]));
    expect(wal()).toBeLessThan(held + 512 * 1024);

    // The reader goes away: the next write checkpoints and the WAL shrinks back.
    reader.prepare('COMMIT').run();
    reader.close();
    kmsg.diskErrors(['sdc']);
    expect(daemon.cycle()).toBe(1);
    expect(wal()).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(wal()).toBeLessThan(held / 4);

    // Nothing was lost: everything is in the database file, read through a connection of its own.
    const check = new Database(store.path, { readonly: true });
    cleanups.push(() => void check.close());
    const ids = (check.prepare('SELECT id FROM findings').all() as { id: string }[]).map((r) => r.id);
    expect(ids).toEqual(expect.arrayContaining(['before-0', 'held-last', ...written.map((f) => f.id)]));
    for (const f of written) expect(store.getFinding(f.id)?.evidence).toEqual(f.evidence);
    expect(store.listFindings({ status: 'open', limit: 100 }).items.map((f) => f.title)).toEqual(
      expect.arrayContaining(['Disk sdb is failing', 'Disk sdc is failing']),
    );
  });
});
