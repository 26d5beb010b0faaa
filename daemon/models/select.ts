/**
 * `nodesage model select`: the best catalog model this node can run. Memory
 * is the tightest of the model budget (llm.memoryBudgetMB), the container's
 * cgroup limit less what the daemon needs without a model, and what the
 * kernel says is available now; CPUs are the cgroup quota, else the CPUs this
 * process may use. Every candidate gets one line saying why it was or was not
 * chosen.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chooseThreads } from '../diagnoser/cgroup.js';
import type { CatalogModel } from './catalog.js';

/** Resident memory of the daemon without a model (rules-only mode), MiB: kept free under a cgroup limit. */
export const DAEMON_BASE_MIB = 200;

/** Memory and CPUs a model may use on this node, and where each number came from. */
export interface NodeResources {
  memoryMiB: number;
  memorySource: string;
  cpus: number;
  cpuSource: string;
}

/** Inputs of {@link nodeResources}. */
export interface NodeResourceInput {
  /** llm.memoryBudgetMB. */
  budgetMB: number;
  /** Simulate another node: replaces every memory source. Defaults to none. */
  memoryMB?: number;
  /** Simulate another node: replaces the CPU count. Defaults to none. */
  cpus?: number;
  /** cgroup mount of this container. Defaults to /sys/fs/cgroup. */
  cgroupRoot?: string;
  /** meminfo file. Defaults to /proc/meminfo. */
  meminfo?: string;
}

function readNumber(path: string): number | null {
  if (!existsSync(path)) return null;
  const t = readFileSync(path, 'utf8').trim();
  return /^\d+$/.test(t) ? Number(t) : null;
}

/** The container's memory limit in bytes (cgroup v2 memory.max, else v1), or null when unlimited. */
export function cgroupMemoryLimit(cgroupRoot: string): number | null {
  const v2 = readNumber(join(cgroupRoot, 'memory.max'));
  if (v2 !== null) return v2;
  const v1 = readNumber(join(cgroupRoot, 'memory', 'memory.limit_in_bytes'));
  // v1 reports "no limit" as a huge page-aligned number.
  return v1 !== null && v1 < 2 ** 60 ? v1 : null;
}

/** MemAvailable from meminfo in bytes, or null. */
export function memAvailable(meminfo: string): number | null {
  if (!existsSync(meminfo)) return null;
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync(meminfo, 'utf8'));
  return m ? Number(m[1]) * 1024 : null;
}

const MiB = 1024 * 1024;

/** What this node offers a model (see the module comment). */
export function nodeResources(i: NodeResourceInput): NodeResources {
  let memoryMiB: number;
  let memorySource: string;
  if (i.memoryMB !== undefined) {
    memoryMiB = i.memoryMB;
    memorySource = '--memory-mb';
  } else {
    const options: [number, string][] = [[i.budgetMB, 'llm.memoryBudgetMB']];
    const limit = cgroupMemoryLimit(i.cgroupRoot ?? '/sys/fs/cgroup');
    if (limit !== null) options.push([Math.floor(limit / MiB) - DAEMON_BASE_MIB, `cgroup memory limit ${Math.floor(limit / MiB)} MiB less ${DAEMON_BASE_MIB} MiB for the daemon`]);
    const avail = memAvailable(i.meminfo ?? '/proc/meminfo');
    if (avail !== null) options.push([Math.floor(avail / MiB), 'MemAvailable']);
    [memoryMiB, memorySource] = options.reduce((a, b) => (b[0] < a[0] ? b : a));
  }
  if (i.cpus !== undefined) return { memoryMiB, memorySource, cpus: i.cpus, cpuSource: '--cpus' };
  const t = chooseThreads(i.cgroupRoot ? { cgroupRoot: i.cgroupRoot } : {});
  return t.quotaCpus !== null
    ? { memoryMiB, memorySource, cpus: Math.min(t.quotaCpus, t.availableCpus), cpuSource: `${t.basis} CPU quota` }
    : { memoryMiB, memorySource, cpus: t.availableCpus, cpuSource: 'CPUs available to this process' };
}

/** One candidate and why it was or was not chosen. */
export interface Candidate {
  id: string;
  chosen: boolean;
  fits: boolean;
  reason: string;
}

/** What {@link selectModel} decided. */
export interface Selection {
  node: NodeResources;
  /** The chosen model, or null when none fits (rules-only, or a site backend). */
  chosen: CatalogModel | null;
  candidates: Candidate[];
}

/** Memory a model needs when it is known better than the catalog's figure (the engine's estimate from a staged file). */
export type MemoryNeeds = ReadonlyMap<string, { mib: number; basis: string }>;

/**
 * Picks the highest-quality catalog model that fits the node; ties go to the
 * smaller one. `needs` overrides the catalog's RAM figure for staged files:
 * the daemon refuses a model by its own estimate, so select must not pick one
 * that estimate rules out.
 */
export function selectModel(catalog: readonly CatalogModel[], node: NodeResources, needs: MemoryNeeds = new Map()): Selection {
  // The larger of the resident memory (the cgroup limit) and the daemon's pre-load estimate (llm.memoryBudgetMB).
  const need = (m: CatalogModel) =>
    needs.get(m.id) ?? (m.budgetMiB > m.ram.mib ? { mib: m.budgetMiB, basis: "the daemon's pre-load estimate" } : { mib: m.ram.mib, basis: m.ram.basis });
  const misfit = (m: CatalogModel): string | null => {
    const n = need(m);
    if (n.mib > node.memoryMiB) return `needs ${n.mib} MiB (${n.basis}), the budget is ${node.memoryMiB} MiB (${node.memorySource})`;
    if (m.minCpus > node.cpus) return `needs ${m.minCpus} CPUs to answer in time, the node has ${node.cpus} (${node.cpuSource})`;
    return null;
  };
  const fitting = catalog.filter((m) => misfit(m) === null);
  const chosen = fitting.reduce<CatalogModel | null>(
    (best, m) => (best === null || m.quality > best.quality || (m.quality === best.quality && need(m).mib < need(best).mib) ? m : best),
    null,
  );
  const candidates = [...catalog]
    .sort((a, b) => b.quality - a.quality || a.ram.mib - b.ram.mib)
    .map((m): Candidate => {
      const why = misfit(m);
      if (why) return { id: m.id, chosen: false, fits: false, reason: why };
      if (m === chosen) {
        return { id: m.id, chosen: true, fits: true, reason: `best fit: quality ${m.quality}, ${need(m).mib} of ${node.memoryMiB} MiB (${need(m).basis}), ${m.minCpus}+ CPUs of ${node.cpus}` };
      }
      return { id: m.id, chosen: false, fits: true, reason: `fits, but ${chosen?.id} explains better (quality ${m.quality} < ${chosen?.quality})` };
    });
  return { node, chosen, candidates };
}
