/**
 * A network filesystem whose server is gone makes statfs(2) hang. The host
 * source must not freeze the daemon with it: unlisted network mounts are never
 * probed, a listed one that does not answer is reported and skipped, and the
 * API keeps answering. `/readyz` follows whether any source is healthy.
 */
import type { StatsFs } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { HostCollector, readMountTable } from '../daemon/collectors/host.js';
import { loadConfig } from '../daemon/config.js';
import type { Collector, SignalSink, SourceStatus } from '../daemon/core/types.js';
import { Daemon } from '../daemon/daemon.js';
import { createDetectors } from '../daemon/detectors/index.js';
import { Store } from '../daemon/store/store.js';
import { tempDir } from './helpers/daemon-process.js';

const silent = pino({ level: 'silent' });
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
});

/** A host root whose mount table has a hung NFS mount, a CIFS mount that answers, and an unlisted NFS mount. */
function hostRootWithMounts(): { root: string; answering: string } {
  const root = tempDir('nodesage-hostroot-');
  mkdirSync(join(root, 'proc/1'), { recursive: true });
  const answering = join(root, 'mnt/share');
  mkdirSync(answering, { recursive: true });
  mkdirSync(join(root, 'mnt/nfs'), { recursive: true });
  writeFileSync(
    join(root, 'proc/1/mounts'),
    [
      'nas-1:/export/data /mnt/nfs nfs4 rw,relatime,vers=4.2,hard,proto=tcp 0 0',
      '//files/share /mnt/share cifs rw,relatime,vers=3.1.1 0 0',
      'nas-2:/backup /mnt/backup nfs rw,relatime,vers=3,hard 0 0',
      '',
    ].join('\n'),
  );
  return { root, answering };
}

function daemonWith(collectors: Collector[]): Daemon {
  const dataDir = tempDir();
  const config = loadConfig({ env: { NODESAGE_DATA_DIR: dataDir, NODESAGE_LISTEN: '127.0.0.1:0', NODESAGE_DETECT_INTERVAL_SECONDS: '0.1' }, serviceAccountDir: join(dataDir, 'no-sa') });
  const store = Store.open({ dir: config.dataDir, logger: silent, maxAgeDays: 30, maxSizeMB: 64 });
  const d = new Daemon({ config, logger: silent, store, detectors: createDetectors({}), collectors });
  daemons.push(d);
  return d;
}

describe('host source with a hung network mount', () => {
  it('never probes unlisted network mounts', () => {
    const { root } = hostRootWithMounts();
    const { mounts, skipped } = readMountTable(root, ['/mnt/share']);
    expect(mounts.map((m) => m.mount)).toEqual(['/mnt/share']);
    expect(skipped).toEqual(['/mnt/nfs', '/mnt/backup']);
  });

  it('reports the mount that does not answer, measures the others, and the API answers meanwhile', async () => {
    const { root, answering } = hostRootWithMounts();
    const probed: string[] = [];
    const host = new HostCollector({
      hostRoot: root,
      networkMounts: ['/mnt/nfs', '/mnt/share'],
      statfsTimeoutMs: 300,
      intervalMs: 60_000,
      // The NFS server is gone: statfs on its mount never returns, as with a hard mount.
      statfs: (path: string): Promise<StatsFs> => {
        probed.push(path);
        return path.endsWith('/mnt/nfs') ? new Promise<StatsFs>(() => undefined) : statfs(answering);
      },
    });
    const d = daemonWith([host]);
    const started = Date.now();
    await d.start();
    expect(Date.now() - started).toBeLessThan(5_000);

    const health = await d.api.inject({ method: 'GET', url: '/healthz' });
    expect(health.statusCode).toBe(200);
    const status = (await d.api.inject({ method: 'GET', url: '/v1/status' })).json() as { sources: SourceStatus[] };
    const src = status.sources.find((s) => s.name === 'host')!;
    expect(src.state).toBe('healthy');
    expect(src.lastError).toBe('not answering statfs: /mnt/nfs');

    // The next sample does not pile another probe on the hung mount (each costs a libuv thread).
    const snap = await host.sample();
    expect(snap.filesystems.map((f) => f.mount)).toEqual(['/mnt/share']);
    expect(snap.filesystems[0]!.sizeBytes).toBeGreaterThan(0);
    expect(probed.filter((p) => p.endsWith('/mnt/nfs'))).toHaveLength(1);
    expect(probed.some((p) => p.includes('backup'))).toBe(false);
    expect((await d.api.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});

/** A source that can be switched between failing and healthy. */
class SwitchSource implements Collector {
  readonly name = 'kmsg' as const;
  healthy = false;
  async start(_sink: SignalSink): Promise<void> {}
  async stop(): Promise<void> {}
  status(): SourceStatus {
    return { name: 'kmsg', state: this.healthy ? 'healthy' : 'failing', signals: 0, lastSignalAt: null, lastError: this.healthy ? null : 'cannot open /dev/kmsg: EACCES' };
  }
}

describe('/readyz', () => {
  it('is 503 while no source is healthy and 200 once one is', async () => {
    const src = new SwitchSource();
    const d = daemonWith([src]);
    await d.start();
    const notReady = await d.api.inject({ method: 'GET', url: '/readyz' });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toEqual({ error: { code: 'NOT_READY', message: expect.stringContaining('no source is healthy') } });
    src.healthy = true;
    expect((await d.api.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });
});
