/**
 * Host metrics: filesystems (space and inodes), memory, load, Linux PSI,
 * temperatures, network interfaces and NVIDIA GPUs, read from /proc and /sys
 * (sysfs.ts: never a shell command on the event loop) and nvidia-smi when it
 * exists. With hostRoot "/" it reads the machine it runs on; with another
 * hostRoot (a container with the host's /proc mounted there) it reads the
 * host's mount table, meminfo and /proc/pressure.
 *
 * A few files instead of a system-information library: the daemon needs a
 * dozen values, and such a library costs several MiB resident on a node where
 * the whole daemon should stay under 80 MiB.
 */
import { execFile } from 'node:child_process';
import { type StatsFs, existsSync, readFileSync, statSync } from 'node:fs';
import { statfs as statfsAsync } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { readCpuTemperature, readPhysicalNics } from './sysfs.js';
import type { Collector, HostFilesystem, HostSnapshot, PsiReading, SignalSink, SourceStatus } from '../core/types.js';
import { type Clock, systemClock } from '../core/runtime/clock.js';
import { SourceHealth } from '../core/runtime/health.js';
import { Poller } from '../core/runtime/poller.js';

/** Options of the host collector. */
export interface HostCollectorOptions {
  /** Prefix of host paths. Defaults to "/". */
  hostRoot?: string;
  /** Milliseconds between samples. Defaults to 30000. */
  intervalMs?: number;
  /** Network filesystem mount points to measure anyway (NFS, CIFS, Ceph... are skipped otherwise). Defaults to none. */
  networkMounts?: readonly string[];
  /** Milliseconds a filesystem probe may take before that mount is reported as not answering. Defaults to 2000. */
  statfsTimeoutMs?: number;
  /** statfs(2). Defaults to fs.promises.statfs; tests pass one that never returns, as a hung mount does. */
  statfs?: (path: string) => Promise<StatsFs>;
  /** No finished sample for this long makes the source stale. Defaults to max(3 × intervalMs, 30000). */
  staleAfterMs?: number;
  /** Clock of the sampling interval and staleness. Defaults to the system clock. */
  clock?: Clock;
  /** Logger. Defaults to none. */
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

/** Parses /proc/meminfo (kB values) into the snapshot's memory figures. */
export function parseMeminfo(text: string): HostSnapshot['memory'] | undefined {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+)/.exec(line);
    if (m) kb.set(m[1]!, Number(m[2]) * 1024);
  }
  const total = kb.get('MemTotal');
  if (total === undefined) return undefined;
  // Kernels before 3.14 have no MemAvailable: free plus page cache is the old estimate.
  const available = kb.get('MemAvailable') ?? (kb.get('MemFree') ?? 0) + (kb.get('Buffers') ?? 0) + (kb.get('Cached') ?? 0);
  const swapTotal = kb.get('SwapTotal') ?? 0;
  return { totalBytes: total, availableBytes: available, swapTotalBytes: swapTotal, swapUsedBytes: swapTotal - (kb.get('SwapFree') ?? swapTotal) };
}

/** Parses `nvidia-smi --query-gpu=name,memory.total,memory.used,utilization.gpu,temperature.gpu --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(csv: string): NonNullable<HostSnapshot['gpus']> {
  const num = (v: string | undefined): number | undefined => {
    const n = Number(v);
    return v !== undefined && v !== '' && Number.isFinite(n) ? n : undefined;
  };
  return csv
    .split('\n')
    .map((l) => l.split(',').map((f) => f.trim()))
    .filter((f) => f[0])
    .map(([name, memTotal, memUsed, util, temp]) => {
      const total = num(memTotal);
      const used = num(memUsed);
      const pct = num(util);
      const t = num(temp);
      return {
        model: name!,
        vendor: 'NVIDIA',
        ...(total !== undefined ? { memoryTotalMiB: total } : {}),
        ...(used !== undefined ? { memoryUsedMiB: used } : {}),
        ...(pct !== undefined ? { utilizationPct: pct } : {}),
        ...(t !== undefined ? { temperatureC: t } : {}),
      };
    });
}

/** Asks nvidia-smi for each GPU's model, memory, utilisation and temperature (5 s at most). */
function queryNvidiaSmi(path: string): Promise<NonNullable<HostSnapshot['gpus']>> {
  const args = ['--query-gpu=name,memory.total,memory.used,utilization.gpu,temperature.gpu', '--format=csv,noheader,nounits'];
  return new Promise((resolve, reject) => {
    execFile(path, args, { timeout: 5000, encoding: 'utf8' }, (err, stdout) => (err ? reject(err) : resolve(parseNvidiaSmi(stdout))));
  });
}

const PSEUDO_FS = new Set([
  'proc', 'sysfs', 'cgroup', 'cgroup2', 'devpts', 'mqueue', 'debugfs', 'tracefs', 'securityfs', 'pstore', 'bpf',
  'configfs', 'fusectl', 'hugetlbfs', 'autofs', 'binfmt_misc', 'rpc_pipefs', 'nsfs', 'overlay', 'squashfs', 'devtmpfs',
  'efivarfs', 'selinuxfs', 'fuse.lxcfs', 'shm',
]);

/**
 * Network filesystems: a server that is gone makes statfs(2) hang in the kernel
 * for minutes (hard NFS mounts: forever), so they are only measured when listed.
 */
const NETWORK_FS = /^(nfs|nfs4|cifs|smb3|smbfs|ceph|glusterfs|lustre|gpfs|9p|afs|ncpfs|fuse\.(sshfs|glusterfs|ceph-fuse|s3fs|rclone|juicefs|gcsfuse|cephfs))$/;

/** One filesystem to measure, from the mount table. */
export interface MountEntry {
  mount: string;
  /** Where to statfs it (under hostRoot). */
  path: string;
  device: string;
  fsType: string;
  readOnly: boolean;
}

/** Reads a mount table (/proc/1/mounts) and lists the real filesystems to measure. */
export function readMountTable(hostRoot: string, networkMounts: readonly string[] = []): { mounts: MountEntry[]; skipped: string[] } {
  const table = existsSync(join(hostRoot, 'proc/1/mounts')) ? join(hostRoot, 'proc/1/mounts') : join(hostRoot, 'proc/mounts');
  if (!existsSync(table)) return { mounts: [], skipped: [] };
  const rootDev = hostRoot === '/' ? undefined : safeDev('/');
  const mounts: MountEntry[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  for (const line of readFileSync(table, 'utf8').split('\n')) {
    const [device, rawMount, fsType, options] = line.split(' ');
    if (!device || !rawMount || !fsType || PSEUDO_FS.has(fsType)) continue;
    if (fsType === 'tmpfs' && !rawMount.startsWith('/dev/shm') && rawMount !== '/tmp') continue;
    const mount = rawMount.replace(/\\040/g, ' ');
    const network = NETWORK_FS.test(fsType);
    if (network && !networkMounts.includes(mount)) {
      skipped.push(mount);
      continue;
    }
    const path = hostRoot === '/' ? mount : join(hostRoot, mount);
    // Inside a container only the host paths that are mounted in are real; the rest is our own overlay.
    // (stat, not statfs: a network mount that got here was listed by the operator.)
    if (rootDev !== undefined && !network && safeDev(path) === rootDev) continue;
    const key = `${device}:${mount}`;
    if (seen.has(key)) continue;
    seen.add(key);
    mounts.push({ mount, path, device, fsType, readOnly: (options ?? '').split(',').includes('ro') });
  }
  return { mounts, skipped };
}

function toFilesystem(m: MountEntry, s: StatsFs): HostFilesystem | null {
  if (s.blocks === 0) return null;
  const fsEntry: HostFilesystem = {
    mount: m.mount,
    device: m.device,
    fsType: m.fsType,
    sizeBytes: s.blocks * s.bsize,
    usedBytes: (s.blocks - s.bfree) * s.bsize,
    availBytes: s.bavail * s.bsize,
  };
  if (s.files > 0) {
    fsEntry.inodesTotal = s.files;
    fsEntry.inodesUsed = s.files - s.ffree;
  }
  if (m.readOnly) fsEntry.readOnly = true;
  return fsEntry;
}

/**
 * Measures filesystems off the event loop, each probe bounded by a timeout. A
 * probe that does not return keeps its libuv thread, so a mount with a probe
 * still outstanding is not probed again until it returns: a hung mount costs
 * one thread, never the whole pool.
 */
export class FilesystemProbe {
  private readonly pending = new Set<string>();
  constructor(
    private readonly statfs: (path: string) => Promise<StatsFs>,
    private readonly timeoutMs: number,
  ) {}

  /** The measured filesystems, and the mounts that did not answer in time. */
  async measure(mounts: readonly MountEntry[]): Promise<{ filesystems: HostFilesystem[]; hung: string[] }> {
    const hung: string[] = [];
    const results = await Promise.all(
      mounts.map(async (m): Promise<HostFilesystem | null> => {
        if (this.pending.has(m.path)) {
          hung.push(m.mount);
          return null;
        }
        this.pending.add(m.path);
        const probe = this.statfs(m.path).finally(() => this.pending.delete(m.path));
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), this.timeoutMs);
          timer.unref();
        });
        try {
          const r = await Promise.race([probe, timeout]);
          if (r === 'timeout') {
            hung.push(m.mount);
            probe.catch(() => undefined);
            return null;
          }
          return toFilesystem(m, r);
        } catch {
          return null;
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return { filesystems: results.filter((f) => f !== null), hung };
  }
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
  private readonly networkMounts: readonly string[];
  private readonly probe: FilesystemProbe;
  private nvidiaSmi: string | null | undefined;
  private readonly health: SourceHealth;
  private readonly clock: Clock;
  private readonly poller: Poller;
  private sink: SignalSink | undefined;
  private hungMounts: string[] = [];

  constructor(opts: HostCollectorOptions = {}) {
    this.hostRoot = opts.hostRoot ?? '/';
    this.intervalMs = opts.intervalMs ?? 30_000;
    this.logger = opts.logger;
    this.networkMounts = opts.networkMounts ?? [];
    this.probe = new FilesystemProbe(opts.statfs ?? ((p) => statfsAsync(p)), opts.statfsTimeoutMs ?? 2000);
    this.clock = opts.clock ?? systemClock;
    // A slow sample on a busy node is not an outage: stale means no data for a while.
    this.health = new SourceHealth({ name: 'host', clock: this.clock, staleAfterMs: opts.staleAfterMs ?? Math.max(this.intervalMs * 3, 30_000) });
    this.poller = new Poller(() => this.tick(), {
      name: 'host',
      intervalMs: this.intervalMs,
      reader: this.health.main,
      clock: this.clock,
      ...(this.logger ? { logger: this.logger } : {}),
    });
  }

  /** CPU busy percent since the previous sample, from the host's /proc/stat (undefined on the first). */
  private cpuBusyPercent(): number | undefined {
    let line: string | undefined;
    try {
      line = readFileSync(join(this.hostRoot, 'proc/stat'), 'utf8').split('\n', 1)[0];
    } catch {
      return undefined;
    }
    const v = (line ?? '').trim().split(/\s+/).slice(1).map(Number);
    if (v.length < 4 || v.some((n) => !Number.isFinite(n))) return undefined;
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const prev = this.prevCpu;
    this.prevCpu = { idle, total };
    if (!prev || total <= prev.total) return undefined;
    return (1 - (idle - prev.idle) / (total - prev.total)) * 100;
  }

  private prevCpu: { idle: number; total: number } | undefined;

  /** Takes one snapshot. */
  async sample(): Promise<HostSnapshot> {
    const at = new Date().toISOString();
    const { mounts } = readMountTable(this.hostRoot, this.networkMounts);
    const { filesystems, hung } = await this.probe.measure(mounts);
    const snap: HostSnapshot = { at, filesystems };
    if (hung.length > 0) {
      this.hungMounts = hung;
      this.logger?.warn({ mounts: hung }, 'filesystems not answering statfs; skipped');
    } else {
      this.hungMounts = [];
    }
    // The host's meminfo; the process's own when the host root has none (meminfo is not namespaced).
    const meminfo = existsSync(join(this.hostRoot, 'proc/meminfo')) ? join(this.hostRoot, 'proc/meminfo') : '/proc/meminfo';
    let memory: HostSnapshot['memory'];
    try {
      memory = parseMeminfo(readFileSync(meminfo, 'utf8'));
    } catch {
      memory = undefined;
    }
    if (memory) snap.memory = memory;
    const [a1, a5, a15] = loadavg();
    snap.load = { avg1: a1 ?? 0, avg5: a5 ?? 0, avg15: a15 ?? 0, cpus: cpus().length };
    const busy = this.cpuBusyPercent();
    if (busy !== undefined) snap.load.currentLoadPct = busy;
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
    // The host's sysfs: a pod's own /sys/class/net lists its network namespace (one veth), not the node's NICs.
    const sys = join(this.hostRoot, 'sys');
    const t = await readCpuTemperature(sys).catch(() => null);
    if (t !== null) snap.temperatures = [{ label: 'cpu', celsius: t }];
    const physical = await readPhysicalNics(sys).catch(() => []);
    if (physical.length > 0) snap.network = physical;
    const smi = this.nvidiaSmiPath();
    if (smi) {
      const gpus = await queryNvidiaSmi(smi).catch(() => []);
      if (gpus.length > 0) snap.gpus = gpus;
    }
    return snap;
  }

  /** nvidia-smi, looked for once where distributions and the NVIDIA container toolkit put it. */
  private nvidiaSmiPath(): string | null {
    if (this.nvidiaSmi === undefined) {
      const dir = ['/usr/bin', '/usr/local/bin', '/usr/local/nvidia/bin', '/bin'].find((d) => existsSync(join(d, 'nvidia-smi')));
      this.nvidiaSmi = dir ? join(dir, 'nvidia-smi') : null;
    }
    return this.nvidiaSmi;
  }

  private async tick(): Promise<void> {
    if (this.poller.stopped) return;
    // A failed sample is logged, reported and retried by periodic().
    const snapshot = await this.sample();
    if (this.poller.stopped) return;
    this.health.emit(this.sink, [{ type: 'host', snapshot }]);
    this.health.note(this.hungMounts.length > 0 ? `not answering statfs: ${this.hungMounts.join(', ')}` : null);
  }

  async start(sink: SignalSink): Promise<void> {
    this.sink = sink;
    await this.poller.start();
  }

  async stop(): Promise<void> {
    await this.poller.stop();
  }

  /** Samples now when the next sample is due within `withinMs` (Collector.catchUp). */
  async catchUp(withinMs: number): Promise<void> {
    await this.poller.catchUp(withinMs);
  }

  status(): SourceStatus {
    return this.health.status();
  }
}
