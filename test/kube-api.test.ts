import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readBundle } from '../daemon/collectors/bundle.js';
import { KubeApiCollector, type KubeApiCollectorOptions } from '../daemon/collectors/kube-api.js';
import { EventFilter } from '../daemon/collectors/kube/event-filter.js';
import type { KubeEvent, KubeNode, KubePod } from '../daemon/core/kube.js';
import type { Signal } from '../daemon/core/types.js';
import { FakeApiServer, type FakeApiServerOptions, type Obj } from './harness/fake-apiserver.js';
import { ManualClock } from '../daemon/core/runtime/clock.js';
import { createTestCa, type KeyPair, type TestCa } from './harness/tls.js';
import { until } from './harness/wait.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/kube/', import.meta.url));
const NODE = 'edge-node-1';
const silent = pino({ level: 'silent' });

let ca: TestCa;
let serverTls: KeyPair;
let dir: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(() => {
  ca = createTestCa('kube-api-test-ca');
  serverTls = ca.issue();
  dir = mkdtempSync(join(tmpdir(), 'nodesage-kube-api-'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Setup {
  api: FakeApiServer;
  collector: KubeApiCollector;
  signals: Signal[];
  kubeconfig: string;
}

async function setup(serverOpts: FakeApiServerOptions = {}, collectorOpts: Partial<KubeApiCollectorOptions> = {}, start = true): Promise<Setup> {
  const api = await FakeApiServer.create({ bundleDir: FIXTURE, ca, tls: serverTls, ...serverOpts });
  cleanups.push(() => api.close());
  const kubeconfig = api.writeKubeconfig(join(dir, `kubeconfig-${cleanups.length}.yaml`));
  const collector = new KubeApiCollector({
    nodeName: NODE,
    kubeconfigPath: kubeconfig,
    logger: silent,
    podsDebounceMs: 20,
    backoff: { initialMs: 20, maxMs: 100 },
    ...collectorOpts,
  });
  cleanups.push(() => collector.stop());
  const signals: Signal[] = [];
  if (start) await collector.start((batch) => signals.push(...batch));
  return { api, collector, signals, kubeconfig };
}

const byKey = <T extends { metadata: { namespace?: string; name?: string } }>(a: T, b: T) =>
  `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`);

function latestPods(signals: Signal[]): KubePod[] | undefined {
  const s = signals.filter((x): x is Extract<Signal, { type: 'pods' }> => x.type === 'pods').at(-1);
  return s?.pods;
}

function events(signals: Signal[]): KubeEvent[] {
  return signals.filter((x): x is Extract<Signal, { type: 'event' }> => x.type === 'event').map((s) => s.event);
}

/** A pod on another node, in a namespace this node also uses, with an event about it. */
function otherNodePod(): { pod: Obj; event: Obj } {
  const pod: Obj = {
    metadata: { name: 'checkout-6f9c7d8b5-zz9pq', namespace: 'shop', uid: '11111111-2222-4333-8444-555555555555' },
    spec: { nodeName: 'edge-node-2', containers: [{ name: 'checkout', image: 'registry.local:5000/shop/checkout:2.8.0' }] },
    status: { phase: 'Running' },
  };
  const event: Obj = {
    metadata: { name: 'checkout-6f9c7d8b5-zz9pq.182c9b0000000001', namespace: 'shop', uid: '66666666-7777-4888-9999-000000000001' },
    involvedObject: { kind: 'Pod', name: 'checkout-6f9c7d8b5-zz9pq', namespace: 'shop', uid: '11111111-2222-4333-8444-555555555555' },
    reason: 'Unhealthy',
    message: 'Readiness probe failed: HTTP probe failed with statuscode: 503',
    type: 'Warning',
    count: 2,
    firstTimestamp: '2025-03-14T07:58:00Z',
    lastTimestamp: '2025-03-14T07:59:00Z',
    source: { component: 'kubelet', host: 'edge-node-2' },
  };
  return { pod, event };
}

describe('KubeApiCollector against the fake API server', () => {
  it('emits this node’s pods, its Node and the events about them in wire form, equal to the bundle', async () => {
    const api = await FakeApiServer.create({ bundleDir: FIXTURE, ca, tls: serverTls });
    cleanups.push(() => api.close());
    // Noise the collector must not report: another node's pod and its event, an event about another node.
    const noise = otherNodePod();
    api.addPod(noise.pod);
    api.addEvent(noise.event);
    api.addEvent({
      metadata: { name: 'edge-node-2.182c9b0000000002', namespace: 'default' },
      involvedObject: { kind: 'Node', name: 'edge-node-2', uid: 'edge-node-2' },
      reason: 'NodeNotReady',
      message: 'Node edge-node-2 status is now: NodeNotReady',
      type: 'Normal',
      source: { component: 'node-controller' },
    });
    const collector = new KubeApiCollector({ nodeName: NODE, kubeconfigPath: api.writeKubeconfig(join(dir, 'kc-wire.yaml')), logger: silent });
    cleanups.push(() => collector.stop());
    const signals: Signal[] = [];
    await collector.start((batch) => signals.push(...batch));

    const bundle = await readBundle(FIXTURE);
    const bundlePods = bundle.signals.find((s): s is Extract<Signal, { type: 'pods' }> => s.type === 'pods')!.pods;
    const bundleNode = bundle.signals.find((s): s is Extract<Signal, { type: 'node' }> => s.type === 'node')!.node;
    const bundleEvents = bundle.signals.filter((s): s is Extract<Signal, { type: 'event' }> => s.type === 'event');

    expect([...latestPods(signals)!].sort(byKey)).toEqual([...bundlePods].sort(byKey));
    const nodes = signals.filter((s): s is Extract<Signal, { type: 'node' }> => s.type === 'node').map((s) => s.node);
    expect(nodes).toEqual([bundleNode as KubeNode]);

    const got = signals.filter((s): s is Extract<Signal, { type: 'event' }> => s.type === 'event');
    const uid = (s: { event: KubeEvent }) => s.event.metadata.uid ?? '';
    expect(got.map((s) => ({ at: s.at, event: s.event })).sort((a, b) => uid(a).localeCompare(uid(b)))).toEqual(
      bundleEvents.map((s) => ({ at: s.at, event: s.event })).sort((a, b) => uid(a).localeCompare(uid(b))),
    );
    // Wire form, not client-node models: microsecond MicroTime and explicit nulls survive.
    const scheduled = got.find((s) => s.event.reason === 'Scheduled')!.event;
    expect(scheduled.eventTime).toBe('2025-03-14T07:40:02.118473Z');
    expect(scheduled.firstTimestamp).toBeNull();
    expect(typeof latestPods(signals)![0]!.metadata.creationTimestamp).toBe('string');

    expect(collector.status()).toMatchObject({ name: 'kube-api', state: 'healthy', lastError: null });

    // What it asked the server: only this node's pods, this Node, this Node's events and
    // the pod events of the namespaces this node runs pods in — never all events of the cluster.
    const lists = api.requests.filter((r) => !r.watch);
    expect(lists.find((r) => r.path === '/api/v1/pods')?.query.fieldSelector).toBe(`spec.nodeName=${NODE}`);
    expect(lists.find((r) => r.path === '/api/v1/nodes')?.query.fieldSelector).toBe(`metadata.name=${NODE}`);
    expect(api.requests.filter((r) => r.path === '/api/v1/events').every((r) => r.query.fieldSelector === `involvedObject.kind=Node,involvedObject.name=${NODE}`)).toBe(true);
    const nsEventPaths = new Set(api.requests.filter((r) => /^\/api\/v1\/namespaces\/[^/]+\/events$/.test(r.path)).map((r) => r.path));
    expect([...nsEventPaths].sort()).toEqual(['/api/v1/namespaces/kube-system/events', '/api/v1/namespaces/monitoring/events', '/api/v1/namespaces/shop/events']);
    expect(api.requests.every((r) => r.status !== 401 && r.status !== 400)).toBe(true);
  });

  it('follows changes through the watch: a MODIFIED pod, a repeated event, a new namespace, a deleted pod', async () => {
    const { api, collector, signals } = await setup();
    await until(() => api.openWatches >= 6, 'all watches open');

    api.modifyPod('shop', 'checkout-6f9c7d8b5-q2xlm', (p) => {
      const cs = (p.status as { containerStatuses: { restartCount: number }[] }).containerStatuses[0]!;
      cs.restartCount = 8;
    });
    await until(() => latestPods(signals)?.find((p) => p.metadata.name === 'checkout-6f9c7d8b5-q2xlm')?.status?.containerStatuses?.[0]?.restartCount === 8, 'modified pod');
    expect(latestPods(signals)).toHaveLength(4);

    // An event about another node's pod in a watched namespace comes first; our repeat event after it.
    const noise = otherNodePod();
    api.addEvent(noise.event);
    api.modifyEvent('shop', 'checkout-6f9c7d8b5-q2xlm.182c98a1f5c3e7d1', (e) => {
      e.count = 32;
      e.lastTimestamp = '2025-03-14T08:02:41Z';
    });
    await until(() => events(signals).some((e) => e.count === 32), 'repeated event');
    const repeat = signals.find((s) => s.type === 'event' && s.event.count === 32);
    expect(repeat).toMatchObject({ type: 'event', at: '2025-03-14T08:02:41Z' });
    expect(events(signals).some((e) => e.involvedObject?.name === 'checkout-6f9c7d8b5-zz9pq')).toBe(false);

    // A pod in a namespace not seen before: its events are watched from then on.
    api.addPod({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'ledger-0', namespace: 'payments', uid: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee', creationTimestamp: '2025-03-14T08:03:00Z' },
      spec: { nodeName: NODE, containers: [{ name: 'ledger', image: 'registry.local:5000/payments/ledger:3.1.0' }] },
      status: { phase: 'Pending' },
    });
    await until(() => api.requests.some((r) => r.path === '/api/v1/namespaces/payments/events' && r.watch), 'payments event watch');
    api.addEvent({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'ledger-0.182c9b1111111111', namespace: 'payments', uid: 'bbbbbbbb-cccc-4ddd-8eee-ffffffffffff' },
      involvedObject: { kind: 'Pod', name: 'ledger-0', namespace: 'payments', uid: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee', fieldPath: 'spec.containers{ledger}' },
      reason: 'FailedMount',
      message: 'MountVolume.SetUp failed for volume "config" : configmap "ledger-config" not found',
      type: 'Warning',
      count: 1,
      firstTimestamp: '2025-03-14T08:03:05Z',
      lastTimestamp: '2025-03-14T08:03:05Z',
      source: { component: 'kubelet', host: NODE },
    });
    await until(() => events(signals).some((e) => e.reason === 'FailedMount'), 'event of the new pod');
    const mount = events(signals).find((e) => e.reason === 'FailedMount')!;
    expect(mount.metadata.resourceVersion).toMatch(/^\d+$/);
    expect(mount.kind).toBe('Event');

    api.deletePod('shop', 'cart-5d8f7c9b6-h4k2n');
    await until(() => latestPods(signals)?.length === 4 && !latestPods(signals)!.some((p) => p.metadata.name === 'cart-5d8f7c9b6-h4k2n'), 'pod deletion');

    api.modifyNode(NODE, (n) => {
      const ready = (n.status as { conditions: { type: string; status: string }[] }).conditions.find((c) => c.type === 'Ready')!;
      ready.status = 'Unknown';
    });
    await until(() => signals.some((s) => s.type === 'node' && s.node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'Unknown')), 'node change');
    expect(collector.status().state).toBe('healthy');
  });

  it('re-watches from the last (bookmarked) resourceVersion when the server ends a quiet watch, without relisting', async () => {
    const { api, collector, signals } = await setup({}, { watchTimeoutSeconds: 1 });
    await until(() => api.openWatches >= 6, 'watches open');
    // A change elsewhere moves the global resourceVersion; a bookmark tells the pods watch about it.
    api.addEvent({ metadata: { name: 'unrelated.1', namespace: 'other' }, involvedObject: { kind: 'Pod', name: 'x', namespace: 'other' }, reason: 'Pulled' });
    api.bookmark();
    const bookmarked = String(api.resourceVersion);
    const listsBefore = api.requests.filter((r) => !r.watch).length;
    const podWatches = () => api.requestsFor('/api/v1/pods').filter((r) => r.watch);
    await until(() => podWatches().length >= 2, 'the pods watch reopened after the server-side timeout', 5000);
    expect(podWatches()[0]!.query).toMatchObject({ allowWatchBookmarks: 'true', timeoutSeconds: '1', fieldSelector: `spec.nodeName=${NODE}` });
    expect(podWatches()[1]!.query.resourceVersion).toBe(bookmarked);
    expect(api.requests.filter((r) => !r.watch).length).toBe(listsBefore);
    expect(signals.some((s) => s.type === 'gap')).toBe(false);
    expect(collector.status()).toMatchObject({ state: 'healthy', detail: { retries: 0, relists: 0 } });
  });

  for (const goneAs of ['watch-error', 'http'] as const) {
    it(`relists after 410 Gone (${goneAs}) and loses no update made while disconnected`, async () => {
      const { api, collector, signals } = await setup({ goneAs });
      await until(() => api.openWatches >= 6, 'watches open');
      const before = collector.status().detail!;

      await api.stop();
      api.modifyPod('shop', 'checkout-6f9c7d8b5-q2xlm', (p) => {
        (p.status as { containerStatuses: { restartCount: number }[] }).containerStatuses[0]!.restartCount = 9;
      });
      api.addEvent({
        metadata: { name: 'checkout-6f9c7d8b5-q2xlm.182c9b2222222222', namespace: 'shop', uid: 'cccccccc-dddd-4eee-8fff-000000000000' },
        involvedObject: { kind: 'Pod', name: 'checkout-6f9c7d8b5-q2xlm', namespace: 'shop', uid: '7f3a9c1e-5b2d-4e8f-a6c0-1d9b3e5f7a2c' },
        reason: 'Killing',
        message: 'Container checkout failed liveness probe, will be restarted',
        type: 'Normal',
        count: 1,
        firstTimestamp: '2025-03-14T08:05:00Z',
        lastTimestamp: '2025-03-14T08:05:00Z',
        source: { component: 'kubelet', host: NODE },
      });
      api.expireResourceVersions();
      await api.start();

      await until(() => latestPods(signals)?.find((p) => p.metadata.name === 'checkout-6f9c7d8b5-q2xlm')?.status?.containerStatuses?.[0]?.restartCount === 9, 'update made during the outage');
      await until(() => events(signals).some((e) => e.reason === 'Killing'), 'event made during the outage');
      await until(() => collector.status().state === 'healthy', 'healthy again');
      const after = collector.status().detail!;
      expect(after.relists).toBeGreaterThan(before.relists as number);
      // The server really answered 410 to a watch from the old resourceVersion, then served a fresh list.
      const podReqs = api.requestsFor('/api/v1/pods');
      const goneIdx = podReqs.findIndex((r) => r.watch && r.query.resourceVersion !== '' && Number(r.query.resourceVersion) < api.resourceVersion && (goneAs === 'http' ? r.status === 410 : r.status === 200));
      expect(goneIdx).toBeGreaterThan(0);
      expect(podReqs.slice(goneIdx + 1).some((r) => !r.watch && r.status === 200)).toBe(true);
      // The relist is reported as a gap: what happened in between is known only by its end state.
      const gaps = () => signals.filter((s): s is Extract<Signal, { type: 'gap' }> => s.type === 'gap');
      await until(() => gaps().some((g) => /^(\S+, )*pods[ ,]/.test(g.detail)), 'gap signal for pods');
      expect(gaps().every((g) => g.source === 'kube-api')).toBe(true);
      expect(gaps().find((g) => /^(\S+, )*pods[ ,]/.test(g.detail))!.detail).toMatch(/ relisted after the watch expired \(410 Gone\): changes since \d{4}-\d\d-\d\dT[\d:.]+Z are seen only as their end state/);
      // No event doubled by the relist: each (uid, resourceVersion) once.
      const seen = events(signals).map((e) => `${e.metadata.uid}@${e.metadata.resourceVersion}`);
      expect(new Set(seen).size).toBe(seen.length);
    });
  }

  it('keeps retrying with bounded backoff through a simulated 6 h outage from start, then resumes the watch', async () => {
    const clock = new ManualClock(Date.parse('2025-03-14T08:00:00Z'));
    const { api, collector, signals } = await setup({}, { clock, backoff: { initialMs: 1000, maxMs: 30_000, jitter: 0.2 } }, false);
    await api.stop();
    const t0 = clock.now();
    const wall0 = performance.now();
    await collector.start((batch) => signals.push(...batch));

    const down = collector.status();
    expect(down.state).toBe('stale');
    expect(down.lastError).toMatch(/cannot reach the API server https:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    expect(down.detail).toMatchObject({ retries: 3, waitingForServer: 2 }); // pods, node, node events: one probes, two wait
    expect(signals).toEqual([]);

    const sixHours = 6 * 3600_000;
    while (clock.now() - t0 < sixHours) {
      await clock.waitForSleepers(1);
      clock.advanceToNext();
    }
    await clock.waitForSleepers(1);
    const elapsed = clock.now() - t0;
    const status = collector.status();
    const retries = status.detail!.retries as number;
    // One attempt per backoff period for the whole source: each wait is at least maxMs·(1 − jitter)
    // once capped (~6 doublings to get there), plus the three first attempts at start.
    expect(retries).toBeLessThanOrEqual(3 + Math.ceil(elapsed / (30_000 * 0.8)) + 6);
    expect(retries).toBeGreaterThanOrEqual(Math.floor(elapsed / 30_000)); // and it never gave up
    expect(status.state).toBe('stale');
    // Each retry after a failure is a restart of a reader, counted as for every other source.
    expect(status.detail!.restarts).toBeGreaterThanOrEqual(retries - 3);
    expect(status.detail!.failingSince).toBe('2025-03-14T08:00:00.000Z');
    expect(status.lastSignalAt).toBeNull();
    const wallMs = performance.now() - wall0;

    await api.start();
    clock.advanceToNext();
    await until(() => collector.status().state === 'healthy', 'healthy after the outage');
    await until(() => latestPods(signals)?.length === 4, 'pods after the outage');
    await until(() => api.openWatches >= 6, 'watches reopened');
    api.modifyPod('monitoring', 'nodesage-k8r2t', (p) => {
      (p.metadata.labels as Record<string, string>)['nodesage.io/probe'] = 'after-outage';
    });
    await until(() => latestPods(signals)?.some((p) => p.metadata.labels?.['nodesage.io/probe'] === 'after-outage') === true, 'watch resumed');
    console.info(`6 h outage: ${retries} connection attempts in ${Math.round(wallMs)} ms of real time`);
  });

  it('reports a rejected token as failing with the reason in plain words', async () => {
    const api = await FakeApiServer.create({ bundleDir: FIXTURE, ca, tls: serverTls });
    cleanups.push(() => api.close());
    const collector = new KubeApiCollector({
      nodeName: NODE,
      kubeconfigPath: api.writeKubeconfig(join(dir, 'kc-badtoken.yaml'), { token: 'expired-token' }),
      logger: silent,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    cleanups.push(() => collector.stop());
    const signals: Signal[] = [];
    await collector.start((b) => signals.push(...b));
    const st = collector.status();
    expect(st.state).toBe('failing');
    expect(st.lastError).toMatch(/rejected the service-account token \(401 Unauthorized\)/);
    expect(signals).toEqual([]);
  });

  it('names the missing RBAC permission when events are forbidden, and still delivers pods', async () => {
    const api = await FakeApiServer.create({ bundleDir: FIXTURE, ca, tls: serverTls });
    cleanups.push(() => api.close());
    api.forbid('events');
    const collector = new KubeApiCollector({
      nodeName: NODE,
      kubeconfigPath: api.writeKubeconfig(join(dir, 'kc-forbid.yaml')),
      logger: silent,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    cleanups.push(() => collector.stop());
    const signals: Signal[] = [];
    await collector.start((b) => signals.push(...b));
    const st = collector.status();
    expect(st.state).toBe('failing');
    expect(st.lastError).toMatch(/403 Forbidden\): the service account needs RBAC list and watch on events/);
    expect(st.lastError).toContain('cannot list resource "events"');
    expect(latestPods(signals)).toHaveLength(4);
    expect(signals.some((s) => s.type === 'node')).toBe(true);
    expect(events(signals)).toEqual([]);
  });

  it('fails clearly when the kubeconfig file does not exist', async () => {
    const collector = new KubeApiCollector({ nodeName: NODE, kubeconfigPath: join(dir, 'missing-kubeconfig.yaml'), logger: silent });
    cleanups.push(() => collector.stop());
    await collector.start(() => undefined);
    expect(collector.status()).toMatchObject({ state: 'failing', lastError: expect.stringContaining('missing-kubeconfig.yaml cannot be read (ENOENT)') });
  });
});

describe('EventFilter (which events become signals)', () => {
  const pod = (name: string, uid: string): KubePod => ({ metadata: { name, namespace: 'shop', uid }, spec: { nodeName: NODE } });
  const ev = (name: string, podUid: string, rv: string, podName = 'checkout'): KubeEvent => ({
    metadata: { name, namespace: 'shop', uid: `ev-${name}`, resourceVersion: rv },
    involvedObject: { kind: 'Pod', name: podName, namespace: 'shop', uid: podUid },
    reason: 'BackOff',
  });

  it('emits an event once per resourceVersion, again when it repeats', () => {
    const f = new EventFilter();
    f.setPods([pod('checkout', 'u1')]);
    expect(f.acceptPodEvent(ev('a', 'u1', '10'))).toHaveLength(1);
    expect(f.acceptPodEvent(ev('a', 'u1', '10'))).toHaveLength(0); // the same event seen again by a relist
    expect(f.acceptPodEvent(ev('a', 'u1', '12'))).toHaveLength(1); // count went up
  });

  it('holds an event that beats its pod and emits it when the pod appears; other nodes’ pods never', () => {
    const f = new EventFilter({ maxPending: 3 });
    f.setPods([]);
    expect(f.acceptPodEvent(ev('early', 'u2', '5', 'cart'))).toEqual([]);
    for (let i = 0; i < 5; i++) f.acceptPodEvent(ev(`other-${i}`, `elsewhere-${i}`, '6'));
    // Bounded: only the three newest unmatched events are kept, so the early one fell out.
    expect(f.dropped).toBe(3);
    expect(f.setPods([pod('cart', 'u2')])).toEqual([]);
    f.acceptPodEvent(ev('early-2', 'u3', '7', 'ledger'));
    expect(f.setPods([pod('cart', 'u2'), pod('ledger', 'u3')]).map((e) => e.metadata.name)).toEqual(['early-2']);
  });

  it('keeps its memory of emitted events bounded', () => {
    const f = new EventFilter({ maxTracked: 16 });
    f.setPods([pod('checkout', 'u1')]);
    for (let i = 0; i < 1000; i++) f.acceptPodEvent(ev(`e${i}`, 'u1', String(i)));
    expect(f.tracked).toBe(16);
  });
});
