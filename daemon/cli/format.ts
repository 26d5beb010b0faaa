/**
 * Human-readable output of the CLI (tables for people; `--json` is for tools).
 */
import type { Finding } from '../core/types.js';

function pad(s: string, n: number): string {
  return s.length >= n ? `${s.slice(0, n - 1)}…` : s + ' '.repeat(n - s.length);
}

/** A subject as one short string: `node/x`, `ns/pod`, `ns/pod/container`. */
export function subjectText(f: Pick<Finding, 'subject'>): string {
  const s = f.subject;
  if (s.kind === 'Node') return `node/${s.name}`;
  return [s.namespace ?? '', s.name, s.container].filter(Boolean).join('/');
}

/** Findings as a table, worst first. */
export function formatFindingsTable(findings: Finding[]): string {
  if (findings.length === 0) return 'No findings.\n';
  const rank = { critical: 0, warning: 1, info: 2 } as const;
  const rows = [...findings].sort((a, b) => rank[a.severity] - rank[b.severity] || (a.lastSeen < b.lastSeen ? 1 : -1));
  const lines = [`${pad('SEVERITY', 9)}${pad('CATEGORY', 19)}${pad('SUBJECT', 40)}${pad('COUNT', 7)}${pad('LAST SEEN', 22)}TITLE`];
  for (const f of rows) {
    lines.push(`${pad(f.severity, 9)}${pad(f.category, 19)}${pad(subjectText(f), 40)}${pad(String(f.count), 7)}${pad(f.lastSeen, 22)}${f.title}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The /v1/status body for people. */
export function formatStatus(s: Record<string, unknown>): string {
  const st = s as {
    mode: string;
    nodeName: string;
    version: string;
    startedAt: string;
    rulesOnly: boolean;
    sources: { name: string; state: string; signals: number; lastSignalAt: string | null; lastError: string | null }[];
    model: { state: string; id: string | null; reason: string | null; notice?: string; loras?: { path: string; scale: number }[] };
    store: { path: string; sizeBytes: number; recoveredFrom: string | null };
  };
  const out = [
    `node      ${st.nodeName} (mode ${st.mode}, nodesage ${st.version}, up since ${st.startedAt})`,
    `model     ${st.model.state}${st.model.id ? ` ${st.model.id}` : ''}${st.model.reason ? ` — ${st.model.reason}` : ''}${st.rulesOnly ? ' (rules-only mode: findings without LLM explanations)' : ''}`,
    ...(st.model.notice ? [`          ${st.model.notice}`] : []),
    ...(st.model.loras ?? []).map((l) => `          LoRA ${l.path} (scale ${l.scale})`),
    `store     ${st.store.path} (${(st.store.sizeBytes / 1024).toFixed(0)} KiB)${st.store.recoveredFrom ? ` — recovered: corrupt database kept at ${st.store.recoveredFrom}` : ''}`,
    'sources',
  ];
  for (const src of st.sources) {
    out.push(`  ${pad(src.name, 10)}${pad(src.state, 10)}${pad(`${src.signals} signals`, 16)}${src.lastSignalAt ?? '-'}${src.lastError ? `  error: ${src.lastError}` : ''}`);
  }
  return `${out.join('\n')}\n`;
}
