/**
 * Writes signals as a node snapshot bundle (DESIGN.md), the inverse of
 * readBundle: `nodesage capture` collects signals from the live sources for a
 * moment and writes them here, redacted and size-capped per part, so a
 * support bundle from an air-gapped site can be analysed elsewhere.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs } from '../core/dirs.js';
import type { KubeEvent, KubeNode, KubePod, StatsSummary } from '../core/kube.js';
import type { HostSnapshot, LogLine, Signal } from '../core/types.js';
import { redactJson } from '../redact.js';
import type { BundleMeta } from './bundle.js';

/** Options of writeBundle. */
export interface WriteBundleOptions {
  /**
   * Applied to every log line, and to every string of the Node, Pod and Event objects (with env values and
   * fields that a secret name names replaced whole). Defaults to none.
   */
  redact?: (text: string) => string;
  /** Bytes kept per container log (newest kept). Defaults to 256 KiB. */
  maxPodLogBytes?: number;
  /** Bytes kept of the journal export (newest kept). Defaults to 4 MiB. */
  maxJournalBytes?: number;
  /** Bytes kept of the kernel log (newest kept). Defaults to 1 MiB. */
  maxKmsgBytes?: number;
}

/** What was written, per part. */
export interface WriteBundleResult {
  parts: string[];
  /** Lines left out by the size caps, per part. */
  truncated: Record<string, number>;
}

function keepNewest(lines: string[], maxBytes: number): { kept: string[]; dropped: number } {
  let bytes = 0;
  let i = lines.length;
  while (i > 0) {
    const n = Buffer.byteLength(lines[i - 1]!) + 1;
    if (bytes + n > maxBytes) break;
    bytes += n;
    i--;
  }
  return { kept: lines.slice(i), dropped: i };
}

function writeJson(path: string, data: unknown): void {
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
}

/** Host snapshot → systeminformation-shaped files plus nodesage's inodes.json and psi.json. */
function writeHost(dir: string, h: HostSnapshot): void {
  makeDirs(dir);
  writeJson(
    join(dir, 'fsSize.json'),
    h.filesystems.map((f) => ({
      fs: f.device,
      type: f.fsType,
      size: f.sizeBytes,
      used: f.usedBytes,
      available: f.availBytes,
      use: f.usedBytes + f.availBytes > 0 ? Math.round((f.usedBytes / (f.usedBytes + f.availBytes)) * 10000) / 100 : 0,
      mount: f.mount,
      rw: !f.readOnly,
    })),
  );
  const inodes = h.filesystems
    .filter((f) => f.inodesTotal !== undefined)
    .map((f) => ({ mount: f.mount, inodesTotal: f.inodesTotal, inodesUsed: f.inodesUsed }));
  if (inodes.length > 0) writeJson(join(dir, 'inodes.json'), inodes);
  if (h.memory) {
    writeJson(join(dir, 'mem.json'), {
      total: h.memory.totalBytes,
      available: h.memory.availableBytes,
      swaptotal: h.memory.swapTotalBytes,
      swapused: h.memory.swapUsedBytes,
    });
  }
  if (h.load) {
    writeJson(join(dir, 'currentLoad.json'), {
      avgLoad: h.load.avg1,
      currentLoad: h.load.currentLoadPct ?? null,
      cpus: Array.from({ length: h.load.cpus }, () => ({})),
    });
  }
  if (h.psi) writeJson(join(dir, 'psi.json'), h.psi);
  if (h.network) writeJson(join(dir, 'network.json'), h.network);
  if (h.gpus) writeJson(join(dir, 'gpus.json'), h.gpus);
  const cpuTemp = h.temperatures?.find((t) => t.label === 'cpu');
  if (cpuTemp) writeJson(join(dir, 'cpuTemperature.json'), { main: cpuTemp.celsius, cores: [] });
}

/** Writes signals as a bundle in `dir` (created). Later state signals win over earlier ones. */
export function writeBundle(dir: string, meta: BundleMeta, signals: Signal[], opts: WriteBundleOptions = {}): WriteBundleResult {
  const redact = opts.redact ?? ((t: string) => t);
  // Pod specs carry env values, args and last-applied manifests: the whole object is redacted, not only messages.
  const redactObject = <T>(o: T): T => (opts.redact ? redactJson(o, opts.redact) : o);
  makeDirs(dir);
  const parts: string[] = ['meta.json'];
  const truncated: Record<string, number> = {};
  writeJson(join(dir, 'meta.json'), meta);

  let node: KubeNode | undefined;
  let pods: KubePod[] | undefined;
  const events = new Map<string, KubeEvent>();
  let summary: StatsSummary | undefined;
  let health: { ok: boolean; body: string } | undefined;
  let host: HostSnapshot | undefined;
  const logs: LogLine[] = [];
  for (const s of signals) {
    if (s.type === 'node') node = s.node;
    else if (s.type === 'pods') pods = s.pods;
    else if (s.type === 'event') events.set(s.event.metadata.uid ?? `${s.event.metadata.namespace}/${s.event.metadata.name}`, s.event);
    else if (s.type === 'statsSummary') summary = s.summary;
    else if (s.type === 'kubeletHealth') health = { ok: s.ok, body: s.body };
    else if (s.type === 'host') host = s.snapshot;
    else if (s.type === 'log') logs.push(s.line);
  }
  if (node) {
    writeJson(join(dir, 'node.json'), redactObject(node));
    parts.push('node.json');
  }
  if (pods) {
    writeJson(join(dir, 'pods.json'), { apiVersion: 'v1', kind: 'PodList', items: pods.map(redactObject) });
    parts.push('pods.json');
  }
  if (events.size > 0) {
    const items = [...events.values()].map(redactObject);
    writeJson(join(dir, 'events.json'), { apiVersion: 'v1', kind: 'EventList', items });
    parts.push('events.json');
  }
  if (summary || health) makeDirs(join(dir, 'kubelet'));
  if (summary) {
    writeJson(join(dir, 'kubelet', 'stats-summary.json'), summary);
    parts.push('kubelet/stats-summary.json');
  }
  if (health) {
    writeFileSync(join(dir, 'kubelet', 'healthz.txt'), `${redact(health.body)}\n`);
    parts.push('kubelet/healthz.txt');
  }
  if (host) {
    writeHost(join(dir, 'host'), host);
    parts.push('host/');
  }

  // Pod logs: one CRI file per container restart, newest bytes kept.
  const perFile = new Map<string, string[]>();
  const journal: string[] = [];
  const kmsg: string[] = [];
  const bootMs = meta.bootTime ? Date.parse(meta.bootTime) : undefined;
  let kmsgSeq = 0;
  for (const l of logs) {
    const text = redact(l.text);
    if (l.source === 'podLog' && l.container) {
      const c = l.container;
      const file = join('logs', 'pods', `${c.namespace}_${c.pod}_${c.uid}`, c.container, `${c.restart ?? 0}.log`);
      let lines = perFile.get(file);
      if (!lines) {
        lines = [];
        perFile.set(file, lines);
      }
      // One CRI line per message line so the file stays parseable.
      for (const part of text.split('\n')) lines.push(`${l.at} ${l.stream ?? 'stdout'} F ${part}`);
    } else if (l.source === 'journald') {
      const rec: Record<string, string> = {
        __REALTIME_TIMESTAMP: String(Date.parse(l.at) * 1000),
        MESSAGE: text,
      };
      if (l.unit === 'kernel') rec._TRANSPORT = 'kernel';
      else if (l.unit?.includes('.')) {
        rec._SYSTEMD_UNIT = l.unit;
        rec.SYSLOG_IDENTIFIER = l.unit.replace(/\.(service|scope)$/, '');
      } else if (l.unit) {
        // The line had no unit, only an identifier: keep it that way.
        rec.SYSLOG_IDENTIFIER = l.unit;
      }
      if (l.priority !== undefined) rec.PRIORITY = String(l.priority);
      journal.push(JSON.stringify(rec));
    } else if (l.source === 'kmsg') {
      const usec = bootMs !== undefined ? Math.max(0, (Date.parse(l.at) - bootMs) * 1000) : 0;
      // The kernel escapes control characters and backslashes as \xNN.
      let escaped = '';
      for (const ch of text) {
        const code = ch.charCodeAt(0);
        escaped += code < 0x20 || ch === '\\' ? `\\x${code.toString(16).padStart(2, '0')}` : ch;
      }
      kmsg.push(`${l.priority ?? 6},${kmsgSeq++},${usec},-;${escaped}`);
    }
  }
  for (const [file, lines] of perFile) {
    const { kept, dropped } = keepNewest(lines, opts.maxPodLogBytes ?? 256 * 1024);
    if (dropped > 0) truncated[file] = dropped;
    makeDirs(join(dir, file, '..'));
    writeFileSync(join(dir, file), `${kept.join('\n')}\n`);
  }
  if (perFile.size > 0) parts.push('logs/pods/');
  if (journal.length > 0) {
    makeDirs(join(dir, 'logs'));
    const { kept, dropped } = keepNewest(journal, opts.maxJournalBytes ?? 4 * 1024 * 1024);
    if (dropped > 0) truncated['logs/journal.jsonl'] = dropped;
    writeFileSync(join(dir, 'logs', 'journal.jsonl'), `${kept.join('\n')}\n`);
    parts.push('logs/journal.jsonl');
  }
  if (kmsg.length > 0) {
    makeDirs(join(dir, 'logs'));
    const { kept, dropped } = keepNewest(kmsg, opts.maxKmsgBytes ?? 1024 * 1024);
    if (dropped > 0) truncated['logs/kmsg.txt'] = dropped;
    writeFileSync(join(dir, 'logs', 'kmsg.txt'), `${kept.join('\n')}\n`);
    parts.push('logs/kmsg.txt');
  }
  return { parts, truncated };
}
