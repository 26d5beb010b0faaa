/**
 * node-problem-detector interop, reading side: when NPD runs on the node it
 * publishes NodeConditions (permanent problems) and Node Events (temporary
 * problems, and each condition change). This file reads the one table that maps
 * NPD's condition types and event reasons to nodesage categories
 * (npd-mapping.json), and holds the detector for NPD's events. Its conditions go through the node conditions
 * detector (node-conditions.ts), which reads the condition half of the table.
 *
 * Condition types and reasons are NPD's shipped configs as written in
 * kubernetes/node-problem-detector config/*.json (the `config` field). A
 * problem nodesage also sees itself (its kmsg rule and NPD's event for the same
 * XFS shutdown) gets the same category, subject and object (the device, when
 * the message names one), so the two merge into one finding (merge.ts).
 */
import { eventCount, eventFirstTime, eventLastTime, eventMessage, eventObject, type KubeEvent } from '../core/kube.js';
import { z } from 'zod';
import { CategorySchema, SeveritySchema } from '../core/contract.js';
import type { Category, FindingDraft, Severity } from '../core/types.js';
import { dedupeEvidence, eventEvidence, groupOf, latest, setFirstAt, within } from './pod-status.js';
import { defineDetectorOptions, detectorFactory, minutes, opt } from './options.js';
import { createRequire } from 'node:module';

/** One NPD condition type or event reason and what nodesage calls it. */
export interface NpdMapping {
  /** Condition type (`kind: condition`) or event reason (`kind: event`), as NPD writes it. */
  name: string;
  kind: 'condition' | 'event';
  category: Category;
  /** Severity of the finding an event gives (conditions: warning). */
  severity: Severity;
  /** NPD config file that defines it (kubernetes/node-problem-detector, config/). */
  config: string;
  /**
   * The detail prefix nodesage's own log rules give the same problem
   * (daemon/rules: `subject.detailPrefix`), so both land on one fingerprint.
   */
  prefix?: string;
}

/** Not mapped on purpose, with the reason (documented in COVERAGE.md). */
export const NPD_UNMAPPED: Record<string, string> = {
  KubeletStart: 'systemd-monitor counts starts; one start is not a problem (FrequentKubeletRestart is)',
  DockerStart: 'systemd-monitor counts starts; one start is not a problem (FrequentDockerRestart is)',
  ContainerdStart: 'systemd-monitor counts starts; one start is not a problem (FrequentContainerdRestart is)',
  CCPPCrash: 'a host user-space program crashed (ABRT); no catalog category covers host programs',
  UncaughtException: 'a host user-space program crashed (ABRT); no catalog category covers host programs',
  XorgCrash: 'the display server crashed (ABRT); not a node problem for Kubernetes',
  IPTablesVersionsMismatch: 'iptables-legacy and iptables-nft rules coexist; no catalog category covers kube-proxy configuration',
};

/** A row of npd-mapping.json: one NPD name, as a condition type, an event reason or both. */
const NpdMappingFileSchema = z.array(
  z
    .object({
      name: z.string().min(1),
      kinds: z.array(z.enum(['condition', 'event'])).min(1),
      category: CategorySchema,
      severity: SeveritySchema,
      config: z.string().min(1),
      prefix: z.string().min(1).optional(),
    })
    .strict(),
);

/**
 * NPD's condition types and event reasons mapped to nodesage categories, one
 * entry per kind. The table is data (npd-mapping.json): NPD publishes most
 * conditions again as an event with the condition type as its reason, and one
 * row there holds both, so the two cannot drift apart. Loaded with require, which reads JSON on every Node 22
 * (an `import … with { type: 'json' }` warns as experimental before 22.12).
 */
export const NPD_MAPPING: readonly NpdMapping[] = NpdMappingFileSchema.parse(createRequire(import.meta.url)('./npd-mapping.json')).flatMap(({ kinds, ...m }) => kinds.map((kind) => ({ ...m, kind })));

/** NPD condition types → category (what node-conditions.ts reads). */
export const NPD_CONDITIONS: Readonly<Record<string, Category>> = Object.fromEntries(
  NPD_MAPPING.filter((m) => m.kind === 'condition').map((m) => [m.name, m.category]),
);

/** NPD condition types → their table row. */
export const NPD_CONDITION_ROWS: ReadonlyMap<string, NpdMapping> = new Map(NPD_MAPPING.filter((m) => m.kind === 'condition').map((m) => [m.name, m]));

const NPD_EVENTS = new Map(NPD_MAPPING.filter((m) => m.kind === 'event').map((m) => [m.name, m]));

/** Event sources NPD writes (`source.component`: the monitor config's `source`). */
const NPD_COMPONENT = /-monitor$|^abrt-adaptor$|^health-checker$|^node-problem-detector$/;

/**
 * The object an NPD message names, the same one nodesage's kernel rules key
 * their findings on: a block device, a network device.
 */
export function npdObject(message: string): string | undefined {
  const m =
    /\(device ([^)\s]+)\)/.exec(message) ??
    /\b(?:XFS|EXT4-fs|BTRFS(?: \w+)?) \(([^)\s:]+)/.exec(message) ??
    /unregister_netdevice: waiting for (\S+) to become free/.exec(message);
  if (m) return m[1];
  // Disk and memory-controller objects as the disk and hardware rules name them: the whole disk, the MC number.
  const disk = /Buffer I\/O error on dev(?:ice)? (\S+?),|Device: \/dev\/(\S+?)[\s,]/.exec(message);
  if (disk) return wholeDisk(disk[1] ?? disk[2]!);
  return /EDAC MC(\d+):/.exec(message)?.[1];
}

/** `sdb1` → `sdb`, `nvme0n1p2` → `nvme0`: the disk a partition is on. */
function wholeDisk(dev: string): string {
  return /^(nvme\d+|mmcblk\d+|[shv]d[a-z]+|xvd[a-z]+|dm-\d+|md\d+)/.exec(dev)?.[1] ?? dev;
}

/** The fingerprint detail of an NPD problem: the rule prefix nodesage uses for it, then the object. */
export function npdDetail(m: Pick<NpdMapping, 'prefix'> | undefined, object: string | undefined): string | undefined {
  const parts = [m?.prefix, object].filter((p): p is string => p !== undefined && p !== '');
  return parts.length > 0 ? parts.join(':') : undefined;
}

/** Options of the NPD events detector: each one's check, doc and default (config `detectors.npdEvents`). */
export const NPD_EVENTS_OPTIONS = defineDetectorOptions({
  /** NPD events last seen within this many minutes are reported. Defaults to 60. */
  windowMinutes: opt(minutes, 60),
});

/** True when the event was written by node-problem-detector about this node. */
export function isNpdEvent(e: KubeEvent, nodeName: string): boolean {
  const o = eventObject(e);
  if (o.kind !== 'Node' || (o.name !== undefined && o.name !== nodeName)) return false;
  const component = e.source?.component ?? e.reportingController ?? '';
  // Without a component the reason alone says it; the kubelet writes none of these reasons.
  return component === '' || NPD_COMPONENT.test(component);
}

/** Creates the detector of node-problem-detector's Node events. */
export const createNpdEventsDetector = detectorFactory('npd-events', NPD_EVENTS_OPTIONS, (o) => {
  const windowMs = o.windowMinutes * 60_000;
  return (view) => {
    const groups = new Map<string, { m: NpdMapping; object: string | undefined; memcg: boolean; events: KubeEvent[] }>();
    for (const e of view.events) {
      const m = e.reason ? NPD_EVENTS.get(e.reason) : undefined;
      if (!m || e.type === 'Normal' || !isNpdEvent(e, view.nodeName) || !within(view.now, eventLastTime(e), windowMs)) continue;
      const msg = eventMessage(e);
      // NPD's OOMKilling pattern also matches memory-cgroup kills: a container's limit, not the node's memory.
      const memcg = m.name === 'OOMKilling' && /Memory cgroup out of memory|oom_memcg=|constraint=CONSTRAINT_MEMCG/.test(msg);
      const object = npdObject(msg);
      const key = `${m.category}\u0000${npdDetail(m, object) ?? ''}\u0000${memcg}`;
      const g = groupOf(groups, key, () => ({ m, object, memcg, events: [] }));
      if (g.m.severity !== 'critical' && m.severity === 'critical') g.m = m;
      g.events.push(e);
    }
    const out: FindingDraft[] = [];
    for (const g of groups.values()) {
      const n = g.events.reduce((s, e) => s + eventCount(e), 0);
      const reasons = [...new Set(g.events.map((e) => e.reason ?? ''))].join(', ');
      const components = [...new Set(g.events.map((e) => e.source?.component ?? e.reportingController).filter(Boolean))].join(', ');
      const last = g.events[g.events.length - 1]!;
      const category: Category = g.memcg ? 'OOMKilled' : g.m.category;
      const at = latest(g.events.map((e) => eventLastTime(e))) ?? view.now;
      const draft: FindingDraft = {
        category,
        severity: g.memcg ? 'warning' : g.m.severity,
        subject: { kind: 'Node', name: view.nodeName },
        title: `node-problem-detector reports ${reasons} on node ${view.nodeName}${g.object ? ` (${g.object})` : ''}`,
        message: `node-problem-detector${components ? ` (${components})` : ''} reported ${reasons} ${n} time${n > 1 ? 's' : ''}, last at ${at}: ${eventMessage(last).trim()}`,
        evidence: dedupeEvidence(g.events.map((e) => eventEvidence(e, view.now))),
        at,
        occurrences: n,
        lifecycle: 'event',
        detector: 'npd-events',
        facts: { reason: g.m.name, npd: true },
      };
      const detail = g.memcg ? undefined : npdDetail(g.m, g.object);
      if (detail) draft.detail = detail;
      if (g.object) draft.facts!.device = g.object;
      if (g.memcg) draft.facts!.memcg = true;
      const pm = /Killed process (\d+) \(([^)]*)\)/.exec(eventMessage(last));
      if (pm) {
        draft.facts!.pid = Number(pm[1]);
        draft.facts!.process = pm[2]!;
      }
      setFirstAt(draft, g.events.map((e) => eventFirstTime(e)));
      out.push(draft);
    }
    return out;
  };
});
