/**
 * How many CPUs this container may really use, from its own cgroup.
 *
 * llama.cpp spins one thread per requested CPU and synchronises them at every
 * graph node: when the threads outnumber the CPU quota, the kernel throttles
 * them for the rest of each CFS period and generation gets many times slower
 * (17x measured on a 2-core node with node-llama-cpp's default of 4 threads).
 * `os.cpus()` shows the host's CPUs, not the quota, so it is never used alone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, posix } from 'node:path';

/** The CPU limit found in the cgroup hierarchy. */
export interface CpuQuota {
  /** Quota in CPUs (`quota / period`, may be fractional), or null when unlimited or not found. */
  cpus: number | null;
  /** Which interface the quota came from. */
  source: 'cgroup2' | 'cgroup1' | 'none';
  /** The file that set the effective (smallest) quota, when one did. */
  file?: string;
}

/** Where to look for the cgroup of this process. */
export interface CpuQuotaOptions {
  /** Mount point of the cgroup filesystem as this container sees it. Defaults to `/sys/fs/cgroup`. */
  cgroupRoot?: string;
  /**
   * This process's `/proc/self/cgroup`, used to find its own group when the
   * host hierarchy is visible (no cgroup namespace). Missing or unreadable is
   * fine: the root of `cgroupRoot` is then the container's own group.
   * Defaults to `/proc/self/cgroup`.
   */
  selfCgroupFile?: string;
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** Paths of this process's group in the unified (v2) and `cpu` (v1) hierarchies, from /proc/self/cgroup. */
function selfGroups(file: string): { v2?: string; v1cpu?: string } {
  const text = readText(file);
  const out: { v2?: string; v1cpu?: string } = {};
  if (!text) return out;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, controllers, path] = m;
    if (id === '0' && controllers === '') out.v2 = path;
    else if (controllers?.split(',').includes('cpu')) out.v1cpu = path;
  }
  return out;
}

/** `dir/sub/path`, then each ancestor up to `dir` itself, keeping only folders that exist. */
function groupAndAncestors(dir: string, groupPath: string | undefined): string[] {
  const dirs: string[] = [];
  if (groupPath && groupPath !== '/') {
    let p = posix.normalize(groupPath);
    while (p !== '/' && p !== '.' && p !== '') {
      const candidate = join(dir, p);
      if (existsSync(candidate)) dirs.push(candidate);
      p = posix.dirname(p);
    }
  }
  dirs.push(dir);
  return dirs;
}

/** Parses cgroup v2 `cpu.max` ("max 100000" or "200000 100000") into CPUs, null when unlimited. */
export function parseCpuMax(text: string): number | null {
  const [quota, period] = text.trim().split(/\s+/);
  if (!quota || quota === 'max') return null;
  const q = Number(quota);
  const p = Number(period ?? 100000);
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return null;
  return q / p;
}

/** Parses cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` into CPUs, null when unlimited (-1). */
export function parseCfsQuota(quotaText: string, periodText: string): number | null {
  const q = Number(quotaText.trim());
  const p = Number(periodText.trim());
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return null;
  return q / p;
}

/**
 * Reads the effective CPU quota of this container: the smallest limit on its
 * own group and every ancestor visible under `cgroupRoot` (a parent pod
 * cgroup can be tighter than the container's). Tries cgroup v2 first, then v1.
 */
export function readCpuQuota(options: CpuQuotaOptions = {}): CpuQuota {
  const root = options.cgroupRoot ?? '/sys/fs/cgroup';
  const self = selfGroups(options.selfCgroupFile ?? '/proc/self/cgroup');
  let best: CpuQuota = { cpus: null, source: 'none' };
  const consider = (cpus: number | null, source: 'cgroup2' | 'cgroup1', file: string) => {
    if (cpus === null) return;
    if (best.cpus === null || cpus < best.cpus) best = { cpus, source, file };
  };

  if (existsSync(join(root, 'cgroup.controllers'))) {
    for (const dir of groupAndAncestors(root, self.v2)) {
      const file = join(dir, 'cpu.max');
      const text = readText(file);
      if (text !== null) consider(parseCpuMax(text), 'cgroup2', file);
    }
    if (best.cpus !== null) return best;
  }

  // v1 mounts the cpu controller alone or together with cpuacct; a container
  // sees its own group at the mount root, the host sees it at its full path.
  for (const mount of ['cpu', 'cpu,cpuacct', 'cpuacct,cpu']) {
    const base = join(root, mount);
    if (!existsSync(base)) continue;
    for (const dir of groupAndAncestors(base, self.v1cpu)) {
      const quota = readText(join(dir, 'cpu.cfs_quota_us'));
      const period = readText(join(dir, 'cpu.cfs_period_us'));
      if (quota !== null && period !== null) consider(parseCfsQuota(quota, period), 'cgroup1', join(dir, 'cpu.cfs_quota_us'));
    }
    if (best.cpus !== null) return best;
  }
  return best;
}

/** How the inference thread count was chosen, for /v1/status and logs. */
export interface ThreadChoice {
  threads: number;
  /** CPUs this process may be scheduled on (affinity / cpuset). */
  availableCpus: number;
  /** The cgroup quota in CPUs, null when unlimited. */
  quotaCpus: number | null;
  /** `configured`, `cgroup2`, `cgroup1` or `cpus` (no quota: all available CPUs). */
  basis: 'configured' | 'cgroup2' | 'cgroup1' | 'cpus';
}

/** Options of {@link chooseThreads}. */
export interface ChooseThreadsOptions extends CpuQuotaOptions {
  /** Threads set by the operator; wins over the quota but is still capped by the available CPUs. Defaults to unset. */
  configured?: number;
  /** CPUs this process may run on. Defaults to `os.availableParallelism()` (honours affinity and cpuset). */
  availableCpus?: number;
}

/**
 * Picks the llama.cpp thread count: the whole-CPU part of the cgroup quota
 * (a fractional quota is rounded down, since a thread that gets throttled
 * stalls all the others at the next barrier), capped by the available CPUs,
 * and at least 1.
 */
export function chooseThreads(options: ChooseThreadsOptions = {}): ThreadChoice {
  const availableCpus = Math.max(1, Math.floor(options.availableCpus ?? availableParallelism()));
  const quota = readCpuQuota(options);
  if (options.configured !== undefined && options.configured > 0) {
    return { threads: Math.min(Math.floor(options.configured), availableCpus), availableCpus, quotaCpus: quota.cpus, basis: 'configured' };
  }
  if (quota.cpus !== null && quota.source !== 'none') {
    const threads = Math.max(1, Math.min(availableCpus, Math.floor(quota.cpus)));
    return { threads, availableCpus, quotaCpus: quota.cpus, basis: quota.source };
  }
  return { threads: availableCpus, availableCpus, quotaCpus: null, basis: 'cpus' };
}
