/**
 * `kubectl nodesage` against the fake API server with two fake agents (and
 * a third node whose agent hangs): the plugin finds each node's agent pod,
 * reaches it through the API server's pods/portforward WebSocket (never
 * nodes/proxy), and answers for one node or, merged, for all of them, naming
 * the nodes that did not answer within the time limit. It runs as kubectl
 * runs plugins: an executable named kubectl-nodesage on PATH.
 */
import { spawn } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from './harness/fake-apiserver.js';
import { PROJECT_ROOT, tempDir } from './helpers/daemon-process.js';
import { IDS, type SurfaceNode, startSurfaceNode } from './helpers/surface-node.js';

const PLUGIN = join(PROJECT_ROOT, 'dist/daemon/kubectl-plugin.js');
let api: FakeApiServer;
let kubeconfig: string;
let agents: SurfaceNode[] = [];
let hanging: Server;
const held: Socket[] = [];

function agentPod(name: string, node: string) {
  return {
    metadata: { name, namespace: 'nodesage', labels: { 'app.kubernetes.io/name': 'nodesage' } },
    spec: { nodeName: node, containers: [{ name: 'nodesage', image: 'nodesage/nodesage:0.1.0' }] },
    status: { phase: 'Running' },
  };
}

beforeAll(async () => {
  api = await FakeApiServer.create();
  kubeconfig = api.writeKubeconfig(join(tempDir(), 'kubeconfig'));
  agents = [await startSurfaceNode('edge-1'), await startSurfaceNode('edge-2')];
  // edge-3's agent accepts connections and never answers: a node that is down in the way that hurts most.
  hanging = createServer((s) => held.push(s));
  await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
  for (const [i, node] of ['edge-1', 'edge-2', 'edge-3'].entries()) {
    api.addNode({ metadata: { name: node } });
    api.addPod(agentPod(`nodesage-${'abc'[i]}x7k2`, node));
  }
  const port = (url: string) => Number(new URL(url).port);
  api.forwardPod('nodesage', 'nodesage-ax7k2', 8877, { host: '127.0.0.1', port: port(agents[0]!.url) });
  api.forwardPod('nodesage', 'nodesage-bx7k2', 8877, { host: '127.0.0.1', port: port(agents[1]!.url) });
  api.forwardPod('nodesage', 'nodesage-cx7k2', 8877, { host: '127.0.0.1', port: (hanging.address() as { port: number }).port });
  // A node with no agent at all.
  api.addNode({ metadata: { name: 'edge-4' } });
});

afterAll(async () => {
  for (const s of held) s.destroy();
  hanging?.close();
  for (const a of agents) await a.close();
  await api?.close();
});

function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>((resolve, reject) => {
    const t0 = Date.now();
    const p = spawn(cmd, args, { env: { ...process.env, KUBECONFIG: kubeconfig, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - t0 }));
  });
}
const plugin = (args: string[]) => run(process.execPath, [PLUGIN, ...args]);

describe('kubectl nodesage', () => {
  it('one node: findings, show, ask and status through pods/portforward, never nodes/proxy', async () => {
    const findings = await plugin(['--node', 'edge-2', 'findings', '--json']);
    expect(findings.stderr).toBe('');
    expect(findings.code).toBe(0);
    const page = JSON.parse(findings.stdout) as { items: { id: string; subject: { name: string } }[] };
    expect(page.items.map((f) => f.id).sort()).toEqual(Object.values(IDS).sort());
    expect(page.items.find((f) => f.id === IDS.disk)!.subject.name).toBe('edge-2');

    const show = await plugin(['--node', 'edge-1', 'show', IDS.probe]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('caused by');
    expect(show.stdout).toContain('Filesystem /var/lib/containerd is 97% full');
    expect(show.stdout).toContain('$ kubectl -n media describe pod transcoder-69f8b7c6d5-8n4kd');

    const ask = await plugin(['--node', 'edge-1', 'ask', 'why is the disk full?']);
    expect(ask.code).toBe(0);
    expect(ask.stdout).toMatch(/Cited:\n {2}\[F\d\] finding d15cf0110000aa01/);

    const status = await plugin(['--node', 'edge-2', 'status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ nodeName: 'edge-2', rulesOnly: true });

    const paths = api.requests.map((r) => r.path);
    expect(paths).toContain('/api/v1/namespaces/nodesage/pods/nodesage-bx7k2/portforward');
    expect(paths.filter((p) => p.includes('/proxy'))).toEqual([]);
    expect(api.requests.find((r) => r.path.endsWith('/portforward'))!.query.ports).toBe('8877');
  });

  it('all nodes: merged findings with their node, and the nodes that did not answer named, within the time limit', async () => {
    const r = await plugin(['--timeout', '3', 'findings', '--all-nodes']);
    expect(r.code).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^(critical|warning|info) /.test(l));
    expect(rows).toHaveLength(6);
    expect(rows.filter((l) => /\bedge-1\b/.test(l.slice(10, 22)))).toHaveLength(3);
    expect(rows.filter((l) => /\bedge-2\b/.test(l.slice(10, 22)))).toHaveLength(3);
    expect(rows[0]).toMatch(/^critical +edge-\d +DiskFull/);
    expect(r.stderr).toBe('kubectl-nodesage: 2 node(s) did not answer: edge-3 (no answer in 3 s), edge-4 (no nodesage pod)\n');
    // Two healthy nodes answer in parallel; the hanging one costs the time limit once, not more.
    expect(r.ms).toBeLessThan(12_000);

    const json = JSON.parse((await plugin(['--timeout', '2', '--concurrency', '1', 'findings', '--all-nodes', '--json', '--severity', 'critical'])).stdout) as {
      items: { node: string; category: string }[];
      unanswered: { node: string }[];
    };
    expect(json.items.map((f) => `${f.node} ${f.category}`).sort()).toEqual(['edge-1 DiskFull', 'edge-2 DiskFull']);
    expect(json.unanswered.map((u) => u.node)).toEqual(['edge-3', 'edge-4']);
  });

  it('one node down: a clear one-line failure; a node without an agent is named', async () => {
    const down = await plugin(['--timeout', '2', '--node', 'edge-3', 'status']);
    expect(down.code).toBe(1);
    expect(down.stderr).toBe('kubectl-nodesage: the daemon did not answer in time\n');
    api.forwardPod('nodesage', 'nodesage-cx7k2', 8877, null);
    const refused = await plugin(['--node', 'edge-3', 'status']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^kubectl-nodesage: cannot reach the nodesage daemon .*\n$/);
    const none = await plugin(['--node', 'edge-4', 'findings']);
    expect(none).toMatchObject({ code: 1, stderr: 'kubectl-nodesage: no nodesage pod on node edge-4 (namespace nodesage, selector app.kubernetes.io/name=nodesage)\n' });
    const usage = await plugin(['findings']);
    expect(usage).toMatchObject({ code: 2, stderr: 'kubectl-nodesage: name a node with --node N (or use `findings --all-nodes`)\n' });
  });

  it('runs as a kubectl plugin from PATH', async () => {
    const bin = tempDir();
    symlinkSync(PLUGIN, join(bin, 'kubectl-nodesage'));
    const env = { PATH: `${bin}:${process.env.PATH}` };
    const list = await run('kubectl', ['plugin', 'list'], env);
    expect(list.stdout).toContain(join(bin, 'kubectl-nodesage'));
    const r = await run('kubectl', ['nodesage', '--node', 'edge-1', 'findings'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^critical +DiskFull +node\/edge-1 /m);
    expect(r.stdout).toContain(IDS.disk);
  });
});
