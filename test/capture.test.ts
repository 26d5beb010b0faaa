/**
 * `nodesage capture` on a fixture node (fake API server, fake kubelet, host
 * root with CRI logs and kmsg), then `analyze --bundle` on what it wrote: the
 * bundle holds the same signals and gives the same findings as the live node.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readBundle } from '../daemon/collectors/bundle.js';
import type { Finding, LogLine } from '../daemon/core/types.js';
import { FakeApiServer } from './harness/fake-apiserver.js';
import { FakeKubelet } from './harness/fake-kubelet.js';
import { runCli, tempDir } from './helpers/daemon-process.js';
import { ContainerLogDir, appendKmsg, kmsgRecord, lineId, makeHostRoot, writeBoot } from './helpers/host-root.js';

const BUNDLE = join(import.meta.dirname, 'fixtures/kube');
const servers: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

describe('nodesage capture', () => {
  it('writes a redacted bundle that analyze reads back with the same signals and findings', async () => {
    const api = await FakeApiServer.create({ bundleDir: BUNDLE });
    const kubelet = await FakeKubelet.create({ bundleDir: BUNDLE });
    servers.push(api, kubelet);
    const dir = tempDir();
    writeFileSync(join(dir, 'token'), 'fake-kubelet-token\n');
    writeFileSync(join(dir, 'ca.crt'), kubelet.ca.certPem);
    const host = makeHostRoot();
    const logs = new ContainerLogDir(host.root, { namespace: 'shop', pod: 'checkout-6f9c7d8b5-q2xlm', uid: '7f3a9c1e-5b2d-4e8f-a6c0-1d9b3e5f7a2c', container: 'checkout' });
    logs.write(30);
    logs.write(1, { text: 'connecting to postgres://checkout:s3cr3t-pw@db:5432/orders' });
    const bootSeconds = Math.floor(Date.now() / 1000) - 7200;
    writeBoot(host.root, '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', bootSeconds);
    appendKmsg(host.root, [
      kmsgRecord(6, 1, 1_500_000, 'Linux version 6.1.0-18-amd64'),
      kmsgRecord(3, 2, 3_600_000_000, 'nf_conntrack: nf_conntrack: table full, dropping packet'),
    ]);
    const out = join(dir, 'bundle');
    const r = await runCli(['capture', '--out', out, '--seconds', '3'], {
      env: {
        KUBECONFIG: api.writeKubeconfig(join(dir, 'kubeconfig')),
        NODE_NAME: 'edge-node-1',
        NODESAGE_KUBELET_URL: kubelet.url,
        NODESAGE_KUBELET_TOKEN_FILE: join(dir, 'token'),
        NODESAGE_KUBELET_CA_FILE: join(dir, 'ca.crt'),
        NODESAGE_HOST_ROOT: host.root,
      },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`bundle written to ${out}`);
    for (const part of ['meta.json', 'node.json', 'pods.json', 'events.json', 'kubelet/stats-summary.json', 'kubelet/healthz.txt', 'logs/kmsg.txt']) {
      expect(existsSync(join(out, part)), part).toBe(true);
    }

    const b = await readBundle(out);
    expect(b.meta.nodeName).toBe('edge-node-1');
    expect(b.meta.bootTime).toBe(new Date(bootSeconds * 1000).toISOString());
    const lines = b.signals.filter((s) => s.type === 'log').map((s) => (s as { line: LogLine }).line);
    // Every container line written is in the bundle exactly once, with its container.
    const ids = lines.filter((l) => l.source === 'podLog').map((l) => lineId(l.text)).filter(Boolean);
    expect(ids).toEqual(logs.written.map((w) => w.id));
    expect(lines.find((l) => l.text.includes('postgres://'))?.text).not.toContain('s3cr3t-pw');
    // kmsg times come back through the boot time.
    const conntrack = lines.find((l) => l.source === 'kmsg' && l.text.includes('table full'))!;
    expect(conntrack.at).toBe(new Date(bootSeconds * 1000 + 3_600_000).toISOString());
    const pods = b.signals.find((s) => s.type === 'pods');
    expect(pods && pods.type === 'pods' && pods.pods.map((p) => p.metadata.name).sort()).toEqual(
      api.objects('pods').map((p) => p.metadata.name).sort(),
    );

    const a = await runCli(['analyze', '--bundle', out, '--format', 'json']);
    expect(a.code, a.stderr).toBe(0);
    const cats = new Set((JSON.parse(a.stdout) as Finding[]).map((f) => f.category));
    expect(cats).toContain('CrashLoop');
    expect(cats).toContain('ImagePull');
    expect(cats).toContain('ConntrackFull');

    const again = await runCli(['capture', '--out', out, '--seconds', '1']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('not empty');
  }, 60_000);
});
