/**
 * CrashLoop: a container that keeps exiting and being restarted. Reported when
 * the kubelet says so (waiting reason CrashLoopBackOff) or when it restarted at
 * least `minRestarts` times within `windowMinutes`. The finding carries the last
 * termination (exit code, reason, finishedAt) and the log lines the container
 * wrote just before it died.
 *
 * Severity: critical once the container has restarted `criticalRestarts` times
 * (it is really looping), warning before that.
 *
 * Not reported: a single old restart of a container that runs fine since; pods
 * whose work is done (Succeeded Jobs) or that failed for good (ContainerFailed); restarts inferred from the count alone when
 * the last exit was an OOM kill or a liveness-probe kill (OOMKilled and
 * ProbeFailure report those, and correlation links a real CrashLoopBackOff to them).
 */
import { eventCount, eventFirstTime, eventLastTime, eventMessage } from '../core/kube.js';
import type { Evidence, FindingDraft, NodeView } from '../core/types.js';
import {
  type ContainerContext,
  containerLabel,
  containerTail,
  dedupeEvidence,
  eventEvidence,
  isCompletedPod,
  lastTerminationWasProbeKill,
  linesBeforeTermination,
  listContainers,
  logEvidence,
  logSaysSentence,
  podEvents,
  recentEventGroups,
  setFirstAt,
  statusEvidence,
  timeMs,
  within,
} from './pod-status.js';
import { exitCodeMeaning } from './exit-codes.js';
import { count, defineDetectorOptions, detectorFactory, int, minutes, opt, type OptionsOf } from './options.js';

/** Checks, docs and defaults of CrashLoopOptions (config `detectors.crashLoop`). */
export const CRASHLOOP_OPTIONS = defineDetectorOptions({
  /** Restarts within the window that make a crash loop without a CrashLoopBackOff state. Defaults to 3. */
  minRestarts: opt(count, 3),
  /** How far back restarts count, in minutes. Defaults to 60. */
  windowMinutes: opt(minutes, 60),
  /** Restart count from which a crash loop is critical. Defaults to 3. */
  criticalRestarts: opt(count, 3),
  /** Log lines kept from before the crash. Defaults to 10. */
  logLines: opt(int(0, 1000), 10),
  /** Without any pod list, back-off events seen within this many minutes are reported. Defaults to 10. */
  eventWindowMinutes: opt(minutes, 10),
});

/** Thresholds of the CrashLoop detector. */
export type CrashLoopOptions = OptionsOf<typeof CRASHLOOP_OPTIONS>;

const BACK_OFF = /Back-off restarting failed container/i;

/** True when a termination happened within minutes of the node booting (containers restarted by the reboot). */
function bootRestart(view: NodeView, finishedAt: string | undefined): boolean {
  if (!view.bootTime || !finishedAt) return false;
  const d = timeMs(finishedAt) - timeMs(view.bootTime);
  return Number.isFinite(d) && d <= 5 * 60_000;
}

/**
 * How many times the container restarted within the window, as far as pod
 * status and events tell (restartCount is a lifetime counter).
 */
export function restartsWithin(c: ContainerContext, view: NodeView, windowMs: number): number {
  const last = c.status.lastState?.terminated;
  if (c.status.restartCount === 0) return 0;
  if (!last || !within(view.now, last.finishedAt, windowMs)) return 0;
  // A pod that started inside the window did all its restarts inside it.
  if (within(view.now, c.pod.status?.startTime, windowMs)) return c.status.restartCount;
  // Otherwise count the container's Started events whose series began inside the window.
  let fromEvents = 0;
  for (const e of podEvents(view, c.namespace, c.podName, c.status.name)) {
    if (e.reason !== 'Started') continue;
    if (within(view.now, eventFirstTime(e), windowMs)) fromEvents = Math.max(fromEvents, eventCount(e));
    else if (within(view.now, eventLastTime(e), windowMs)) fromEvents = Math.max(fromEvents, 1);
  }
  return Math.min(c.status.restartCount, Math.max(1, fromEvents));
}

/** Creates the CrashLoop detector. */
export const createCrashLoopDetector = detectorFactory('crashloop', CRASHLOOP_OPTIONS, (o) => {
  const windowMs = o.windowMinutes * 60_000;
  return (view) => {
    if (!view.pods) return fromEventsOnly(view, o);
    const out: FindingDraft[] = [];
    for (const c of listContainers(view)) {
      // A Failed pod restarts nothing any more: ContainerFailed reports its exits.
      if (isCompletedPod(c.pod) || c.pod.metadata.deletionTimestamp || c.pod.status?.phase === 'Failed') continue;
      const st = c.status;
      const events = podEvents(view, c.namespace, c.podName, st.name);
      const backOff = st.state?.waiting?.reason === 'CrashLoopBackOff';
      const recent = restartsWithin(c, view, windowMs);
      const last = st.lastState?.terminated;
      let inferred = false;
      if (!backOff) {
        if (recent < o.minRestarts) continue;
        // Count-only evidence of an OOM or probe kill belongs to those detectors.
        if (last?.reason === 'OOMKilled' || lastTerminationWasProbeKill(c, events)) continue;
        // A node reboot or runtime restart ends every container at once ("Unknown", exit 255): not a crash.
        if (last?.reason === 'Unknown' || last?.reason === 'ContainerStatusUnknown') continue;
        if (st.state?.running && st.ready && bootRestart(view, last?.finishedAt)) continue;
        inferred = true;
      }
      const restarts = st.restartCount;
      const backOffEvents = events.filter((e) => e.reason === 'BackOff' && BACK_OFF.test(eventMessage(e)));
      const probeKill = lastTerminationWasProbeKill(c, events);
      const lines = linesBeforeTermination(
        containerTail(view, c.namespace, c.podName, st.name),
        last,
        st.state?.running ? restarts : undefined,
        o.logLines,
      );
      const evidence: Evidence[] = [
        ...statusEvidence(c, view.now),
        ...backOffEvents.map((e) => eventEvidence(e, view.now)),
        ...logEvidence(lines),
      ];
      const exit = last
        ? `last exit code ${last.exitCode}${last.reason ? ` (${last.reason})` : ''}${last.finishedAt ? ` at ${last.finishedAt}` : ''}`
        : 'no recorded termination';
      const severity = restarts >= o.criticalRestarts ? 'critical' : 'warning';
      const how = inferred
        ? `restarted ${recent} times in the last ${o.windowMinutes} minutes`
        : `is in CrashLoopBackOff after ${restarts} restarts`;
      let message = `The ${containerLabel(c)} ${how}; ${exit}.`;
      if (last?.reason === 'OOMKilled') message += ' The last exit was an OOM kill: the container hit its memory limit.';
      else if (probeKill) message += ' The last exit was kubelet killing it after a failed liveness probe.';
      else if (last) {
        const meaning = exitCodeMeaning(last.exitCode);
        if (meaning) message += ` Exit code ${last.exitCode} ${meaning}.`;
      }
      message += logSaysSentence(lines, 'word');
      const draft: FindingDraft = {
        category: 'CrashLoop',
        severity,
        subject: c.subject,
        title: `${c.init ? 'Init container' : 'Container'} ${st.name} of ${c.namespace}/${c.podName} is crash-looping (${last ? `exit code ${last.exitCode}` : 'no exit code'}, ${restarts} restarts)`,
        message,
        evidence: dedupeEvidence(evidence),
        at: view.now,
        occurrences: Math.max(1, inferred ? recent : restarts),
        lifecycle: 'condition',
        detector: 'crashloop',
        facts: { restartCount: restarts, restartsInWindow: recent, backOff },
      };
      setFirstAt(draft, backOffEvents.map((e) => eventFirstTime(e)).concat(last?.startedAt));
      if (last) {
        draft.facts!.exitCode = last.exitCode;
        if (last.reason) draft.facts!.lastReason = last.reason;
        if (last.finishedAt) draft.facts!.finishedAt = last.finishedAt;
      }
      if (probeKill) draft.facts!.probeKill = true;
      out.push(draft);
    }
    return out;
  };
});

/** Crash loops from back-off events alone, when the view has no pod list. */
function fromEventsOnly(view: NodeView, o: CrashLoopOptions): FindingDraft[] {
  const out: FindingDraft[] = [];
  for (const g of recentEventGroups(view, o.eventWindowMinutes * 60_000, (e) => e.reason === 'BackOff' && BACK_OFF.test(eventMessage(e)))) {
    const n = g.events.reduce((s, e) => s + eventCount(e), 0);
    const tail = g.container ? containerTail(view, g.namespace, g.pod, g.container) : [];
    const lines = linesBeforeTermination(tail, undefined, undefined, o.logLines);
    const draft: FindingDraft = {
      category: 'CrashLoop',
      severity: 'warning',
      subject: g.subject,
      title: `Container ${g.container ?? '?'} of ${g.namespace}/${g.pod} is crash-looping (back-off restarting)`,
      message: `The kubelet keeps backing off restarting ${g.container ? `container ${g.container} of ` : ''}pod ${g.namespace}/${g.pod} (${n} back-off events); no pod status is available for the exit code.${logSaysSentence(lines, 'word')}`,
      evidence: dedupeEvidence([...g.events.map((e) => eventEvidence(e, view.now)), ...logEvidence(lines)]),
      at: view.now,
      lifecycle: 'condition',
      detector: 'crashloop',
      facts: { backOff: true },
    };
    setFirstAt(draft, g.events.map((e) => eventFirstTime(e)));
    out.push(draft);
  }
  return out;
}
