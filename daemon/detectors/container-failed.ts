/**
 * ContainerFailed: a container that exited non-zero and will not be restarted —
 * a Job's pod, a pod with restartPolicy Never, or one whose pod failed for good
 * (phase Failed: OnFailure retries exhausted, activeDeadlineSeconds reached).
 * CrashLoop covers containers the kubelet keeps restarting; this covers the
 * ones it stopped restarting, which no back-off state ever shows.
 *
 * The finding carries the exit code, the termination reason, what the code
 * means (137 = SIGKILL, 143 = SIGTERM, ...) and the log lines the container
 * wrote before it ended.
 *
 * Not reported: exit code 0; OOM kills (OOMKilled reports them); evicted pods
 * (Evicted does); pods being deleted. Severity: warning when the container
 * ended within `windowHours`, info for older failed pods that linger (they only
 * need cleaning up) and for terminations the kubelet could not observe
 * (`ContainerStatusUnknown`, `Unknown`: the node or the runtime restarted).
 */
import type { Evidence, FindingDraft, Severity } from '../core/types.js';
import { exitCodeMeaning, exitSignal } from './exit-codes.js';
import {
  clip,
  containerLabel,
  containerTail,
  dedupeEvidence,
  iso,
  linesBeforeTermination,
  listContainers,
  logEvidence,
  logSaysSentence,
  podRef,
  statusEvidence,
  within,
} from './pod-status.js';
import { defineDetectorOptions, detectorFactory, hours, int, opt } from './options.js';

/** Options of the ContainerFailed detector: each one's check, doc and default (config `detectors.containerFailed`). */
export const CONTAINER_FAILED_OPTIONS = defineDetectorOptions({
  /** Failures newer than this many hours are warnings; older ones are info. Defaults to 24. */
  windowHours: opt(hours, 24),
  /** Log lines kept from before the exit. Defaults to 10. */
  logLines: opt(int(0, 1000), 10),
});

/** Terminations the kubelet recorded without seeing the process end (node or runtime restart). */
const UNOBSERVED = new Set(['ContainerStatusUnknown', 'Unknown']);

/** Creates the ContainerFailed detector. */
export const createContainerFailedDetector = detectorFactory('container-failed', CONTAINER_FAILED_OPTIONS, (o) => {
  const windowMs = o.windowHours * 3_600_000;
  return (view) => {
    const out: FindingDraft[] = [];
    for (const c of listContainers(view)) {
      const pod = c.pod;
      const t = c.status.state?.terminated;
      if (!t || t.exitCode === 0 || pod.metadata.deletionTimestamp) continue;
      if (t.reason === 'OOMKilled' || pod.status?.reason === 'Evicted') continue;
      const phase = pod.status?.phase;
      const policy = pod.spec?.restartPolicy ?? 'Always';
      // Only a Failed pod or restartPolicy Never leaves a non-zero exit alone; otherwise the kubelet restarts it.
      if (phase !== 'Failed' && policy !== 'Never') continue;
      const ref = podRef(c.namespace, c.podName);
      const at = iso(t.finishedAt, view.now);
      const recent = within(view.now, at, windowMs);
      const unobserved = UNOBSERVED.has(t.reason ?? '');
      const severity: Severity = recent && !unobserved ? 'warning' : 'info';
      const owner = pod.metadata.ownerReferences?.find((r) => r.controller) ?? pod.metadata.ownerReferences?.[0];
      const signal = exitSignal(t.exitCode, t.signal);
      const meaning = exitCodeMeaning(t.exitCode);
      const lines = linesBeforeTermination(containerTail(view, c.namespace, c.podName, c.status.name), t, undefined, o.logLines);
      const evidence: Evidence[] = [...statusEvidence(c, view.now, ['state'])];
      if (phase === 'Failed') {
        evidence.push({
          source: 'podStatus',
          at,
          text: clip(`pod ${ref} phase Failed${pod.status?.reason ? ` reason ${pod.status.reason}` : ''}, restartPolicy ${policy}${pod.status?.message ? `: ${pod.status.message}` : ''}`),
        });
      }
      evidence.push(...logEvidence(lines));
      let message = `The ${containerLabel(c)} exited with code ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}${t.finishedAt ? ` at ${t.finishedAt}` : ''} and is not restarted (pod phase ${phase ?? 'unknown'}, restartPolicy ${policy}${owner ? `, owned by ${owner.kind} ${owner.name}` : ''}).`;
      if (meaning) message += ` Exit code ${t.exitCode} ${meaning}.`;
      else if (signal) message += ` It ended on ${signal}.`;
      if (pod.status?.reason === 'DeadlineExceeded') message += ' The pod ran past its activeDeadlineSeconds and was stopped.';
      if (unobserved) message += ' The kubelet did not see the process end (the node or the container runtime restarted).';
      if (t.message) message += ` Termination message: "${clip(t.message, 240)}".`;
      message += logSaysSentence(lines, 'char');
      const draft: FindingDraft = {
        category: 'ContainerFailed',
        severity,
        subject: c.subject,
        title: `${c.init ? 'Init container' : 'Container'} ${c.status.name} of ${ref} failed (exit code ${t.exitCode}${signal ? `, ${signal}` : ''}${t.reason && t.reason !== 'Error' ? `, ${t.reason}` : ''})`,
        message,
        evidence: dedupeEvidence(evidence),
        at,
        lifecycle: 'condition',
        detector: 'container-failed',
        facts: { exitCode: t.exitCode, reason: t.reason ?? '', restartPolicy: policy, phase: phase ?? '' },
      };
      if (t.startedAt && iso(t.startedAt, at) < at) draft.firstAt = iso(t.startedAt, at);
      if (signal) draft.facts!.signal = signal;
      if (pod.status?.reason) draft.facts!.podReason = pod.status.reason;
      if (owner) {
        draft.facts!.ownerKind = owner.kind;
        draft.facts!.ownerName = owner.name;
      }
      out.push(draft);
    }
    return out;
  };
});
