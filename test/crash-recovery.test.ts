/**
 * Power cut in the middle of a batch: the daemon is killed with SIGKILL while
 * it reads a busy container log, the log rotates (and is gzipped) while it is
 * down, and after the restart every line written is counted exactly once in
 * SQLite — read positions are committed in the same transaction as the data
 * derived from the lines.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { type DaemonProcess, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';
import { ContainerLogDir, makeHostRoot } from './helpers/host-root.js';

let daemon: DaemonProcess | undefined;
afterEach(async () => {
  await daemon?.kill('SIGKILL');
  daemon = undefined;
});

const STREAM = 'podLog:shop/api-7d9c8b6f5-kz4wn/api';

function linesCounted(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT lines FROM log_counters WHERE stream = ?').get(STREAM) as { lines: number } | undefined;
    return row?.lines ?? 0;
  } finally {
    db.close();
  }
}

describe('crash recovery', () => {
  it('counts every line exactly once across a SIGKILL mid-batch and rotations while down', async () => {
    const host = makeHostRoot();
    const data = tempDir();
    const db = join(data, 'nodesage.db');
    const logs = new ContainerLogDir(host.root, { namespace: 'shop', pod: 'api-7d9c8b6f5-kz4wn', uid: 'a95b6e73-c8b7-4571-ae28-a4cc40566360', container: 'api' });
    const env = {
      NODESAGE_HOST_ROOT: host.root,
      NODESAGE_DATA_DIR: data,
      NODESAGE_DETECT_INTERVAL_SECONDS: '0.2',
      NODE_NAME: 'edge-1',
    };
    logs.write(500);
    daemon = await startDaemon({ env });
    await waitFor(async () => linesCounted(db) === 500, 30_000);

    // Lines keep coming; kill while some are read but not yet committed.
    for (let i = 0; i < 20; i++) {
      logs.write(100);
      await new Promise((r) => setTimeout(r, 15));
    }
    await daemon.kill('SIGKILL');
    const atKill = linesCounted(db);
    expect(atKill).toBeLessThanOrEqual(2500);

    // While the daemon is down: rotation, gzip of the rotated file, a new live file, three times.
    for (let r = 0; r < 3; r++) {
      logs.write(200);
      const rotated = logs.rotate();
      logs.write(100);
      logs.gzip(rotated);
    }
    const total = logs.written.length;
    expect(total).toBe(2500 + 3 * 300);

    daemon = await startDaemon({ env });
    await waitFor(async () => linesCounted(db) >= total, 60_000);
    // Give it a few more cycles: nothing may be counted twice.
    await new Promise((r) => setTimeout(r, 1500));
    expect(linesCounted(db)).toBe(total);
    const stop = await daemon.kill('SIGTERM');
    expect(stop.code).toBe(0);
    daemon = undefined;
    expect(linesCounted(db)).toBe(total);
  }, 120_000);
});
