/**
 * OOMKilled: a container killed because its memory cgroup hit its limit. Two
 * sources agree or complement each other: the pod status (state / lastState
 * terminated with reason OOMKilled) and the kernel's memory-cgroup OOM report in
 * kmsg or journald ("Memory cgroup out of memory: Killed process N (comm)"),
 * attributed to a pod through the pod UID or container ID in the cgroup path or
 * cpuset. A memcg OOM is a container problem, never KernelOOM (the node-wide OOM
 * killer); kernel kills that match no pod on the node are reported on the Node.
 *
 * A container without a memory limit, or one the node-wide OOM killer picked,
 * is said to have died of the node running out of memory (correlation links it
 * to KernelOOM / NodeMemoryPressure).
 *
 * Severity: critical when it repeats (two or more kills in the window, or the
 * container is in CrashLoopBackOff after an OOM kill), warning for a single kill.
 * A kill older than the window of a container that has run fine since is not
 * reported.
 */
import type { Evidence, FindingDraft, LogLine, Subject } from '../core/types.js';
import {
  clip,
  type ContainerContext,
  containerLabel,
  dedupeEvidence,
  groupOf,
  isCompletedPod,
  latest,
  listContainers,
  setFirstAt,
  statusEvidence,
  timeMs,
  within,
} from './pod-status.js';
import { count, defineDetectorOptions, detectorFactory, minutes, opt } from './options.js';

/** Thresholds of the OOMKilled detector: each one's check, doc and default (config `detectors.oomKilled`). */
export const OOM_KILLED_OPTIONS = defineDetectorOptions({
  /** How far back OOM kills count, in minutes. Defaults to 60. */
  windowMinutes: opt(minutes, 60),
  /** Kills within the window that make the finding critical. Defaults to 2. */
  criticalKills: opt(count, 2),
});

/** One OOM kill read from the kernel log. */
export interface MemcgOomKill {
  at: string;
  /** True for the node-wide OOM killer (the node ran out of memory), false for a memory cgroup limit. */
  global: boolean;
  pid: number;
  comm: string;
  /** Pod UIDs named by the cgroup paths of the report (dashes restored). */
  podUids: string[];
  /** 64-hex container IDs named by the report (cgroup leaf, cpuset, scope name). */
  containerIds: string[];
  /** The memory cgroup the kill happened in, when the report names one. */
  cgroup?: string;
  /** `memory: usage ..., limit ...` line, when present. */
  limitLine?: string;
  /** The kernel lines that make up the report (kill line first). */
  lines: LogLine[];
}

const MEMCG_KILL = /Memory cgroup out of memory: Kill(?:ed)? process (\d+) \(([^)]*)\)/;
const GLOBAL_KILL = /^Out of memory(?: \([\w_]+\))?: Kill(?:ed)? process (\d+) \(([^)]*)\)/;
/** Either kill line; group 1 is the pid, group 2 the command. */
function killLine(text: string): RegExpExecArray | null {
  return MEMCG_KILL.exec(text) ?? GLOBAL_KILL.exec(text);
}
const POD_UID = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/gi;
const CONTAINER_ID = /(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])/g;
const CGROUP_IN_LINE =
  /(?:Memory cgroup stats for |Task in |oom_memcg=|task_memcg=)(\/[^\s:,]*)/;

/** Kills whose kernel lines are kept as evidence (the newest). */
const EVIDENCE_KILLS = 3;

/** Lines before a kill line searched for its report (the task list of a big cgroup can be long). */
const MAX_REPORT_LINES = 400;

/** Lines of an OOM report that can name the cgroup, the container or the limit. */
const REPORT_LINE = /cgroup|cpuset=|Task in |^memory: usage|^Killed process|oom-kill:/;

/** Kernel lines of the view: kmsg, plus journald kernel lines that kmsg does not already hold. */
export function kernelLines(logs: LogLine[]): LogLine[] {
  const kmsg = logs.filter((l) => l.source === 'kmsg');
  const journal = logs.filter((l) => l.source === 'journald' && l.unit === 'kernel');
  if (kmsg.length === 0) return journal;
  if (journal.length === 0) return kmsg;
  // journald mirrors /dev/kmsg: the same text within a few seconds is the same record.
  const byText = new Map<string, number[]>();
  for (const l of kmsg) {
    groupOf(byText, l.text, () => []).push(timeMs(l.at));
  }
  const extra = journal.filter((l) => {
    const t = timeMs(l.at);
    return !(byText.get(l.text) ?? []).some((k) => Math.abs(k - t) <= 10_000);
  });
  return [...kmsg, ...extra].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

/**
 * Finds memory-cgroup OOM kills in kernel lines (oldest first). Each kill gathers
 * the lines of its report: from the previous kill (exclusive) and at most 10 s
 * before it, to 1 s after it.
 */
export function parseMemcgOomKills(lines: LogLine[]): MemcgOomKill[] {
  return parseOomKills(lines).filter((k) => !k.global);
}

/**
 * Finds OOM kills in kernel lines, memory-cgroup and node-wide ones (oldest
 * first), each with the lines of its report. Node-wide kills are KernelOOM's
 * business; the OOMKilled detector uses them only to tell a container that the
 * node, not its own limit, ran out of memory.
 */
export function parseOomKills(lines: LogLine[]): MemcgOomKill[] {
  const kills: MemcgOomKill[] = [];
  const killIdx: number[] = [];
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.text;
    // Cheap substring tests first: kernel logs are large and kills are rare.
    if (text.includes('ut of memory')) {
      if (killLine(text)) killIdx.push(i);
      continue;
    }
    // Kernels that print only the structured line: count it when no kill line goes with it.
    if (text.startsWith('oom-kill:') && text.includes('constraint=')) {
      const pid = /(?:^|,)pid=(\d+)/.exec(text)?.[1];
      const at = timeMs(lines[i]!.at);
      const hasKillLine = lines
        .slice(Math.max(0, i - 3), i + 4)
        .some((l) => killLine(l.text)?.[1] === pid && Math.abs(timeMs(l.at) - at) <= 2000);
      if (!hasKillLine) killIdx.push(i);
    }
  }
  const isKill = new Set(killIdx);
  let prev = -1;
  for (const i of killIdx) {
    const line = lines[i]!;
    const t = timeMs(line.at);
    // LogLine times are normalised ISO strings: compare them as strings, the report is short.
    const notBefore = new Date(t - 10_000).toISOString();
    const notAfter = new Date(t + 1000).toISOString();
    let from = i;
    while (from - 1 > prev && i - from < MAX_REPORT_LINES && lines[from - 1]!.at >= notBefore) from--;
    const report: LogLine[] = lines.slice(from, i + 1);
    let j = i + 1;
    for (; j < lines.length && j - i < MAX_REPORT_LINES && !isKill.has(j) && lines[j]!.at <= notAfter; j++) report.push(lines[j]!);
    // The next report starts after this one's trailing lines ("Killed process ..." of the old format).
    prev = j - 1;
    const m = killLine(line.text);
    const global = m ? !line.text.includes('Memory cgroup out of memory') : !line.text.includes('constraint=CONSTRAINT_MEMCG');
    let pid = m ? Number(m[1]) : Number(/(?:^|,)pid=(\d+)/.exec(line.text)?.[1] ?? 0);
    let comm = m ? m[2]! : (/(?:^|,)task=([^,]+)/.exec(line.text)?.[1] ?? 'unknown');
    // The old two-line form names the chosen victim on the next "Killed process" line.
    const victim = report.find((l) => l !== line && /^Killed process (\d+) \(([^)]*)\)/.test(l.text));
    if (victim) {
      const vm = /^Killed process (\d+) \(([^)]*)\)/.exec(victim.text)!;
      pid = Number(vm[1]);
      comm = vm[2]!;
    }
    const podUids = new Set<string>();
    const containerIds = new Set<string>();
    let cgroup: string | undefined;
    let limitLine: string | undefined;
    for (const l of report) {
      if (!REPORT_LINE.test(l.text)) continue;
      const isPath = CGROUP_IN_LINE.exec(l.text);
      if (isPath && !cgroup) cgroup = isPath[1];
      for (const u of l.text.matchAll(POD_UID)) podUids.add(u[1]!.replace(/_/g, '-').toLowerCase());
      if (isPath || /cpuset=|task_memcg=|\.scope/.test(l.text)) {
        for (const c of l.text.matchAll(CONTAINER_ID)) containerIds.add(c[1]!);
      }
      if (!limitLine && /^memory: usage \d+kB, limit \d+kB/.test(l.text)) limitLine = l.text;
    }
    const kill: MemcgOomKill = {
      at: line.at,
      global,
      pid,
      comm,
      podUids: [...podUids],
      containerIds: [...containerIds],
      lines: [line, ...report.filter((l) => l !== line)],
    };
    if (cgroup) kill.cgroup = cgroup;
    if (limitLine) kill.limitLine = limitLine;
    kills.push(kill);
  }
  return kills;
}

function bareId(id: string | undefined): string | undefined {
  if (!id) return undefined;
  const i = id.indexOf('://');
  return i >= 0 ? id.slice(i + 3) : id;
}

/** Which container (or, failing that, which pod) of the node a kernel OOM kill hit. */
function attribute(
  kill: MemcgOomKill,
  byId: Map<string, ContainerContext>,
  byUid: Map<string, ContainerContext[]>,
): { container?: ContainerContext; pod?: ContainerContext } {
  for (const id of kill.containerIds) {
    const c = byId.get(id);
    if (c) return { container: c };
  }
  for (const uid of kill.podUids) {
    const inPod = byUid.get(uid) ?? [];
    const app = inPod.filter((x) => !x.init);
    if (app.length === 1) return { container: app[0]! };
    // Several containers and no container ID: the victim's command is sometimes the container's name.
    const byName = inPod.find((x) => x.status.name === kill.comm);
    if (byName) return { container: byName };
    if (inPod.length > 0) return { pod: inPod[0]! };
  }
  return {};
}

interface Target {
  key: string;
  subject: Subject;
  container?: ContainerContext;
  kills: MemcgOomKill[];
}

/** Creates the OOMKilled detector. */
export const createOomKilledDetector = detectorFactory('oom-killed', OOM_KILLED_OPTIONS, (o) => {
  const windowMs = o.windowMinutes * 60_000;
  return (view) => {
    const containers = listContainers(view);
    const byId = new Map<string, ContainerContext>();
    const byUid = new Map<string, ContainerContext[]>();
    for (const c of containers) {
      for (const id of [c.status.containerID, c.status.state?.terminated?.containerID, c.status.lastState?.terminated?.containerID]) {
        const b = bareId(id);
        if (b) byId.set(b, c);
      }
      groupOf(byUid, c.uid.toLowerCase(), () => []).push(c);
    }
    const targets = new Map<string, Target>();
    const target = (key: string, subject: Subject, container?: ContainerContext): Target =>
      groupOf(targets, key, () => ({ key, subject, kills: [], ...(container ? { container } : {}) }));
    const containerTarget = (c: ContainerContext) => target(`c:${c.namespace}/${c.podName}/${c.status.name}`, c.subject, c);

    // Earlier kernel lines complete a report whose kill line is new; kills seen before are not counted again.
    const seen = new Set(view.kernelContext ?? []);
    for (const kill of parseOomKills(kernelLines([...(view.kernelContext ?? []), ...view.logs]))) {
      if (seen.has(kill.lines[0] as LogLine)) continue;
      if (!within(view.now, kill.at, windowMs)) continue;
      const a = attribute(kill, byId, byUid);
      if (a.container) containerTarget(a.container).kills.push(kill);
      else if (a.pod) target(`p:${a.pod.namespace}/${a.pod.podName}`, { kind: 'Pod', namespace: a.pod.namespace, name: a.pod.podName }).kills.push(kill);
      // A node-wide kill of no known pod is KernelOOM alone.
      else if (!kill.global) target(`n:${kill.cgroup ?? 'memcg'}`, { kind: 'Node', name: view.nodeName }).kills.push(kill);
    }

    // Pod status: the kubelet's own record of OOM kills.
    const statusOom = new Map<string, { c: ContainerContext; count: number; at?: string; terminal: boolean }>();
    for (const c of containers) {
      if (isCompletedPod(c.pod)) continue;
      const st = c.status.state?.terminated;
      const last = c.status.lastState?.terminated;
      let count = 0;
      let at: string | undefined;
      let terminal = false;
      if (st?.reason === 'OOMKilled' && within(view.now, st.finishedAt, windowMs)) {
        count++;
        at = st.finishedAt;
        terminal = true;
      }
      if (last?.reason === 'OOMKilled' && within(view.now, last.finishedAt, windowMs)) {
        count++;
        at = latest([at, last.finishedAt]);
      }
      if (count > 0) {
        const entry: { c: ContainerContext; count: number; at?: string; terminal: boolean } = { c, count, terminal };
        if (at) entry.at = at;
        statusOom.set(containerTarget(c).key, entry);
      }
    }

    const out: FindingDraft[] = [];
    for (const t of targets.values()) {
      const s = statusOom.get(t.key);
      if (t.kills.length === 0 && !s) continue;
      const c = t.container;
      const kills = Math.max(t.kills.length, s?.count ?? 0);
      const backOff = c?.status.state?.waiting?.reason === 'CrashLoopBackOff';
      const severity = kills >= o.criticalKills || (backOff && s !== undefined) ? 'critical' : 'warning';
      const killTimes = t.kills.map((k) => k.at);
      const lastAt = latest([...killTimes, s?.at]) ?? view.now;
      const evidence: Evidence[] = [];
      if (c && s) evidence.push(...statusEvidence(c, view.now, s.terminal ? ['state'] : ['lastState', 'state']));
      // The last kills tell the story; the count says how many there were.
      for (const k of t.kills.slice(-EVIDENCE_KILLS)) {
        const src = k.lines[0]!.source === 'kmsg' ? 'kmsg' : 'journald';
        evidence.push({ source: src, at: k.at, text: clip(k.lines[0]!.text) });
        const victim = k.lines.find((l) => /^Killed process \d+/.test(l.text));
        if (victim && victim !== k.lines[0]) evidence.push({ source: src, at: victim.at, text: clip(victim.text) });
        const where = k.lines.find((l) => CGROUP_IN_LINE.test(l.text) || /cpuset=/.test(l.text));
        if (where) evidence.push({ source: src, at: where.at, text: clip(where.text) });
        if (k.limitLine) evidence.push({ source: src, at: k.at, text: clip(k.limitLine) });
      }
      const limit = c ? c.pod.spec?.containers?.find((x) => x.name === c.status.name)?.resources?.limits?.memory : undefined;
      const lastKill = t.kills[t.kills.length - 1];
      let title: string;
      let message: string;
      // Without a limit of its own (or with the kernel saying so) the node ran out of memory, not the container.
      const nodeWide = t.kills.some((k) => k.global) || (c !== undefined && !limit);
      if (c) {
        title = `Container ${c.status.name} of ${c.namespace}/${c.podName} was OOM-killed${kills > 1 ? ` ${kills} times` : ''}${limit ? ` (memory limit ${limit})` : nodeWide ? ' (node out of memory)' : ''}`;
        message = nodeWide
          ? `The ${containerLabel(c)} was killed by the node-wide OOM killer${limit ? '' : ' (it has no memory limit)'}: the node ran out of memory. ${kills} OOM kill${kills > 1 ? 's' : ''} in the last ${o.windowMinutes} minutes, the last at ${lastAt}.`
          : `The ${containerLabel(c)} was killed by the kernel for exceeding its memory limit${limit ? ` of ${limit}` : ''}: ${kills} OOM kill${kills > 1 ? 's' : ''} in the last ${o.windowMinutes} minutes, the last at ${lastAt}.`;
        if (lastKill) message += ` The kernel killed process ${lastKill.pid} (${lastKill.comm})${lastKill.global ? '' : " in the container's memory cgroup"}.`;
        if (c.status.state?.running) message += ` It is running again (restart ${c.status.restartCount}).`;
        else if (backOff) message += ' It is now in CrashLoopBackOff.';
      } else {
        const where = t.subject.kind === 'Pod' ? `pod ${t.subject.namespace}/${t.subject.name}` : `memory cgroup ${lastKill?.cgroup ?? 'unknown'}`;
        title = `Process ${lastKill?.comm ?? 'unknown'} was OOM-killed in ${where}${kills > 1 ? ` (${kills} kills)` : ''}`;
        message = `The kernel's memory-cgroup OOM killer killed ${kills} process${kills > 1 ? 'es' : ''} in ${where} in the last ${o.windowMinutes} minutes (last: ${lastKill?.comm ?? 'unknown'}, pid ${lastKill?.pid ?? '?'}). This is a cgroup limit being hit, not the node running out of memory.`;
      }
      const draft: FindingDraft = {
        category: 'OOMKilled',
        severity,
        subject: t.subject,
        title,
        message,
        evidence: dedupeEvidence(evidence),
        at: new Date(timeMs(lastAt)).toISOString(),
        occurrences: kills,
        lifecycle: 'event',
        detector: 'oom-killed',
        facts: { kills, memcg: t.kills.some((k) => !k.global), nodeWide, fromStatus: s !== undefined },
      };
      if (t.subject.kind === 'Node') draft.detail = lastKill?.cgroup ?? 'memcg';
      setFirstAt(draft, [...killTimes, s?.at]);
      if (limit) draft.facts!.memoryLimit = limit;
      if (lastKill) draft.facts!.process = lastKill.comm;
      out.push(draft);
    }
    return out;
  };
});
