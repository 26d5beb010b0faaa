import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readBundle } from '../daemon/collectors/bundle.js';
import { writeBundle } from '../daemon/collectors/bundle-writer.js';
import type { LogLine, Signal } from '../daemon/core/types.js';
import { tempDir } from './helpers/daemon-process.js';

const at = (s: number) => new Date(Date.parse('2026-03-01T10:00:00Z') + s * 1000).toISOString();

describe('bundle writer', () => {
  it('writes signals that readBundle reads back the same, redacted and capped', async () => {
    const container = { namespace: 'shop', pod: 'api-7d9c8b6f5-kz4wn', uid: 'a95b6e73-c8b7-4571-ae28-a4cc40566360', container: 'app', restart: 2 };
    const lines: LogLine[] = [
      { source: 'kmsg', at: at(1), text: 'ixgbe 0000:af:00.1 enp175s0f1: NIC Link is Down', priority: 6 },
      { source: 'journald', at: at(2), text: 'Started Kubernetes Kubelet.', unit: 'kubelet.service', priority: 6 },
      { source: 'journald', at: at(3), text: 'Selected source 10.0.0.1', unit: 'chronyd', priority: 6 },
      { source: 'journald', at: at(4), text: 'Out of memory: Killed process 4242 (java)', unit: 'kernel', priority: 3 },
      { source: 'podLog', at: at(5), text: 'connecting with password=hunter2 to db', container, stream: 'stderr' },
      { source: 'podLog', at: at(6), text: 'panic: boom', container, stream: 'stderr' },
    ];
    const signals: Signal[] = [
      { type: 'node', at: at(0), node: { metadata: { name: 'edge-1' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } } },
      { type: 'pods', at: at(0), pods: [{ metadata: { name: container.pod, namespace: 'shop', uid: container.uid }, spec: { nodeName: 'edge-1' } }] },
      { type: 'event', at: at(0), event: { metadata: { name: 'e1', namespace: 'shop', uid: 'u1' }, reason: 'BackOff', message: 'Back-off restarting failed container' } },
      { type: 'statsSummary', at: at(0), summary: { node: { nodeName: 'edge-1', fs: { capacityBytes: 100, availableBytes: 10 } } } },
      { type: 'kubeletHealth', at: at(0), ok: false, body: '[-]syncloop failed: reason withheld' },
      {
        type: 'host',
        snapshot: {
          at: at(0),
          filesystems: [{ mount: '/', device: '/dev/sda1', fsType: 'ext4', sizeBytes: 1000, usedBytes: 900, availBytes: 100, inodesTotal: 50, inodesUsed: 49 }],
          memory: { totalBytes: 8e9, availableBytes: 1e9, swapTotalBytes: 0, swapUsedBytes: 0 },
          psi: { memory: { some: { avg10: 1, avg60: 2, avg300: 3 } } },
          network: [{ iface: 'enp175s0f1', operstate: 'down', speedMbps: null }],
        },
      },
      ...lines.map((line): Signal => ({ type: 'log', line })),
    ];
    const dir = join(tempDir(), 'bundle');
    const meta = { nodeName: 'edge-1', capturedAt: at(10), bootTime: at(-3600) };
    const res = writeBundle(dir, meta, signals, { redact: (t) => t.replace(/password=\S+/, 'password=[REDACTED]') });
    expect(res.parts).toEqual(expect.arrayContaining(['node.json', 'pods.json', 'events.json', 'kubelet/stats-summary.json', 'kubelet/healthz.txt', 'host/', 'logs/pods/', 'logs/journal.jsonl', 'logs/kmsg.txt']));

    const b = await readBundle(dir);
    expect(b.meta.nodeName).toBe('edge-1');
    const got = b.signals.filter((s) => s.type === 'log').map((s) => (s as { line: LogLine }).line);
    expect(got.map((l) => [l.source, l.at, l.text, l.unit ?? null])).toEqual(
      lines.map((l) => [l.source, l.at, l.text.replace('hunter2', '[REDACTED]'), l.unit ?? null]),
    );
    expect(got.find((l) => l.source === 'podLog')?.container).toEqual(container);
    const host = b.signals.find((s) => s.type === 'host');
    expect(host && host.type === 'host' && host.snapshot.filesystems[0]).toMatchObject({ mount: '/', usedBytes: 900, inodesUsed: 49 });
    expect(host && host.type === 'host' && host.snapshot.network).toEqual([{ iface: 'enp175s0f1', operstate: 'down', speedMbps: null }]);
    const health = b.signals.find((s) => s.type === 'kubeletHealth');
    expect(health && health.type === 'kubeletHealth' && health.ok).toBe(false);
    expect(b.signals.filter((s) => s.type === 'event')).toHaveLength(1);
  });

  it('keeps the newest lines within the size cap and says how many it dropped', async () => {
    const container = { namespace: 'ns', pod: 'p', uid: 'u', container: 'c' };
    const signals: Signal[] = Array.from({ length: 1000 }, (_, i) => ({
      type: 'log' as const,
      line: { source: 'podLog' as const, at: at(i), text: `line ${i} ${'x'.repeat(50)}`, container },
    }));
    const dir = join(tempDir(), 'b');
    const res = writeBundle(dir, { nodeName: 'n', capturedAt: at(2000) }, signals, { maxPodLogBytes: 10_000 });
    const dropped = Object.values(res.truncated)[0]!;
    expect(dropped).toBeGreaterThan(800);
    const b = await readBundle(dir);
    const texts = b.signals.filter((s) => s.type === 'log').map((s) => (s as { line: LogLine }).line.text);
    expect(texts).toHaveLength(1000 - dropped);
    expect(texts[texts.length - 1]).toMatch(/^line 999 /);
  });
});
