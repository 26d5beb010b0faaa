/**
 * Node resource exhaustion read from the kubelet's /stats/summary, for nodes
 * where nodesage has no host snapshot (bundles, in-cluster without host mounts):
 * - NodePIDPressure from `node.rlimit` (processes against the kernel pid_max);
 * - NodeMemoryPressure from `node.memory.availableBytes` against the node's
 *   memory capacity (node.json), or against available + working set.
 * Disk and inodes from the summary are the disk detector's job.
 */
import type { FindingDraft, Severity } from '../core/types.js';
import { iso } from './pod-status.js';
import { defineDetectorOptions, detectorFactory, opt, percent } from './options.js';

/** Thresholds of the stats summary detector: each one's check, doc and default (config `detectors.statsSummary`). */
export const STATS_SUMMARY_OPTIONS = defineDetectorOptions({
  /** Percent of pid_max in use for a warning. Defaults to 85. */
  pidWarnPercent: opt(percent, 85),
  /** Percent of pid_max in use for a critical finding. Defaults to 95. */
  pidCriticalPercent: opt(percent, 95),
  /** Available memory percent below which it is a warning. Defaults to 5. */
  memoryAvailableWarnPercent: opt(percent, 5),
  /** Available memory percent below which it is critical. Defaults to 2. */
  memoryAvailableCriticalPercent: opt(percent, 2),
}, [['pidWarnPercent', 'pidCriticalPercent'], ['memoryAvailableCriticalPercent', 'memoryAvailableWarnPercent']]);

const UNITS: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12, '': 1 };

/** Parses a Kubernetes quantity ("8132532Ki", "8Gi", "512M") into a number of bytes, or NaN. */
export function parseQuantity(q: string | undefined): number {
  if (!q) return Number.NaN;
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q.trim());
  if (!m) return Number.NaN;
  return Number(m[1]) * (UNITS[m[2] ?? ''] ?? 1);
}

function mib(bytes: number): string {
  return `${Math.round(bytes / 1024 ** 2)} MiB`;
}

/** Creates the stats summary detector. */
export const createStatsSummaryDetector = detectorFactory('stats-summary', STATS_SUMMARY_OPTIONS, (o) => (view) => {
  const s = view.statsSummary?.node;
  if (!s) return [];
  const out: FindingDraft[] = [];
  const subject = { kind: 'Node' as const, name: view.nodeName };
  const rl = s.rlimit;
  if (rl?.maxpid && rl.curproc !== undefined && rl.maxpid > 0) {
    const p = (rl.curproc / rl.maxpid) * 100;
    const sev: Severity | null = p >= o.pidCriticalPercent ? 'critical' : p >= o.pidWarnPercent ? 'warning' : null;
    if (sev) {
      const at = iso((rl as { time?: string }).time, view.now);
      const text = `stats/summary rlimit: ${rl.curproc} processes of pid_max ${rl.maxpid} (${p.toFixed(1)}%)`;
      out.push({
        category: 'NodePIDPressure',
        severity: sev,
        subject,
        title: `Node ${view.nodeName} is running out of process IDs (${p.toFixed(0)}% used)`,
        message: `${text}; threshold ${sev === 'critical' ? o.pidCriticalPercent : o.pidWarnPercent}%. New processes and threads fail once pid_max is reached (fork: Resource temporarily unavailable).`,
        evidence: [{ source: 'kubelet', at, text }],
        at,
        lifecycle: 'condition',
        detector: 'stats-summary',
        facts: { curproc: rl.curproc, maxpid: rl.maxpid, usedPercent: Math.round(p * 10) / 10 },
      });
    }
  }
  const mem = s.memory;
  if (mem?.availableBytes !== undefined) {
    const capacity = parseQuantity(view.node?.status?.capacity?.memory);
    const total = Number.isFinite(capacity) && capacity > 0 ? capacity : mem.availableBytes + (mem.workingSetBytes ?? 0);
    if (total > 0) {
      const p = (mem.availableBytes / total) * 100;
      const sev: Severity | null =
        p < o.memoryAvailableCriticalPercent ? 'critical' : p < o.memoryAvailableWarnPercent ? 'warning' : null;
      if (sev) {
        const at = iso(mem.time, view.now);
        const text = `stats/summary memory: ${mib(mem.availableBytes)} available of ${mib(total)} (${p.toFixed(1)}%), working set ${mib(mem.workingSetBytes ?? 0)}`;
        out.push({
          category: 'NodeMemoryPressure',
          severity: sev,
          subject,
          title: `Node ${view.nodeName} is short of memory (${p.toFixed(1)}% available)`,
          message: `${text}; threshold ${sev === 'critical' ? o.memoryAvailableCriticalPercent : o.memoryAvailableWarnPercent}%. The kubelet evicts pods and the kernel OOM killer runs when it reaches zero.`,
          evidence: [{ source: 'kubelet', at, text }],
          at,
          lifecycle: 'condition',
          detector: 'stats-summary',
          facts: { availableBytes: mem.availableBytes, availablePercent: Math.round(p * 10) / 10 },
        });
      }
    }
  }
  return out;
});
