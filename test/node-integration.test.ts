/**
 * The daemon as a process on a "node": KUBECONFIG pointing at the loopback
 * fake API server, kubeletUrl at the fake kubelet, hostRoot at a fixture root
 * with CRI logs and a kmsg file. Everything real except the servers' data.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Status } from '../daemon/core/contract.js';
import type { Finding, SourceStatus } from '../daemon/core/types.js';
import { ACCESS_ROLES } from '../daemon/api/auth/policy.js';
import { FakeApiServer } from './harness/fake-apiserver.js';
import { FakeKubelet } from './harness/fake-kubelet.js';
import { type DaemonProcess, getJson, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';
import { ContainerLogDir, appendKmsg, kmsgRecord, makeHostRoot, writeBoot } from './helpers/host-root.js';

const BUNDLE = join(import.meta.dirname, 'fixtures/kube');
const NODE = 'edge-node-1';
const READER_TOKEN = 'site-operator-token';
const asReader = { headers: { authorization: `Bearer ${READER_TOKEN}` } };

let daemon: DaemonProcess | undefined;
const servers: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await daemon?.kill('SIGKILL');
  daemon = undefined;
  for (const s of servers.splice(0)) await s.stop();
});

async function node(opts: { apiDown?: boolean } = {}) {
  // A site operator's token, bound to the shipped reader role the way `kubectl create clusterrolebinding` would.
  const reader = ACCESS_ROLES.find((r) => r.name === 'nodesage-reader')!;
  const api = await FakeApiServer.create({
    bundleDir: BUNDLE,
    users: { [READER_TOKEN]: { username: 'site-operator' } },
    rules: reader.rules.map((r) => ({ subject: 'site-operator', verbs: r.verbs, nonResourceURLs: r.nonResourceURLs })),
  });
  const kubelet = await FakeKubelet.create({ bundleDir: BUNDLE });
  servers.push(api, kubelet);
  if (opts.apiDown) await api.stop();
  const dir = tempDir();
  const kubeconfig = api.writeKubeconfig(join(dir, 'kubeconfig'));
  writeFileSync(join(dir, 'kubelet-token'), 'fake-kubelet-token\n');
  writeFileSync(join(dir, 'kubelet-ca.crt'), kubelet.ca.certPem);
  const host = makeHostRoot();
  const logs = new ContainerLogDir(host.root, { namespace: 'shop', pod: 'checkout-6f9c7d8b5-q2xlm', uid: '7f3a9c1e-5b2d-4e8f-a6c0-1d9b3e5f7a2c', container: 'checkout' });
  logs.write(20);
  writeBoot(host.root, '5b8f0c2a-3d4e-4f60-9a1b-2c3d4e5f6a7b', Math.floor(Date.now() / 1000) - 3600);
  appendKmsg(host.root, [
    kmsgRecord(6, 1, 1_000_000, 'Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)'),
    kmsgRecord(6, 2, 2_000_000, 'EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.'),
  ]);
  const env = {
    KUBECONFIG: kubeconfig,
    NODE_NAME: NODE,
    NODESAGE_KUBELET_URL: kubelet.url,
    NODESAGE_KUBELET_TOKEN_FILE: join(dir, 'kubelet-token'),
    NODESAGE_KUBELET_CA_FILE: join(dir, 'kubelet-ca.crt'),
    NODESAGE_KUBELET_INTERVAL_SECONDS: '0.5',
    NODESAGE_HOST_ROOT: host.root,
    NODESAGE_DATA_DIR: join(dir, 'data'),
    NODESAGE_DETECT_INTERVAL_SECONDS: '0.3',
  };
  return { api, kubelet, env, logs };
}

function source(s: Status, name: string): SourceStatus {
  const found = s.sources.find((x) => x.name === name);
  if (!found) throw new Error(`no source ${name} in ${JSON.stringify(s.sources.map((x) => x.name))}`);
  return found;
}

describe('daemon on a node (fake API server, fake kubelet, fixture host root)', () => {
  it('shows kubelet, kube-api, pod-logs and kmsg healthy with signals, and finds the pod problems', async () => {
    const n = await node();
    daemon = await startDaemon({ env: n.env });
    const status = await waitFor(async () => {
      const s = (await getJson<Status>(`${daemon!.url}/v1/status`, asReader)).body;
      const ok = ['kubelet', 'kube-api', 'pod-logs', 'kmsg'].every((name) => {
        const src = s.sources.find((x) => x.name === name);
        return src?.state === 'healthy' && src.signals > 0;
      });
      return ok ? s : null;
    }, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\nstdout:\n${daemon!.stdout().slice(-3000)}`);
    });
    expect(status.mode).toBe('kubeconfig');
    expect(status.nodeName).toBe(NODE);
    // The kubelet was asked directly, with the bearer token, never through the API server proxy.
    expect(n.kubelet.requests.map((r) => r.path)).toEqual(expect.arrayContaining(['/stats/summary', '/healthz']));
    expect(n.api.requests.some((r) => r.path.includes('/proxy'))).toBe(false);
    const findings = await waitFor(async () => {
      const r = await getJson<{ items: Finding[] }>(`${daemon!.url}/v1/findings?status=open`, asReader);
      const cats = new Set(r.body.items.map((f) => f.category));
      return cats.has('CrashLoop') && cats.has('ImagePull') ? r.body.items : null;
    }, 30_000);
    const crash = findings.find((f) => f.category === 'CrashLoop')!;
    expect(crash.subject).toMatchObject({ namespace: 'shop', name: 'checkout-6f9c7d8b5-q2xlm' });
    // Callers were checked with the API server (TokenReview, SubjectAccessReview); without a token nobody is served.
    expect(n.api.requestsFor('/apis/authentication.k8s.io/v1/tokenreviews').length).toBeGreaterThan(0);
    expect((await getJson(`${daemon.url}/v1/findings`)).status).toBe(401);
    // Exporters are off by default: nothing was written to the API server.
    expect(n.api.requests.filter((r) => r.method !== 'GET' && !r.path.startsWith('/apis/authentication.k8s.io/') && !r.path.startsWith('/apis/authorization.k8s.io/'))).toEqual([]);
  });

  it('keeps logs, kubelet and kmsg flowing while the API server is down, and resumes the watch when it returns', async () => {
    const n = await node({ apiDown: true });
    daemon = await startDaemon({ env: n.env });
    // No API server to check tokens with: people on the node use the socket, which needs none.
    const local = { socketPath: join(n.env.NODESAGE_DATA_DIR, 'nodesage.sock') };
    const down = await waitFor(async () => {
      const s = (await getJson<Status>('/v1/status', local)).body;
      const others = ['kubelet', 'pod-logs', 'kmsg'].every((name) => source(s, name).state === 'healthy' && source(s, name).signals > 0);
      return others && source(s, 'kube-api').state !== 'healthy' ? s : null;
    }, 30_000);
    expect(source(down, 'kube-api').state).toMatch(/stale|failing/);
    expect(source(down, 'kube-api').lastError).toBeTruthy();
    expect((await getJson(`${daemon.url}/readyz`)).status).toBe(200);
    // Over TCP an unseen token cannot be checked: 503, never served.
    expect((await getJson(`${daemon.url}/v1/status`, asReader)).status).toBe(503);
    // New log lines keep arriving while the API server is away.
    const before = source(down, 'pod-logs').signals;
    n.logs.write(5);
    await waitFor(async () => source((await getJson<Status>('/v1/status', local)).body, 'pod-logs').signals > before, 15_000);

    await n.api.start();
    const up = await waitFor(async () => {
      const s = (await getJson<Status>('/v1/status', local)).body;
      return source(s, 'kube-api').state === 'healthy' && source(s, 'kube-api').signals > 0 ? s : null;
    }, 60_000);
    expect(source(up, 'kube-api').lastError).toBeNull();
    expect(n.api.openWatches).toBeGreaterThan(0);
  });
});
