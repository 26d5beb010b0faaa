/**
 * Runbooks: markdown files indexed at start, re-indexed when they change
 * (fs.watch, or the periodic rescan when watching is impossible), including a
 * ConfigMap volume's `..data` symlink swap; bounded in size and count.
 */
import { mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { RunbookIndexer, runbookTitle } from '../daemon/ask/runbooks.js';
import { Store } from '../daemon/store/store.js';
import { tempDir, waitFor } from './helpers/daemon-process.js';

const logLines: { msg: string }[] = [];
const logger = pino({ level: 'info' }, { write: (l: string) => void logLines.push(JSON.parse(l) as { msg: string }) });

const indexers: RunbookIndexer[] = [];
afterEach(() => {
  for (const i of indexers.splice(0)) i.stop();
});

function indexer(dir: string, store: Store, opts: Partial<ConstructorParameters<typeof RunbookIndexer>[0]> = {}): RunbookIndexer {
  const i = new RunbookIndexer({ dir, store, logger, debounceMs: 50, pollIntervalMs: 60_000, ...opts });
  indexers.push(i);
  return i;
}

const titles = (store: Store) => store.listRunbooks().map((r) => [r.id, r.title]);
const found = (store: Store, q: string) => store.search(q).runbooks.map((r) => r.id);

describe('runbook indexer', () => {
  it('indexes the markdown files at start and follows edits, new files and deletions', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'disk-full.md'), '# Disk full on edge nodes\n\nPrune images with crictl when /var fills up.\n');
    writeFileSync(join(dir, 'no-title.md'), 'Certificates rotate every 90 days.\n');
    writeFileSync(join(dir, 'notes.txt'), '# not a runbook\n');
    writeFileSync(join(dir, '.hidden.md'), '# hidden\n');
    const store = Store.open({ dir: tempDir() });
    const i = indexer(dir, store);
    expect(await i.start()).toEqual({ runbooks: 2, upserted: 2, removed: 0, skipped: 0 });
    expect(titles(store)).toEqual([
      ['disk-full', 'Disk full on edge nodes'],
      ['no-title', 'no-title'],
    ]);
    expect(found(store, 'how do I prune images?')).toEqual(['disk-full']);
    expect(i.status().watching).toBe(true);

    writeFileSync(join(dir, 'disk-full.md'), '# Disk full\n\nMove the container runtime to a bigger volume.\n');
    writeFileSync(join(dir, 'dns.md'), '# DNS failures\n\nCheck CoreDNS pods and the node resolv.conf.\n');
    unlinkSync(join(dir, 'no-title.md'));
    await waitFor(async () => store.listRunbooks().length === 2 && found(store, 'bigger volume').length === 1);
    expect(titles(store)).toEqual([
      ['disk-full', 'Disk full'],
      ['dns', 'DNS failures'],
    ]);
    expect(found(store, 'prune images')).toEqual([]);
    expect(found(store, 'coredns resolv.conf')).toEqual(['dns']);
    expect(found(store, 'certificates rotate')).toEqual([]);
  });

  it('follows a ConfigMap volume update (the ..data symlink swap)', async () => {
    const dir = tempDir();
    const publish = (stamp: string, files: Record<string, string>) => {
      mkdirSync(join(dir, stamp));
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, stamp, name), text);
      // The kubelet writes ..data_tmp and renames it over ..data: one atomic switch.
      symlinkSync(stamp, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      for (const name of Object.keys(files)) {
        try {
          symlinkSync(join('..data', name), join(dir, name));
        } catch {
          // already linked
        }
      }
    };
    publish('..2026_03_01_10_00_00.1', { 'oom.md': '# OOM kills\n\nRaise the memory limit.\n' });
    const store = Store.open({ dir: tempDir() });
    const i = indexer(dir, store);
    await i.start();
    expect(titles(store)).toEqual([['oom', 'OOM kills']]);
    publish('..2026_03_01_10_05_00.2', { 'oom.md': '# OOM kills (v2)\n\nLook at the kernel log for the cgroup.\n' });
    rmSync(join(dir, '..2026_03_01_10_00_00.1'), { recursive: true });
    await waitFor(async () => titles(store)[0]?.[1] === 'OOM kills (v2)');
    expect(found(store, 'kernel cgroup')).toEqual(['oom']);
    expect(found(store, 'memory limit')).toEqual([]);
  });

  it('polls when the folder cannot be watched (not there yet), and watches once it appears', async () => {
    const dir = join(tempDir(), 'runbooks');
    const store = Store.open({ dir: tempDir() });
    const i = indexer(dir, store, { pollIntervalMs: 100 });
    expect(await i.start()).toMatchObject({ runbooks: 0 });
    expect(i.status().watching).toBe(false);
    mkdirSync(dir);
    writeFileSync(join(dir, 'kubelet.md'), '# Kubelet PLEG not healthy\n\nCheck the container runtime.\n');
    await waitFor(async () => store.listRunbooks().length === 1);
    expect(found(store, 'pleg')).toEqual(['kubelet']);
    await waitFor(async () => i.status().watching);
    // The folder going away (ConfigMap unmounted) empties the index.
    rmSync(dir, { recursive: true });
    await waitFor(async () => store.listRunbooks().length === 0);
    // ...and coming back is seen again.
    mkdirSync(dir);
    writeFileSync(join(dir, 'kubelet.md'), '# Kubelet\n');
    await waitFor(async () => store.listRunbooks().length === 1);
  });

  it('skips files over the size cap and beyond the count cap, and keeps the index across restarts', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.md'), '# A\n\nalpha\n');
    writeFileSync(join(dir, 'b.md'), '# B\n\nbravo\n');
    writeFileSync(join(dir, 'c.md'), '# C\n\ncharlie\n');
    writeFileSync(join(dir, 'big.md'), `# Big\n\n${'x '.repeat(3000)}`);
    const dataDir = tempDir();
    const store = Store.open({ dir: dataDir });
    const first = indexer(dir, store, { maxFileBytes: 1024, maxFiles: 3 });
    expect(await first.start()).toEqual({ runbooks: 2, upserted: 2, removed: 0, skipped: 2 });
    expect(titles(store)).toEqual([
      ['a', 'A'],
      ['b', 'B'],
    ]);
    expect(logLines.some((l) => l.msg === 'runbook too large; skipped')).toBe(true);
    expect(logLines.some((l) => l.msg === 'too many runbooks; indexing the first ones by file name')).toBe(true);
    first.stop();
    store.close();
    // A restart with the same files rewrites nothing.
    const again = Store.open({ dir: dataDir });
    expect(await indexer(dir, again, { maxFileBytes: 1024, maxFiles: 3 }).start()).toEqual({ runbooks: 2, upserted: 0, removed: 0, skipped: 2 });
    expect(found(again, 'bravo')).toEqual(['b']);
  });

  it('takes the first level-one heading outside code fences as the title', () => {
    expect(runbookTitle('\uFEFFintro\n```\n# not this\n```\n## Sub\n#  Real title  #\n# Later', 'id')).toBe('Real title');
    expect(runbookTitle('#NoSpace\ntext', 'fallback')).toBe('fallback');
  });
});
