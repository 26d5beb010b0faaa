import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readBundle } from '../daemon/collectors/bundle.js';
import { noCheckpoints } from '../daemon/collectors/checkpoints.js';
import { KubeletCollector, type KubeletCollectorOptions, kubeconfigKubeletCredentials, kubeletUrlFor } from '../daemon/collectors/kubelet.js';
import { loadConfig } from '../daemon/config.js';
import type { Signal } from '../daemon/core/types.js';
import { createCollectors } from '../daemon/main.js';
import { FakeKubelet } from './harness/fake-kubelet.js';
import { ManualClock } from '../daemon/core/runtime/clock.js';
import { createTestCa, type KeyPair, type TestCa } from './harness/tls.js';
import { until } from './harness/wait.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/kube/', import.meta.url));
const TOKEN = 'fake-kubelet-token';
const silent = pino({ level: 'silent' });

let ca: TestCa;
let otherCa: TestCa;
let kubeletTls: KeyPair;
let otherTls: KeyPair;
let dir: string;
let caFile: string;
let tokenFile: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(() => {
  ca = createTestCa('kubelet-test-ca');
  otherCa = createTestCa('some-other-ca');
  kubeletTls = ca.issue();
  otherTls = otherCa.issue();
  dir = mkdtempSync(join(tmpdir(), 'nodesage-kubelet-'));
  caFile = join(dir, 'ca.crt');
  writeFileSync(caFile, ca.certPem);
  tokenFile = join(dir, 'token');
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function setup(opts: Partial<KubeletCollectorOptions> = {}, token = TOKEN) {
  writeFileSync(tokenFile, `${token}\n`);
  const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca, tls: kubeletTls, tokens: [TOKEN] });
  cleanups.push(() => kubelet.stop());
  const collector = new KubeletCollector({
    kubeletUrl: kubelet.url,
    tokenFile,
    caFile,
    logger: silent,
    intervalMs: 50,
    backoff: { initialMs: 20, maxMs: 100 },
    ...opts,
  });
  cleanups.push(() => collector.stop());
  const signals: Signal[] = [];
  await collector.start((b) => signals.push(...b));
  return { kubelet, collector, signals };
}

const ofType = <T extends Signal['type']>(signals: Signal[], type: T) => signals.filter((s): s is Extract<Signal, { type: T }> => s.type === type);

describe('KubeletCollector against the fake kubelet', () => {
  it('emits stats/summary, pods and healthz equal to the bundle, authenticating with the token file', async () => {
    const { kubelet, collector, signals } = await setup({ emitPods: true });
    const bundle = await readBundle(FIXTURE);
    const want = <T extends Signal['type']>(t: T) => ofType(bundle.signals, t)[0]!;

    expect(ofType(signals, 'statsSummary')[0]!.summary).toEqual(want('statsSummary').summary);
    // The kubelet lists pods without apiVersion/kind; the collector restores them, so they equal the bundle's.
    expect(ofType(signals, 'pods')[0]!.pods).toEqual(want('pods').pods);
    expect(ofType(signals, 'kubeletHealth')[0]).toMatchObject({ ok: true, body: 'ok' });
    expect(collector.status()).toMatchObject({ name: 'kubelet', state: 'healthy', lastError: null, detail: { insecureSkipTlsVerify: false } });

    // Only the three kubelet paths, always with the bearer token; never a proxy path.
    expect(new Set(kubelet.requests.map((r) => r.path))).toEqual(new Set(['/stats/summary', '/pods', '/healthz']));
    expect(kubelet.requests.every((r) => r.authorization === `Bearer ${TOKEN}` && r.status === 200)).toBe(true);

    // It keeps polling at the interval.
    await until(() => ofType(signals, 'statsSummary').length >= 3, 'three polls');
  });

  it('does not ask for /pods unless it is the pods source', async () => {
    const { kubelet, signals } = await setup();
    expect(ofType(signals, 'pods')).toEqual([]);
    expect(ofType(signals, 'statsSummary')).toHaveLength(1);
    expect(kubelet.requests.some((r) => r.path === '/pods')).toBe(false);
  });

  it('reports a failing healthz as a kubeletHealth signal, not as a source error', async () => {
    const { kubelet, collector, signals } = await setup();
    const body = '[+]ping ok\n[+]log ok\n[-]syncloop failed: reason withheld\nhealthz check failed';
    kubelet.setHealthz(body);
    await until(() => ofType(signals, 'kubeletHealth').some((s) => !s.ok), 'failing healthz');
    expect(ofType(signals, 'kubeletHealth').find((s) => !s.ok)).toMatchObject({ ok: false, body });
    expect(collector.status().state).toBe('healthy');
  });

  it('rejects a kubelet whose certificate another CA signed, and says how to fix it', async () => {
    writeFileSync(tokenFile, TOKEN);
    const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca: otherCa, tls: otherTls, tokens: [TOKEN] });
    cleanups.push(() => kubelet.stop());
    const collector = new KubeletCollector({ kubeletUrl: kubelet.url, tokenFile, caFile, logger: silent, intervalMs: 50 });
    cleanups.push(() => collector.stop());
    const signals: Signal[] = [];
    await collector.start((b) => signals.push(...b));
    const st = collector.status();
    expect(st.state).toBe('failing');
    expect(st.lastError).toMatch(/TLS verification of the kubelet at https:\/\/127\.0\.0\.1:\d+ failed \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    expect(st.lastError).toContain(caFile);
    expect(signals).toEqual([]);
    // The handshake failed before any HTTP request reached the kubelet: the token was never sent.
    expect(kubelet.requests).toEqual([]);
  });

  it('can skip TLS verification when told to, and warns about it at every start', async () => {
    writeFileSync(tokenFile, TOKEN);
    const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca: otherCa, tls: otherTls, tokens: [TOKEN] });
    cleanups.push(() => kubelet.stop());
    const lines: { level: number; msg: string }[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _enc, cb) {
          lines.push(JSON.parse(String(chunk)));
          cb();
        },
      }),
    );
    const collector = new KubeletCollector({ kubeletUrl: kubelet.url, tokenFile, caFile: join(dir, 'absent-ca.crt'), insecureSkipTlsVerify: true, logger, intervalMs: 50 });
    cleanups.push(() => collector.stop());
    const signals: Signal[] = [];
    await collector.start((b) => signals.push(...b));
    expect(collector.status()).toMatchObject({ state: 'healthy', detail: { insecureSkipTlsVerify: true } });
    expect(ofType(signals, 'statsSummary')).toHaveLength(1);
    await collector.stop();
    await collector.start((b) => signals.push(...b));
    const warnings = lines.filter((l) => l.level === 40 && /TLS verification of the kubelet is OFF/.test(l.msg));
    expect(warnings).toHaveLength(2);
  });

  it('goes failing on 401 with the token named, and recovers when the rotated token file is right', async () => {
    const { collector, signals } = await setup({}, 'stale-projected-token');
    const st = collector.status();
    expect(st.state).toBe('failing');
    expect(st.lastError).toContain('rejected the service-account token (401 Unauthorized) on GET /stats/summary');
    expect(st.lastError).toContain(tokenFile);
    expect(signals).toEqual([]);

    // The kubelet rotates projected tokens by swapping the file; the collector picks up the new one.
    writeFileSync(tokenFile, TOKEN);
    await until(() => collector.status().state === 'healthy', 'recovery after token rotation');
    expect(ofType(signals, 'statsSummary').length).toBeGreaterThan(0);
    expect(collector.status().detail).toMatchObject({ tokenReloads: 1 });
  });

  it('names the missing RBAC verb on 403', async () => {
    writeFileSync(tokenFile, TOKEN);
    const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca, tls: kubeletTls, tokens: [TOKEN] });
    cleanups.push(() => kubelet.stop());
    kubelet.forbid('/stats/summary');
    const collector = new KubeletCollector({ kubeletUrl: kubelet.url, tokenFile, caFile, logger: silent, intervalMs: 50, emitPods: true });
    cleanups.push(() => collector.stop());
    const signals: Signal[] = [];
    await collector.start((b) => signals.push(...b));
    const st = collector.status();
    expect(st.state).toBe('failing');
    expect(st.lastError).toContain('the kubelet refused GET /stats/summary (403 Forbidden): the service account needs RBAC get on nodes/stats');
    expect(st.lastError).toContain('subresource=stats');
    // The paths that are allowed still deliver.
    expect(ofType(signals, 'pods')).toHaveLength(1);
    expect(ofType(signals, 'kubeletHealth')).toHaveLength(1);
  });

  it('keeps polling stats when /healthz is forbidden (older kubelets want nodes/proxy for it) and says so', async () => {
    writeFileSync(tokenFile, TOKEN);
    const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca, tls: kubeletTls, tokens: [TOKEN] });
    cleanups.push(() => kubelet.stop());
    kubelet.forbid('/healthz');
    const collector = new KubeletCollector({ kubeletUrl: kubelet.url, tokenFile, caFile, logger: silent, intervalMs: 30 });
    cleanups.push(() => collector.stop());
    const signals: Signal[] = [];
    await collector.start((b) => signals.push(...b));
    await until(() => ofType(signals, 'statsSummary').length >= 3, 'three polls');
    expect(collector.status()).toMatchObject({ state: 'healthy', lastError: null, detail: { healthz: 'forbidden: needs RBAC get on nodes/healthz' } });
    expect(ofType(signals, 'kubeletHealth')).toEqual([]);
    // Asked once, not on every poll.
    expect(kubelet.requests.filter((r) => r.path === '/healthz')).toHaveLength(1);
  });

  it('says the kubelet is unreachable, retries with bounded backoff for an hour, and recovers', async () => {
    writeFileSync(tokenFile, TOKEN);
    const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca, tls: kubeletTls, tokens: [TOKEN] });
    cleanups.push(() => kubelet.stop());
    await kubelet.stop();
    const clock = new ManualClock();
    const collector = new KubeletCollector({
      kubeletUrl: kubelet.url,
      tokenFile,
      caFile,
      logger: silent,
      clock,
      intervalMs: 30_000,
      backoff: { initialMs: 1000, maxMs: 120_000, jitter: 0.2 },
    });
    cleanups.push(() => collector.stop());
    const signals: Signal[] = [];
    await collector.start((b) => signals.push(...b));
    expect(collector.status()).toMatchObject({ state: 'stale', lastError: expect.stringMatching(/cannot reach the kubelet at https:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/) });

    const t0 = clock.now();
    while (clock.now() - t0 < 3600_000) {
      await clock.waitForSleepers(1);
      clock.advanceToNext();
    }
    await clock.waitForSleepers(1);
    const polls = collector.status().detail!.polls as number;
    // Capped at 120 s minus at most 20 % jitter, after ~7 doublings.
    expect(polls).toBeLessThanOrEqual(Math.ceil(3600_000 / (120_000 * 0.8)) + 9);
    expect(polls).toBeGreaterThanOrEqual(30);
    expect(collector.status().state).toBe('stale');

    await kubelet.start();
    clock.advanceToNext();
    await until(() => collector.status().state === 'healthy', 'kubelet back');
    expect(ofType(signals, 'statsSummary')).toHaveLength(1);
  });

  it('times out a kubelet that does not answer', async () => {
    const { kubelet, collector } = await setup({ requestTimeoutMs: 100 });
    kubelet.hang(2000);
    await until(() => collector.status().state === 'stale', 'timeout');
    expect(collector.status().lastError).toMatch(/did not answer GET \/(stats\/summary|healthz) within 100 ms/);
  });

  it('builds the default URL from the node IP and refuses plain http', () => {
    expect(kubeletUrlFor('192.168.40.21')).toBe('https://192.168.40.21:10250');
    expect(kubeletUrlFor('fd00::21')).toBe('https://[fd00::21]:10250');
    expect(() => new KubeletCollector({ kubeletUrl: 'http://192.168.40.21:10255' })).toThrow(expect.objectContaining({ code: 'KUBE_SOURCE_CONFIG' }));
  });
});

/** A kubeconfig whose cluster CA is `caPem` and whose user is `user` (token or client certificate data). */
function writeKubeconfig(name: string, caPem: string, user: Record<string, string>): string {
  const path = join(dir, name);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'edge', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: 'nodesage', user }],
    contexts: [{ name: 'edge', context: { cluster: 'edge', user: 'nodesage' } }],
    'current-context': 'edge',
  };
  writeFileSync(path, JSON.stringify(config));
  return path;
}

describe('KubeletCollector in kubeconfig mode (no service-account token)', () => {
  const absent = () => ({ tokenFile: join(dir, 'no-such-token'), caFile: join(dir, 'no-such-ca.crt') });

  async function run(kubelet: FakeKubelet, kubeconfig: string | null) {
    const collector = new KubeletCollector({
      kubeletUrl: kubelet.url,
      ...absent(),
      ...(kubeconfig ? { fallbackCredentials: () => kubeconfigKubeletCredentials(kubeconfig) } : {}),
      logger: silent,
      intervalMs: 50,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    cleanups.push(() => collector.stop());
    const signals: Signal[] = [];
    await collector.start((b) => signals.push(...b));
    return { collector, signals };
  }

  it("authenticates with the kubeconfig user's token and trusts the kubeconfig's CA", async () => {
    const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca, tls: kubeletTls, tokens: ['kubeconfig-user-token'] });
    cleanups.push(() => kubelet.stop());
    const kubeconfig = writeKubeconfig('token.kubeconfig', ca.certPem, { token: 'kubeconfig-user-token' });
    const { collector, signals } = await run(kubelet, kubeconfig);
    expect(ofType(signals, 'statsSummary')).toHaveLength(1);
    expect(collector.status()).toMatchObject({ state: 'healthy', lastError: null, detail: { credentials: `kubeconfig ${kubeconfig} (user nodesage)` } });
    expect(kubelet.requests.length).toBeGreaterThan(0);
    expect(kubelet.requests.every((r) => r.authorization === 'Bearer kubeconfig-user-token' && r.status === 200)).toBe(true);
  });

  it("authenticates with the kubeconfig user's client certificate when the kubelet takes no token", async () => {
    const clientCa = createTestCa('kubelet-client-ca');
    const client = clientCa.issueClient('nodesage', 'nodesage:readers');
    const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca, tls: kubeletTls, tokens: [], clientCa });
    cleanups.push(() => kubelet.stop());
    const kubeconfig = writeKubeconfig('cert.kubeconfig', ca.certPem, {
      'client-certificate-data': Buffer.from(client.certPem).toString('base64'),
      'client-key-data': Buffer.from(client.keyPem).toString('base64'),
    });
    const { collector, signals } = await run(kubelet, kubeconfig);
    expect(ofType(signals, 'kubeletHealth')[0]).toMatchObject({ ok: true });
    expect(collector.status()).toMatchObject({ state: 'healthy', lastError: null });
    expect(kubelet.requests.every((r) => r.authorization === undefined && r.clientCert === 'nodesage' && r.status === 200)).toBe(true);
  });

  it('says which credentials the kubelet refused, and without a kubeconfig names the missing token file', async () => {
    const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca, tls: kubeletTls, tokens: ['the-right-one'] });
    cleanups.push(() => kubelet.stop());
    const kubeconfig = writeKubeconfig('wrong.kubeconfig', ca.certPem, { token: 'a-wrong-one' });
    const refused = await run(kubelet, kubeconfig);
    expect(refused.collector.status()).toMatchObject({ state: 'failing' });
    expect(refused.collector.status().lastError).toContain(`the kubelet rejected the credentials of kubeconfig ${kubeconfig} (user nodesage) (401 Unauthorized)`);
    await refused.collector.stop();

    const none = await run(kubelet, null);
    expect(none.collector.status()).toMatchObject({ state: 'failing' });
    expect(none.collector.status().lastError).toContain(`service-account token file ${join(dir, 'no-such-token')} cannot be read (ENOENT)`);
  });
});

describe('createCollectors in kubeconfig mode', () => {
  it('wires the kubeconfig user into the kubelet source when no service-account token exists', async () => {
    const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca, tls: kubeletTls, tokens: ['wired-token'] });
    cleanups.push(() => kubelet.stop());
    const kubeconfig = writeKubeconfig('wired.kubeconfig', ca.certPem, { token: 'wired-token' });
    const config = loadConfig({
      env: {
        KUBECONFIG: kubeconfig,
        NODE_NAME: 'edge-node-1',
        NODESAGE_KUBELET_URL: kubelet.url,
        NODESAGE_KUBELET_TOKEN_FILE: join(dir, 'no-such-token'),
        NODESAGE_KUBELET_CA_FILE: join(dir, 'no-such-ca.crt'),
      },
      cwd: dir,
      serviceAccountDir: join(dir, 'no-sa'),
    });
    expect(config.mode).toBe('kubeconfig');
    const { collectors } = await createCollectors({ ...config, sources: { host: false, podLogs: false, journald: false, kmsg: false, kubelet: true, kubeApi: false } }, silent, noCheckpoints);
    expect(collectors.map((c) => c.name)).toEqual(['kubelet']);
    const source = collectors[0]!;
    cleanups.push(() => source.stop());
    const signals: Signal[] = [];
    await source.start((b) => signals.push(...b));
    expect(ofType(signals, 'statsSummary')).toHaveLength(1);
    expect(source.status()).toMatchObject({ state: 'healthy', detail: { credentials: `kubeconfig ${kubeconfig} (user nodesage)` } });
  });
});
