/**
 * The log files k3s and RKE2 write for their embedded containerd and kubelet
 * (under /var/lib/rancher, not in the journal): the journald collector follows
 * them as pseudo-units of the log-rule unit groups, with each line's own time,
 * and resumes from its checkpoint.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ManualClock } from '../daemon/core/runtime/clock.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_EMBEDDED_LOG_FILES, embeddedLineTime, JournaldCollector } from '../daemon/collectors/journald.js';
import type { NodeView } from '../daemon/core/types.js';
import { createLogRuleDetector } from '../daemon/detectors/log-rules.js';
import { CommitLog, type HostRoot, makeHostRoot } from './helpers/host-root.js';

let host: HostRoot;
const collectors: JournaldCollector[] = [];

beforeEach(() => {
  host = makeHostRoot('nodesage-embedded-');
  // A syslog file so the collector runs its fallback (no journalctl here), as on a host without a journal.
  writeFileSync(join(host.root, 'var/log/syslog'), '');
});

afterEach(async () => {
  for (const c of collectors.splice(0)) await c.stop();
  host.cleanup();
});

const NOW = Date.parse('2026-12-06T10:00:00.000Z');

function write(rel: string, lines: string[]): void {
  const path = join(host.root, rel);
  mkdirSync(dirname(path), { recursive: true });
  appendFileSync(path, `${lines.join('\n')}\n`);
}

async function start(log: CommitLog): Promise<JournaldCollector> {
  const c = new JournaldCollector({ hostRoot: host.root, checkpoints: log.store, journalctl: '/nonexistent/journalctl', syslogPollIntervalMs: 3_600_000, clock: new ManualClock(NOW) });
  collectors.push(c);
  await c.start(log.sink);
  return c;
}

const RKE2_KUBELET = 'var/lib/rancher/rke2/agent/logs/kubelet.log';
const K3S_CONTAINERD = 'var/lib/rancher/k3s/agent/containerd/containerd.log';

describe('embedded component log files', () => {
  it('reads the RKE2 kubelet log and the k3s containerd log as their pseudo-units, and the kubelet and runtime rules see them', async () => {
    write(RKE2_KUBELET, [
      'I1206 09:58:00.100200    2211 kubelet.go:2435] "SyncLoop ADD" source="api" pods=["kube-system/rke2-canal-x2x9q"]',
      'E1206 09:59:30.004512    2211 kubelet.go:2412] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active 3m30.1s ago; threshold is 3m0s"',
    ]);
    write(K3S_CONTAINERD, [
      'time="2026-12-06T09:59:40.123456789Z" level=warning msg="failed to load plugin io.containerd.grpc.v1.cri" error="invalid plugin config: `mirrors` cannot be set when `config_path` is provided"',
    ]);
    const log = new CommitLog();
    await start(log);
    expect(log.lines.map((l) => [l.unit, l.at])).toEqual([
      ['k3s-containerd', '2026-12-06T09:59:40.123Z'],
      ['rke2-kubelet', '2026-12-06T09:58:00.100Z'],
      ['rke2-kubelet', '2026-12-06T09:59:30.004Z'],
    ]);
    const view: NodeView = { nodeName: 'rke2-edge-4', now: new Date(NOW).toISOString(), logs: log.lines, events: [], containerLogTail: new Map(), templates: [] };
    const drafts = createLogRuleDetector().detect(view);
    expect(drafts.map((d) => [d.category, d.facts?.unit]).sort()).toEqual([
      ['KubeletUnhealthy', 'rke2-kubelet'],
      ['RuntimeUnhealthy', 'k3s-containerd'],
    ]);
  });

  it('resumes after the last committed line and picks up a file that appears later', async () => {
    write(RKE2_KUBELET, ['E1206 09:50:00.000001    2211 kubelet.go:2412] "Skipping pod synchronization" err="container runtime is down"']);
    const log = new CommitLog();
    let c = await start(log);
    expect(log.lines).toHaveLength(1);
    await c.stop();
    collectors.splice(collectors.indexOf(c), 1);
    write(RKE2_KUBELET, ['E1206 09:51:00.000002    2211 kubelet.go:2412] "Skipping pod synchronization" err="container runtime is down"']);
    c = await start(log);
    write(K3S_CONTAINERD, ['time="2026-12-06T09:52:00Z" level=info msg="starting containerd" version=v1.7.22-k3s1']);
    await c.pollEmbeddedNow();
    expect(log.lines.map((l) => l.at)).toEqual(['2026-12-06T09:50:00.000Z', '2026-12-06T09:51:00.000Z', '2026-12-06T09:52:00.000Z']);
  });

  it('takes the time from logfmt and klog headers, the year from now, and now for anything else', () => {
    expect(embeddedLineTime('time="2026-12-06T09:58:00.010203040Z" level=info msg="x"', NOW)).toBe('2026-12-06T09:58:00.010Z');
    expect(embeddedLineTime('time="2026-12-06 09:58:00" level=info msg="x"', NOW)).toBe('2026-12-06T09:58:00.000Z');
    expect(embeddedLineTime('W1206 09:58:01.5    1 x.go:1] y', NOW)).toBe('2026-12-06T09:58:01.500Z');
    // December 31st read on January 1st is last year's.
    expect(embeddedLineTime('I1231 23:59:59.000000    1 x.go:1] y', Date.parse('2027-01-01T00:00:10Z'))).toBe('2026-12-31T23:59:59.000Z');
    expect(embeddedLineTime('plain text', NOW)).toBe(new Date(NOW).toISOString());
    expect(DEFAULT_EMBEDDED_LOG_FILES.map((f) => f.unit)).toEqual(['k3s-containerd', 'rke2-containerd', 'rke2-kubelet']);
  });
});
