/**
 * ImagePull: a container that cannot start because its image cannot be pulled
 * (waiting reason ErrImagePull / ImagePullBackOff / InvalidImageName /
 * ErrImageNeverPull). The cause is read from the kubelet's "Failed to pull image"
 * event text and the waiting message, and is what a person acts on:
 * `auth` (credentials / pull secret), `not-found` (wrong name or tag),
 * `network` (DNS, timeouts, refused connections, TLS), `rate-limit` (registry
 * quota), `invalid-name`, `never-pull` (imagePullPolicy Never without the image),
 * or `unknown`. Severity: warning. A container that is running (the pull
 * eventually worked) is not reported.
 */
import { eventFirstTime, eventMessage } from '../core/kube.js';
import type { Evidence, FindingDraft, NodeView } from '../core/types.js';
import {
  containerLabel,
  dedupeEvidence,
  eventEvidence,
  isCompletedPod,
  listContainers,
  podEvents,
  recentEventGroups,
  setFirstAt,
  statusEvidence,
} from './pod-status.js';
import { defineDetectorOptions, detectorFactory, minutes, names, opt } from './options.js';

/** Why an image pull failed. */
export type ImagePullCause = 'auth' | 'not-found' | 'network' | 'rate-limit' | 'invalid-name' | 'never-pull' | 'unknown';

/** Options of the ImagePull detector: each one's check, doc and default (config `detectors.imagePull`). */
export const IMAGE_PULL_OPTIONS = defineDetectorOptions({
  /** Waiting reasons that mean the image cannot be pulled. Defaults to ErrImagePull, ImagePullBackOff, InvalidImageName, ErrImageNeverPull, RegistryUnavailable, ImageInspectError, SignatureValidationFailed. */
  reasons: opt(names('waiting reasons'), ['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'RegistryUnavailable', 'ImageInspectError', 'SignatureValidationFailed']),
  /** Without any pod list, pull failures seen in events within this many minutes are reported. Defaults to 10. */
  eventWindowMinutes: opt(minutes, 10),
});

const PULL_FAILURE = /Failed to pull image|Error: (?:ErrImagePull|ImagePullBackOff)|Back-off pulling image/i;

// Checked in this order: a 429 response often also says "denied", and Docker's
// "pull access denied ... repository does not exist or may require 'docker login'"
// is an access problem as far as the operator can tell.
const CAUSES: [Exclude<ImagePullCause, 'unknown' | 'invalid-name' | 'never-pull'>, RegExp][] = [
  ['rate-limit', /\b429\b|toomanyrequests|too many requests|rate limit/i],
  [
    'auth',
    /unauthorized|authentication required|pull access denied|no basic auth credentials|insufficient_scope|access denied|requested access to the resource is denied|\b403\b|forbidden/i,
  ],
  ['not-found', /not found|manifest unknown|name unknown|repository does not exist|code = NotFound|no such image/i],
  [
    'network',
    /i\/o timeout|no such host|connection refused|connection reset|network is unreachable|no route to host|TLS handshake|x509:|tls:|certificate|context deadline exceeded|dial tcp|server misbehaving|EOF\b|\b50[23]\b|service unavailable/i,
  ],
];

/** Classifies the text of a pull failure. */
export function classifyImagePull(texts: string[], waitingReason?: string): ImagePullCause {
  if (waitingReason === 'InvalidImageName') return 'invalid-name';
  if (waitingReason === 'ErrImageNeverPull') return 'never-pull';
  const joined = texts.join('\n');
  for (const [cause, re] of CAUSES) if (re.test(joined)) return cause;
  return 'unknown';
}

const CAUSE_WORDS: Record<ImagePullCause, string> = {
  auth: 'registry refused the credentials (authentication/authorization)',
  'not-found': 'image or tag not found in the registry',
  network: 'registry unreachable (network, DNS or TLS error)',
  'rate-limit': 'registry rate limit reached',
  'invalid-name': 'invalid image name',
  'never-pull': 'image not present and imagePullPolicy is Never',
  unknown: 'unknown error',
};

/** Creates the ImagePull detector. */
export const createImagePullDetector = detectorFactory('image-pull', IMAGE_PULL_OPTIONS, (o) => {
  const reasons = new Set(o.reasons);
  return (view) => {
    const out: FindingDraft[] = [];
    if (!view.pods) return fromEventsOnly(view, o.eventWindowMinutes * 60_000);
    for (const c of listContainers(view)) {
      const w = c.status.state?.waiting;
      if (!w?.reason || !reasons.has(w.reason) || isCompletedPod(c.pod) || c.pod.metadata.deletionTimestamp) continue;
      const events = podEvents(view, c.namespace, c.podName, c.status.name);
      const failures = events.filter(
        (e) => (e.reason === 'Failed' || e.reason === 'ErrImagePull' || e.reason === 'InspectFailed') && /pull|image/i.test(eventMessage(e)),
      );
      const backOffs = events.filter((e) => e.reason === 'BackOff' && /pulling image/i.test(eventMessage(e)));
      const detailed = failures.filter((e) => /Failed to pull image|failed to (?:pull|resolve|fetch|do request)/i.test(eventMessage(e)));
      const cause = classifyImagePull([...detailed.map(eventMessage), w.message ?? ''], w.reason);
      const image =
        /image "([^"]+)"/.exec(w.message ?? '')?.[1] ??
        c.pod.spec?.containers?.find((x) => x.name === c.status.name)?.image ??
        c.pod.spec?.initContainers?.find((x) => x.name === c.status.name)?.image ??
        c.status.image ??
        'unknown';
      const evidence: Evidence[] = [
        ...statusEvidence(c, view.now, ['state']),
        ...detailed.map((e) => eventEvidence(e, view.now)),
        ...failures.filter((e) => !detailed.includes(e)).map((e) => eventEvidence(e, view.now)),
        ...backOffs.map((e) => eventEvidence(e, view.now)),
      ];
      const why = detailed.length > 0 ? eventMessage(detailed[detailed.length - 1]!) : (w.message ?? w.reason);
      const draft: FindingDraft = {
        category: 'ImagePull',
        severity: 'warning',
        subject: c.subject,
        title: `Image ${image} cannot be pulled for ${c.namespace}/${c.podName} (${c.status.name}): ${cause}`,
        message: `The ${containerLabel(c)} is waiting in ${w.reason}: ${CAUSE_WORDS[cause]}. Last error: ${why}`,
        evidence: dedupeEvidence(evidence),
        at: view.now,
        lifecycle: 'condition',
        detector: 'image-pull',
        facts: { cause, image, waitingReason: w.reason },
      };
      setFirstAt(draft, failures.map((e) => eventFirstTime(e)));
      out.push(draft);
    }
    return out;
  };
});

/** Pull failures from events alone, when the view has no pod list. */
function fromEventsOnly(view: NodeView, windowMs: number): FindingDraft[] {
  const out: FindingDraft[] = [];
  for (const g of recentEventGroups(view, windowMs, (e) => PULL_FAILURE.test(eventMessage(e)))) {
    const detailed = g.events.filter((e) => /Failed to pull image/i.test(eventMessage(e)));
    const cause = classifyImagePull(detailed.map(eventMessage));
    const last = detailed[detailed.length - 1] ?? g.events[g.events.length - 1]!;
    const image = /image "([^"]+)"/.exec(eventMessage(last))?.[1] ?? 'unknown';
    const draft: FindingDraft = {
      category: 'ImagePull',
      severity: 'warning',
      subject: g.subject,
      title: `Image ${image} cannot be pulled for ${g.namespace}/${g.pod}${g.container ? ` (${g.container})` : ''}: ${cause}`,
      message: `The kubelet keeps failing to pull ${image} for pod ${g.namespace}/${g.pod}: ${CAUSE_WORDS[cause]}. Last error: ${eventMessage(last)}`,
      evidence: dedupeEvidence(g.events.map((e) => eventEvidence(e, view.now))),
      at: view.now,
      lifecycle: 'condition',
      detector: 'image-pull',
      facts: { cause, image },
    };
    setFirstAt(draft, g.events.map((e) => eventFirstTime(e)));
    out.push(draft);
  }
  return out;
}
