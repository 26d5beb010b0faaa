/**
 * Evicted: pods the kubelet evicted (status.reason Evicted, or its Evicted event
 * when the pod object is already gone). The eviction message says why, and the
 * why decides who must act:
 * - `node-pressure`: "The node was low on resource: memory|ephemeral-storage|pids"
 *   — the node is short of a resource (correlation links it to the pressure finding);
 * - `container-ephemeral-limit` / `pod-ephemeral-limit` / `emptydir-limit`: the pod
 *   wrote more local data than its own limit — a workload problem, NOT node disk
 *   pressure.
 * Severity: warning for evictions within `windowHours`; older evicted pods that
 * linger are info (they only need cleaning up).
 */
import { eventFirstTime, eventLastTime, eventMessage, eventObject, type KubeEvent, type KubePod } from '../core/kube.js';
import type { Evidence, FindingDraft } from '../core/types.js';
import { clip, dedupeEvidence, eventEvidence, iso, latest, nodePods, podEvents, podRef, within } from './pod-status.js';
import { defineDetectorOptions, detectorFactory, hours, opt } from './options.js';

/** Thresholds of the Evicted detector: each one's check, doc and default (config `detectors.evicted`). */
export const EVICTED_OPTIONS = defineDetectorOptions({
  /** Evictions newer than this many hours are warnings; older ones are info. Defaults to 24. */
  windowHours: opt(hours, 24),
});

/** Why a pod was evicted, read from the kubelet's message. */
export interface EvictionReason {
  cause: 'node-pressure' | 'container-ephemeral-limit' | 'pod-ephemeral-limit' | 'emptydir-limit' | 'other';
  /** node-pressure: memory, ephemeral-storage, pids, nodefs, imagefs... */
  resource?: string;
  threshold?: string;
  available?: string;
  container?: string;
  limit?: string;
}

/** Parses a kubelet eviction message. */
export function parseEviction(message: string): EvictionReason {
  let m = /The node was low on resource: \[?([\w-]+(?:\.[\w-]+)*)\]?/i.exec(message);
  if (m) {
    const r: EvictionReason = { cause: 'node-pressure', resource: m[1]! };
    const q = /Threshold quantity: ([^,]+), available: (\S+?)\.?(?:\s|$)/i.exec(message);
    if (q) {
      r.threshold = q[1]!.trim();
      r.available = q[2]!;
    }
    const c = /Container (\S+) was using/i.exec(message);
    if (c) r.container = c[1]!;
    return r;
  }
  // Older kubelets rejected or evicted pods with the node condition's name only.
  m = /The node had condition: \[(\w+)\]/i.exec(message);
  if (m) {
    const resource = { MemoryPressure: 'memory', DiskPressure: 'ephemeral-storage', PIDPressure: 'pids' }[m[1]!] ?? m[1]!;
    return { cause: 'node-pressure', resource };
  }
  m = /Container (\S+) exceeded its local ephemeral storage limit "([^"]+)"/i.exec(message);
  if (m) return { cause: 'container-ephemeral-limit', resource: 'ephemeral-storage', container: m[1]!, limit: m[2]! };
  m = /Pod ephemeral local storage usage exceeds the total limit of containers (\S+?)\.?$/im.exec(message);
  if (m) return { cause: 'pod-ephemeral-limit', resource: 'ephemeral-storage', limit: m[1]! };
  m = /Usage of EmptyDir volume "([^"]+)" exceeds the limit "([^"]+)"/i.exec(message);
  if (m) return { cause: 'emptydir-limit', resource: 'ephemeral-storage', container: m[1]!, limit: m[2]! };
  return { cause: 'other' };
}

function describe(r: EvictionReason): string {
  switch (r.cause) {
    case 'node-pressure':
      return `the node was low on ${r.resource}${r.threshold ? ` (threshold ${r.threshold}, available ${r.available ?? '?'})` : ''}`;
    case 'container-ephemeral-limit':
      return `container ${r.container} exceeded its own ephemeral-storage limit ${r.limit} (a limit of the pod, not node disk pressure)`;
    case 'pod-ephemeral-limit':
      return `the pod exceeded its total ephemeral-storage limit ${r.limit} (a limit of the pod, not node disk pressure)`;
    case 'emptydir-limit':
      return `emptyDir volume ${r.container} exceeded its size limit ${r.limit} (a limit of the pod, not node disk pressure)`;
    default:
      return 'the kubelet evicted it';
  }
}

/** When a pod was evicted: its Evicted event, else the DisruptionTarget condition, else the last container exit. */
function evictionTime(pod: KubePod | undefined, events: KubeEvent[]): string | undefined {
  const ev = events.filter((e) => e.reason === 'Evicted');
  if (ev.length > 0) return latest(ev.map((e) => eventLastTime(e)));
  const cond = pod?.status?.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True')?.lastTransitionTime;
  if (cond) return cond;
  return latest([
    ...(pod?.status?.containerStatuses ?? []).map((c) => c.state?.terminated?.finishedAt),
    pod?.status?.startTime,
  ]);
}

/** Creates the Evicted detector. */
export const createEvictedDetector = detectorFactory('evicted', EVICTED_OPTIONS, (o) => {
  const windowMs = o.windowHours * 3_600_000;
  return (view) => {
    const out: FindingDraft[] = [];
    const seen = new Set<string>();
    const report = (namespace: string, name: string, pod: KubePod | undefined, message: string) => {
      const ref = podRef(namespace, name);
      if (seen.has(ref)) return;
      seen.add(ref);
      const events = podEvents(view, namespace, name).filter((e) => e.reason === 'Evicted' || e.reason === 'Killing');
      const at = iso(evictionTime(pod, events), view.now);
      const r = parseEviction(message);
      const recent = within(view.now, at, windowMs);
      const evidence: Evidence[] = [];
      if (pod) {
        evidence.push({
          source: 'podStatus',
          at,
          text: clip(`pod ${ref} phase ${pod.status?.phase ?? '?'} reason ${pod.status?.reason ?? 'Evicted'}: ${pod.status?.message ?? message}`),
        });
      }
      evidence.push(...events.filter((e) => e.reason === 'Evicted').map((e) => eventEvidence(e, view.now)));
      const draft: FindingDraft = {
        category: 'Evicted',
        severity: recent ? 'warning' : 'info',
        subject: { kind: 'Pod', namespace, name },
        title: `Pod ${ref} was evicted: ${r.cause === 'node-pressure' ? `node low on ${r.resource}` : r.cause === 'other' ? 'evicted by the kubelet' : `${r.resource} limit exceeded${r.container ? ` by ${r.container}` : ''}`}`,
        message: `Pod ${ref} was evicted at ${at}: ${describe(r)}. Kubelet message: ${message.trim()}`,
        evidence: dedupeEvidence(evidence),
        at,
        lifecycle: 'event',
        detector: 'evicted',
        facts: { cause: r.cause },
      };
      const firstAt = events.length > 0 ? events.map((e) => eventFirstTime(e)).sort()[0] : undefined;
      if (firstAt && iso(firstAt, at) < at) draft.firstAt = iso(firstAt, at);
      if (r.resource) draft.facts!.resource = r.resource;
      if (r.threshold) draft.facts!.threshold = r.threshold;
      if (r.container) draft.facts!.container = r.container;
      if (r.limit) draft.facts!.limit = r.limit;
      out.push(draft);
    };
    for (const pod of nodePods(view)) {
      if (pod.status?.reason !== 'Evicted') continue;
      report(pod.metadata.namespace ?? 'default', pod.metadata.name ?? '', pod, pod.status.message ?? '');
    }
    // A deleted evicted pod leaves only its event; report it while recent.
    for (const e of view.events) {
      if (e.reason !== 'Evicted') continue;
      const obj = eventObject(e);
      if ((obj.kind ?? 'Pod') !== 'Pod' || !obj.name) continue;
      const namespace = obj.namespace ?? e.metadata.namespace ?? 'default';
      // A pod that still exists was handled above (or runs on another node).
      if ((view.pods ?? []).some((p) => (p.metadata.namespace ?? 'default') === namespace && p.metadata.name === obj.name)) continue;
      if (!within(view.now, eventLastTime(e), windowMs)) continue;
      report(namespace, obj.name, undefined, eventMessage(e));
    }
    return out;
  };
});
