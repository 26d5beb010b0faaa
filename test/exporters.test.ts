/**
 * The opt-in exporters against the loopback fake API server, through the real
 * @kubernetes/client-node: conditions patched, events created, resync after an
 * outage, bounded and rate-limited.
 */
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { ConditionsExporter } from '../daemon/exporters/conditions.js';
import { EventsExporter } from '../daemon/exporters/events.js';
import { KubeWriters } from '../daemon/exporters/kube-writers.js';
import type { TrackedFinding } from '../daemon/tracker/tracker.js';
import { FakeApiServer } from './harness/fake-apiserver.js';
import { until } from './harness/wait.js';
import { tempDir } from './helpers/daemon-process.js';

const NODE = 'edge-node-1';
let fake: FakeApiServer | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup() {
  fake = await FakeApiServer.create({ bundleDir: join(import.meta.dirname, 'fixtures/kube') });
  const kc = new KubeConfig();
  kc.loadFromFile(fake.writeKubeconfig(join(tempDir(), 'kubeconfig')));
  return { fake, writers: new KubeWriters(kc) };
}

function finding(category: TrackedFinding['category'], extra: Partial<TrackedFinding> = {}): TrackedFinding {
  return {
    id: `${category.toLowerCase().padEnd(16, '0').slice(0, 16)}`,
    category,
    severity: 'critical',
    subject: { kind: 'Node', name: NODE },
    title: `${category} on ${NODE}`,
    message: 'INFO: task jbd2/sda1-8:412 blocked for more than 120 seconds.',
    evidence: [],
    firstSeen: '2026-02-01T10:00:00.000Z',
    lastSeen: '2026-02-01T10:00:05.000Z',
    count: 1,
    status: 'open',
    diagnosis: null,
    detector: 'log-rules',
    lifecycle: 'event',
    ...extra,
  };
}

function nodeConditions(f: FakeApiServer): { type: string; status: string; reason?: string; message?: string }[] {
  const node = f.objects('nodes').find((n) => n.metadata.name === NODE)!;
  return (node as unknown as { status: { conditions: { type: string; status: string; reason?: string }[] } }).status.conditions;
}

describe('conditions exporter', () => {
  it('patches NPD-style conditions next to the kubelet ones and resyncs after an API-server outage', async () => {
    const { fake, writers } = await setup();
    const kubeletConditions = nodeConditions(fake).map((c) => c.type);
    expect(kubeletConditions).toContain('Ready');
    const exp = new ConditionsExporter({ nodeName: NODE, writer: writers, retryInitialMs: 50, retryMaxMs: 200, heartbeatMs: 60_000 });
    exp.update([finding('KernelHungTask')]);
    await until(() => exp.stats.writes >= 1, 'first write', 10_000);
    const c1 = nodeConditions(fake);
    expect(c1.find((c) => c.type === 'KernelDeadlock')).toMatchObject({ status: 'True', reason: 'TaskHung' });
    expect(c1.find((c) => c.type === 'ReadonlyFilesystem')).toMatchObject({ status: 'False', reason: 'FilesystemIsNotReadOnly' });
    // The kubelet's own conditions are untouched (strategic merge by type).
    expect(c1.map((c) => c.type)).toEqual(expect.arrayContaining(kubeletConditions));
    const patch = fake.requests.find((r) => r.method === 'PATCH')!;
    expect(patch.path).toBe(`/api/v1/nodes/${NODE}/status`);
    expect(patch.contentType).toContain('strategic-merge-patch');

    await fake.stop();
    exp.update([]); // the problem cleared while the API server was away
    await until(() => exp.stats.failures >= 2, 'failed retries', 10_000);
    await fake.start();
    await until(() => nodeConditions(fake).find((c) => c.type === 'KernelDeadlock')?.status === 'False', 'resync', 10_000);
    expect(nodeConditions(fake).find((c) => c.type === 'KernelDeadlock')?.reason).toBe('KernelHasNoDeadlock');
    exp.stop();
  });
});

describe('events exporter', () => {
  it('creates one Warning event per event-type finding on the right object, deduplicated and rate-limited', async () => {
    const { fake, writers } = await setup();
    const exp = new EventsExporter({ nodeName: NODE, writer: writers, perMinute: 2 });
    const oom = finding('KernelOOM');
    const dns = finding('DNSFailure', {
      id: 'dd00000000000001',
      subject: { kind: 'Container', namespace: 'shop', name: 'api-6d4f7c9b8-x2x9z', container: 'api' },
      severity: 'warning',
    });
    const condition = finding('DiskFull', { id: 'ee00000000000001', lifecycle: 'condition' });
    exp.publish([oom, dns, condition]);
    await until(() => exp.stats.sent === 2, 'two events sent', 10_000);
    const created = fake.objects('events').filter((e) => (e as { source?: { component?: string } }).source?.component === 'nodesage');
    expect(created).toHaveLength(2);
    const byReason = Object.fromEntries(created.map((e) => [(e as unknown as { reason: string }).reason, e as Record<string, unknown>]));
    expect(byReason.KernelOOM).toMatchObject({ type: 'Warning', involvedObject: { kind: 'Node', name: NODE }, metadata: { namespace: 'default' } });
    expect(byReason.DNSFailure).toMatchObject({ involvedObject: { kind: 'Pod', name: 'api-6d4f7c9b8-x2x9z', namespace: 'shop' } });
    expect(String(byReason.DNSFailure!.message)).toContain('container api');
    // Conditions are not events; the same finding again is not a new event.
    exp.publish([oom]);
    expect(exp.stats.deduplicated).toBe(1);
    // Over the rate: queued, not lost.
    exp.publish([finding('GPUXid', { id: 'ff00000000000001' }), finding('ConntrackFull', { id: 'ff00000000000002' })]);
    await new Promise((r) => setTimeout(r, 300));
    expect(exp.stats.sent).toBe(2);
    expect(exp.depth()).toBe(2);
    exp.stop();
  });

  it('keeps a bounded queue while the API server is down and sends it when it returns', async () => {
    const { fake, writers } = await setup();
    await fake.stop();
    const exp = new EventsExporter({ nodeName: NODE, writer: writers, maxQueue: 3, perMinute: 1000 });
    exp.publish(Array.from({ length: 5 }, (_, i) => finding('KernelOOM', { id: `aa0000000000000${i}`, title: `oom ${i}` })));
    expect(exp.depth()).toBe(3);
    expect(exp.stats.dropped).toBe(2);
    await until(() => exp.stats.failures >= 1, 'a failed send', 10_000);
    await fake.start();
    await exp.drain();
    await until(() => exp.stats.sent === 3, 'queued events sent', 15_000);
    const titles = fake.objects('events').map((e) => String((e as { message?: string }).message)).filter((m) => m.startsWith('oom '));
    expect(titles.map((t) => t.slice(0, 5)).sort()).toEqual(['oom 2', 'oom 3', 'oom 4']);
    exp.stop();
  });
});
