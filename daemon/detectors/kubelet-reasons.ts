/**
 * The kubelet's remaining failure reasons: pod and node event reasons, waiting
 * reasons and pod admission reasons that no dedicated detector reads (sandbox
 * creation, volume and lifecycle-hook failures, garbage collection, the
 * kubelet's own SystemOOM, pods the kubelet refused to admit). One table maps
 * each reason, as the kubelet writes it, to a category; the dedicated detectors
 * (CrashLoop, ImagePull, ContainerConfig, ProbeFailure, Evicted, node
 * conditions) keep theirs, and daemon/detectors/COVERAGE.md lists both.
 *
 * Reasons are the kubelet's constants: pkg/kubelet/events/event.go (events),
 * pkg/kubelet/container/sync_result.go (sync errors shown as waiting reasons),
 * pkg/kubelet/lifecycle/predicate.go (admission: `OutOf<resource>`,
 * NodeAffinity, UnexpectedAdmissionError).
 */
import { eventCount, eventFirstTime, eventLastTime, eventMessage, eventObject, type KubeEvent } from '../core/kube.js';
import type { Category, Evidence, FindingDraft, Severity, Subject } from '../core/types.js';
import {
  clip,
  dedupeEvidence,
  eventContainer,
  eventEvidence,
  findPod,
  groupOf,
  isCompletedPod,
  iso,
  latest,
  listContainers,
  nodePods,
  podRef,
  setFirstAt,
  statusEvidence,
  subjectKey,
  within,
} from './pod-status.js';
import { defineDetectorOptions, detectorFactory, hours, minutes, opt } from './options.js';

/** One kubelet reason this detector turns into a finding. */
export interface KubeletReason {
  reason: string;
  /** Where the kubelet writes it: an event about a pod or the node, a container's waiting reason, or pod.status.reason of a rejected pod. */
  on: 'podEvent' | 'nodeEvent' | 'waiting' | 'admission';
  category: Category;
  severity: Severity;
  /** What it means, for the message. */
  what: string;
}

const r = (reason: string, on: KubeletReason['on'], category: Category, severity: Severity, what: string): KubeletReason => ({ reason, on, category, severity, what });

/** The table: kubelet reason → category. */
export const KUBELET_REASONS: readonly KubeletReason[] = [
  r('FailedCreatePodSandBox', 'podEvent', 'RuntimeUnhealthy', 'warning', 'the container runtime could not create the pod sandbox (network namespace, CNI, pause image)'),
  r('FailedStatusPodSandBox', 'podEvent', 'RuntimeUnhealthy', 'warning', 'the container runtime could not report the pod sandbox status'),
  r('FailedKillPod', 'podEvent', 'RuntimeUnhealthy', 'warning', 'the kubelet could not stop the pod'),
  r('FailedCreatePodContainer', 'podEvent', 'RuntimeUnhealthy', 'warning', "the kubelet could not create the pod's cgroup"),
  r('ExceededGracePeriod', 'podEvent', 'RuntimeUnhealthy', 'warning', 'the container runtime did not stop the pod within its grace period'),
  r('NetworkNotReady', 'podEvent', 'RuntimeUnhealthy', 'warning', 'the pod network (CNI) of the node is not ready'),
  r('FailedMount', 'podEvent', 'ContainerConfig', 'warning', 'a volume of the pod cannot be mounted'),
  r('FailedAttachVolume', 'podEvent', 'ContainerConfig', 'warning', 'a volume of the pod cannot be attached to the node'),
  r('FailedMapVolume', 'podEvent', 'ContainerConfig', 'warning', 'a block volume of the pod cannot be mapped'),
  r('FailedValidation', 'podEvent', 'ContainerConfig', 'warning', 'the kubelet rejected the pod spec'),
  r('FailedPostStartHook', 'podEvent', 'ContainerConfig', 'warning', "the container's postStart hook failed, so the kubelet killed it"),
  r('FailedPreStopHook', 'podEvent', 'ContainerConfig', 'info', "the container's preStop hook failed; it was stopped without it"),
  r('CreatePodSandboxError', 'waiting', 'RuntimeUnhealthy', 'warning', 'the container runtime could not create the pod sandbox'),
  r('ConfigPodSandboxError', 'waiting', 'RuntimeUnhealthy', 'warning', 'the kubelet could not build the pod sandbox configuration'),
  r('KillPodSandboxError', 'waiting', 'RuntimeUnhealthy', 'warning', 'the container runtime could not stop the pod sandbox'),
  r('KillContainerError', 'waiting', 'RuntimeUnhealthy', 'warning', 'the container runtime could not stop the container'),
  r('SystemOOM', 'nodeEvent', 'KernelOOM', 'critical', 'the kernel OOM killer ran for the whole node'),
  r('KubeletSetupFailed', 'nodeEvent', 'KubeletUnhealthy', 'critical', 'the kubelet failed to set itself up'),
  r('FailedNodeAllocatableEnforcement', 'nodeEvent', 'KubeletUnhealthy', 'warning', 'the kubelet could not enforce node allocatable cgroups'),
  r('ContainerGCFailed', 'nodeEvent', 'RuntimeUnhealthy', 'warning', 'the kubelet could not garbage-collect dead containers through the runtime'),
  r('InvalidDiskCapacity', 'nodeEvent', 'RuntimeUnhealthy', 'warning', 'the runtime reports no capacity for the image filesystem'),
  r('ImageGCFailed', 'nodeEvent', 'NodeDiskPressure', 'warning', 'image garbage collection could not free enough disk space'),
  r('FreeDiskSpaceFailed', 'nodeEvent', 'NodeDiskPressure', 'warning', 'the kubelet could not free disk space by removing images'),
  r('OutOfcpu', 'admission', 'Evicted', 'warning', 'the kubelet rejected the pod: not enough allocatable CPU left on the node'),
  r('OutOfmemory', 'admission', 'Evicted', 'warning', 'the kubelet rejected the pod: not enough allocatable memory left on the node'),
  r('OutOfpods', 'admission', 'Evicted', 'warning', 'the kubelet rejected the pod: the node runs its maximum number of pods'),
  r('OutOfephemeral-storage', 'admission', 'Evicted', 'warning', 'the kubelet rejected the pod: not enough allocatable ephemeral storage'),
  r('NodeAffinity', 'admission', 'Evicted', 'warning', "the kubelet rejected the pod: the node does not match its node affinity or selector (the node's labels changed)"),
  r('NodeSelectorMismatching', 'admission', 'Evicted', 'warning', 'the kubelet rejected the pod: the node does not match its node selector'),
  r('UnexpectedAdmissionError', 'admission', 'Evicted', 'warning', 'the kubelet rejected the pod after an admission plugin error (device plugin, topology manager)'),
];

/** Options of the kubelet reasons detector: each one's check, doc and default (config `detectors.kubeletReasons`). */
export const KUBELET_REASONS_OPTIONS = defineDetectorOptions({
  /** Events last seen within this many minutes are reported. Defaults to 30. */
  windowMinutes: opt(minutes, 30),
  /** Admission rejections newer than this many hours are warnings, older ones info. Defaults to 24. */
  admissionWindowHours: opt(hours, 24),
});

const byKey = new Map(KUBELET_REASONS.map((k) => [`${k.on}\u0000${k.reason}`, k]));

/** Admission reasons are `OutOf<resource>` for any extended resource too (nvidia.com/gpu). */
function admissionReason(reason: string | undefined): KubeletReason | undefined {
  if (!reason) return undefined;
  return byKey.get(`admission\u0000${reason}`) ?? (reason.startsWith('OutOf') ? { ...byKey.get('admission\u0000OutOfcpu')!, reason, what: `the kubelet rejected the pod: not enough allocatable ${reason.slice(5)} left on the node` } : undefined);
}

interface Group {
  k: KubeletReason;
  subject: Subject;
  events: KubeEvent[];
  evidence: Evidence[];
  at?: string;
}

/** Creates the kubelet reasons detector. */
export const createKubeletReasonsDetector = detectorFactory('kubelet-reasons', KUBELET_REASONS_OPTIONS, (o) => {
  const windowMs = o.windowMinutes * 60_000;
  const admissionMs = o.admissionWindowHours * 3_600_000;
  return (view) => {
    const groups = new Map<string, Group>();
    const group = (k: KubeletReason, subject: Subject): Group => groupOf(groups, subjectKey(subject, k.category, k.reason), () => ({ k, subject, events: [], evidence: [] }));
    for (const e of view.events) {
      if (e.type === 'Normal' || !within(view.now, eventLastTime(e), windowMs)) continue;
      const obj = eventObject(e);
      if (obj.kind === 'Node') {
        const k = byKey.get(`nodeEvent\u0000${e.reason ?? ''}`);
        if (k && (obj.name === undefined || obj.name === view.nodeName)) group(k, { kind: 'Node', name: view.nodeName }).events.push(e);
        continue;
      }
      if ((obj.kind ?? 'Pod') !== 'Pod' || !obj.name) continue;
      const k = byKey.get(`podEvent\u0000${e.reason ?? ''}`);
      if (!k) continue;
      const namespace = obj.namespace ?? e.metadata.namespace ?? 'default';
      const pod = findPod(view, namespace, obj.name);
      if (view.pods && !pod) continue;
      if (pod && (isCompletedPod(pod) || pod.metadata.deletionTimestamp)) continue;
      // A pod that runs with every container ready got past it.
      const cs = pod?.status?.containerStatuses ?? [];
      if (pod?.status?.phase === 'Running' && cs.length > 0 && cs.every((c) => c.ready)) continue;
      // Hook failures are about one container; the rest about the pod (a ConfigMap/Secret mount failure merges with ContainerConfig's own finding).
      const container = k.reason === 'FailedPostStartHook' || k.reason === 'FailedPreStopHook' ? eventContainer(e) : undefined;
      const subject: Subject = container ? { kind: 'Container', namespace, name: obj.name, container } : { kind: 'Pod', namespace, name: obj.name };
      group(k, subject).events.push(e);
    }
    for (const c of listContainers(view)) {
      const w = c.status.state?.waiting;
      const k = w?.reason ? byKey.get(`waiting\u0000${w.reason}`) : undefined;
      if (!k || isCompletedPod(c.pod) || c.pod.metadata.deletionTimestamp) continue;
      const g = group(k, { kind: 'Pod', namespace: c.namespace, name: c.podName });
      g.evidence.push(...statusEvidence(c, view.now, ['state']));
    }
    for (const pod of nodePods(view)) {
      const k = pod.status?.phase === 'Failed' ? admissionReason(pod.status.reason) : undefined;
      if (!k || pod.metadata.deletionTimestamp) continue;
      const namespace = pod.metadata.namespace ?? 'default';
      const name = pod.metadata.name ?? '';
      const at = iso(pod.status?.startTime ?? pod.metadata.creationTimestamp, view.now);
      const g = group(within(view.now, at, admissionMs) ? k : { ...k, severity: 'info' }, { kind: 'Pod', namespace, name });
      g.at = at;
      g.evidence.push({ source: 'podStatus', at, text: clip(`pod ${podRef(namespace, name)} phase Failed reason ${pod.status?.reason}: ${pod.status?.message ?? ''}`) });
    }

    const out: FindingDraft[] = [];
    for (const g of groups.values()) {
      const { k, subject } = g;
      const n = g.events.reduce((s, e) => s + eventCount(e), 0);
      const last = g.events[g.events.length - 1];
      const lastText = last ? eventMessage(last).trim() : '';
      const who = subject.kind === 'Node' ? `node ${subject.name}` : subject.kind === 'Container' ? `container ${subject.container} of pod ${podRef(subject.namespace ?? '', subject.name)}` : `pod ${podRef(subject.namespace ?? '', subject.name)}`;
      const at = g.at ?? latest(g.events.map((e) => eventLastTime(e))) ?? view.now;
      const draft: FindingDraft = {
        category: k.category,
        severity: k.severity,
        subject,
        title: `${k.reason} on ${who}`,
        message: `The kubelet reports ${k.reason} for ${who}: ${k.what}.${n > 0 ? ` ${n} event${n > 1 ? 's' : ''}; the last says: ${clip(lastText, 300)}` : ''}`,
        evidence: dedupeEvidence([...g.evidence, ...g.events.map((e) => eventEvidence(e, view.now))]),
        at,
        lifecycle: k.on === 'podEvent' || k.on === 'nodeEvent' ? 'event' : 'condition',
        detector: 'kubelet-reasons',
        facts: { reason: k.reason },
      };
      if (n > 0) draft.occurrences = n;
      setFirstAt(draft, g.events.map((e) => eventFirstTime(e)));
      if (k.category === 'Evicted') draft.facts!.cause = 'admission';
      // The kubelet passes on what the kernel or the runtime saw: their own lines, when read, speak for the problem.
      if (k.on === 'nodeEvent') draft.facts!.relayed = true;
      const victim = /victim process: ([^,]+), pid: (\d+)/.exec(lastText);
      if (victim) {
        draft.facts!.process = victim[1]!;
        draft.facts!.pid = Number(victim[2]);
      }
      out.push(draft);
    }
    return out;
  };
});
