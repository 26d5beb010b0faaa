/**
 * One problem, one finding. Detectors look at the same problem from different
 * sides — the kubelet's condition, its stats summary and the host's own numbers
 * for memory pressure; an XFS error and the shutdown it causes;
 * node-problem-detector's event and nodesage's own kernel rule; a liveness and a
 * readiness probe of one container failing together. Drafts of one category
 * about one subject and one object (the `detail`: a mount, a device, a log
 * stream) share a fingerprint and become one draft here, before correlation
 * links causes, with the evidence of all of them.
 *
 * One more fold crosses subjects: a memory-cgroup OOM kill that could not be
 * tied to a container (reported on the Node) while a container of the node
 * shows an OOM kill at the same time is that container's kill.
 */
import { severityRank, type FindingDraft } from '../core/types.js';
import { draftId } from './correlate.js';
import { dedupeEvidence, groupOf, subjectKey } from './pod-status.js';

/** Seconds between a container's OOM kill in pod status and a kernel memcg kill for them to be one kill. */
const OOM_FOLD_SECONDS = 120;

/** Lifecycle of the draft that leads a merged draft (the merged one turns to `condition` when any part is). */
const leadLifecycle = new WeakMap<FindingDraft, FindingDraft['lifecycle']>();

function ownLifecycle(d: FindingDraft): FindingDraft['lifecycle'] {
  return leadLifecycle.get(d) ?? d.lifecycle;
}

/** True when a draft (or the draft that leads a merged one) relays what another component saw (NPD, the kubelet's SystemOOM). */
function relayed(d: FindingDraft): boolean {
  return d.facts?.npd === true || d.facts?.relayed === true;
}

/**
 * Which draft speaks for a merged problem (its title and message): nodesage's
 * own reading over node-problem-detector's relay, then the worst, then a
 * condition over an event, then the one with most evidence. The merged severity is the worst of all.
 */
function better(a: FindingDraft, b: FindingDraft): boolean {
  const r = Number(relayed(b)) - Number(relayed(a));
  if (r !== 0) return r > 0;
  const s = severityRank(a.severity) - severityRank(b.severity);
  if (s !== 0) return s > 0;
  // A state that still holds (remounted read-only) says more than the events that led to it.
  const c = Number(ownLifecycle(a) === 'condition') - Number(ownLifecycle(b) === 'condition');
  if (c !== 0) return c > 0;
  return a.evidence.length > b.evidence.length;
}

function mergeTwo(a: FindingDraft, b: FindingDraft): FindingDraft {
  const [lead, other] = better(b, a) ? [b, a] : [a, b];
  const merged: FindingDraft = {
    ...lead,
    evidence: dedupeEvidence([...lead.evidence, ...other.evidence]),
    // biome-ignore lint/complexity/useMathMinMax: ISO timestamps, compared as strings.
    at: a.at > b.at ? a.at : b.at,
    severity: severityRank(a.severity) >= severityRank(b.severity) ? a.severity : b.severity,
    facts: { ...other.facts, ...lead.facts },
  };
  if (!relayed(lead) && relayed(other)) {
    delete merged.facts!.npd;
    delete merged.facts!.relayed;
  }
  // Every reason seen (Ext4Error, ReadonlyFilesystem): exporters and hints read them.
  const reasons = new Set([a.facts?.reasons ?? a.facts?.reason, b.facts?.reasons ?? b.facts?.reason].flatMap((r) => (typeof r === 'string' && r !== '' ? r.split(',') : [])));
  if (reasons.size > 0) merged.facts!.reasons = [...reasons].sort().join(',');
  const firsts = [a.firstAt ?? a.at, b.firstAt ?? b.at].sort();
  if (firsts[0]! < merged.at) merged.firstAt = firsts[0]!;
  else delete merged.firstAt;
  // Two views of the same occurrences: the larger count, not their sum.
  const occ = Math.max(a.occurrences ?? 1, b.occurrences ?? 1);
  if (a.occurrences !== undefined || b.occurrences !== undefined) merged.occurrences = occ;
  const causes = [...new Set([...(a.causes ?? []), ...(b.causes ?? [])])];
  if (causes.length > 0) merged.causes = causes;
  // A condition still true keeps the problem open; an event alone ages out.
  if (a.lifecycle === 'condition' || b.lifecycle === 'condition') {
    const cond = a.lifecycle === 'condition' ? a : b;
    merged.lifecycle = 'condition';
    merged.detector = cond.detector;
  }
  // Probes of one container failing together: keep every kind (correlation reads it).
  const probes = new Set([a.facts?.probe, b.facts?.probe].flatMap((p) => (typeof p === 'string' ? p.split(',') : [])));
  if (probes.size > 0) merged.facts!.probe = [...probes].sort().join(',');
  if (!merged.message.includes(other.title)) merged.message += ` Also seen: ${other.title}.`;
  const sources = new Set([...String(lead.facts?.seenBy ?? lead.detector).split(','), ...String(other.facts?.seenBy ?? other.detector).split(',')]);
  merged.facts!.seenBy = [...sources].sort().join(',');
  leadLifecycle.set(merged, ownLifecycle(lead));
  return merged;
}

/** A memcg OOM kill reported on the Node that is the kill of a container in the same cycle. */
function foldNodeOom(drafts: FindingDraft[]): FindingDraft[] {
  const containers = drafts.filter((d) => d.category === 'OOMKilled' && d.subject.kind === 'Container');
  if (containers.length === 0) return drafts;
  const out: FindingDraft[] = [];
  const folded = new Map<FindingDraft, FindingDraft>();
  for (const d of drafts) {
    const nodeMemcg = d.subject.kind === 'Node' && (d.category === 'OOMKilled' || (d.category === 'KernelOOM' && d.facts?.memcg === true));
    if (!nodeMemcg) {
      out.push(d);
      continue;
    }
    const t = Date.parse(d.at);
    const proc = d.facts?.process ?? d.facts?.comm;
    const match = containers.find((c) => {
      const near = Math.abs(Date.parse(c.at) - t) <= OOM_FOLD_SECONDS * 1000;
      const cp = c.facts?.process;
      return near && (proc === undefined || cp === undefined || cp === proc);
    });
    if (!match) {
      out.push(d);
      continue;
    }
    const target = folded.get(match) ?? match;
    folded.set(match, { ...target, evidence: dedupeEvidence([...target.evidence, ...d.evidence]) });
  }
  return out.map((d) => folded.get(d) ?? d);
}

/**
 * The object a log rule's finding is about. The rule engine's detail is
 * `<detailPrefix or rule id>:<captured values>`. A rule without a
 * `detailPrefix` gets its own id there, which would make two rules that see one
 * problem on one device (an XFS error and the shutdown it causes) two
 * findings: that default prefix is dropped, the values (device, interface,
 * GPU) stay. A prefix a rule file sets on purpose groups rules into one
 * problem and is kept.
 */
function logRuleObject(d: FindingDraft): FindingDraft {
  if (d.detector !== 'log-rules' || d.detail === undefined) return d;
  const rule = String(d.facts?.rule ?? '');
  if (rule === '' || (d.detail !== rule && !d.detail.startsWith(`${rule}:`))) return d;
  const out = { ...d };
  if (d.detail === rule) delete out.detail;
  else out.detail = d.detail.slice(rule.length + 1);
  return out;
}

/**
 * Merges drafts that describe one problem (same fingerprint) into one; keeps
 * the first one's position. A draft that names no object (a condition whose
 * message names no device) joins the one draft of its category and subject
 * that does, when there is exactly one.
 */
export function mergeDrafts(drafts: readonly FindingDraft[]): FindingDraft[] {
  const byId = new Map<string, FindingDraft>();
  for (const d of foldNodeOom(drafts.map(logRuleObject))) {
    const id = draftId(d);
    const prev = byId.get(id);
    byId.set(id, prev ? mergeTwo(prev, d) : d);
  }
  const bySubject = new Map<string, string[]>();
  for (const [id, d] of byId) groupOf(bySubject, subjectKey(d.subject, d.category), () => []).push(id);
  for (const ids of bySubject.values()) {
    if (ids.length !== 2) continue;
    const [a, b] = ids.map((id) => byId.get(id)!) as [FindingDraft, FindingDraft];
    const [bare, named] = a.detail === undefined ? [a, b] : [b, a];
    if (bare.detail !== undefined || named.detail === undefined) continue;
    byId.delete(draftId(bare));
    byId.set(draftId(named), mergeTwo(named, { ...bare, detail: named.detail }));
  }
  return [...byId.values()];
}

