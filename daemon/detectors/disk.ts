/**
 * DiskFull and InodeExhaustion: from the host's filesystems (host mode, bundles
 * with host/fsSize.json) and from the kubelet's stats summary (nodefs, imagefs).
 */
import type { StatsFs } from '../core/kube.js';
import type { FindingDraft, Severity } from '../core/types.js';
import { defineDetectorOptions, detectorFactory, names, opt, percent } from './options.js';

/** Thresholds of the disk detector: each one's check, doc and default (config `detectors.disk`). */
export const DISK_OPTIONS = defineDetectorOptions({
  /** Used space percent that makes a warning. Defaults to 85. */
  warnPercent: opt(percent, 85),
  /** Used space percent that makes a critical finding. Defaults to 95. */
  criticalPercent: opt(percent, 95),
  /** Used inode percent that makes a warning. Defaults to 90. */
  inodeWarnPercent: opt(percent, 90),
  /** Used inode percent that makes a critical finding. Defaults to 97. */
  inodeCriticalPercent: opt(percent, 97),
  /** Filesystem types never reported (read-only images, pseudo filesystems). Defaults to squashfs, iso9660, overlay, nsfs, ramfs, devtmpfs, udf, erofs. */
  ignoreFsTypes: opt(names('filesystem types'), ['squashfs', 'iso9660', 'overlay', 'nsfs', 'ramfs', 'devtmpfs', 'udf', 'erofs']),
}, [['warnPercent', 'criticalPercent'], ['inodeWarnPercent', 'inodeCriticalPercent']]);

function pct(used: number, total: number): number {
  return total > 0 ? (used / total) * 100 : 0;
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function severityFor(p: number, warn: number, crit: number): Severity | null {
  if (p >= crit) return 'critical';
  if (p >= warn) return 'warning';
  return null;
}

interface FsUsage {
  label: string;
  mount: string;
  source: 'host' | 'kubelet';
  at: string;
  sizeBytes: number;
  usedBytes: number;
  availBytes: number;
  inodesTotal?: number;
  inodesUsed?: number;
}

function fromStats(label: string, fs: StatsFs | undefined, at: string): FsUsage | null {
  if (!fs?.capacityBytes) return null;
  const avail = fs.availableBytes ?? 0;
  const u: FsUsage = {
    label,
    mount: label,
    source: 'kubelet',
    at: fs.time ?? at,
    sizeBytes: fs.capacityBytes,
    // kubelet's usedBytes covers only kubelet-owned data; capacity - available is what fills the disk.
    usedBytes: fs.capacityBytes - avail,
    availBytes: avail,
  };
  if (fs.inodes) {
    u.inodesTotal = fs.inodes;
    u.inodesUsed = fs.inodesUsed ?? fs.inodes - (fs.inodesFree ?? 0);
  }
  return u;
}

/** Creates the disk detector. */
export const createDiskDetector = detectorFactory('disk', DISK_OPTIONS, (o) => {
  const ignore = new Set(o.ignoreFsTypes);
  return (view) => {
    const usages: FsUsage[] = [];
    for (const f of view.host?.filesystems ?? []) {
      if (ignore.has(f.fsType)) continue;
      const u: FsUsage = {
        label: f.mount,
        mount: f.mount,
        source: 'host',
        at: view.host!.at,
        sizeBytes: f.sizeBytes,
        usedBytes: f.usedBytes,
        availBytes: f.availBytes,
      };
      if (f.inodesTotal !== undefined && f.inodesUsed !== undefined) {
        u.inodesTotal = f.inodesTotal;
        u.inodesUsed = f.inodesUsed;
      }
      usages.push(u);
    }
    const s = view.statsSummary?.node;
    if (s) {
      const nodefs = fromStats('nodefs', s.fs, view.now);
      if (nodefs) usages.push(nodefs);
      const imagefs = fromStats('imagefs', s.runtime?.imageFs, view.now);
      // imagefs is usually the same filesystem as nodefs: report it once.
      if (imagefs && !(nodefs && nodefs.sizeBytes === imagefs.sizeBytes && nodefs.availBytes === imagefs.availBytes)) {
        usages.push(imagefs);
      }
    }
    const out: FindingDraft[] = [];
    const subject = { kind: 'Node' as const, name: view.nodeName };
    for (const u of usages) {
      const used = u.usedBytes + u.availBytes > 0 ? pct(u.usedBytes, u.usedBytes + u.availBytes) : 0;
      const sev = severityFor(used, o.warnPercent, o.criticalPercent);
      if (sev) {
        const text = `${u.label}: ${used.toFixed(1)}% used (${gib(u.usedBytes)} of ${gib(u.sizeBytes)}, ${gib(u.availBytes)} free)`;
        out.push({
          category: 'DiskFull',
          severity: sev,
          subject,
          detail: u.label,
          title: `Filesystem ${u.label} is ${used.toFixed(0)}% full`,
          message: `${text}; threshold ${sev === 'critical' ? o.criticalPercent : o.warnPercent}%.`,
          evidence: [{ source: u.source, at: u.at, text }],
          at: u.at,
          lifecycle: 'condition',
          detector: 'disk',
          facts: { mount: u.label, usedPercent: Math.round(used * 10) / 10, availBytes: u.availBytes },
        });
      }
      if (u.inodesTotal !== undefined && u.inodesUsed !== undefined && u.inodesTotal > 0) {
        const ip = pct(u.inodesUsed, u.inodesTotal);
        const isev = severityFor(ip, o.inodeWarnPercent, o.inodeCriticalPercent);
        if (isev) {
          const text = `${u.label}: ${ip.toFixed(1)}% of inodes used (${u.inodesUsed} of ${u.inodesTotal})`;
          out.push({
            category: 'InodeExhaustion',
            severity: isev,
            subject,
            detail: u.label,
            title: `Filesystem ${u.label} has ${ip.toFixed(0)}% of its inodes used`,
            message: `${text}; threshold ${isev === 'critical' ? o.inodeCriticalPercent : o.inodeWarnPercent}%. New files cannot be created once inodes run out, even with free space.`,
            evidence: [{ source: u.source, at: u.at, text }],
            at: u.at,
            lifecycle: 'condition',
            detector: 'disk',
            facts: { mount: u.label, inodesUsedPercent: Math.round(ip * 10) / 10 },
          });
        }
      }
    }
    return out;
  };
});
