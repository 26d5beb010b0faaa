/**
 * The daemon's Kubernetes client (daemon/collectors/kube/client.ts) in a
 * process of its own, as the daemon loads it: KubeConfig from a kubeconfig,
 * a list, both access reviews and both exporter writes against the fake API
 * server, with none of the client's generated API classes or models loaded.
 * Runs the built files (dist/): `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from './harness/fake-apiserver.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/kube/', import.meta.url));
const DIST = new URL('../dist/daemon/', import.meta.url);
const NODE = 'edge-node-1';

const dir = mkdtempSync(join(tmpdir(), 'nodesage-kube-client-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Records every module the process loads, then does what the daemon's cluster mode does through the client. */
const SCRIPT = `
import { registerHooks } from 'node:module';
const loaded = [];
registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
const dist = process.argv[1];
const { kubeClient } = await import(new URL('collectors/kube/client.js', dist).href);
const { KubeTransport } = await import(new URL('collectors/kube/transport.js', dist).href);
const { KubeReviewer } = await import(new URL('api/auth/kube-review.js', dist).href);
const { KubeWriters } = await import(new URL('exporters/kube-writers.js', dist).href);
const { KubeConfig } = await kubeClient();
const kc = new KubeConfig();
kc.loadFromFile(process.argv[2]);
const node = process.argv[3];
const pods = await new KubeTransport(kc).get('/api/v1/pods', { fieldSelector: 'spec.nodeName=' + node }, AbortSignal.timeout(10000));
const reviewer = new KubeReviewer(kc);
const authn = await reviewer.authenticate('operator-token');
const authz = authn.ok ? await reviewer.authorize(authn.identity, '/v1/findings', 'get') : null;
const writers = new KubeWriters(kc);
await writers.patchConditions(node, [{ type: 'NodesageProbe', status: 'True', reason: 'Probe', message: 'probe', lastTransitionTime: '2026-01-01T00:00:00Z', lastHeartbeatTime: '2026-01-01T00:00:00Z' }]);
const at = '2026-01-01T00:00:00Z';
const event = { metadata: { name: node + '.probe', namespace: 'default' }, involvedObject: { kind: 'Node', name: node }, reason: 'Probe', message: 'probe', type: 'Normal', count: 1, firstTimestamp: at, lastTimestamp: at, source: { component: 'nodesage', host: node }, reportingComponent: 'nodesage', reportingInstance: node };
await writers.createEvent(event);
const again = await writers.createEvent(event).then(() => 'created twice', (err) => err.status);
const generated = loaded.filter((u) => /@kubernetes\\/client-node\\/dist\\/gen\\/(apis|models|types)\\//.test(u));
console.log(JSON.stringify({ pods: pods.items.map((p) => p.metadata.name).sort(), authn, authz, again, generated, clientFiles: loaded.filter((u) => u.includes('@kubernetes/client-node')).length }));
`;

describe("the daemon's Kubernetes client", () => {
  it('authenticates, lists, reviews and writes with the real KubeConfig, loading none of the generated API', async () => {
    const api = await FakeApiServer.create({
      bundleDir: FIXTURE,
      users: { 'operator-token': { username: 'operator', groups: ['site-ops'] } },
      rules: [{ subject: 'group:site-ops', verbs: ['get'], nonResourceURLs: ['/v1/findings'] }],
    });
    try {
      const kubeconfig = api.writeKubeconfig(join(dir, 'kubeconfig'));
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', SCRIPT, DIST.href, kubeconfig, NODE], { timeout: 30_000 });
      const out = JSON.parse(stdout) as {
        pods: string[];
        authn: { ok: boolean; identity?: { name: string; groups: string[] } };
        authz: { ok: boolean } | null;
        again: unknown;
        generated: string[];
        clientFiles: number;
      };
      const expected = api
        .objects('pods')
        .filter((p) => (p as { spec?: { nodeName?: string } }).spec?.nodeName === NODE)
        .map((p) => String(p.metadata?.name))
        .sort();
      expect(expected.length).toBeGreaterThan(0);
      expect(out.pods).toEqual(expected);
      expect(out.authn).toMatchObject({ ok: true, identity: { name: 'operator', groups: ['site-ops', 'system:authenticated'], via: 'kubernetes' } });
      expect(out.authz).toEqual({ ok: true });
      // The writes reached the server as the exporters send them: a strategic-merge patch, then a 409 for a duplicate event.
      const node = api.objects('nodes').find((n) => n.metadata?.name === NODE) as { status?: { conditions?: { type: string; reason?: string }[] } };
      expect(node.status?.conditions?.find((c) => c.type === 'NodesageProbe')).toMatchObject({ reason: 'Probe' });
      expect(api.requestsFor(`/api/v1/nodes/${NODE}/status`).at(-1)?.contentType).toBe('application/strategic-merge-patch+json');
      expect(api.objects('events').filter((e) => e.metadata?.name === `${NODE}.probe`)).toHaveLength(1);
      expect(out.again).toBe(409);
      // Loaded through the client's own files, without one generated API class or model.
      expect(out.clientFiles).toBeGreaterThan(5);
      expect(out.generated).toEqual([]);
    } finally {
      await api.close();
    }
  });
});
