/**
 * KubeletUnhealthy from the kubelet's own state: its /healthz answering anything
 * but "ok", or the node's Ready condition blaming the kubelet's pod lifecycle
 * event generator ("PLEG is not healthy"). The body of a failing /healthz lists
 * every check (`[+]ping ok`, `[-]syncloop failed: reason withheld`); the failing
 * ones are named in the finding. A body that is not a check list (connection
 * refused, timeout) means the kubelet is not answering at all. Critical: a stuck
 * sync loop means pods are no longer started, stopped or updated on this node.
 */
import type { Evidence, FindingDraft } from '../core/types.js';
import { clip, iso } from './pod-status.js';
import { z } from 'zod';
import { defineDetectorOptions, detectorFactory, opt } from './options.js';

/** Options of the kubelet health detector: each one's check, doc and default (config `detectors.kubeletHealth`). */
export const KUBELET_HEALTH_OPTIONS = defineDetectorOptions({
  /** Severity of an unhealthy kubelet. Defaults to critical. */
  severity: opt(z.enum(['warning', 'critical'], { error: 'warning or critical' }), 'critical'),
});

/** The failing checks of a /healthz body (`[-]name failed: ...`), as `name: reason`. */
export function failingHealthChecks(body: string): string[] {
  const out: string[] = [];
  for (const line of body.split('\n')) {
    const m = /^\s*\[-\]\s*([\w.-]+)\s+failed(?::\s*(.*))?$/.exec(line);
    if (m) out.push(m[2] ? `${m[1]}: ${m[2].trim()}` : m[1]!);
  }
  return out;
}

/** Creates the kubelet health detector. */
export const createKubeletHealthDetector = detectorFactory('kubelet-health', KUBELET_HEALTH_OPTIONS, (o) => (view) => {
  const h = view.kubeletHealth;
  const ready = view.node?.status?.conditions?.find((c) => c.type === 'Ready');
  const pleg = ready && ready.status === 'False' && /PLEG is not healthy/i.test(ready.message ?? '') ? ready : undefined;
  const unhealthy = h !== undefined && !h.ok;
  if (!unhealthy && !pleg) return [];
  const evidence: Evidence[] = [];
  const sentences: string[] = [];
  let title = 'Kubelet is unhealthy';
  let names: string[] = [];
  if (h && unhealthy) {
    const failing = failingHealthChecks(h.body);
    names = failing.map((f) => f.split(':')[0]!);
    const body = h.body.trim();
    evidence.push(
      ...body
        .split('\n')
        .filter((l) => l.trim() !== '' && !/^\s*\[\+\]/.test(l))
        .slice(0, 10)
        .map((text) => ({ source: 'kubelet' as const, at: h.at, text: clip(`/healthz: ${text.trim()}`) })),
    );
    if (body === '') evidence.push({ source: 'kubelet', at: h.at, text: '/healthz: empty response' });
    if (failing.length > 0) {
      title = `Kubelet health check failing: ${names.join(', ')}`;
      sentences.push(`The kubelet's /healthz reports failing checks: ${failing.join('; ')}.`);
    } else {
      title = 'Kubelet /healthz is not answering ok';
      sentences.push(`The kubelet's /healthz did not answer ok: ${clip(body || 'empty response', 200)}.`);
    }
  }
  if (pleg) {
    if (!unhealthy) title = 'Kubelet PLEG is not healthy';
    else title += ' (PLEG is not healthy)';
    evidence.push({
      source: 'kubelet',
      at: iso(pleg.lastTransitionTime ?? pleg.lastHeartbeatTime, view.now),
      text: clip(`condition Ready=False reason ${pleg.reason ?? ''}${pleg.lastTransitionTime ? ` since ${pleg.lastTransitionTime}` : ''}: ${pleg.message ?? ''}`),
    });
    sentences.push(`The node's Ready condition says: ${pleg.message}.`);
  }
  if (pleg || names.includes('syncloop')) {
    sentences.push(
      'The sync loop is stuck (PLEG: the kubelet cannot list containers from the runtime in time), so pods on this node are not started, stopped or updated.',
    );
  }
  const draft: FindingDraft = {
    category: 'KubeletUnhealthy',
    severity: o.severity,
    subject: { kind: 'Node', name: view.nodeName },
    // The prefix of the kubelet's own log rules (PLEG): the same unhealthy kubelet, one finding.
    detail: 'kubelet',
    title,
    message: sentences.join(' '),
    evidence,
    at: h && unhealthy ? h.at : view.now,
    lifecycle: 'condition',
    detector: 'kubelet-health',
    facts: { failingChecks: names.join(','), pleg: pleg !== undefined, healthz: unhealthy },
  };
  if (pleg?.lastTransitionTime) {
    const first = iso(pleg.lastTransitionTime, draft.at);
    if (first < draft.at) draft.firstAt = first;
  }
  return [draft];
});
