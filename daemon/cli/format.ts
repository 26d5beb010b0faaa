/**
 * Human-readable output of the CLI (tables and stories for people; `--json` is
 * for tools). Colour only when asked for (a TTY without NO_COLOR); widths
 * follow the terminal so no column runs into the next.
 */
import type { Diagnosis, Finding, Status } from '../core/types.js';

/** Text styles; all identity when colour is off. */
export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
  green(s: string): string;
}

const sgr = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;

/** A style with or without ANSI colours. */
export function createStyle(color: boolean): Style {
  if (!color) {
    const id = (s: string) => s;
    return { bold: id, dim: id, red: id, yellow: id, cyan: id, green: id };
  }
  return { bold: sgr(1, 22), dim: sgr(2, 22), red: sgr(31, 39), yellow: sgr(33, 39), cyan: sgr(36, 39), green: sgr(32, 39) };
}

/** Colour for a stream: only a TTY, and never when NO_COLOR is set (https://no-color.org). */
export function wantsColor(stream: { isTTY?: boolean }, env: Record<string, string | undefined>): boolean {
  return stream.isTTY === true && (env.NO_COLOR ?? '') === '' && env.TERM !== 'dumb';
}

/** Options of the formatters. */
export interface FormatOptions {
  /** Terminal width in columns. Defaults to 120. */
  width?: number;
  /** Styles to use. Defaults to no colour. */
  style?: Style;
  /** The node of each finding, for a fleet view (adds a NODE column). Defaults to none. */
  nodeOf?: (f: Finding) => string;
}

function cut(s: string, n: number): string {
  if (n <= 0) return '';
  return s.length > n ? `${s.slice(0, Math.max(0, n - 1))}…` : s;
}

/** `s` in a column of `n`, always leaving one space before the next column. */
function pad(s: string, n: number): string {
  const f = cut(s, n - 1);
  return f + ' '.repeat(Math.max(0, n - f.length));
}

/** A subject as one short string: `node/x`, `ns/pod`, `ns/pod/container`. */
export function subjectText(f: Pick<Finding, 'subject'>): string {
  const s = f.subject;
  if (s.kind === 'Node') return `node/${s.name}`;
  return [s.namespace ?? '', s.name, s.container].filter(Boolean).join('/');
}

/** An RFC3339 time as `2026-05-04 08:00:00Z` (19-20 columns, sorts the same). */
export function shortTime(iso: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?Z$/.exec(iso);
  return m ? `${m[1]} ${m[2]}Z` : iso;
}

function severityStyle(style: Style, severity: string): (s: string) => string {
  return severity === 'critical' ? (s) => style.bold(style.red(s)) : severity === 'warning' ? style.yellow : style.dim;
}

/**
 * Findings as a table, worst first, fitted to `width`: fixed columns keep
 * their size, SUBJECT and TITLE share the rest. Under each row: the id (for
 * `findings show`) and the diagnosis summary when there is one.
 */
export function formatFindingsTable(findings: Finding[], opts: FormatOptions = {}): string {
  if (findings.length === 0) return 'No findings.\n';
  const style = opts.style ?? createStyle(false);
  const width = Math.max(60, opts.width ?? 120);
  const rank = { critical: 0, warning: 1, info: 2 } as const;
  const rows = [...findings].sort((a, b) => rank[a.severity] - rank[b.severity] || (a.lastSeen < b.lastSeen ? 1 : -1));
  const sev = 10;
  const cat = Math.max(9, ...rows.map((f) => f.category.length)) + 2;
  // A narrow terminal (a phone's SSH app, a split pane) drops COUNT and shortens the time.
  const narrow = width < 90;
  const count = narrow ? 0 : 7;
  const seen = narrow ? 13 : 22;
  const seenText = (iso: string) => (narrow ? shortTime(iso).slice(5, 16) : shortTime(iso));
  const nodeW = opts.nodeOf ? Math.min(24, Math.max(6, ...rows.map((f) => opts.nodeOf!(f).length + 2))) : 0;
  const node = (f: Finding | null) => (opts.nodeOf ? pad(f ? opts.nodeOf(f) : 'NODE', nodeW) : '');
  const rest = width - sev - cat - count - seen - nodeW;
  const subjW = Math.min(Math.max(12, ...rows.map((f) => subjectText(f).length + 2)), Math.max(12, Math.floor(rest * 0.4)));
  const titleW = Math.max(10, rest - subjW);
  const head = `${pad('SEVERITY', sev)}${node(null)}${pad('CATEGORY', cat)}${pad('SUBJECT', subjW)}${count ? pad('COUNT', count) : ''}${pad('LAST SEEN', seen)}TITLE`;
  const lines = [style.bold(head)];
  for (const f of rows) {
    const colour = severityStyle(style, f.severity);
    lines.push(
      `${colour(pad(f.severity, sev))}${node(f)}${pad(f.category, cat)}${pad(subjectText(f), subjW)}${count ? pad(String(f.count), count) : ''}${pad(seenText(f.lastSeen), seen)}${cut(f.title, titleW)}`,
    );
    const d = f.diagnosis;
    const under = `${' '.repeat(sev)}${f.id}${d ? `  ${d.summary} (${d.diagnoser}, ${d.confidence})` : ''}`;
    lines.push(style.dim(cut(under, width)));
  }
  lines.push('', style.dim(cut(`${rows.length} finding${rows.length === 1 ? '' : 's'}; \`nodesage findings show <ID>\` tells the whole story of one.`, width)));
  return `${lines.join('\n')}\n`;
}

/** The diagnosis as indented lines: summary, cause, next steps, read-only commands, who wrote it and how sure. */
export function diagnosisLines(d: Diagnosis, indent: string, style: Style = createStyle(false)): string[] {
  const out = [`${indent}${style.bold('diagnosis')} ${style.dim(`(${d.diagnoser}, confidence ${d.confidence}${d.fallback ? `, model answer replaced: ${d.fallback}` : ''})`)}`];
  out.push(`${indent}  ${d.summary}`);
  out.push(`${indent}  probable cause: ${d.probableCause}`);
  if (d.nextSteps.length > 0) {
    out.push(`${indent}  next steps:`);
    for (const [i, s] of d.nextSteps.entries()) out.push(`${indent}    ${i + 1}. ${s}`);
  }
  if (d.commands.length > 0) {
    out.push(`${indent}  read-only commands:`);
    for (const c of d.commands) out.push(`${indent}    ${style.cyan(`$ ${c}`)}`);
  }
  return out;
}

/** Links of a finding to show with it: the findings that cause it and those it causes. */
export interface FindingLinks {
  causes: Finding[];
  consequences: Finding[];
}

/** One finding, the whole story: what, where, when, evidence, links, diagnosis. */
export function formatFindingDetail(f: Finding, links: FindingLinks, opts: FormatOptions = {}): string {
  const style = opts.style ?? createStyle(false);
  const colour = severityStyle(style, f.severity);
  const cited = new Set(f.diagnosis?.evidenceRefs ?? []);
  const out = [
    `${colour(f.severity.toUpperCase())} ${style.bold(f.category)} ${subjectText(f)}  ${style.dim(f.id)}`,
    style.bold(f.title),
    f.message,
    '',
    `status     ${f.status}${f.resolvedAt ? ` (resolved ${shortTime(f.resolvedAt)})` : ''}${f.rootCause === false ? ', explained by another finding' : ', a root cause'}`,
    `seen       ${f.firstSeen === f.lastSeen ? shortTime(f.lastSeen) : `${shortTime(f.firstSeen)} .. ${shortTime(f.lastSeen)}`}${f.count > 1 ? `, ${f.count} times` : ''}`,
  ];
  out.push('', style.bold(`evidence (${f.evidence.length})`));
  for (const [i, e] of f.evidence.entries()) out.push(`  ${cited.has(i) ? style.green('*') : ' '}[${i}] ${style.dim(shortTime(e.at))} ${e.source}: ${e.text}`);
  if (cited.size > 0) out.push(style.dim('  * cited by the diagnosis'));
  const linkLine = (l: Finding) => `  ${l.id}  ${l.severity} ${l.category} ${subjectText(l)} (${l.status}): ${l.title}`;
  if (links.causes.length > 0 || (f.causes ?? []).length > 0) {
    out.push('', style.bold('caused by'));
    const known = new Set(links.causes.map((c) => c.id));
    for (const c of links.causes) out.push(linkLine(c));
    for (const id of f.causes ?? []) if (!known.has(id)) out.push(`  ${id}  (no longer stored)`);
  }
  if (links.consequences.length > 0) {
    out.push('', style.bold('causes'));
    for (const c of links.consequences) out.push(linkLine(c));
  }
  out.push('');
  if (f.diagnosis) out.push(...diagnosisLines(f.diagnosis, '', style));
  else out.push(style.dim('no diagnosis yet (it is queued; detection never waits for it)'));
  return `${out.join('\n')}\n`;
}

/** The /v1/status body for people. */
export function formatStatus(st: Status): string {
  const out = [
    `node      ${st.nodeName} (mode ${st.mode}, nodesage ${st.version}, up since ${st.startedAt})`,
    `model     ${st.model.state}${st.model.id ? ` ${st.model.id}` : ''}${st.model.reason ? ` — ${st.model.reason}` : ''}${st.rulesOnly ? ' (rules-only mode: findings without LLM explanations)' : ''}`,
    ...(st.model.notice ? [`          ${st.model.notice}`] : []),
    ...(st.model.loras ?? []).map((l) => `          LoRA ${l.path} (scale ${l.scale})`),
    `store     ${st.store.path} (${(st.store.sizeBytes / 1024).toFixed(0)} KiB)${st.store.recoveredFrom ? ` — recovered: corrupt database kept at ${st.store.recoveredFrom}` : ''}`,
    ...(st.store.writeFailure
      ? [
          `          cannot write since ${st.store.writeFailure.since} (${st.store.writeFailure.code ?? 'error'}: ${st.store.writeFailure.message}); ${st.store.writeFailure.cyclesKept} detection cycle(s) kept in memory until it can`,
        ]
      : []),
    'sources',
  ];
  for (const src of st.sources) {
    out.push(`  ${pad(src.name, 10)}${pad(src.state, 10)}${pad(`${src.signals} signals`, 16)}${src.lastSignalAt ?? '-'}${src.lastError ? `  error: ${src.lastError}` : ''}`);
  }
  return `${out.join('\n')}\n`;
}
