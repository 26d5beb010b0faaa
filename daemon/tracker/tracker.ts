/**
 * The finding tracker: turns each cycle's drafts into findings with stable ids,
 * counts and an open/resolved lifecycle, and marks root causes.
 */
import { fingerprint } from '../core/fingerprint.js';
import type { Category, DiagnosisInput, Evidence, Finding, FindingDraft, FindingFacts } from '../core/types.js';

/** A finding plus what the tracker needs to keep it alive across restarts. */
export interface TrackedFinding extends Finding {
  detector: string;
  lifecycle: 'condition' | 'event';
  detail?: string;
  facts?: FindingFacts;
}

/** Options of the tracker. */
export interface TrackerOptions {
  /** Minutes an event finding stays open after it was last seen. Defaults to 30. */
  quietPeriodMinutes?: number;
  /** Per-category quiet periods (minutes) that override the default. */
  quietPeriodByCategory?: Partial<Record<Category, number>>;
  /** Evidence items kept per finding. Defaults to 20. */
  maxEvidence?: number;
  /**
   * Most findings resolved by one cycle; the rest resolve in the next cycles. After a restart over a long
   * history every stale open finding resolves at once, and writing thousands in one transaction would hold the
   * event loop (and the API) for seconds. Defaults to 100.
   */
  maxResolvedPerCycle?: number;
}

/** Result of one cycle: the findings whose stored state changed. */
export interface TrackResult {
  changed: TrackedFinding[];
  opened: TrackedFinding[];
  resolved: TrackedFinding[];
}

const LOG_SOURCES = new Set(['kmsg', 'journald', 'podLog']);

function maxTime(a: string, b: string): string {
  return a > b ? a : b;
}

function minTime(a: string, b: string): string {
  return a < b ? a : b;
}

function evidenceKey(e: Evidence): string {
  return `${e.source}\u0000${e.at}\u0000${e.text}`;
}

/**
 * A condition seen only in log lines cannot be seen to clear (a later silence
 * proves nothing), so it ages out like an event.
 */
function resolvesByAbsence(f: { lifecycle: string; evidence: Evidence[] }): boolean {
  return f.lifecycle === 'condition' && !f.evidence.every((e) => LOG_SOURCES.has(e.source));
}

/** Tracks open findings in memory; the store persists what changes. */
export class FindingTracker {
  private readonly open = new Map<string, TrackedFinding>();
  private readonly quietMs: number;
  private readonly quietByCategory: Partial<Record<Category, number>>;
  private readonly maxEvidence: number;
  private readonly maxResolved: number;

  constructor(initialOpen: TrackedFinding[] = [], opts: TrackerOptions = {}) {
    for (const f of initialOpen) this.open.set(f.id, f);
    this.quietMs = (opts.quietPeriodMinutes ?? 30) * 60_000;
    this.quietByCategory = opts.quietPeriodByCategory ?? {};
    this.maxEvidence = opts.maxEvidence ?? 20;
    this.maxResolved = opts.maxResolvedPerCycle ?? 100;
  }

  /** Currently open findings. */
  openFindings(): TrackedFinding[] {
    return [...this.open.values()];
  }

  /**
   * Applies one detection cycle.
   * @param drafts what the detectors produced this cycle
   * @param now the cycle's time
   * @param ranDetectors detectors that ran without failing (their absent conditions resolve)
   * @param lookupResolved finds a stored resolved finding to reopen, when one exists
   */
  apply(
    drafts: FindingDraft[],
    now: string,
    ranDetectors: ReadonlySet<string>,
    lookupResolved?: (id: string) => TrackedFinding | undefined,
  ): TrackResult {
    const changed = new Map<string, TrackedFinding>();
    const opened: TrackedFinding[] = [];
    const resolved: TrackedFinding[] = [];
    const seen = new Set<string>();

    // Several drafts can share an id in one cycle (e.g. two rules of one category): merge them.
    const byId = new Map<string, FindingDraft>();
    for (const d of drafts) {
      const id = fingerprint(d.category, d.subject, d.detail);
      const prev = byId.get(id);
      if (!prev) byId.set(id, d);
      else {
        byId.set(id, {
          ...prev,
          severity: prev.severity === 'critical' || d.severity === 'critical' ? 'critical' : prev.severity === 'warning' ? 'warning' : d.severity,
          evidence: [...prev.evidence, ...d.evidence],
          at: maxTime(prev.at, d.at),
          firstAt: minTime(prev.firstAt ?? prev.at, d.firstAt ?? d.at),
          occurrences: (prev.occurrences ?? 1) + (d.occurrences ?? 1),
          causes: [...new Set([...(prev.causes ?? []), ...(d.causes ?? [])])],
        });
      }
    }

    for (const [id, d] of byId) {
      seen.add(id);
      let f = this.open.get(id);
      const evidence = d.evidence;
      if (!f) {
        const old = lookupResolved?.(id);
        const isNew = !old;
        f = {
          id,
          category: d.category,
          severity: d.severity,
          subject: d.subject,
          title: d.title,
          message: d.message,
          evidence: [],
          firstSeen: old?.firstSeen ?? d.firstAt ?? d.at,
          lastSeen: d.at,
          count: old?.count ?? 0,
          status: 'open',
          resolvedAt: null,
          diagnosis: old?.diagnosis ?? null,
          detector: d.detector,
          lifecycle: d.lifecycle,
          causes: [],
          rootCause: true,
        };
        if (old) f.evidence = old.evidence;
        if (d.detail !== undefined) f.detail = d.detail;
        this.open.set(id, f);
        opened.push(f);
        if (isNew) f.count = 0;
      }
      const before = JSON.stringify([f.severity, f.title, f.message, f.lastSeen, f.count, f.evidence.length]);
      f.severity = d.severity;
      f.title = d.title;
      f.message = d.message;
      f.lastSeen = maxTime(f.lastSeen, d.at);
      if (d.facts) f.facts = d.facts;
      // Merge evidence, newest kept; a line seen again is not new evidence.
      const known = new Set(f.evidence.map(evidenceKey));
      const fresh = evidence.filter((e) => !known.has(evidenceKey(e)));
      if (fresh.length > 0) {
        f.evidence = [...f.evidence, ...fresh].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0)).slice(-this.maxEvidence);
      }
      if (d.lifecycle === 'event') {
        // Events count occurrences; only new evidence means a new occurrence.
        if (fresh.length > 0 || f.count === 0) f.count += Math.max(1, d.occurrences ?? fresh.length);
      } else if (d.occurrences !== undefined) {
        // Conditions with their own counter (restarts) carry it; never go backwards.
        f.count = Math.max(f.count, d.occurrences);
      } else {
        // Plain conditions count the detection cycles they were observed in.
        f.count += 1;
      }
      const after = JSON.stringify([f.severity, f.title, f.message, f.lastSeen, f.count, f.evidence.length]);
      if (before !== after || opened.includes(f)) changed.set(id, f);
      f.causes = (d.causes ?? []).filter((c) => c !== id);
    }

    const nowMs = Date.parse(now);
    for (const f of [...this.open.values()]) {
      if (resolved.length >= this.maxResolved) break;
      if (seen.has(f.id)) continue;
      const quiet = (this.quietByCategory[f.category] ?? this.quietMs / 60_000) * 60_000;
      const gone = resolvesByAbsence(f)
        ? ranDetectors.has(f.detector)
        : nowMs - Date.parse(f.lastSeen) > quiet;
      if (gone) {
        f.status = 'resolved';
        f.resolvedAt = now;
        this.open.delete(f.id);
        changed.set(f.id, f);
        resolved.push(f);
      }
    }

    // Root cause: none of its causes is open.
    for (const f of this.open.values()) {
      const causes = (f.causes ?? []).filter((c) => this.open.has(c));
      const root = causes.length === 0;
      if (f.rootCause !== root || (f.causes ?? []).length !== causes.length) changed.set(f.id, f);
      f.causes = causes;
      f.rootCause = root;
    }
    return { changed: [...changed.values()], opened, resolved };
  }
}

/** The public finding plus the detector's facts: what a diagnoser is given. */
export function toDiagnosisInput(f: TrackedFinding): DiagnosisInput {
  return { ...toPublicFinding(f), facts: f.facts ?? null };
}

/** Strips tracker internals: the public Finding JSON shape (DESIGN.md). */
export function toPublicFinding(f: TrackedFinding): Finding {
  const out: Finding = {
    id: f.id,
    category: f.category,
    severity: f.severity,
    subject: f.subject,
    title: f.title,
    message: f.message,
    evidence: f.evidence,
    firstSeen: f.firstSeen,
    lastSeen: f.lastSeen,
    count: f.count,
    status: f.status,
    causes: f.causes ?? [],
    rootCause: f.rootCause ?? true,
    diagnosis: f.diagnosis,
  };
  if (f.status === 'resolved') out.resolvedAt = f.resolvedAt ?? null;
  return out;
}
