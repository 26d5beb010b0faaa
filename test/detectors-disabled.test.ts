/**
 * `detectors.disabled` in a running daemon: a detector switched off finds
 * nothing, and what it had found before resolves instead of staying open.
 */
import type { StatsFs } from 'node:fs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { HostCollector } from '../daemon/collectors/host.js';
import { loadConfig } from '../daemon/config.js';
import { Daemon } from '../daemon/daemon.js';
import { createDetectors } from '../daemon/detectors/index.js';
import { Store } from '../daemon/store/store.js';
import type { TrackedFinding } from '../daemon/tracker/tracker.js';
import { tempDir } from './helpers/daemon-process.js';

const silent = pino({ level: 'silent' });
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
});

/** A host root with one (CIFS, so it is measured where the test's folder shares the root device) mount that is 98% full. */
function fullHost(): { root: string; statfs: (path: string) => Promise<StatsFs> } {
  const root = tempDir('nodesage-hostroot-');
  mkdirSync(join(root, 'proc/1'), { recursive: true });
  mkdirSync(join(root, 'mnt/data'), { recursive: true });
  writeFileSync(join(root, 'proc/1/mounts'), '//files/data /mnt/data cifs rw,relatime 0 0\n');
  const full = { type: 0xff534d42, bsize: 4096, blocks: 1_000_000, bfree: 20_000, bavail: 20_000, files: 100_000, ffree: 90_000 } as StatsFs;
  return { root, statfs: async () => full };
}

async function runDaemon(dataDir: string, env: Record<string, string>): Promise<Daemon> {
  const { root, statfs } = fullHost();
  const config = loadConfig({ env: { NODESAGE_DATA_DIR: dataDir, NODESAGE_DETECT_INTERVAL_SECONDS: '0.1', ...env }, serviceAccountDir: join(dataDir, 'no-sa') });
  const store = Store.open({ dir: config.dataDir, logger: silent, maxAgeDays: 30, maxSizeMB: 64 });
  const host = new HostCollector({ hostRoot: root, networkMounts: ['/mnt/data'], intervalMs: 100, statfs });
  const d = new Daemon({ config, logger: silent, store, detectors: createDetectors(config.detectors), collectors: [host] });
  daemons.push(d);
  await d.start();
  return d;
}

async function openFindings(d: Daemon): Promise<{ id: string; category: string }[]> {
  return ((await d.api.inject({ method: 'GET', url: '/v1/findings?status=open' })).json() as { items: { id: string; category: string }[] }).items;
}

async function until<T>(what: string, f: () => Promise<T | undefined>): Promise<T> {
  for (const started = Date.now(); Date.now() - started < 10_000; await new Promise((r) => setTimeout(r, 100))) {
    const v = await f();
    if (v !== undefined) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('detectors.disabled in the daemon', () => {
  it('a disabled detector finds nothing, and its open findings resolve', async () => {
    const dataDir = tempDir();
    const first = await runDaemon(dataDir, {});
    const disk = await until('DiskFull', async () => (await openFindings(first)).find((f) => f.category === 'DiskFull'));
    await first.stop();
    daemons.splice(0);

    const second = await runDaemon(dataDir, { NODESAGE_DETECTORS_DISABLED: 'disk' });
    // The same full disk is sampled again, but nothing reports it: the finding resolves and none opens.
    await until('DiskFull resolved', async () => ((await openFindings(second)).some((f) => f.id === disk.id) ? undefined : true));
    await new Promise((r) => setTimeout(r, 500));
    expect((await openFindings(second)).filter((f) => f.category === 'DiskFull' || f.category === 'InodeExhaustion')).toEqual([]);
    const resolved = (await second.api.inject({ method: 'GET', url: `/v1/findings/${disk.id}` })).json() as TrackedFinding;
    expect(resolved.status).toBe('resolved');
  });
});
