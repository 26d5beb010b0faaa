/**
 * Host metrics: filesystems (space and inodes), memory, load, Linux PSI and
 * temperatures, via systeminformation and /proc. With hostRoot "/" it reads the
 * machine it runs on; with another hostRoot (a container with the host's /proc
 * mounted there) it reads the host's mount table and /proc/pressure.
 */
import { existsSync, readFileSync, statSync, statfsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import si from 'systeminformation';
import type { Collector, HostFilesystem, HostSnapshot, PsiReading, SignalSink, SourceStatus } from '../core/types.js';

/** Options of the host collector. */
export interface HostCollectorOptions {
  /** Prefix of host paths. Defaults to "/". */
  hostRoot?: string;
  /** Milliseconds between samples. Defaults to 30000. */
  intervalMs?: number;
  logger?: Logger;
}

/** Parses one /proc/pressure/<resource> file. */
export function parsePsi(text: string): PsiReading | undefined {
  const out: Partial<PsiReading> = {};
  for (const line of text.split('\n')) {
    const m = /^(some|full) avg10=([\d.]+) avg60=([\d.]+) avg300=([\d.]+)/.exec(line);
    if (m) out[m[1] as 'some' | 'full'] = { avg10: Number(m[2]), avg60: Number(m[3]), avg300: Number(m[4]) };
  }
  return out.some ? (out as PsiReading) : undefined;
}

const PSEUDO_FS = new Set([
  'proc', 'sysfs', 'cgroup', 'cgroup2', 'devpts', 'mqueue', 'debugfs', 'tracefs', 'securityfs', 'pstore', 'bpf',
  'configfs', 'fusectl', 'hugetlbfs', 'autofs', 'binfmt_misc', 'rpc_pipefs', 'nsfs', 'overlay', 'squashfs', 'devtmpfs',
  'efivarfs', 'selinuxfs', 'fuse.lxcfs', 'shm',
]);

function statfsEntry(mount: string, path: string, device: string, fsType: string, readOnly: boolean): HostFilesystem | null {
  try {
    const s = statfsSync(path);
    if (s.blocks === 0) return null;
    const size = s.blocks * s.bsize;
    const avail = s.bavail * s.bsize;
    const used = (s.blocks - s.bfree) * s.bsize;
    const fsEntry: HostFilesystem = { mount, device, fsType, sizeBytes: size, usedBytes: used, availBytes: avail };
    if (s.files > 0) {
      fsEntry.inodesTotal = s.files;
      fsEntry.inodesUsed = s.files - s.ffree;
    }
    if (readOnly) fsEntry.readOnly = true;
    return fsEntry;
  } catch {
    return null;
  }
}

/** Reads a mount table (/proc/<pid>/mounts) and statfs's each real filesystem. */
export function readFilesystems(hostRoot: string): HostFilesystem[] {
  const table = existsSync(join(hostRoot, 'proc/1/mounts')) ? join(hostRoot, 'proc/1/mounts') : join(hostRoot, 'proc/mounts');
  if (!existsSync(table)) return [];
  const rootDev = hostRoot === '/' ? undefined : safeDev('/');
  const out: HostFilesystem[] = [];
  const seen = new Set<string>();
  for (const line of readFileSync(table, 'utf8').split('\n')) {
    const [device, rawMount, fsType, options] = line.split(' ');
    if (!device || !rawMount || !fsType || PSEUDO_FS.has(fsType)) continue;
    if (fsType === 'tmpfs' && !rawMount.startsWith('/dev/shm') && rawMount !== '/tmp') continue;
    const mount = rawMount.replace(/\\040/g, ' ');
    const path = hostRoot === '/' ? mount : join(hostRoot, mount);
    // Inside a container only the host paths that are mounted in are real; the rest is our own overlay.
    if (rootDev !== undefined && safeDev(path) === rootDev) continue;
    const key = `${device}:${mount}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const e = statfsEntry(mount, path, device, fsType, (options ?? '').split(',').includes('ro'));
    if (e) out.push(e);
  }
  return out;
}

function safeDev(path: string): number | undefined {
  try {
    return statSync(path).dev;
  } catch {
    return undefined;
  }
}

/** Samples host metrics on an interval. */
export class HostCollector implements Collector {
  readonly name = 'host' as const;
  private readonly hostRoot: string;
  private readonly intervalMs: number;
  private readonly logger: Logger | undefined;
  private nvidiaSmi: boolean | undefined;
  private timer: NodeJS.Timeout | undefined;
  private signals = 0;
  private lastSignalAt: string | null = null;
  private lastError: string | null = null;
  private failing = false;
  private running = false;
  private stopped = false;

  constructor(opts: HostCollectorOptions = {}) {
    this.hostRoot = opts.hostRoot ?? '/';
    this.intervalMs = opts.intervalMs ?? 30_000;
    this.logger = opts.logger;
  }

  /** Takes one snapshot. */
  async sample(): Promise<HostSnapshot> {
    const at = new Date().toISOString();
    const snap: HostSnapshot = { at, filesystems: readFilesystems(this.hostRoot) };
    const mem = await si.mem();
    snap.memory = {
      totalBytes: mem.total,
      availableBytes: mem.available,
      swapTotalBytes: mem.swaptotal,
      swapUsedBytes: mem.swapused,
    };
    const [a1, a5, a15] = loadavg();
    snap.load = { avg1: a1 ?? 0, avg5: a5 ?? 0, avg15: a15 ?? 0, cpus: cpus().length };
    const psi: NonNullable<HostSnapshot['psi']> = {};
    for (const r of ['cpu', 'memory', 'io'] as const) {
      const p = join(this.hostRoot, 'proc/pressure', r);
      if (existsSync(p)) {
        try {
          const reading = parsePsi(readFileSync(p, 'utf8'));
          if (reading) psi[r] = reading;
        } catch {
          // PSI can be compiled in but disabled (psi=0): the file exists and reads fail.
        }
      }
    }
    if (Object.keys(psi).length > 0) snap.psi = psi;
    if (this.hostRoot === '/') {
      const t = await si.cpuTemperature().catch(() => undefined);
      if (t && typeof t.main === 'number' && t.main > 0) snap.temperatures = [{ label: 'cpu', celsius: t.main }];
    }
    const nics = await si.networkInterfaces().catch(() => []);
    const physical = (Array.isArray(nics) ? nics : [nics]).filter((n) => !n.virtual && !n.internal && n.type !== 'virtual');
    if (physical.length > 0) {
      snap.network = physical.map((n) => ({ iface: n.iface, operstate: n.operstate, speedMbps: n.speed ?? null, mtu: n.mtu ?? undefined }));
    }
    if (this.hasNvidiaSmi()) {
      const g = await si.graphics().catch(() => undefined);
      const gpus = (g?.controllers ?? []).filter((c) => /nvidia/i.test(c.vendor ?? ''));
      if (gpus.length > 0) {
        snap.gpus = gpus.map((c) => ({
          model: c.model,
          vendor: c.vendor,
          ...(c.memoryTotal != null ? { memoryTotalMiB: c.memoryTotal } : {}),
          ...(c.memoryUsed != null ? { memoryUsedMiB: c.memoryUsed } : {}),
          ...(c.utilizationGpu != null ? { utilizationPct: c.utilizationGpu } : {}),
          ...(c.temperatureGpu != null ? { temperatureC: c.temperatureGpu } : {}),
        }));
      }
    }
    return snap;
  }

  /**
   * systeminformation asks nvidia-smi for GPU facts; look for it once where
   * distributions and the NVIDIA container toolkit put it.
   */
  private hasNvidiaSmi(): boolean {
    this.nvidiaSmi ??= ['/usr/bin', '/usr/local/bin', '/usr/local/nvidia/bin', '/bin'].some((d) => existsSync(join(d, 'nvidia-smi')));
    return this.nvidiaSmi;
  }

  private async tick(sink: SignalSink): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      const snapshot = await this.sample();
      if (this.stopped) return;
      sink([{ type: 'host', snapshot }]);
      this.signals++;
      this.lastSignalAt = snapshot.at;
      this.failing = false;
      this.lastError = null;
    } catch (err) {
      this.failing = true;
      this.lastError = (err as Error).message;
      this.logger?.warn({ err }, 'host sample failed');
    } finally {
      this.running = false;
    }
  }

  async start(sink: SignalSink): Promise<void> {
    this.stopped = false;
    await this.tick(sink);
    this.timer = setInterval(() => void this.tick(sink), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  status(): SourceStatus {
    // A slow sample on a busy node is not an outage: stale means no data for a while.
    const staleAfter = Math.max(this.intervalMs * 3, 30_000);
    const stale = this.lastSignalAt !== null && Date.now() - Date.parse(this.lastSignalAt) > staleAfter;
    return {
      name: 'host',
      state: this.failing ? 'failing' : stale || this.lastSignalAt === null ? 'stale' : 'healthy',
      signals: this.signals,
      lastSignalAt: this.lastSignalAt,
      lastError: this.lastError,
    };
  }
}
