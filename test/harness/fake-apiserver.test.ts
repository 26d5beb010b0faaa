import https from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from './fake-apiserver.js';
import { FakeKubelet } from './fake-kubelet.js';
import { createTestCa, type KeyPair, type TestCa } from './tls.js';
import { until } from './wait.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/kube/', import.meta.url));
let ca: TestCa;
let serverTls: KeyPair;
let dir: string;
const open: { close(): Promise<void> | void }[] = [];

beforeAll(() => {
  ca = createTestCa('harness-test-ca');
  // One certificate for every server in this file: issuing costs two openssl runs.
  serverTls = ca.issue();
  dir = mkdtempSync(join(tmpdir(), 'nodesage-harness-'));
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function server(opts: Parameters<typeof FakeApiServer.create>[0] = {}): Promise<FakeApiServer> {
  const api = await FakeApiServer.create({ bundleDir: FIXTURE, ca, tls: serverTls, ...opts });
  open.push(api);
  return api;
}

function get(base: string, path: string, token: string | null): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(new URL(path, base), { ca: ca.certPem, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

/** An object or list as it comes over the wire. */
interface Wire {
  kind?: string;
  apiVersion?: string;
  reason?: string;
  metadata: { name?: string; resourceVersion?: string; continue?: string; remainingItemCount?: number; [k: string]: unknown };
  items: Wire[];
  [k: string]: unknown;
}

const parse = (body: string) => JSON.parse(body) as Wire;

/** Opens a watch and collects its lines until closed. */
function watch(api: FakeApiServer, path: string): { lines: { type: string; object: Wire }[]; ended: Promise<void>; close(): void } {
  const lines: { type: string; object: Wire }[] = [];
  let buf = '';
  let req: ReturnType<typeof https.get> | undefined;
  const ended = new Promise<void>((resolve, reject) => {
    req = https.get(new URL(path, api.url), { ca: ca.certPem, headers: { Authorization: `Bearer ${api.token}` } }, (res) => {
      res.on('data', (c) => {
        buf += c;
        let i = buf.indexOf('\n');
        while (i >= 0) {
          lines.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
          i = buf.indexOf('\n');
        }
      });
      res.on('end', () => resolve());
      res.on('error', () => resolve());
    });
    req.on('error', (e) => ((e as { code?: string }).code === 'ECONNRESET' ? resolve() : reject(e)));
  });
  const w = {
    lines,
    ended,
    close: () => {
      req?.destroy();
    },
  };
  open.push(w);
  return w;
}

describe('fake API server', () => {
  it('needs the bearer token and answers 401 with a Status like the real server', async () => {
    const api = await server();
    const res = await get(api.url, '/api/v1/pods', null);
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toEqual({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
  });

  it('lists with a resourceVersion, by field selector, items without apiVersion/kind', async () => {
    const api = await server();
    const res = await get(api.url, '/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-node-1', api.token);
    const list = parse(res.body);
    expect(list.kind).toBe('PodList');
    expect(list.metadata.resourceVersion).toBe(String(api.resourceVersion));
    expect(list.items.map((p) => p.metadata.name).sort()).toEqual(['cart-5d8f7c9b6-h4k2n', 'checkout-6f9c7d8b5-q2xlm', 'kube-proxy-7xkqp', 'nodesage-k8r2t']);
    expect(list.items.every((p) => p.kind === undefined && p.apiVersion === undefined)).toBe(true);
    const none = parse((await get(api.url, '/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-node-2', api.token)).body);
    expect(none.items).toEqual([]);
    const shop = parse((await get(api.url, '/api/v1/namespaces/shop/pods', api.token)).body);
    expect(shop.items).toHaveLength(2);
    const node = parse((await get(api.url, '/api/v1/nodes/edge-node-1', api.token)).body);
    expect(node).toMatchObject({ kind: 'Node', apiVersion: 'v1', metadata: { name: 'edge-node-1', resourceVersion: '48113' } });
  });

  it('refuses field labels the real server does not support', async () => {
    const api = await server();
    const res = await get(api.url, '/api/v1/events?fieldSelector=source.host%3Dedge-node-1', api.token);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).message).toBe('field label not supported: source.host');
    const ok = await get(api.url, '/api/v1/events?fieldSelector=involvedObject.kind%3DNode%2CinvolvedObject.name%3Dedge-node-1', api.token);
    expect(parse(ok.body).items.map((e) => e.reason).sort()).toEqual(['FreeDiskSpaceFailed', 'NodeHasDiskPressure']);
  });

  it('pages a list from one consistent snapshot', async () => {
    const api = await server();
    const first = parse((await get(api.url, '/api/v1/pods?limit=3', api.token)).body);
    expect(first.items).toHaveLength(3);
    expect(first.metadata.remainingItemCount).toBe(1);
    api.addPod({ metadata: { name: 'late', namespace: 'shop' }, spec: { nodeName: 'edge-node-1' } });
    const second = parse((await get(api.url, `/api/v1/pods?limit=3&continue=${first.metadata.continue}`, api.token)).body);
    expect(second.items).toHaveLength(1);
    expect(second.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    expect(second.metadata.continue).toBeUndefined();
  });

  it('replays changes after a resourceVersion and streams new ones, with objects leaving the selection as DELETED', async () => {
    const api = await server();
    const rv = api.resourceVersion;
    api.modifyPod('shop', 'checkout-6f9c7d8b5-q2xlm', (p) => {
      (p.metadata.labels as Record<string, string>).replayed = 'yes';
    });
    const w = watch(api, `/api/v1/pods?watch=true&resourceVersion=${rv}&fieldSelector=spec.nodeName%3Dedge-node-1&allowWatchBookmarks=true`);
    await until(() => w.lines.length === 1, 'replayed change');
    expect(w.lines[0]).toMatchObject({ type: 'MODIFIED', object: { kind: 'Pod', apiVersion: 'v1', metadata: { name: 'checkout-6f9c7d8b5-q2xlm', labels: { replayed: 'yes' } } } });
    api.modifyPod('shop', 'cart-5d8f7c9b6-h4k2n', (p) => {
      (p.spec as Record<string, unknown>).nodeName = 'edge-node-2';
    });
    api.addPod({ metadata: { name: 'elsewhere', namespace: 'shop' }, spec: { nodeName: 'edge-node-2' } });
    api.deletePod('monitoring', 'nodesage-k8r2t');
    api.bookmark();
    await until(() => w.lines.length === 4, 'live changes');
    expect(w.lines.slice(1).map((l) => `${l.type} ${l.object.metadata.name ?? ''}`)).toEqual(['DELETED cart-5d8f7c9b6-h4k2n', 'DELETED nodesage-k8r2t', 'BOOKMARK ']);
    expect(w.lines[3]!.object.metadata.resourceVersion).toBe(String(api.resourceVersion));
    // Without a resourceVersion a watch starts with the current objects.
    const fresh = watch(api, '/api/v1/nodes?watch=true&fieldSelector=metadata.name%3Dedge-node-1');
    await until(() => fresh.lines.length === 1, 'synthetic ADDED');
    expect(fresh.lines[0]).toMatchObject({ type: 'ADDED', object: { kind: 'Node', metadata: { name: 'edge-node-1' } } });
  });

  it('answers 410 Gone to a compacted resourceVersion, as an ERROR line or as HTTP 410', async () => {
    const api = await server();
    const old = api.resourceVersion;
    api.modifyPod('shop', 'checkout-6f9c7d8b5-q2xlm', () => undefined);
    api.expireResourceVersions();
    const w = watch(api, `/api/v1/pods?watch=true&resourceVersion=${old}`);
    await w.ended;
    expect(w.lines).toEqual([
      {
        type: 'ERROR',
        object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${old} (${api.resourceVersion})`, reason: 'Expired', code: 410 },
      },
    ]);
    const http = await server({ goneAs: 'http' });
    const stale = http.resourceVersion;
    http.addEvent({ metadata: { name: 'x', namespace: 'default' }, involvedObject: { kind: 'Node', name: 'edge-node-1' } });
    http.expireResourceVersions();
    expect((await get(http.url, `/api/v1/events?watch=true&resourceVersion=${stale}`, http.token)).status).toBe(410);
  });

  it('stops and starts again on the same port, cutting open watches', async () => {
    const api = await server();
    const url = api.url;
    const w = watch(api, '/api/v1/pods?watch=true');
    await until(() => api.openWatches === 1, 'watch open');
    await api.stop();
    await w.ended;
    await expect(get(url, '/api/v1/pods', api.token)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await api.start();
    expect(api.url).toBe(url);
    expect((await get(url, '/api/v1/pods', api.token)).status).toBe(200);
  });

  it('writes a kubeconfig the real client can use', async () => {
    const api = await server();
    const kc = new KubeConfig();
    kc.loadFromFile(api.writeKubeconfig(join(dir, 'kubeconfig')));
    const core = kc.makeApiClient(CoreV1Api);
    const pods = await core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=edge-node-1' });
    expect(pods.items).toHaveLength(4);
    expect(pods.items[0]!.metadata!.creationTimestamp).toBeInstanceOf(Date); // why the collector reads raw JSON
    const node = await core.readNode({ name: 'edge-node-1' });
    expect(node.status?.nodeInfo?.kubeletVersion).toBe('v1.31.4+k3s1');
    expect(api.requests.map((r) => r.status)).toEqual([200, 200]);
  });
});

describe('fake kubelet', () => {
  it('serves the bundle’s kubelet files and answers like the kubelet to bad tokens and denied subresources', async () => {
    const kubelet = await FakeKubelet.create({ bundleDir: FIXTURE, ca, tls: serverTls, tokens: ['t0k3n'] });
    open.push({ close: () => kubelet.stop() });
    expect(await get(kubelet.url, '/healthz', 't0k3n')).toEqual({ status: 200, body: 'ok' });
    const summary = JSON.parse((await get(kubelet.url, '/stats/summary', 't0k3n')).body);
    expect(summary.node.nodeName).toBe('edge-node-1');
    expect(await get(kubelet.url, '/stats/summary', 'wrong')).toEqual({ status: 401, body: 'Unauthorized' });
    kubelet.forbid('/pods');
    expect(await get(kubelet.url, '/pods', 't0k3n')).toEqual({
      status: 403,
      body: 'Forbidden (user=system:serviceaccount:nodesage:nodesage, verb=get, resource=nodes, subresource=pods)',
    });
    kubelet.fail('/stats/summary', 503);
    expect((await get(kubelet.url, '/stats/summary', 't0k3n')).status).toBe(503);
  });
});

describe('delegated authentication and authorisation', () => {
  it('answers TokenReview from its user table and SubjectAccessReview with RBAC non-resource URL matching', async () => {
    const api = await server({
      users: { 'a-token': { username: 'alice', groups: ['ops'] }, 'b-token': { username: 'bob' } },
      rules: [
        { subject: 'group:ops', verbs: ['get'], nonResourceURLs: ['/v1/findings/*', '/v1/status'] },
        { subject: 'bob', verbs: ['create'], nonResourceURLs: ['/v1/ask'] },
      ],
    });
    const kc = new KubeConfig();
    kc.loadFromFile(api.writeKubeconfig(join(dir, 'kubeconfig-reviews')));
    const { AuthenticationV1Api, AuthorizationV1Api } = await import('@kubernetes/client-node');
    const authn = kc.makeApiClient(AuthenticationV1Api);
    const alice = await authn.createTokenReview({ body: { spec: { token: 'a-token' } } });
    expect(alice.status).toMatchObject({ authenticated: true, user: { username: 'alice', groups: ['ops', 'system:authenticated'] } });
    const nobody = await authn.createTokenReview({ body: { spec: { token: 'forged' } } });
    expect(nobody.status?.authenticated).toBeFalsy();
    expect(nobody.status?.error).toMatch(/invalid bearer token/);

    const authz = kc.makeApiClient(AuthorizationV1Api);
    const may = async (user: string, groups: string[], path: string, verb: string) =>
      (await authz.createSubjectAccessReview({ body: { spec: { user, groups, nonResourceAttributes: { path, verb } } } })).status?.allowed === true;
    expect(await may('alice', ['ops'], '/v1/findings/0123456789abcdef', 'get')).toBe(true);
    expect(await may('alice', ['ops'], '/v1/findings', 'get')).toBe(false); // "/v1/findings/*" needs the slash
    expect(await may('alice', ['ops'], '/v1/status', 'get')).toBe(true);
    expect(await may('alice', ['ops'], '/v1/status', 'create')).toBe(false);
    expect(await may('alice', [], '/v1/status', 'get')).toBe(false); // the grant is the group's
    expect(await may('bob', [], '/v1/ask', 'create')).toBe(true);
    expect(await may('bob', [], '/v1/askme', 'create')).toBe(false);

    // Without system:auth-delegator the agent may not ask at all.
    api.forbidReviews();
    await expect(authn.createTokenReview({ body: { spec: { token: 'a-token' } } })).rejects.toMatchObject({ code: 403 });
    // Only the agent's own token may ask.
    const other = new KubeConfig();
    other.loadFromFile(api.writeKubeconfig(join(dir, 'kubeconfig-other'), { token: 'not-the-agent' }));
    api.forbidReviews(false);
    await expect(other.makeApiClient(AuthenticationV1Api).createTokenReview({ body: { spec: { token: 'a-token' } } })).rejects.toMatchObject({ code: 401 });
  });
});
