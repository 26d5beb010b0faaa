/**
 * The daemon as a user runs it: `npm start` in host mode on this machine.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Finding } from '../daemon/core/types.js';
import type { Status } from '../daemon/core/contract.js';
import { type DaemonProcess, getJson, runCli, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';

let running: DaemonProcess | undefined;
afterEach(async () => {
  if (running) await running.kill('SIGKILL');
  running = undefined;
});

function hostEnv(dataDir: string): Record<string, string> {
  // A 1% threshold makes every real filesystem of this machine a DiskFull finding.
  return { NODESAGE_DATA_DIR: dataDir, NODESAGE_DISK_WARN_PERCENT: '1', NODESAGE_DISK_CRITICAL_PERCENT: '100', NODESAGE_HOST_INTERVAL_SECONDS: '0.2', NODESAGE_DETECT_INTERVAL_SECONDS: '0.2' };
}

describe('daemon in host mode', () => {
  it('serves status with a healthy host source and a real DiskFull finding; survives a restart with the same finding', async () => {
    const dataDir = tempDir();
    running = await startDaemon({ env: hostEnv(dataDir) });
    // Ready once the store is open and the first collection ran.
    await waitFor(async () => (await getJson(`${running!.url}/readyz`)).status === 200);
    const status = await getJson<Status>(`${running.url}/v1/status`);
    expect(status.status).toBe(200);
    expect(status.body.mode).toBe('host');
    const host = status.body.sources.find((s) => s.name === 'host');
    expect(host?.state).toBe('healthy');
    expect(host?.signals).toBeGreaterThan(0);
    expect(status.body.model.state).toBe('none');
    expect(status.body.rulesOnly).toBe(true);

    const first = await waitFor(async () => {
      const r = await getJson<{ items: Finding[] }>(`${running!.url}/v1/findings?category=DiskFull`);
      return r.body.items.find((f) => f.subject.kind === 'Node') ?? null;
    });
    // The finding names a real mount of this machine, with real numbers.
    const mount = first.evidence[0]!.text.split(':')[0]!;
    expect(existsSync(mount)).toBe(true);
    expect(first.evidence[0]!.source).toBe('host');
    expect(first.message).toMatch(/\d+\.\d% used/);
    // Let a few cycles count it.
    await waitFor(async () => (await getJson<Finding>(`${running!.url}/v1/findings/${first.id}`)).body.count >= 3);
    const before = (await getJson<Finding>(`${running.url}/v1/findings/${first.id}`)).body;

    const stop = await running.kill('SIGTERM');
    expect(stop.code).toBe(0);
    expect(stop.ms).toBeLessThan(10_000);
    expect(running.stdout()).toContain('nodesage stopped');

    running = await startDaemon({ env: hostEnv(dataDir) });
    const after = await waitFor(async () => {
      const r = await getJson<Finding>(`${running!.url}/v1/findings/${first.id}`);
      return r.status === 200 && r.body.count > before.count ? r.body : null;
    });
    expect(after.id).toBe(first.id);
    expect(after.firstSeen).toBe(before.firstSeen);
    expect(after.status).toBe('open');
  });

  it('exits 2 naming NODESAGE_LISTEN when it is nonsense', async () => {
    const r = await runCli(['daemon'], { env: { NODESAGE_LISTEN: 'nonsense', NODESAGE_DATA_DIR: tempDir() } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('NODESAGE_LISTEN');
    expect(r.stderr).toContain('"nonsense"');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('moves a corrupt database aside, serves with a fresh one and says so in /v1/status', async () => {
    const dataDir = tempDir();
    const garbage = Buffer.alloc(64 * 1024, 0x5a);
    garbage.write('this is not a sqlite database');
    writeFileSync(join(dataDir, 'nodesage.db'), garbage);
    running = await startDaemon({ env: hostEnv(dataDir) });
    const status = await getJson<Status>(`${running.url}/v1/status`);
    expect(status.body.store.recoveredFrom).toMatch(/nodesage\.db\.corrupt-/);
    const kept = readdirSync(dataDir).filter((f) => f.startsWith('nodesage.db.corrupt-'));
    expect(kept).toHaveLength(1);
    // The old bytes are kept, untouched.
    expect(existsSync(join(dataDir, kept[0]!))).toBe(true);
    const findings = await waitFor(async () => {
      const r = await getJson<{ items: Finding[] }>(`${running!.url}/v1/findings`);
      return r.body.items.length > 0 ? r.body.items : null;
    });
    expect(findings[0]!.category).toBe('DiskFull');
  });
});
