/**
 * Reads a node snapshot bundle (DESIGN.md "Node snapshot bundle") into the same
 * Signals the live collectors emit. Every part is optional.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { KubeEvent, KubeNode, KubePod, StatsSummary } from '../core/kube.js';
import { eventLastTime } from '../core/kube.js';
import type { HostFilesystem, HostSnapshot, LogLine, Signal, Timestamp } from '../core/types.js';
import {
  type JournalRecord,
  PartialJoiner,
  containerRefFromPath,
  journalToLogLine,
  kmsgToLogLines,
  parseCriLine,
  parseKmsgRecord,
  toIso,
} from './parse.js';

/** `meta.json` of a bundle. */
export interface BundleMeta {
  nodeName: string;
  /** "Now" for the analysis. */
  capturedAt: Timestamp;
  /** Turns kmsg microseconds-since-boot into wall time. */
  bootTime?: Timestamp;
}

/** A bundle read into memory. */
export interface Bundle {
  dir: string;
  meta: BundleMeta;
  /** Signals in a stable order: state first, then log lines sorted by time. */
  signals: Signal[];
  /** Parts that were present, for `analyze` to say what it looked at. */
  parts: string[];
  /** Lines that could not be parsed, per part. */
  skipped: Record<string, number>;
}

/** Raised when a bundle folder is missing or unreadable as a whole. */
export class BundleError extends Error {
  readonly code = 'BUNDLE_INVALID';
  override readonly name = 'BundleError';
}

async function readJson<T>(path: string): Promise<T | undefined> {
  if (!existsSync(path)) return undefined;
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new BundleError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

async function readText(path: string): Promise<string> {
  const buf = await readFile(path);
  return (path.endsWith('.gz') ? gunzipSync(buf) : buf).toString('utf8');
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Reads the pod log tree `logs/pods/<ns>_<pod>_<uid>/<container>/<n>.log[.gz]`. */
async function readPodLogs(root: string, skipped: Record<string, number>): Promise<LogLine[]> {
  const out: LogLine[] = [];
  if (!existsSync(root)) return out;
  for (const podDir of (await readdir(root)).sort()) {
    const podPath = join(root, podDir);
    if (!(await stat(podPath)).isDirectory()) continue;
    for (const container of (await readdir(podPath)).sort()) {
      const cPath = join(podPath, container);
      if (!(await stat(cPath)).isDirectory()) continue;
      // Oldest first: rotated files (`0.log.<ts>[.gz]`) sort before the live `<n>.log` by restart then name.
      const files = (await readdir(cPath)).filter((f) => /^\d+\.log/.test(f));
      files.sort((a, b) => {
        const na = Number.parseInt(a, 10);
        const nb = Number.parseInt(b, 10);
        if (na !== nb) return na - nb;
        const liveA = a.endsWith('.log') ? 1 : 0;
        const liveB = b.endsWith('.log') ? 1 : 0;
        return liveA - liveB || a.localeCompare(b);
      });
      for (const file of files) {
        const ref = containerRefFromPath(podDir, container, file);
        if (!ref) {
          skipped.podLogs = (skipped.podLogs ?? 0) + 1;
          continue;
        }
        const joiner = new PartialJoiner();
        for (const raw of splitLines(await readText(join(cPath, file)))) {
          const cri = parseCriLine(raw);
          if (!cri) {
            skipped.podLogs = (skipped.podLogs ?? 0) + 1;
            continue;
          }
          const full = joiner.push(cri.stream, cri);
          if (!full) continue;
          const at = toIso(full.time);
          if (!at) {
            skipped.podLogs = (skipped.podLogs ?? 0) + 1;
            continue;
          }
          const line: LogLine = { source: 'podLog', at, text: full.message, container: ref, stream: cri.stream };
          if (full.truncated) line.truncated = true;
          out.push(line);
        }
      }
    }
  }
  return out;
}

/** Maps systeminformation `fsSize()` entries to HostFilesystems. */
export function fsFromSystemInformation(
  fsSize: { fs: string; type: string; size: number; used: number; available: number; mount: string; rw?: boolean | null }[],
  inodes?: { mount: string; inodesTotal: number; inodesUsed: number }[],
): HostFilesystem[] {
  return fsSize.map((f) => {
    const fsEntry: HostFilesystem = {
      mount: f.mount,
      device: f.fs,
      fsType: f.type,
      sizeBytes: f.size,
      usedBytes: f.used,
      availBytes: f.available,
    };
    if (f.rw === false) fsEntry.readOnly = true;
    const ino = inodes?.find((i) => i.mount === f.mount);
    if (ino) {
      fsEntry.inodesTotal = ino.inodesTotal;
      fsEntry.inodesUsed = ino.inodesUsed;
    }
    return fsEntry;
  });
}

/** Reads `host/*.json` (systeminformation shapes, plus nodesage's `inodes.json`, `psi.json`, `network.json`, `gpus.json`). */
async function readHost(dir: string, at: Timestamp): Promise<HostSnapshot | undefined> {
  if (!existsSync(dir)) return undefined;
  const fsSize = await readJson<Parameters<typeof fsFromSystemInformation>[0]>(join(dir, 'fsSize.json'));
  const inodes = await readJson<Parameters<typeof fsFromSystemInformation>[1]>(join(dir, 'inodes.json'));
  const mem = await readJson<{ total: number; available: number; swaptotal?: number; swapused?: number }>(join(dir, 'mem.json'));
  const load = await readJson<{ avgLoad?: number; currentLoad?: number; cpus?: unknown[] }>(join(dir, 'currentLoad.json'));
  const psi = await readJson<HostSnapshot['psi']>(join(dir, 'psi.json'));
  const temps = await readJson<{ main?: number | null; cores?: number[] }>(join(dir, 'cpuTemperature.json'));
  const snap: HostSnapshot = { at, filesystems: fsSize ? fsFromSystemInformation(fsSize, inodes) : [] };
  if (mem) {
    snap.memory = {
      totalBytes: mem.total,
      availableBytes: mem.available,
      swapTotalBytes: mem.swaptotal ?? 0,
      swapUsedBytes: mem.swapused ?? 0,
    };
  }
  if (load) {
    const cpus = Array.isArray(load.cpus) ? load.cpus.length : 0;
    snap.load = { avg1: load.avgLoad ?? 0, avg5: load.avgLoad ?? 0, avg15: load.avgLoad ?? 0, cpus };
    if (load.currentLoad !== undefined) snap.load.currentLoadPct = load.currentLoad;
  }
  if (psi) snap.psi = psi;
  const network = await readJson<HostSnapshot['network']>(join(dir, 'network.json'));
  if (network) snap.network = network;
  const gpus = await readJson<HostSnapshot['gpus']>(join(dir, 'gpus.json'));
  if (gpus) snap.gpus = gpus;
  if (temps && typeof temps.main === 'number') snap.temperatures = [{ label: 'cpu', celsius: temps.main }];
  return snap;
}

/**
 * Reads a bundle folder into signals. Throws BundleError when the folder or its
 * meta.json is missing; a missing optional part is simply absent.
 */
export async function readBundle(dir: string): Promise<Bundle> {
  if (!existsSync(dir) || !(await stat(dir)).isDirectory()) throw new BundleError(`bundle folder not found: ${dir}`);
  const meta = await readJson<BundleMeta>(join(dir, 'meta.json'));
  if (!meta || typeof meta.nodeName !== 'string' || toIso(meta.capturedAt ?? '') === null) {
    throw new BundleError(`${join(dir, 'meta.json')}: needs "nodeName" and an RFC3339 "capturedAt"`);
  }
  const now = toIso(meta.capturedAt)!;
  const parts: string[] = ['meta.json'];
  const skipped: Record<string, number> = {};
  const state: Signal[] = [];

  const node = await readJson<KubeNode>(join(dir, 'node.json'));
  if (node) {
    parts.push('node.json');
    state.push({ type: 'node', at: now, node });
  }
  const pods = await readJson<{ items?: KubePod[] }>(join(dir, 'pods.json'));
  if (pods) {
    parts.push('pods.json');
    state.push({ type: 'pods', at: now, pods: pods.items ?? [] });
  }
  const events = await readJson<{ items?: KubeEvent[] }>(join(dir, 'events.json'));
  if (events) {
    parts.push('events.json');
    for (const event of events.items ?? []) state.push({ type: 'event', at: eventLastTime(event) ?? now, event });
  }
  const summary = await readJson<StatsSummary>(join(dir, 'kubelet', 'stats-summary.json'));
  if (summary) {
    parts.push('kubelet/stats-summary.json');
    state.push({ type: 'statsSummary', at: now, summary });
  }
  const healthzPath = join(dir, 'kubelet', 'healthz.txt');
  if (existsSync(healthzPath)) {
    parts.push('kubelet/healthz.txt');
    const body = (await readFile(healthzPath, 'utf8')).trim();
    state.push({ type: 'kubeletHealth', at: now, ok: body === 'ok', body });
  }
  const host = await readHost(join(dir, 'host'), now);
  if (host) {
    parts.push('host/');
    state.push({ type: 'host', snapshot: host });
  }

  const logs: LogLine[] = [];
  const podLogRoot = join(dir, 'logs', 'pods');
  if (existsSync(podLogRoot)) {
    parts.push('logs/pods/');
    logs.push(...(await readPodLogs(podLogRoot, skipped)));
  }
  const journalPath = join(dir, 'logs', 'journal.jsonl');
  if (existsSync(journalPath)) {
    parts.push('logs/journal.jsonl');
    for (const raw of splitLines(await readText(journalPath))) {
      if (raw.trim() === '') continue;
      let rec: JournalRecord;
      try {
        rec = JSON.parse(raw) as JournalRecord;
      } catch {
        skipped.journal = (skipped.journal ?? 0) + 1;
        continue;
      }
      const line = journalToLogLine(rec);
      if (line) logs.push(line);
      else skipped.journal = (skipped.journal ?? 0) + 1;
    }
  }
  const kmsgPath = join(dir, 'logs', 'kmsg.txt');
  if (existsSync(kmsgPath)) {
    parts.push('logs/kmsg.txt');
    // Without a boot time the best estimate is that the newest record is from capture time.
    const records = splitLines(await readText(kmsgPath)).map(parseKmsgRecord);
    const maxUsec = Math.max(0, ...records.map((r) => r?.usec ?? 0));
    const bootMs = meta.bootTime ? Date.parse(meta.bootTime) : Date.parse(now) - Math.ceil(maxUsec / 1000);
    for (const rec of records) {
      if (!rec) {
        skipped.kmsg = (skipped.kmsg ?? 0) + 1;
        continue;
      }
      logs.push(...kmsgToLogLines(rec, bootMs));
    }
  }
  // Stable sort keeps each source's own order for equal times.
  logs.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const signals: Signal[] = [...state, ...logs.map((line): Signal => ({ type: 'log', line }))];
  return { dir, meta: { ...meta, capturedAt: now }, signals, parts, skipped };
}
