/**
 * The host-metrics history behind the dashboard's charts: the host collector
 * measures CPU busy time from the host's /proc/stat between two samples, and
 * the daemon stores CPU, memory, per-filesystem space and inodes in SQLite
 * buckets that /v1/metrics/history serves.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { HostCollector } from '../daemon/collectors/host.js';
import { loadConfig } from '../daemon/config.js';
import { Daemon } from '../daemon/daemon.js';
import type { Signal } from '../daemon/core/types.js';
import { Store } from '../daemon/store/store.js';
import { tempDir } from './helpers/daemon-process.js';
import { makeHostRoot } from './helpers/host-root.js';

const stat = (user: number, system: number, idle: number, iowait: number) =>
  `cpu  ${user} 0 ${system} ${idle} ${iowait} 0 0 0 0 0\ncpu0 ${user} 0 ${system} ${idle} ${iowait} 0 0 0 0 0\nintr 1\n`;

describe('host metrics history', () => {
  it('CPU busy percent comes from the delta of /proc/stat between samples', async () => {
    const host = makeHostRoot();
    mkdirSync(join(host.root, 'proc'), { recursive: true });
    const c = new HostCollector({ hostRoot: host.root });
    writeFileSync(join(host.root, 'proc/stat'), stat(1000, 500, 8000, 500));
    expect((await c.sample()).load?.currentLoadPct).toBeUndefined();
    // +300 user, +100 system, +550 idle, +50 iowait: 400 busy of 1000.
    writeFileSync(join(host.root, 'proc/stat'), stat(1300, 600, 8550, 550));
    expect((await c.sample()).load?.currentLoadPct).toBeCloseTo(40, 5);
    host.cleanup();
  });

  it('the daemon stores CPU, memory, space and inodes per filesystem, served by /v1/metrics/history', async () => {
    const dir = tempDir();
    const config = loadConfig({ env: { NODESAGE_DATA_DIR: dir }, flags: { standalone: true, listen: '127.0.0.1:0' } });
    const store = Store.open({ dir });
    const gib = 1024 ** 3;
    const snapshot = {
      at: new Date().toISOString(),
      filesystems: [{ mount: '/var', device: '/dev/sda2', fsType: 'ext4', sizeBytes: 10 * gib, usedBytes: 9 * gib, availBytes: 1 * gib, inodesTotal: 1000, inodesUsed: 250 }],
      memory: { totalBytes: 8 * gib, availableBytes: 2 * gib, swapTotalBytes: 0, swapUsedBytes: 0 },
      load: { avg1: 1, avg5: 1, avg15: 1, cpus: 2, currentLoadPct: 37.5 },
    };
    // A host source that delivers one snapshot when started, as the real one does on its first tick.
    const daemon = new Daemon({
      config,
      logger: pino({ level: 'silent' }),
      store,
      detectors: [],
      collectors: [
        {
          name: 'host',
          start: async (sink: (signals: Signal[]) => void) => sink([{ type: 'host', snapshot } as Signal]),
          stop: async () => undefined,
          status: () => ({ name: 'host', state: 'healthy', signals: 1, lastSignalAt: snapshot.at, lastError: null }),
        },
      ],
    });
    await daemon.start();
    const history = async (series: string) =>
      (await daemon.api.inject({ url: `/v1/metrics/history?series=${series}&since=1h` })).json() as { lines: { label: string; points: { mean: number }[] }[] };
    expect((await history('cpu')).lines[0]!.points[0]!.mean).toBeCloseTo(37.5);
    expect((await history('memory')).lines[0]!.points[0]!.mean).toBeCloseTo(75);
    expect((await history('disk')).lines).toEqual([{ label: '/var', points: [expect.objectContaining({ mean: 90 })] }]);
    expect((await history('inodes')).lines[0]).toMatchObject({ label: '/var', points: [{ mean: 25 }] });
    await daemon.stop();
  });
});
