/**
 * Correlation: links the findings of one detection cycle into cause → effect
 * chains by filling `draft.causes` with the fingerprints of the drafts that
 * explain it. Every rule is a known Kubernetes failure mode, and every link goes
 * from a symptom to something at the same level or lower (container → node,
 * node state → kubelet → runtime / network), so the links never form a cycle.
 * The tracker then marks as root cause a finding none of whose causes is open.
 *
 * Rules (effect ← cause):
 * - CrashLoop whose last exit was OOMKilled ← OOMKilled of the same container;
 * - CrashLoop whose last exit was a liveness-probe kill ← ProbeFailure (liveness/startup);
 * - CrashLoop or ContainerFailed whose log says the disk is full (ENOSPC) ← DiskFull,
 *   InodeExhaustion or NodeDiskPressure at the same time; one killed with
 *   SIGKILL (137) that was neither an OOM kill of its own nor a probe kill ←
 *   KernelOOM or NodeMemoryPressure at the same time;
 * - OOMKilled ← KernelOOM or NodeMemoryPressure at the same time;
 * - KernelOOM ← NodeMemoryPressure at the same time (the node ran out of memory;
 *   the OOM killer is what that did);
 * - ProbeFailure ← node pressure at the same time (NodeMemoryPressure,
 *   NodeDiskPressure, NodePIDPressure, DiskFull, InodeExhaustion);
 * - Evicted for node pressure (or an unstated reason) ← the pressure of the
 *   evicted resource at the same time; an eviction for the pod's own
 *   ephemeral-storage limit is never linked to the node;
 * - NodeDiskPressure ← DiskFull or InodeExhaustion at the same time (the kubelet's
 *   condition is the consequence; the full filesystem is what to fix);
 * - LogErrorSpike of a container ← CrashLoop, ContainerFailed, OOMKilled or
 *   ProbeFailure of the same container (the burst is the crash's own log); of a
 *   node service ← a node problem at the same time that makes services log
 *   errors (NodeNotReady, KubeletUnhealthy, RuntimeUnhealthy, NetworkLinkDown,
 *   CertificateExpiry, DiskFull, NodeDiskPressure, FilesystemError);
 * - NodeNotReady ← KubeletUnhealthy, NetworkLinkDown, RuntimeUnhealthy,
 *   CertificateExpiry at the same time;
 * - KubeletUnhealthy ← RuntimeUnhealthy at the same time;
 * - ImagePull with a network cause ← NetworkLinkDown at the same time.
 */
import { fingerprint } from '../core/fingerprint.js';
import type { Category, FindingDraft, Subject } from '../core/types.js';
import { defineDetectorOptions, minutes, opt, type OptionsOf } from './options.js';

/** Checks, docs and defaults of CorrelationOptions (config `detectors.correlation`). */
export const CORRELATION_OPTIONS = defineDetectorOptions({
  /** How far apart (minutes) two findings' time spans may be and still count as "at the same time". Defaults to 10. */
  slackMinutes: opt(minutes, 10),
});

/** Options of the correlation pass. */
export type CorrelationOptions = OptionsOf<typeof CORRELATION_OPTIONS>;

/** The draft's fingerprint: the id its finding will have. */
export function draftId(d: FindingDraft): string {
  return fingerprint(d.category, d.subject, d.detail);
}

interface Span {
  start: number;
  end: number;
}

/**
 * The time a draft covers. A condition is still true now, and one without a known
 * start may have begun any time before.
 */
function span(d: FindingDraft): Span {
  const at = Date.parse(d.at);
  const first = d.firstAt ? Date.parse(d.firstAt) : Number.NaN;
  if (d.lifecycle === 'condition') {
    return { start: Number.isFinite(first) ? first : Number.NEGATIVE_INFINITY, end: Number.POSITIVE_INFINITY };
  }
  return { start: Number.isFinite(first) ? first : at, end: at };
}

function overlaps(a: FindingDraft, b: FindingDraft, slackMs: number): boolean {
  const x = span(a);
  const y = span(b);
  return x.start - slackMs <= y.end && y.start - slackMs <= x.end;
}

/** Same pod, and the same container when both name one. */
function sameWorkload(a: Subject, b: Subject): boolean {
  if (a.kind === 'Node' || b.kind === 'Node') return false;
  if (a.namespace !== b.namespace || a.name !== b.name) return false;
  return a.container === undefined || b.container === undefined || a.container === b.container;
}

/** Log text of a process that failed because a filesystem was full (blocks or inodes). */
const ENOSPC = /no space left on device|ENOSPC|disk quota exceeded/i;

const NODE_LOG_CAUSES: Category[] = [
  'NodeNotReady',
  'KubeletUnhealthy',
  'RuntimeUnhealthy',
  'NetworkLinkDown',
  'CertificateExpiry',
  'DiskFull',
  'NodeDiskPressure',
  'FilesystemError',
];

/** Probe kinds a ProbeFailure draft covers (merged drafts name several). */
function probes(d: FindingDraft): string[] {
  return String(d.facts?.probe ?? '').split(',');
}

const NODE_PRESSURE: Category[] = ['NodeMemoryPressure', 'NodeDiskPressure', 'NodePIDPressure', 'DiskFull', 'InodeExhaustion'];

/** Node findings that explain an eviction of the given resource. */
function pressureFor(resource: string | undefined): Category[] {
  if (!resource) return ['NodeMemoryPressure', 'NodeDiskPressure', 'DiskFull', 'InodeExhaustion'];
  if (/memory/i.test(resource)) return ['NodeMemoryPressure'];
  if (/pid/i.test(resource)) return ['NodePIDPressure'];
  if (/inode/i.test(resource)) return ['NodeDiskPressure', 'InodeExhaustion'];
  return ['NodeDiskPressure', 'DiskFull', 'InodeExhaustion'];
}

/**
 * Returns the drafts with `causes` filled (copies; the input is not changed).
 * Causes a draft already had are kept.
 */
export function correlate(drafts: readonly FindingDraft[], opts: Partial<CorrelationOptions> = {}): FindingDraft[] {
  const o: CorrelationOptions = { ...CORRELATION_OPTIONS.defaults, ...opts };
  const slackMs = o.slackMinutes * 60_000;
  const ids = drafts.map(draftId);
  const byCategory = new Map<Category, number[]>();
  drafts.forEach((d, i) => {
    const list = byCategory.get(d.category) ?? [];
    list.push(i);
    byCategory.set(d.category, list);
  });
  const of = (cats: Category[]): number[] => cats.flatMap((c) => byCategory.get(c) ?? []);

  return drafts.map((d, i) => {
    const causes = new Set<string>(d.causes ?? []);
    const add = (j: number) => {
      if (j !== i && ids[j] !== ids[i]) causes.add(ids[j]!);
    };
    const node = (cats: Category[], slack = slackMs) => {
      for (const j of of(cats)) if (drafts[j]!.subject.kind === 'Node' && overlaps(d, drafts[j]!, slack)) add(j);
    };
    const f = d.facts ?? {};
    // A container that died of a full disk or of the node's memory running out.
    const exhaustion = () => {
      if (d.evidence.some((e) => ENOSPC.test(e.text))) node(['DiskFull', 'InodeExhaustion', 'NodeDiskPressure']);
      if (f.exitCode === 137 && f.lastReason !== 'OOMKilled' && f.reason !== 'OOMKilled' && f.probeKill !== true) node(['KernelOOM', 'NodeMemoryPressure']);
    };
    switch (d.category) {
      case 'CrashLoop':
        if (f.lastReason === 'OOMKilled') {
          for (const j of of(['OOMKilled'])) if (sameWorkload(d.subject, drafts[j]!.subject)) add(j);
        }
        if (f.probeKill === true) {
          for (const j of of(['ProbeFailure'])) {
            const p = drafts[j]!;
            if (sameWorkload(d.subject, p.subject) && probes(p).some((k) => k === 'liveness' || k === 'startup')) add(j);
          }
        }
        exhaustion();
        break;
      case 'ContainerFailed':
        exhaustion();
        break;
      case 'NodeDiskPressure':
        node(['DiskFull', 'InodeExhaustion']);
        break;
      case 'LogErrorSpike':
        if (d.subject.kind === 'Node') node(NODE_LOG_CAUSES);
        else for (const j of of(['CrashLoop', 'ContainerFailed', 'OOMKilled', 'ProbeFailure'])) if (sameWorkload(d.subject, drafts[j]!.subject)) add(j);
        break;
      case 'OOMKilled':
        if (d.subject.kind !== 'Node') node(['KernelOOM', 'NodeMemoryPressure']);
        break;
      case 'KernelOOM':
        node(['NodeMemoryPressure']);
        break;
      case 'ProbeFailure':
        node(NODE_PRESSURE);
        break;
      case 'Evicted':
        if (f.cause === 'node-pressure' || f.cause === 'other' || f.cause === undefined) {
          node(pressureFor(typeof f.resource === 'string' ? f.resource : undefined));
        }
        break;
      case 'NodeNotReady':
        node(['KubeletUnhealthy', 'NetworkLinkDown', 'RuntimeUnhealthy', 'CertificateExpiry']);
        break;
      case 'KubeletUnhealthy':
        node(['RuntimeUnhealthy']);
        break;
      case 'ImagePull':
        if (f.cause === 'network') node(['NetworkLinkDown']);
        break;
      default:
        break;
    }
    if (causes.size === 0) return d;
    return { ...d, causes: [...causes] };
  });
}
