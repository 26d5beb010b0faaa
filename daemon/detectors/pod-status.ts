/**
 * Shared reading of pod state for the pod detectors (crash loops, OOM kills,
 * image pulls, config errors, probes, evictions): which containers exist, which
 * events and log lines belong to them, and how old things are. Pure helpers; each
 * detector stays one file with its own options.
 */
import { containerKey } from '../core/fingerprint.js';
import { clipAtWord } from '../core/text.js';
import {
  eventCount,
  eventFirstTime,
  eventLastTime,
  eventMessage,
  eventObject,
  type KubeContainerStatus,
  type KubeEvent,
  type KubePod,
} from '../core/kube.js';
import type { Evidence, FindingDraft, LogLine, NodeView, Subject, Timestamp } from '../core/types.js';

/** Longest evidence excerpt kept, in characters. */
export const MAX_EVIDENCE_TEXT = 400;

/** One container of one pod, with what the detectors need next to it. */
export interface ContainerContext {
  pod: KubePod;
  namespace: string;
  podName: string;
  uid: string;
  status: KubeContainerStatus;
  /** True for an init container. */
  init: boolean;
  subject: Subject;
}

/** Milliseconds of an RFC3339 time, or NaN. */
export function timeMs(t: string | null | undefined): number {
  return t ? Date.parse(t) : Number.NaN;
}

/** Age of `t` relative to `now` in milliseconds (NaN when unknown). */
export function ageMs(now: Timestamp, t: string | null | undefined): number {
  return Date.parse(now) - timeMs(t);
}

/** True when `t` is known and no older than `windowMs` before `now`. */
export function within(now: Timestamp, t: string | null | undefined, windowMs: number): boolean {
  const a = ageMs(now, t);
  return Number.isFinite(a) && a <= windowMs;
}

/** Normalises a known time to an ISO string; falls back to `fallback`. */
export function iso(t: string | null | undefined, fallback: Timestamp): Timestamp {
  const ms = timeMs(t);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : fallback;
}

/** Human duration ("3m", "2h5m", "4d") for messages. */
export function humanDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return 'unknown time';
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
  return `${Math.round(h / 24)}d`;
}

/**
 * Cuts a text to the evidence size limit, keeping its start and its end: Go
 * error chains ("a: b: c: root cause") put the root cause last.
 */
export function clip(text: string, max = MAX_EVIDENCE_TEXT): string {
  const t = text.replace(/\s+$/, '');
  if (t.length <= max) return t;
  const head = Math.floor((max - 1) * 0.4);
  return `${t.slice(0, head)}…${t.slice(t.length - (max - 1 - head))}`;
}

/** `ns/name` of a pod. */
export function podRef(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** A pod whose work is done: its phase is Succeeded, or all its containers exited 0. */
export function isCompletedPod(pod: KubePod): boolean {
  if (pod.status?.phase === 'Succeeded') return true;
  const cs = pod.status?.containerStatuses ?? [];
  return cs.length > 0 && cs.every((c) => c.state?.terminated && c.state.terminated.exitCode === 0);
}

/**
 * The pods of the view that run on this node. A pod list captured with
 * `kubectl get pods -A` also holds other nodes' pods: their problems are not
 * this node's. Pods not yet scheduled (no nodeName) are kept.
 */
export function nodePods(view: NodeView): KubePod[] {
  if (!view.pods) return [];
  let mine = nodePodCache.get(view.pods);
  if (!mine || mine.nodeName !== view.nodeName) {
    mine = { nodeName: view.nodeName, pods: view.pods.filter((p) => !p.spec?.nodeName || p.spec.nodeName === view.nodeName) };
    nodePodCache.set(view.pods, mine);
  }
  return mine.pods;
}

/** nodePods() per pod list: several detectors ask for it in one cycle. */
const nodePodCache = new WeakMap<KubePod[], { nodeName: string; pods: KubePod[] }>();

/** Every container (init containers included) of every pod of this node. */
export function listContainers(view: NodeView): ContainerContext[] {
  const out: ContainerContext[] = [];
  for (const pod of nodePods(view)) {
    const namespace = pod.metadata.namespace ?? 'default';
    const podName = pod.metadata.name ?? '';
    const uid = pod.metadata.uid ?? '';
    const add = (status: KubeContainerStatus, init: boolean) =>
      out.push({
        pod,
        namespace,
        podName,
        uid,
        status,
        init,
        subject: { kind: 'Container', namespace, name: podName, container: status.name },
      });
    for (const s of pod.status?.initContainerStatuses ?? []) add(s, true);
    for (const s of pod.status?.containerStatuses ?? []) add(s, false);
  }
  return out;
}

/** Finds a pod of the view by namespace and name. */
export function findPod(view: NodeView, namespace: string, name: string): KubePod | undefined {
  const pods = nodePods(view);
  let index = podIndexCache.get(pods);
  if (!index) {
    index = new Map(pods.map((p) => [`${p.metadata.namespace ?? 'default'}/${p.metadata.name ?? ''}`, p]));
    podIndexCache.set(pods, index);
  }
  return index.get(`${namespace}/${name}`);
}

const podIndexCache = new WeakMap<KubePod[], Map<string, KubePod>>();

/** The container an event's fieldPath names (`spec.containers{name}`), if any. */
export function eventContainer(e: KubeEvent): string | undefined {
  const fp = eventObject(e).fieldPath;
  if (!fp) return undefined;
  const m = /^spec\.(?:initContainers|containers|ephemeralContainers)\{([^}]+)\}/.exec(fp);
  return m ? m[1] : undefined;
}

/** A grouping key of a subject and of `more` parts (a category, a reason): equal exactly when every part is. */
export function subjectKey(s: Subject, ...more: string[]): string {
  return [s.kind, s.namespace ?? '', s.name, s.container ?? '', ...more].join('\u0000');
}

/** The group of `key` in `groups`, made by `make` the first time the key is seen. */
export function groupOf<V>(groups: Map<string, V>, key: string, make: () => V): V {
  let g = groups.get(key);
  if (g === undefined) {
    g = make();
    groups.set(key, g);
  }
  return g;
}

/** Pod events of a view indexed by `ns/pod`, built once per view's event list. */
const podEventIndex = new WeakMap<KubeEvent[], Map<string, KubeEvent[]>>();

function indexPodEvents(events: KubeEvent[]): Map<string, KubeEvent[]> {
  let index = podEventIndex.get(events);
  if (index) return index;
  index = new Map();
  for (const e of events) {
    const o = eventObject(e);
    if ((o.kind ?? 'Pod') !== 'Pod' || !o.name) continue;
    groupOf(index, `${o.namespace ?? e.metadata.namespace ?? 'default'}/${o.name}`, () => []).push(e);
  }
  for (const list of index.values()) list.sort((a, b) => timeMs(eventLastTime(a)) - timeMs(eventLastTime(b)));
  podEventIndex.set(events, index);
  return index;
}

/**
 * Events about one pod (and, when `container` is given, about that container
 * or the pod as a whole), oldest last seen first.
 */
export function podEvents(view: NodeView, namespace: string, pod: string, container?: string): KubeEvent[] {
  const all = indexPodEvents(view.events).get(`${namespace}/${pod}`) ?? [];
  if (container === undefined) return [...all];
  return all.filter((e) => {
    const c = eventContainer(e);
    return c === undefined || c === container;
  });
}

/** One event as evidence: `Reason: message (xN over 12m)`. */
export function eventEvidence(e: KubeEvent, now: Timestamp): Evidence {
  const n = eventCount(e);
  const first = timeMs(eventFirstTime(e));
  const last = timeMs(eventLastTime(e));
  const span = n > 1 && Number.isFinite(first) && Number.isFinite(last) && last > first ? ` over ${humanDuration(last - first)}` : '';
  const count = n > 1 ? ` (x${n}${span})` : '';
  return { source: 'event', at: iso(eventLastTime(e), now), text: clip(`${e.reason ?? 'Event'}: ${eventMessage(e)}${count}`) };
}

/** Text of a container state for evidence: `waiting CrashLoopBackOff: back-off 5m0s ...`. */
export function describeState(label: string, s: KubeContainerStatus['state']): string | null {
  if (!s) return null;
  if (s.waiting) return `${label} waiting ${s.waiting.reason ?? ''}${s.waiting.message ? `: ${s.waiting.message}` : ''}`;
  if (s.terminated) {
    const t = s.terminated;
    const parts = [`${label} terminated ${t.reason ?? ''} exit code ${t.exitCode}`];
    if (t.signal) parts.push(`signal ${t.signal}`);
    if (t.startedAt) parts.push(`started ${t.startedAt}`);
    if (t.finishedAt) parts.push(`finished ${t.finishedAt}`);
    let text = parts.join(', ');
    if (t.message) text += `: ${t.message}`;
    return text;
  }
  if (s.running) return `${label} running since ${s.running.startedAt ?? 'unknown'}`;
  return null;
}

/** Evidence from a container's status (current state and last termination). */
export function statusEvidence(c: ContainerContext, now: Timestamp, which: ('state' | 'lastState')[] = ['state', 'lastState']): Evidence[] {
  const out: Evidence[] = [];
  const prefix = `${c.init ? 'init container' : 'container'} ${c.status.name} (restarts ${c.status.restartCount}):`;
  for (const w of which) {
    const s = w === 'state' ? c.status.state : c.status.lastState;
    const text = describeState(w === 'state' ? 'state' : 'last state', s);
    if (!text) continue;
    const at = s?.terminated?.finishedAt ?? s?.running?.startedAt ?? now;
    out.push({ source: 'podStatus', at: iso(at, now), text: clip(`${prefix} ${text}`) });
  }
  return out;
}

/** The lines of a container's log tail, oldest first (previous restarts' files included). */
export function containerTail(view: NodeView, namespace: string, pod: string, container: string): LogLine[] {
  return view.containerLogTail.get(containerKey(namespace, pod, container)) ?? [];
}

/** Looks like an error line: level words, exceptions, panics. */
const ERRORISH =
  /\b(?:error|exception|fatal|panic|caused by|failed|failure|traceback|could not|cannot|can't|unable to|refused|denied|not found|no such)\b|\w(?:Exception|Error)\b/i;

/** A stack frame or a trace continuation line: never the line that explains a crash. */
const STACK_FRAME = /^\s+(?:at |\.\.\. \d+ more|File "|\S+\.go:\d+)|^\s*(?:goroutine \d+ |\[?0x[0-9a-f]+)/;

/**
 * The line that best says why a process died: the last `Caused by:` of a Java
 * trace, else the last error-looking line that is not a stack frame, else the
 * last line.
 */
export function keyLogLine(lines: LogLine[]): LogLine | undefined {
  for (let i = lines.length - 1; i >= 0; i--) if (/^\s*Caused by:/.test(lines[i]!.text)) return lines[i];
  for (let i = lines.length - 1; i >= 0; i--) {
    const t = lines[i]!.text;
    if (ERRORISH.test(t) && !STACK_FRAME.test(t)) return lines[i];
  }
  return lines[lines.length - 1];
}

/**
 * The sentence a container's message ends with when its log says why it
 * exited (see keyLogLine), or '' when there is no log. The line is kept to 240
 * characters: `word` cuts at a word boundary and marks the cut, `char` keeps the
 * first 240 characters as they are.
 */
export function logSaysSentence(lines: LogLine[], cut: 'word' | 'char'): string {
  const key = keyLogLine(lines);
  if (!key) return '';
  const text = cut === 'word' ? clipAtWord(key.text, 240) : key.text.trim().slice(0, 240);
  return ` Its log before exiting says: "${text}".`;
}

/**
 * The log lines a terminated container instance wrote last: the lines between its
 * start and finish, else the lines of the newest log file before the running one.
 * Returns up to `max` non-blank lines; when error-looking lines sit before the
 * kept tail, the first of them is kept too, since stack traces bury the message.
 */
export function linesBeforeTermination(
  tail: LogLine[],
  terminated: { startedAt?: string; finishedAt?: string } | undefined,
  currentRestart: number | undefined,
  max: number,
): LogLine[] {
  const nonBlank = tail.filter((l) => l.text.trim() !== '');
  let picked: LogLine[] = [];
  const start = timeMs(terminated?.startedAt);
  const end = timeMs(terminated?.finishedAt);
  if (Number.isFinite(end)) {
    // Container timestamps and kubelet's finishedAt come from different clocks: allow a small slack.
    const slack = 2000;
    picked = nonBlank.filter((l) => {
      const t = timeMs(l.at);
      return t <= end + slack && (!Number.isFinite(start) || t >= start - slack);
    });
  }
  if (picked.length === 0) {
    const restarts = nonBlank.map((l) => l.container?.restart).filter((r): r is number => r !== undefined);
    const candidates = currentRestart === undefined ? restarts : restarts.filter((r) => r < currentRestart);
    if (candidates.length > 0) {
      const last = Math.max(...candidates);
      picked = nonBlank.filter((l) => l.container?.restart === last);
    }
  }
  if (picked.length <= max) return picked;
  const kept = picked.slice(-max);
  const key = keyLogLine(picked);
  if (key && !kept.includes(key)) return [key, ...kept.slice(1)];
  const firstError = picked.slice(0, -max).find((l) => ERRORISH.test(l.text) && !STACK_FRAME.test(l.text));
  return firstError ? [firstError, ...kept.slice(1)] : kept;
}

/** Log lines as `podLog` evidence. */
export function logEvidence(lines: LogLine[]): Evidence[] {
  return lines.map((l) => ({ source: 'podLog' as const, at: l.at, text: clip(l.text) }));
}

/** Evidence list without repeated texts, oldest first by kind order kept. */
export function dedupeEvidence(ev: Evidence[]): Evidence[] {
  const seen = new Set<string>();
  return ev.filter((e) => {
    const k = `${e.source}\u0000${e.text}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Earliest of some times (ignoring unknown ones), or undefined. */
export function earliest(times: (string | null | undefined)[]): Timestamp | undefined {
  let best = Number.POSITIVE_INFINITY;
  for (const t of times) {
    const ms = timeMs(t);
    if (Number.isFinite(ms) && ms < best) best = ms;
  }
  return Number.isFinite(best) ? new Date(best).toISOString() : undefined;
}

/** Sets the draft's firstAt to the earliest of `times`, when that is before its `at` (a problem seen only now has none). */
export function setFirstAt(draft: FindingDraft, times: (string | null | undefined)[]): void {
  const firstAt = earliest(times);
  if (firstAt && firstAt < draft.at) draft.firstAt = firstAt;
}

/** Latest of some times (ignoring unknown ones), or undefined. */
export function latest(times: (string | null | undefined)[]): Timestamp | undefined {
  let best = Number.NEGATIVE_INFINITY;
  for (const t of times) {
    const ms = timeMs(t);
    if (Number.isFinite(ms) && ms > best) best = ms;
  }
  return Number.isFinite(best) ? new Date(best).toISOString() : undefined;
}

/** Human label of a container for titles: `container app of pod shop/web-1`. */
export function containerLabel(c: ContainerContext): string {
  return `${c.init ? 'init container' : 'container'} ${c.status.name} of pod ${podRef(c.namespace, c.podName)}`;
}

/** Kill events for a container that kubelet wrote because a liveness/startup probe failed. */
export function probeKillEvents(events: KubeEvent[]): KubeEvent[] {
  return events.filter((e) => e.reason === 'Killing' && /failed (?:liveness|startup) probe/i.test(eventMessage(e)));
}

/**
 * True when the container's last termination was kubelet killing it after a
 * failed liveness/startup probe (exit 137 or 143 close to a Killing event), not
 * a crash or an OOM kill.
 */
export function lastTerminationWasProbeKill(c: ContainerContext, events: KubeEvent[]): boolean {
  const t = c.status.lastState?.terminated ?? c.status.state?.terminated;
  if (!t || t.reason === 'OOMKilled' || (t.exitCode !== 137 && t.exitCode !== 143)) return false;
  const end = timeMs(t.finishedAt);
  return probeKillEvents(events).some((e) => {
    if (!Number.isFinite(end)) return true;
    // The kill event precedes the exit by at most the grace period (30 s default, some pods use minutes).
    const last = timeMs(eventLastTime(e));
    const first = timeMs(eventFirstTime(e));
    return end >= first - 5_000 && end <= last + 10 * 60_000;
  });
}

/** Events of one container (or one pod when they name no container), grouped. */
export interface EventGroup {
  namespace: string;
  pod: string;
  container?: string;
  subject: Subject;
  events: KubeEvent[];
}

/**
 * Groups the pod events that match `pred` and were last seen within `windowMs`
 * by pod and container. Used when the view has no pod list at all (kubelet
 * unreachable, a bundle of events only): events then are the only witness.
 */
export function recentEventGroups(view: NodeView, windowMs: number, pred: (e: KubeEvent) => boolean): EventGroup[] {
  const groups = new Map<string, EventGroup>();
  for (const e of view.events) {
    const o = eventObject(e);
    if ((o.kind ?? 'Pod') !== 'Pod' || !o.name || !pred(e) || !within(view.now, eventLastTime(e), windowMs)) continue;
    const namespace = o.namespace ?? e.metadata.namespace ?? 'default';
    const container = eventContainer(e);
    const pod = o.name;
    const subject: Subject = container ? { kind: 'Container', namespace, name: pod, container } : { kind: 'Pod', namespace, name: pod };
    const g = groupOf(groups, subjectKey(subject), () => ({ namespace, pod, subject, events: [], ...(container ? { container } : {}) }));
    g.events.push(e);
  }
  for (const g of groups.values()) g.events.sort((a, b) => timeMs(eventLastTime(a)) - timeMs(eventLastTime(b)));
  return [...groups.values()];
}
