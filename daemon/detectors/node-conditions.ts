/**
 * The node's own conditions as the API server holds them (node.json):
 * - NodeNotReady: Ready False or Unknown (with reason, message, heartbeat age and
 *   the not-ready/unreachable taints); the taints alone when the Ready condition is
 *   missing. Critical.
 * - NodeMemoryPressure / NodeDiskPressure / NodePIDPressure: the kubelet's pressure
 *   conditions True. Critical: the kubelet is evicting pods to recover. Unknown
 *   (kubelet not reporting) is not pressure.
 * - NetworkUnavailable True (the node's pod network is not set up: no route from
 *   the cloud route controller, the CNI not initialised): NodeNotReady. The node
 *   controller taints the node `node.kubernetes.io/network-unavailable` and the
 *   scheduler keeps pods off it, as for Ready=False; the kubelet's Ready message
 *   usually names the same cause (NetworkPluginNotReady), so both are one problem.
 * - Conditions set by node-problem-detector, when it runs next to nodesage, map to
 *   their catalog category through npd.ts's table (KernelDeadlock → KernelHungTask,
 *   ReadonlyFilesystem → FilesystemError, Frequent*Restart → KubeletUnhealthy /
 *   RuntimeUnhealthy, ...), keyed on the device their message names.
 */
import { eventFirstTime, eventLastTime, eventMessage, eventObject, type KubeNodeCondition } from '../core/kube.js';
import { CATEGORIES, type Category, type Evidence, type FindingDraft, type Severity } from '../core/types.js';
import { NPD_CONDITION_ROWS, NPD_CONDITIONS, npdDetail, npdObject } from './npd.js';
import { ageMs, clip, eventEvidence, humanDuration, iso, nodePods, setFirstAt, within } from './pod-status.js';
import { z } from 'zod';
import { defineDetectorOptions, detectorFactory, minutes, opt } from './options.js';

/** Options of the node conditions detector: each one's check, doc and default (config `detectors.nodeConditions`). */
export const NODE_CONDITIONS_OPTIONS = defineDetectorOptions({
  /** Node condition types (beyond Ready and the kubelet pressures) mapped to a category when True. Defaults to node-problem-detector's conditions, and NetworkUnavailable as NodeNotReady. */
  extraConditions: opt(
    z.record(z.string().min(1), z.enum(CATEGORIES, { error: `one of ${CATEGORIES.join(', ')}` })),
    { ...NPD_CONDITIONS, NetworkUnavailable: 'NodeNotReady' },
  ),
  /** Pods deleting for longer than this (minutes) are named in NodeNotReady as stuck. Defaults to 10. */
  stuckTerminatingMinutes: opt(minutes, 10),
});

const PRESSURE: Record<string, { category: Category; what: string }> = {
  MemoryPressure: { category: 'NodeMemoryPressure', what: 'memory' },
  DiskPressure: { category: 'NodeDiskPressure', what: 'disk space or inodes (nodefs/imagefs)' },
  PIDPressure: { category: 'NodePIDPressure', what: 'process IDs' },
};

/** Ready=False messages that name the failing component. */
const READY_CAUSES: [Category, RegExp, string][] = [
  ['RuntimeUnhealthy', /container runtime is down|ContainerRuntimeUnhealthy|RuntimeReady=false|container runtime not ready/i, 'Container runtime is down'],
];

const NOT_READY_TAINTS = new Set(['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']);

/** The kubelet's reclaim events (EvictionThresholdMet, image GC failures) that belong to a pressure condition. */
function reclaimEventFor(condition: string, reason: string | undefined, message: string): boolean {
  if (reason === 'EvictionThresholdMet') {
    if (condition === 'MemoryPressure') return /memory/i.test(message);
    if (condition === 'PIDPressure') return /pid/i.test(message);
    return /ephemeral-storage|nodefs|imagefs|disk/i.test(message);
  }
  return condition === 'DiskPressure' && (reason === 'FreeDiskSpaceFailed' || reason === 'ImageGCFailed');
}

function conditionEvidence(c: KubeNodeCondition, now: string): Evidence {
  const hb = c.lastHeartbeatTime ? `, last heartbeat ${c.lastHeartbeatTime} (${humanDuration(ageMs(now, c.lastHeartbeatTime))} ago)` : '';
  const since = c.lastTransitionTime ? `, since ${c.lastTransitionTime}` : '';
  return {
    source: 'kubelet',
    at: iso(c.lastTransitionTime ?? c.lastHeartbeatTime, now),
    text: clip(`condition ${c.type}=${c.status}${c.reason ? ` reason ${c.reason}` : ''}${since}${hb}${c.message ? `: ${c.message}` : ''}`),
  };
}

/** Creates the node conditions detector. */
export const createNodeConditionsDetector = detectorFactory('node-conditions', NODE_CONDITIONS_OPTIONS, (o) => (view) => {
  const node = view.node;
  if (!node) return [];
  const subject = { kind: 'Node' as const, name: view.nodeName };
  const conditions = node.status?.conditions ?? [];
  const out: FindingDraft[] = [];
  const nodeEvents = view.events.filter((e) => {
    const obj = eventObject(e);
    return obj.kind === 'Node' && obj.name === view.nodeName;
  });

  const ready = conditions.find((c) => c.type === 'Ready');
  const taints = (node.spec?.taints ?? []).filter((t) => NOT_READY_TAINTS.has(t.key));
  if ((ready && ready.status !== 'True') || (!ready && taints.length > 0)) {
    const evidence: Evidence[] = [];
    if (ready) evidence.push(conditionEvidence(ready, view.now));
    for (const t of taints) {
      evidence.push({ source: 'kubelet', at: iso(t.timeAdded, view.now), text: `taint ${t.key}:${t.effect}${t.timeAdded ? ` added ${t.timeAdded}` : ''}` });
    }
    const nrEvents = nodeEvents.filter((e) => e.reason === 'NodeNotReady' && within(view.now, eventLastTime(e), 24 * 3_600_000));
    evidence.push(...nrEvents.map((e) => eventEvidence(e, view.now)));
    const stuckMs = o.stuckTerminatingMinutes * 60_000;
    const stuck = nodePods(view).filter((p) => p.metadata.deletionTimestamp && ageMs(view.now, p.metadata.deletionTimestamp) > stuckMs);
    if (stuck.length > 0) {
      evidence.push({
        source: 'podStatus',
        at: view.now,
        text: clip(`${stuck.length} pod(s) stuck terminating: ${stuck.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).join(', ')}`),
      });
    }
    const unknown = ready?.status === 'Unknown';
    const hbAge = ready?.lastHeartbeatTime ? ageMs(view.now, ready.lastHeartbeatTime) : Number.NaN;
    let message: string;
    if (!ready) message = `Node ${view.nodeName} carries the ${taints.map((t) => t.key).join(', ')} taint(s).`;
    else if (unknown) {
      message = `Node ${view.nodeName} is NotReady (status Unknown: ${ready.reason ?? 'no reason'}${ready.message ? ` — ${ready.message}` : ''}): the control plane has not heard from the kubelet${Number.isFinite(hbAge) ? ` for ${humanDuration(hbAge)} (last heartbeat ${ready.lastHeartbeatTime})` : ''}.`;
    } else {
      message = `Node ${view.nodeName} is NotReady (${ready.reason ?? 'no reason'}${ready.message ? `: ${ready.message}` : ''})${ready.lastTransitionTime ? ` since ${ready.lastTransitionTime}` : ''}.`;
    }
    if (ready && taints.length > 0) message += ` Taints: ${taints.map((t) => `${t.key}:${t.effect}`).join(', ')}.`;
    if (stuck.length > 0) message += ` ${stuck.length} pod(s) are stuck terminating.`;
    const draft: FindingDraft = {
      category: 'NodeNotReady',
      severity: 'critical',
      subject,
      title: `Node ${view.nodeName} is not ready${ready ? ` (${ready.status}${ready.reason ? `, ${ready.reason}` : ''})` : ' (taints)'}`,
      message,
      evidence,
      at: view.now,
      lifecycle: 'condition',
      detector: 'node-conditions',
      facts: { status: ready?.status ?? 'tainted', reason: ready?.reason ?? '' },
    };
    if (Number.isFinite(hbAge)) draft.facts!.heartbeatAgeSeconds = Math.round(hbAge / 1000);
    setFirstAt(draft, [ready?.lastTransitionTime, ...taints.map((t) => t.timeAdded)]);
    out.push(draft);
  }

  // The Ready message often names the broken part; report it as its own finding so correlation can point at it
  // (a PLEG message is the kubelet health detector's).
  if (ready && ready.status === 'False' && ready.message) {
    for (const [category, re, what] of READY_CAUSES) {
      if (!re.test(ready.message)) continue;
      const draft: FindingDraft = {
        category,
        severity: 'critical',
        subject,
        title: `${what} on node ${view.nodeName}`,
        message: `The kubelet reports the node NotReady because ${ready.message}.`,
        evidence: [conditionEvidence(ready, view.now)],
        at: view.now,
        lifecycle: 'condition',
        detector: 'node-conditions',
        facts: { reason: ready.reason ?? '' },
      };
      if (ready.lastTransitionTime && iso(ready.lastTransitionTime, view.now) < view.now) draft.firstAt = iso(ready.lastTransitionTime, view.now);
      out.push(draft);
    }
  }

  const readyKnown = ready?.status === 'True';
  for (const c of conditions) {
    if (c.status !== 'True') continue;
    const p = PRESSURE[c.type];
    const category = p?.category ?? o.extraConditions[c.type];
    if (!category) continue;
    const evidence: Evidence[] = [conditionEvidence(c, view.now)];
    const related = nodeEvents.filter((e) => (e.reason ?? '').includes(c.type) || (p !== undefined && reclaimEventFor(c.type, e.reason, eventMessage(e)) && within(view.now, eventLastTime(e), 3_600_000)));
    evidence.push(...related.map((e) => eventEvidence(e, view.now)));
    const severity: Severity = p ? 'critical' : 'warning';
    const object = p ? undefined : npdObject(c.message ?? '');
    const draft: FindingDraft = {
      category,
      severity: c.type === 'NetworkUnavailable' ? 'critical' : severity,
      subject,
      title: p ? `Node ${view.nodeName} has ${c.type}` : `Node ${view.nodeName} reports ${c.type}${c.reason ? ` (${c.reason})` : ''}`,
      message: p
        ? `The kubelet reports ${c.type} (${c.reason ?? 'no reason'}${c.message ? `: ${c.message}` : ''})${c.lastTransitionTime ? ` since ${c.lastTransitionTime}` : ''}: the node is short of ${p.what} and the kubelet evicts pods to reclaim it.${readyKnown ? '' : ' The node is also not ready.'}`
        : `Node condition ${c.type} is True (${c.reason ?? 'no reason'}${c.message ? `: ${c.message}` : ''}).`,
      evidence,
      at: view.now,
      lifecycle: 'condition',
      detector: 'node-conditions',
      facts: { condition: c.type, reason: c.reason ?? '' },
    };
    setFirstAt(draft, [c.lastTransitionTime, ...related.map((e) => eventFirstTime(e))]);
    if (related.length > 0 && !p) draft.message += ` ${eventMessage(related[related.length - 1]!)}`;
    // node-problem-detector's own conditions: relayed, so nodesage's reading of the same problem leads.
    if (NPD_CONDITIONS[c.type]) draft.facts!.npd = true;
    const detail = p ? undefined : npdDetail(NPD_CONDITION_ROWS.get(c.type), object);
    if (detail) draft.detail = detail;
    if (object) draft.facts!.device = object;
    if (c.type === 'NetworkUnavailable') draft.message += ' The pod network of this node is not set up: the node is tainted network-unavailable and new pods are not scheduled here.';
    out.push(draft);
  }
  return out;
});
