/**
 * Offline analysis of a node snapshot bundle (`nodesage analyze --bundle DIR`):
 * the same detectors and correlation the daemon runs, over one view of the
 * captured node at its `capturedAt`, printed as Findings (DESIGN.md JSON shape)
 * or as text for a person.
 */
import { type BundleMeta, readBundle } from './collectors/bundle.js';
import type { DiagnosisInput, Finding, FindingDraft } from './core/types.js';
import { severityRank } from './core/types.js';
import { createDetectors, type DetectorOptions } from './detectors/index.js';
import { runDetectors } from './detectors/run.js';
import { TemplateStats } from './detectors/templates/stats.js';
import { diagnosisLines, type Style, subjectText } from './cli/format.js';
import { createRedactor, redactDraft, redactSignals } from './redact.js';
import { NodeState } from './state/node-state.js';
import { FindingTracker, toDiagnosisInput } from './tracker/tracker.js';

/** Options of analyzeBundle. */
export interface AnalyzeOptions {
  /** Detector thresholds. Defaults to each detector's defaults. */
  detectors?: DetectorOptions;
  /** Extra redaction regexes applied to evidence and messages. Defaults to none. */
  redactPatterns?: string[];
  /** Evidence items kept per finding (newest kept). Defaults to 20. */
  maxEvidence?: number;
}

/** A detector that failed during the analysis (the others still ran). */
export interface AnalyzeFailure {
  detector: string;
  error: string;
}

/** Result of analyzeBundle. */
export interface AnalyzeResult {
  meta: BundleMeta;
  /** Root causes first, then by severity; with the detectors' facts for the diagnoser (publicFindings strips them). */
  findings: DiagnosisInput[];
  /** Bundle parts that were present. */
  parts: string[];
  failures: AnalyzeFailure[];
  /** Lines that could not be parsed, per part. */
  skipped: Record<string, number>;
}

/**
 * Turns one cycle's drafts into Findings with the daemon's own tracker (a
 * fresh one): ids from the fingerprint, drafts with the same id merged, causes
 * kept only when present, `rootCause` when none of its causes is. Each keeps
 * its detector's facts, as the daemon's stored findings do.
 */
export function findingsFromDrafts(drafts: readonly FindingDraft[], maxEvidence = 20): DiagnosisInput[] {
  // biome-ignore lint/complexity/useMathMinMax: ISO timestamps, compared as strings.
  const now = drafts.reduce((latest, d) => (d.at > latest ? d.at : latest), '');
  const tracker = new FindingTracker([], { maxEvidence });
  // No detector counts as "ran": nothing resolves in a one-shot analysis.
  tracker.apply([...drafts], now, new Set());
  return sortFindings(tracker.openFindings().map(toDiagnosisInput));
}

/** The findings in the public JSON shape (DESIGN.md): the detectors' facts left out. */
export function publicFindings(findings: readonly DiagnosisInput[]): Finding[] {
  return findings.map(({ facts: _facts, ...f }) => f);
}

/** Root causes first, then worst severity, newest, and a stable order by category and subject. */
export function sortFindings<F extends Finding>(findings: F[]): F[] {
  const subjectKey = (f: Finding) => `${f.subject.kind}/${f.subject.namespace ?? ''}/${f.subject.name}/${f.subject.container ?? ''}`;
  return [...findings].sort(
    (a, b) =>
      Number(b.rootCause ?? true) - Number(a.rootCause ?? true) ||
      severityRank(b.severity) - severityRank(a.severity) ||
      (a.lastSeen < b.lastSeen ? 1 : a.lastSeen > b.lastSeen ? -1 : 0) ||
      a.category.localeCompare(b.category) ||
      subjectKey(a).localeCompare(subjectKey(b)),
  );
}

/**
 * Analyses a bundle folder: reads it, builds the node's view at `capturedAt`,
 * runs every detector and the correlation, and returns the findings. Throws
 * BundleError when the folder or its meta.json is unusable.
 */
export async function analyzeBundle(dir: string, opts: AnalyzeOptions = {}): Promise<AnalyzeResult> {
  const bundle = await readBundle(dir);
  const redact = createRedactor(opts.redactPatterns ?? []);
  // As in the daemon: lines are redacted before anything reads them, findings before they are printed.
  const signals = redactSignals(bundle.signals, redact);
  const state = new NodeState(bundle.meta.nodeName, {}, bundle.meta.bootTime);
  state.ingest(signals);
  // The bundle's log history stands in for the daemon's running template statistics.
  const templates = new TemplateStats({ redact });
  for (const s of signals) if (s.type === 'log') templates.observe(s.line);
  // Counts are kept in buckets aligned to the clock; a capture taken on a bucket boundary (10:00:00) would
  // judge an empty bucket that starts at capture time, so judge the last moment the bundle covers.
  const lastCovered = new Date(Date.parse(bundle.meta.capturedAt) - 1).toISOString();
  const view = state.takeView(bundle.meta.capturedAt, templates.snapshot(lastCovered));
  const detectorOpts = opts.detectors ?? {};
  const { drafts, failures } = runDetectors(view, createDetectors(detectorOpts), detectorOpts.correlation);
  for (const d of drafts) redactDraft(d, redact);
  return {
    meta: bundle.meta,
    findings: findingsFromDrafts(drafts, opts.maxEvidence ?? 20),
    parts: bundle.parts,
    failures: failures.map((f) => ({ detector: f.detector, error: f.error.message })),
    skipped: bundle.skipped,
  };
}

/** Options of formatFindingsText. */
export interface TextFormatOptions {
  /** Evidence lines printed per finding (the detector's most telling first). Defaults to 8. */
  evidenceLines?: number;
  /** Styles (colour on a TTY). Defaults to none. */
  style?: Style;
}

/**
 * Findings as text for a person: a count line, then each root cause with the
 * findings it explains indented under it.
 */
export function formatFindingsText(findings: Finding[], opts: TextFormatOptions = {}): string {
  const maxEv = opts.evidenceLines ?? 8;
  if (findings.length === 0) return 'No findings: nothing wrong was detected.\n';
  const sorted = sortFindings(findings);
  const counts = { critical: 0, warning: 0, info: 0 };
  for (const f of sorted) counts[f.severity]++;
  const roots = sorted.filter((f) => f.rootCause ?? true);
  const out: string[] = [
    `${sorted.length} finding${sorted.length > 1 ? 's' : ''}: ${counts.critical} critical, ${counts.warning} warning, ${counts.info} info; ${roots.length} root cause${roots.length === 1 ? '' : 's'}.`,
    '',
  ];
  const ids = new Set(sorted.map((f) => f.id));
  const children = new Map<string, Finding[]>();
  for (const f of sorted) {
    for (const c of f.causes ?? []) {
      if (!ids.has(c)) continue;
      const list = children.get(c) ?? [];
      list.push(f);
      children.set(c, list);
    }
  }
  const printed = new Set<string>();
  const print = (f: Finding, depth: number) => {
    const pad = '    '.repeat(depth);
    const head = `${pad}${depth > 0 ? '↳ ' : ''}${f.severity.toUpperCase()} ${f.category} ${subjectText(f)}`;
    if (printed.has(f.id)) {
      out.push(`${head} (see above)`);
      return;
    }
    printed.add(f.id);
    out.push(head);
    const inner = `${pad}${depth > 0 ? '  ' : ''}  `;
    out.push(`${inner}${f.title}`);
    out.push(`${inner}${f.message}`);
    const seen = f.firstSeen === f.lastSeen ? f.lastSeen : `${f.firstSeen} .. ${f.lastSeen}`;
    out.push(`${inner}seen ${seen}${f.count > 1 ? `, ${f.count} times` : ''}`);
    const ev = f.evidence.slice(0, maxEv);
    if (ev.length > 0) {
      out.push(`${inner}evidence${f.evidence.length > ev.length ? ` (${ev.length} of ${f.evidence.length})` : ''}:`);
      for (const e of ev) out.push(`${inner}  ${e.at} ${e.source}: ${e.text}`);
    }
    if (f.diagnosis) out.push(...diagnosisLines(f.diagnosis, inner, opts.style));
    for (const c of children.get(f.id) ?? []) print(c, depth + 1);
    if (depth === 0) out.push('');
  };
  for (const f of roots) print(f, 0);
  // Findings only reachable through a cycle of causes still get printed.
  for (const f of sorted) if (!printed.has(f.id)) print(f, 0);
  return `${out.join('\n').replace(/\n+$/, '')}\n`;
}
