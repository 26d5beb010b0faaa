/**
 * `nodesage analyze --bundle` as a user runs it, on a bundle that holds only
 * host metrics (what a host-mode capture without Kubernetes produces).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Finding } from '../daemon/core/types.js';
import { runCli, tempDir } from './helpers/daemon-process.js';

function hostOnlyBundle(): string {
  const dir = join(tempDir(), 'bundle');
  mkdirSync(join(dir, 'host'), { recursive: true });
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ nodeName: 'edge-kiosk-03', capturedAt: '2026-05-04T08:00:00Z' }));
  const gib = 1024 ** 3;
  writeFileSync(
    join(dir, 'host', 'fsSize.json'),
    JSON.stringify([
      { fs: '/dev/mmcblk0p2', type: 'ext4', size: 29 * gib, used: 28.2 * gib, available: 0.8 * gib, use: 97.2, mount: '/', rw: true },
      { fs: '/dev/mmcblk0p1', type: 'vfat', size: 0.25 * gib, used: 0.05 * gib, available: 0.2 * gib, use: 20, mount: '/boot/firmware', rw: true },
      { fs: '/dev/loop3', type: 'squashfs', size: 0.1 * gib, used: 0.1 * gib, available: 0, use: 100, mount: '/snap/core/1', rw: false },
    ]),
  );
  writeFileSync(join(dir, 'host', 'inodes.json'), JSON.stringify([{ mount: '/', inodesTotal: 1_900_000, inodesUsed: 1_899_000 }]));
  writeFileSync(join(dir, 'host', 'mem.json'), JSON.stringify({ total: 4 * gib, available: 2 * gib, swaptotal: 0, swapused: 0 }));
  return dir;
}

describe('nodesage analyze --bundle', () => {
  it('prints the findings of a host-only bundle as JSON in the DESIGN shape', async () => {
    const r = await runCli(['analyze', '--bundle', hostOnlyBundle(), '--format', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const findings = JSON.parse(r.stdout) as Finding[];
    const byCat = Object.fromEntries(findings.map((f) => [f.category, f]));
    expect(Object.keys(byCat).sort()).toEqual(['DiskFull', 'InodeExhaustion']);
    const disk = byCat.DiskFull!;
    expect(disk.severity).toBe('critical');
    expect(disk.subject).toEqual({ kind: 'Node', name: 'edge-kiosk-03' });
    expect(disk.evidence[0]).toMatchObject({ source: 'host', at: '2026-05-04T08:00:00.000Z' });
    expect(disk.evidence[0]!.text).toContain('/: 97.2% used');
    expect(disk.id).toMatch(/^[0-9a-f]{16}$/);
    expect(disk.status).toBe('open');
    // Without a model the rule hint explains it, as in the daemon.
    expect(disk.diagnosis).toMatchObject({ diagnoser: 'rule-hint' });
    expect(disk.diagnosis!.commands.length).toBeGreaterThan(0);
    expect(byCat.InodeExhaustion!.severity).toBe('critical');
  });

  it('prints a readable text summary and fails clearly on a folder that is not a bundle', async () => {
    const text = await runCli(['analyze', '--bundle', hostOnlyBundle(), '--format', 'text']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('DiskFull');
    const bad = await runCli(['analyze', '--bundle', tempDir()]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/meta\.json/);
  });

  it('runs no disabled detector: `detectors.disabled` leaves its findings out, the others stay', async () => {
    const crash = new URL('./fixtures/bundles/crashloop-oom-memcg', import.meta.url).pathname;
    const categories = async (env: Record<string, string>) => {
      const r = await runCli(['analyze', '--bundle', crash, '--format', 'json'], { env });
      expect(r.stderr).toBe('');
      return (JSON.parse(r.stdout) as Finding[]).map((f) => f.category).sort();
    };
    expect(await categories({})).toEqual(['CrashLoop', 'OOMKilled']);
    const file = join(tempDir(), 'nodesage.yaml');
    writeFileSync(file, 'detectors:\n  disabled: [crashloop]\n');
    expect(await categories({ NODESAGE_CONFIG: file })).toEqual(['OOMKilled']);
    expect(await categories({ NODESAGE_DETECTORS_DISABLED: 'oom-killed,crashloop' })).toEqual([]);
  });
});
