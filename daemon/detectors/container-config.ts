/**
 * ContainerConfig: a container that cannot be created or started from its spec
 * (waiting reason CreateContainerConfigError / CreateContainerError /
 * RunContainerError), or a pod stuck in ContainerCreating because a ConfigMap or
 * Secret volume cannot be mounted. The finding names what is missing — the
 * ConfigMap, the Secret, or the key inside one — as the kubelet's message does.
 * Severity: warning.
 */
import { clipAtWord } from '../core/text.js';
import { eventFirstTime, eventLastTime, eventMessage, type KubeEvent } from '../core/kube.js';
import type { Evidence, FindingDraft, NodeView } from '../core/types.js';
import {
  containerLabel,
  dedupeEvidence,
  eventEvidence,
  isCompletedPod,
  listContainers,
  podEvents,
  podRef,
  recentEventGroups,
  setFirstAt,
  statusEvidence,
  within,
} from './pod-status.js';
import { defineDetectorOptions, detectorFactory, minutes, names, opt } from './options.js';

/** Options of the ContainerConfig detector: each one's check, doc and default (config `detectors.containerConfig`). */
export const CONTAINER_CONFIG_OPTIONS = defineDetectorOptions({
  /** Waiting reasons that mean the container cannot be created or started. Defaults to CreateContainerConfigError, CreateContainerError, RunContainerError, PreCreateHookError, PreStartHookError, PostStartHookError, VerifyNonRootError. */
  reasons: opt(names('waiting reasons'), ['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError', 'PreCreateHookError', 'PreStartHookError', 'PostStartHookError', 'VerifyNonRootError']),
  /** FailedMount events newer than this (minutes) explain a pod stuck in ContainerCreating (and, without any pod list, failure events newer than this are reported). Defaults to 30. */
  mountWindowMinutes: opt(minutes, 30),
});

/** What a container-creation error message says is wrong. */
export interface ConfigProblem {
  cause: 'missing-configmap' | 'missing-secret' | 'missing-key' | 'security-context' | 'api-sync' | 'runtime' | 'unknown';
  kind?: 'ConfigMap' | 'Secret';
  name?: string;
  key?: string;
  /** One line for titles: `Secret "db" not found`. */
  summary: string;
}

/** Reads a kubelet container-creation error message. */
export function parseConfigProblem(text: string): ConfigProblem {
  let m = /couldn't find key (\S+) in (ConfigMap|Secret) ([^\s/]+)\/(\S+)/i.exec(text);
  if (m) {
    const kind = m[2]!.toLowerCase() === 'secret' ? 'Secret' : 'ConfigMap';
    return { cause: 'missing-key', kind, name: m[4]!, key: m[1]!, summary: `key ${m[1]} missing in ${kind} ${m[3]}/${m[4]}` };
  }
  m = /configmap references non-existent config key:\s*(\S+)/i.exec(text);
  if (m) return { cause: 'missing-key', kind: 'ConfigMap', key: m[1]!, summary: `key ${m[1]} missing in a ConfigMap` };
  m = /\b(configmaps?|secrets?) "([^"]+)" not found/i.exec(text);
  if (m) {
    const kind = m[1]!.toLowerCase().startsWith('secret') ? 'Secret' : 'ConfigMap';
    return { cause: kind === 'Secret' ? 'missing-secret' : 'missing-configmap', kind, name: m[2]!, summary: `${kind} "${m[2]}" not found` };
  }
  if (/runAsNonRoot|will run as root|non-numeric user|runAsUser/i.test(text)) return { cause: 'security-context', summary: 'securityContext forbids the image user' };
  if (/failed to sync (?:configmap|secret) cache/i.test(text)) return { cause: 'api-sync', summary: 'kubelet could not read ConfigMap/Secret from the API server' };
  const first = text.split('\n')[0]!.trim();
  if (first) return { cause: 'runtime', summary: clipAtWord(first, 120) };
  return { cause: 'unknown', summary: 'unknown error' };
}

/** True when an event's message names a missing ConfigMap, Secret or key. */
function namesMissingConfig(e: KubeEvent): boolean {
  const cause = parseConfigProblem(eventMessage(e)).cause;
  return cause === 'missing-configmap' || cause === 'missing-secret' || cause === 'missing-key';
}

/** Creates the ContainerConfig detector. */
export const createContainerConfigDetector = detectorFactory('container-config', CONTAINER_CONFIG_OPTIONS, (o) => {
  const reasons = new Set(o.reasons);
  const mountWindowMs = o.mountWindowMinutes * 60_000;
  return (view) => {
    if (!view.pods) return fromEventsOnly(view, mountWindowMs);
    const out: FindingDraft[] = [];
    const mountReported = new Set<string>();
    for (const c of listContainers(view)) {
      if (isCompletedPod(c.pod) || c.pod.metadata.deletionTimestamp) continue;
      const w = c.status.state?.waiting;
      if (!w?.reason) continue;
      const ref = podRef(c.namespace, c.podName);
      if (reasons.has(w.reason)) {
        const events = podEvents(view, c.namespace, c.podName, c.status.name).filter(
          (e) => e.reason === 'Failed' && !/pull/i.test(eventMessage(e)),
        );
        const text = w.message ?? (events.length > 0 ? eventMessage(events[events.length - 1]!) : '');
        const p = parseConfigProblem(text);
        const evidence: Evidence[] = [...statusEvidence(c, view.now, ['state']), ...events.map((e) => eventEvidence(e, view.now))];
        // A failing lifecycle hook (PreStartHookError, PostStartHookError...) stops a container that was created.
        const what = /Hook/.test(w.reason) ? 'cannot start: its lifecycle hook failed' : 'cannot be created';
        out.push(draftFor(view, c.subject, `The ${containerLabel(c)} ${what} (${w.reason}): ${p.summary}.`, p, evidence, {
          title: `${c.init ? 'Init container' : 'Container'} ${c.status.name} of ${ref} ${what}: ${p.summary}`,
          firstTimes: events.map((e) => eventFirstTime(e)),
          waitingReason: w.reason,
        }));
        continue;
      }
      // ConfigMap/Secret volumes are mounted before any container is created.
      if (w.reason === 'ContainerCreating' || w.reason === 'PodInitializing') {
        if (mountReported.has(ref)) continue;
        const mounts = podEvents(view, c.namespace, c.podName).filter(
          (e) => e.reason === 'FailedMount' && within(view.now, eventLastTime(e), mountWindowMs),
        );
        const configMounts = mounts.filter(namesMissingConfig);
        if (configMounts.length === 0) continue;
        mountReported.add(ref);
        const p = parseConfigProblem(eventMessage(configMounts[configMounts.length - 1]!));
        out.push(
          draftFor(
            view,
            { kind: 'Pod', namespace: c.namespace, name: c.podName },
            `Pod ${ref} is stuck in ContainerCreating: a volume cannot be mounted because ${p.summary}.`,
            p,
            [...statusEvidence(c, view.now, ['state']), ...configMounts.map((e) => eventEvidence(e, view.now))],
            {
              title: `Pod ${ref} cannot start: ${p.summary}`,
              firstTimes: configMounts.map((e) => eventFirstTime(e)),
              waitingReason: w.reason,
            },
          ),
        );
      }
    }
    return out;
  };
});

function draftFor(
  view: NodeView,
  subject: FindingDraft['subject'],
  message: string,
  p: ConfigProblem,
  evidence: Evidence[],
  extra: { title: string; firstTimes: (string | undefined)[]; waitingReason: string },
): FindingDraft {
  const d: FindingDraft = {
    category: 'ContainerConfig',
    severity: 'warning',
    subject,
    title: extra.title,
    message,
    evidence: dedupeEvidence(evidence),
    at: view.now,
    lifecycle: 'condition',
    detector: 'container-config',
    facts: { cause: p.cause, waitingReason: extra.waitingReason },
  };
  setFirstAt(d, extra.firstTimes);
  if (p.kind) d.facts!.missingKind = p.kind;
  if (p.name) d.facts!.missingName = p.name;
  if (p.key) d.facts!.missingKey = p.key;
  return d;
}

/** Missing ConfigMaps/Secrets from events alone, when the view has no pod list. */
function fromEventsOnly(view: NodeView, windowMs: number): FindingDraft[] {
  const out: FindingDraft[] = [];
  const groups = recentEventGroups(view, windowMs, (e) => (e.reason === 'Failed' || e.reason === 'FailedMount') && namesMissingConfig(e));
  for (const g of groups) {
    const last = g.events[g.events.length - 1]!;
    const p = parseConfigProblem(eventMessage(last));
    const ref = podRef(g.namespace, g.pod);
    out.push(
      draftFor(view, g.subject, `Pod ${ref} cannot start its containers: ${p.summary} (from kubelet events; no pod status available).`, p, g.events.map((e) => eventEvidence(e, view.now)), {
        title: `${g.container ? `Container ${g.container} of ${ref}` : `Pod ${ref}`} cannot be created: ${p.summary}`,
        firstTimes: g.events.map((e) => eventFirstTime(e)),
        waitingReason: last.reason === 'FailedMount' ? 'ContainerCreating' : 'CreateContainerConfigError',
      }),
    );
  }
  return out;
}
