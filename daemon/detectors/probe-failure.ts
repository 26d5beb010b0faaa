/**
 * ProbeFailure: liveness, readiness or startup probes failing, read from the
 * kubelet's Unhealthy events (counted) and its "failed liveness probe, will be
 * restarted" Killing events. A restart with exit code 137/143 right after such a
 * kill is the probe's doing, reported here and never as OOMKilled.
 *
 * Reported:
 * - liveness/startup: the probe killed the container within `restartWindowMinutes`,
 *   or it failed at least `minFailures` times with the last failure within
 *   `windowMinutes`;
 * - readiness: the last failure is within `windowMinutes` and the running container
 *   is not ready now (without pod status: `minFailures` or more failures).
 * Not reported: failures that stopped more than `windowMinutes` ago, readiness
 * failures of a container that is ready now (start-up, a short dependency
 * outage, failures below the threshold), pods that are done or gone.
 * Severity: warning.
 */
import { eventCount, eventFirstTime, eventLastTime, eventMessage, eventObject, type KubeEvent } from '../core/kube.js';
import type { Evidence, FindingDraft, Subject } from '../core/types.js';
import {
  type ContainerContext,
  dedupeEvidence,
  eventContainer,
  eventEvidence,
  findPod,
  groupOf,
  isCompletedPod,
  latest,
  listContainers,
  probeKillEvents,
  setFirstAt,
  statusEvidence,
  within,
} from './pod-status.js';
import { count, defineDetectorOptions, detectorFactory, minutes, opt } from './options.js';

/** Thresholds of the ProbeFailure detector: each one's check, doc and default (config `detectors.probeFailure`). */
export const PROBE_FAILURE_OPTIONS = defineDetectorOptions({
  /** A probe whose last failure is older than this (minutes) has recovered. Defaults to 15. */
  windowMinutes: opt(minutes, 15),
  /** Liveness/startup kills within this many minutes are reported. Defaults to 60. */
  restartWindowMinutes: opt(minutes, 60),
  /** Failures needed when the probe did not (yet) change anything. Defaults to 3. */
  minFailures: opt(count, 3),
});

type Probe = 'liveness' | 'readiness' | 'startup';

const UNHEALTHY = /^(Liveness|Readiness|Startup) probe (?:failed|errored)/i;

interface Group {
  namespace: string;
  pod: string;
  container?: string;
  probe: Probe;
  unhealthy: KubeEvent[];
  kills: KubeEvent[];
}

/** Creates the ProbeFailure detector. */
export const createProbeFailureDetector = detectorFactory('probe-failure', PROBE_FAILURE_OPTIONS, (o) => {
  const windowMs = o.windowMinutes * 60_000;
  const restartWindowMs = o.restartWindowMinutes * 60_000;
  return (view) => {
    const groups = new Map<string, Group>();
    const group = (e: KubeEvent, probe: Probe): Group => {
      const obj = eventObject(e);
      const namespace = obj.namespace ?? e.metadata.namespace ?? 'default';
      const pod = obj.name ?? '';
      const container = eventContainer(e);
      return groupOf(groups, `${namespace}/${pod}/${container ?? ''}/${probe}`, () => ({ namespace, pod, probe, unhealthy: [], kills: [], ...(container ? { container } : {}) }));
    };
    for (const e of view.events) {
      if ((eventObject(e).kind ?? 'Pod') !== 'Pod') continue;
      const msg = eventMessage(e);
      if (e.reason === 'Unhealthy') {
        const m = UNHEALTHY.exec(msg);
        if (m) group(e, m[1]!.toLowerCase() as Probe).unhealthy.push(e);
      } else if (probeKillEvents([e]).length > 0) {
        group(e, /startup probe/i.test(msg) ? 'startup' : 'liveness').kills.push(e);
      }
    }
    const byPod = new Map<string, ContainerContext[]>();
    for (const c of listContainers(view)) groupOf(byPod, `${c.namespace}/${c.podName}`, () => []).push(c);
    const out: FindingDraft[] = [];
    for (const g of groups.values()) {
      const pod = findPod(view, g.namespace, g.pod);
      if (view.pods && !pod) continue;
      if (pod && (isCompletedPod(pod) || pod.metadata.deletionTimestamp)) continue;
      const inPod = byPod.get(`${g.namespace}/${g.pod}`) ?? [];
      const appContainers = inPod.filter((c) => !c.init);
      const containerName = g.container ?? (appContainers.length === 1 ? appContainers[0]!.status.name : undefined);
      const c = containerName ? inPod.find((x) => x.status.name === containerName) : undefined;

      const recentUnhealthy = g.unhealthy.filter((e) => within(view.now, eventLastTime(e), windowMs));
      const failures = recentUnhealthy.reduce((n, e) => n + eventCount(e), 0);
      const recentKills = g.kills.filter((e) => within(view.now, eventLastTime(e), restartWindowMs));
      const killCount = recentKills.reduce((n, e) => n + eventCount(e), 0);
      const lastFailure = latest(recentUnhealthy.map((e) => eventLastTime(e)));

      let report = false;
      if (g.probe === 'readiness') {
        // Readiness only matters while it keeps the container out of its Services: a container that
        // is ready now has recovered (start-up, a short dependency outage) or fails below the threshold.
        if (lastFailure) {
          const ready = c?.status.ready;
          if (ready === undefined) report = failures >= o.minFailures;
          else report = ready === false && c?.status.state?.running !== undefined;
        }
      } else {
        report = killCount > 0 || (lastFailure !== undefined && failures >= o.minFailures);
      }
      if (!report) continue;

      const subject: Subject = containerName
        ? { kind: 'Container', namespace: g.namespace, name: g.pod, container: containerName }
        : { kind: 'Pod', namespace: g.namespace, name: g.pod };
      const last = c?.status.lastState?.terminated;
      const evidence: Evidence[] = [
        ...recentUnhealthy.map((e) => eventEvidence(e, view.now)),
        ...recentKills.map((e) => eventEvidence(e, view.now)),
      ];
      if (c) evidence.push(...statusEvidence(c, view.now));
      const probeName = `${g.probe[0]!.toUpperCase()}${g.probe.slice(1)}`;
      const where = containerName ? `container ${containerName} of ${g.namespace}/${g.pod}` : `pod ${g.namespace}/${g.pod}`;
      const parts: string[] = [];
      if (failures > 0) parts.push(`${failures} failure${failures > 1 ? 's' : ''}`);
      if (killCount > 0) parts.push(`${killCount} restart${killCount > 1 ? 's' : ''}`);
      const lastText = recentUnhealthy.length > 0 ? eventMessage(recentUnhealthy[recentUnhealthy.length - 1]!) : eventMessage(recentKills[recentKills.length - 1]!);
      let message = `${probeName} probe of ${where} is failing: ${lastText.replace(UNHEALTHY, '').replace(/^:\s*/, '').replace(/\.?\s*$/, '.')}`;
      if (killCount > 0) {
        message += ` Kubelet restarted the container ${killCount} time${killCount > 1 ? 's' : ''} because of it`;
        if (last && (last.exitCode === 137 || last.exitCode === 143)) message += ` (exit code ${last.exitCode} is the kill signal, not an OOM)`;
        message += '.';
      } else if (g.probe === 'readiness' && c?.status.ready === false) {
        message += ' The container is not ready, so it receives no Service traffic.';
      }
      const at = latest([lastFailure, ...recentKills.map((e) => eventLastTime(e))]) ?? view.now;
      const draft: FindingDraft = {
        category: 'ProbeFailure',
        severity: 'warning',
        subject,
        title: `${probeName} probe failing for ${where}${parts.length ? ` (${parts.join(', ')})` : ''}`,
        message,
        evidence: dedupeEvidence(evidence),
        at,
        occurrences: Math.max(1, failures + (failures === 0 ? killCount : 0)),
        lifecycle: 'condition',
        detector: 'probe-failure',
        facts: { probe: g.probe, failures, restarts: killCount },
      };
      setFirstAt(draft, [...recentUnhealthy, ...recentKills].map((e) => eventFirstTime(e)));
      if (last) draft.facts!.lastExitCode = last.exitCode;
      out.push(draft);
    }
    return out;
  };
});
