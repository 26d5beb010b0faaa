/**
 * LogErrorSpike: a container's log (or a journald unit) shows an error-level
 * template it never showed before, or an error template's rate left its
 * baseline. Reads only `view.templates` (TemplateStats); lines below error
 * level never count, so INFO lines that carry the word "error" as data,
 * warnings and periodic normal lines stay quiet.
 *
 * - New: an error template first seen within `newWindowMs` of now, in a
 *   stream older than `warmupMs` (what a stream prints in its first minutes
 *   is its normal vocabulary, not news).
 * - Burst: an error template with at least `burstMinLines` lines in the
 *   current bucket and `burstFactor` times its baseline per bucket, in a stream
 *   older than `warmupMs`.
 *
 * One finding per stream, with the triggering templates as evidence (example
 * line and counts), most lines first.
 */
import type { Detector, Evidence, FindingDraft, Subject, TemplateStat } from '../core/types.js';
import { defineDetectorOptions, detectorFactory, int, opt, range } from './options.js';
import { groupOf } from './pod-status.js';

/** Thresholds of the LogErrorSpike detector: each one's check, doc and default (config `detectors.logErrorSpike`). */
export const LOG_ERROR_SPIKE_OPTIONS = defineDetectorOptions({
  /** A stream's first milliseconds, during which no template is "new" and no burst is judged. Defaults to 600000 (10 min). */
  warmupMs: opt(range(0, 604_800_000, 'milliseconds'), 10 * 60_000),
  /** An error template first seen this recently (ms) is new. Defaults to 900000 (15 min). */
  newWindowMs: opt(range(0, 604_800_000, 'milliseconds'), 15 * 60_000),
  /** Lines in the current bucket that a burst needs at least. Defaults to 20. */
  burstMinLines: opt(int(1, 1_000_000_000), 20),
  /** Ratio of the current bucket to the baseline per bucket that makes a burst. Defaults to 5. */
  burstFactor: opt(range(1, 1_000_000, 'a factor'), 5),
  /** Templates cited as evidence per finding. Defaults to 5. */
  maxEvidence: opt(int(1, 100), 5),
});

/** Optional facts that TemplateStats adds to each TemplateStat (see MinedTemplateStat). */
interface StatExtras {
  lastSeen?: string;
  streamFirstSeen?: string;
  bucketMs?: number;
}

interface Trigger {
  stat: TemplateStat & StatExtras;
  kind: 'new' | 'burst';
}

function parseStream(stream: string, nodeName: string): { subject: Subject; source: Evidence['source']; label: string; detail?: string } | null {
  if (stream.startsWith('podLog:')) {
    const [namespace, pod, container] = stream.slice('podLog:'.length).split('/');
    if (!namespace || !pod || !container) return null;
    return {
      subject: { kind: 'Container', name: pod, namespace, container },
      source: 'podLog',
      label: `container ${container} of pod ${namespace}/${pod}`,
    };
  }
  if (stream.startsWith('journald:')) {
    const unit = stream.slice('journald:'.length);
    return { subject: { kind: 'Node', name: nodeName }, source: 'journald', label: `${unit} on node ${nodeName}`, detail: stream };
  }
  return null;
}

function minutes(ms: number): string {
  const m = ms / 60_000;
  return Number.isInteger(m) ? `${m} min` : `${m.toFixed(1)} min`;
}

function rate(x: number): string {
  return x >= 10 || Number.isInteger(x) ? String(Math.round(x)) : x.toFixed(1);
}

function latestOf(evidence: readonly Evidence[], fallback: string): string {
  let best = fallback;
  let bestMs = Number.NEGATIVE_INFINITY;
  for (const e of evidence) {
    const ms = Date.parse(e.at);
    if (ms > bestMs) {
      bestMs = ms;
      best = e.at;
    }
  }
  return best;
}

/** Creates the LogErrorSpike detector. */
export const createLogErrorSpikeDetector = detectorFactory('log-error-spike', LOG_ERROR_SPIKE_OPTIONS, (o) => (view) => {
  const now = Date.parse(view.now);
  if (Number.isNaN(now) || view.templates.length === 0) return [];
  // A stream's age: from TemplateStats' own field, else from its oldest template in the view.
  const streamStart = new Map<string, number>();
  for (const t of view.templates as (TemplateStat & StatExtras)[]) {
    const start = Date.parse(t.streamFirstSeen ?? t.firstSeen);
    if (Number.isNaN(start)) continue;
    const cur = streamStart.get(t.stream);
    if (cur === undefined || start < cur) streamStart.set(t.stream, start);
  }
  const byStream = new Map<string, Trigger[]>();
  for (const t of view.templates as (TemplateStat & StatExtras)[]) {
    if (!t.isError || t.recentCount <= 0) continue;
    const start = streamStart.get(t.stream);
    const first = Date.parse(t.firstSeen);
    if (start === undefined || Number.isNaN(first) || now - start < o.warmupMs) continue;
    let kind: Trigger['kind'] | null = null;
    if (first - start >= o.warmupMs && now - first <= o.newWindowMs) kind = 'new';
    else if (t.recentCount >= o.burstMinLines && t.recentCount >= o.burstFactor * t.baselinePerBucket) kind = 'burst';
    if (!kind) continue;
    groupOf(byStream, t.stream, () => []).push({ stat: t, kind });
  }
  const drafts: FindingDraft[] = [];
  for (const [stream, triggers] of [...byStream].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const where = parseStream(stream, view.nodeName);
    if (!where) continue;
    triggers.sort((a, b) => b.stat.recentCount - a.stat.recentCount || (a.stat.templateId < b.stat.templateId ? -1 : 1));
    const bucket = triggers[0]?.stat.bucketMs;
    const per = bucket ? ` per ${minutes(bucket)}` : ' per bucket';
    const news = triggers.filter((t) => t.kind === 'new');
    const bursts = triggers.filter((t) => t.kind === 'burst');
    const lines = triggers.reduce((s, t) => s + t.stat.recentCount, 0);
    const evidence: Evidence[] = triggers.slice(0, o.maxEvidence).map(({ stat, kind }) => ({
      source: where.source,
      at: stat.lastSeen ?? view.now,
      text:
        kind === 'new'
          ? `${stat.example} [new error, ${stat.recentCount} line${stat.recentCount === 1 ? '' : 's'} now]`
          : `${stat.example} [${stat.recentCount} lines now, baseline ${rate(stat.baselinePerBucket)}${per}]`,
    }));
    const parts: string[] = [];
    if (news.length > 0) parts.push(`${news.length} new error template${news.length === 1 ? '' : 's'}`);
    if (bursts.length > 0) parts.push(`${bursts.length} error template${bursts.length === 1 ? '' : 's'} far above baseline`);
    const title = news.length > 0 ? `New errors in the log of ${where.label}` : `Burst of errors in the log of ${where.label}`;
    const listed = triggers
      .slice(0, o.maxEvidence)
      .map(({ stat, kind }) =>
        kind === 'new'
          ? `"${stat.template}" (new, ${stat.recentCount} now)`
          : `"${stat.template}" (${stat.recentCount} now vs ${rate(stat.baselinePerBucket)}${per})`,
      );
    const firstAt = Math.min(...news.map((t) => Date.parse(t.stat.firstSeen)));
    const draft: FindingDraft = {
      category: 'LogErrorSpike',
      severity: 'warning',
      subject: where.subject,
      title,
      message: `${parts.join(' and ')} in the log of ${where.label}: ${listed.join('; ')}.`,
      evidence,
      at: latestOf(evidence, view.now),
      occurrences: lines,
      lifecycle: 'event',
      detector: 'log-error-spike',
      facts: {
        stream,
        newTemplates: news.length,
        burstTemplates: bursts.length,
        errorLines: lines,
        templateIds: triggers.map((t) => t.stat.templateId).join(','),
      },
    };
    if (where.detail) draft.detail = where.detail;
    if (Number.isFinite(firstAt)) draft.firstAt = new Date(firstAt).toISOString();
    drafts.push(draft);
  }
  return drafts;
});

/** The LogErrorSpike detector with default thresholds. */
export const logErrorSpikeDetector: Detector = createLogErrorSpikeDetector();
