/**
 * Scenario evaluation: runs `analyzeBundle` over every bundle folder under DIR
 * that holds an expected.json and scores the findings against it.
 *
 *   npm run eval:scenarios -- DIR [--json] [--verbose] [--model FILE.gguf]
 *
 * With `--model`, every expected finding that was found is also explained by
 * that model (the daemon's LlmDiagnoser and engine, `NODESAGE_LLM_*` settings
 * apply), and each explanation is scored on what can be checked without a
 * reference answer: it came from the model (not the rule-hint fallback), it
 * cites evidence, it names its subject, and it uses a word from the evidence it
 * cites that the finding's title and rule hint do not already contain (so
 * copying the hint scores nothing). Latency and tokens are reported; the scores
 * are a measurement and never change the exit code.
 *
 * expected.json: `expect` entries match a finding by category and subject (a
 * Pod-level finding is accepted for a Container subject, never the reverse);
 * `forbid` categories must not appear at any severity; `expect: []` marks a
 * healthy node where nothing may be reported at warning or critical severity.
 * Prints one row per bundle and exits 1 on any miss, forbidden finding or
 * healthy-node noise, 2 on a usage error.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { analyzeBundle } from '../dist/daemon/analyze.js';
import { loadConfig } from '../dist/daemon/config.js';
import { buildDiagnoser, type DiagnosisSetup } from '../dist/daemon/diagnoser/build.js';
import { LlmDiagnoser } from '../dist/daemon/diagnoser/llm-diagnoser.js';
import { RuleHintDiagnoser } from '../dist/daemon/diagnoser/rule-hint.js';
import type { Finding } from '../dist/daemon/core/types.js';

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
  container?: string;
}

interface Expected {
  expect: { category: string; subject: Subject }[];
  forbid?: string[];
  notes?: string;
}

interface FindingLike {
  category: string;
  severity: string;
  subject: Subject;
  title: string;
}

/** How one model explanation of an expected finding scored. */
interface DiagnosisScore {
  finding: string;
  diagnoser: string;
  fallback: string | null;
  fromModel: boolean;
  citesEvidence: boolean;
  namesSubject: boolean;
  /** Words of the cited evidence (not in the title or rule hint) that the explanation uses. */
  evidenceWords: string[];
  latencyMs: number;
  tokens: { prompt: number; completion: number };
  summary: string;
  probableCause: string;
}

interface Row {
  diagnoses?: DiagnosisScore[];
  bundle: string;
  expected: string[];
  found: string[];
  missing: string[];
  forbiddenFound: string[];
  noise: string[];
  extra: string[];
  error?: string;
}

function subjectText(s: Subject): string {
  if (s.kind === 'Node') return `node/${s.name}`;
  return `${s.kind === 'Pod' ? 'pod' : 'container'} ${[s.namespace ?? '', s.name, s.container].filter((x) => x).join('/')}`;
}

function label(category: string, s: Subject): string {
  return `${category}(${subjectText(s)})`;
}

/** A finding satisfies an expectation: same category, same subject, or its Pod for a Container. */
function matches(f: FindingLike, e: { category: string; subject: Subject }): boolean {
  if (f.category !== e.category) return false;
  const a = f.subject;
  const b = e.subject;
  if (b.kind === 'Node') return a.kind === 'Node' && a.name === b.name;
  if ((a.namespace ?? 'default') !== (b.namespace ?? 'default') || a.name !== b.name) return false;
  if (b.kind === 'Pod') return a.kind === 'Pod';
  return a.kind === 'Pod' || (a.kind === 'Container' && a.container === b.container);
}

/** The model and what each bundle's diagnoser needs besides it. */
interface ModelEval {
  setup: DiagnosisSetup;
  promptTokens: number;
  timeoutMs: number;
}

const STOP = new Set(['container', 'containers', 'restart', 'restarts', 'restarted', 'error', 'errors', 'failed', 'because', 'there', 'which', 'their', 'about', 'could', 'would', 'should', 'after', 'before', 'while', 'other', 'check', 'pod', 'pods']);

function wordsOf(text: string): Set<string> {
  return new Set((text.toLowerCase().match(/[a-z0-9][a-z0-9._:/-]*[a-z0-9]/g) ?? []).filter((w) => (w.length >= 5 || /\d/.test(w)) && !STOP.has(w)));
}

/** Explains one finding with the model and scores the explanation. */
async function scoreDiagnosis(f: Finding, nodeName: string, m: ModelEval): Promise<DiagnosisScore> {
  const ruleHint = new RuleHintDiagnoser({ nodeName });
  const engine = m.setup.engine;
  if (!engine) throw new Error('no model engine');
  const diagnoser = new LlmDiagnoser({ backend: engine, ruleHint, logger: pino({ level: 'silent' }), maxPromptTokens: m.promptTokens, timeoutMs: m.timeoutMs });
  const d = (await diagnoser.diagnose(f)) as Finding['diagnosis'] & { fallback?: string };
  if (!d) throw new Error('no diagnosis');
  const hint = ruleHint.hint(f);
  const said = `${d.summary} ${d.probableCause}`;
  const known = wordsOf(`${f.title} ${hint.summary} ${hint.probableCause}`);
  const cited = wordsOf((d.evidenceRefs ?? []).map((i) => f.evidence[i]?.text ?? '').join(' '));
  const evidenceWords = [...wordsOf(said)].filter((w) => cited.has(w) && !known.has(w));
  const s = f.subject;
  const workload = s.name.replace(/-[a-z0-9]{8,10}-[a-z0-9]{5}$|-[a-z0-9]{5}$/, '');
  const names = [s.name, workload, s.container].filter((n): n is string => typeof n === 'string' && n.length > 0).map((n) => n.toLowerCase());
  return {
    finding: label(f.category, s),
    diagnoser: d.diagnoser,
    fallback: d.fallback ?? null,
    fromModel: d.diagnoser.startsWith('llm:') && !d.fallback,
    citesEvidence: (d.evidenceRefs ?? []).length > 0,
    namesSubject: names.some((n) => said.toLowerCase().includes(n)),
    evidenceWords,
    latencyMs: d.latencyMs,
    tokens: d.tokens,
    summary: d.summary,
    probableCause: d.probableCause,
  };
}

async function evalBundle(dir: string, name: string, model?: ModelEval): Promise<Row> {
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
  const row: Row = {
    bundle: name,
    expected: expected.expect.map((e) => label(e.category, e.subject)),
    found: [],
    missing: [],
    forbiddenFound: [],
    noise: [],
    extra: [],
  };
  let findings: FindingLike[];
  let nodeName = '';
  try {
    const result = await analyzeBundle(dir);
    findings = result.findings as FindingLike[];
    nodeName = result.meta.nodeName;
  } catch (err) {
    row.error = err instanceof Error ? err.message : String(err);
    row.missing = row.expected;
    return row;
  }
  const used = new Set<FindingLike>();
  for (const e of expected.expect) {
    const hit = findings.find((f) => matches(f, e));
    if (hit) {
      row.found.push(label(e.category, e.subject));
      if (model) {
        row.diagnoses ??= [];
        row.diagnoses.push(await scoreDiagnosis(hit as unknown as Finding, nodeName, model));
      }
      used.add(hit);
      for (const f of findings) if (matches(f, e)) used.add(f);
    } else row.missing.push(label(e.category, e.subject));
  }
  const forbid = new Set(expected.forbid ?? []);
  for (const f of findings) {
    if (forbid.has(f.category)) row.forbiddenFound.push(`${label(f.category, f.subject)} ${f.severity}`);
    else if (expected.expect.length === 0 && f.severity !== 'info') row.noise.push(`${label(f.category, f.subject)} ${f.severity}`);
    else if (!used.has(f)) row.extra.push(`${label(f.category, f.subject)} ${f.severity}`);
  }
  return row;
}

function table(rows: Row[]): string {
  const cols: [string, (r: Row) => string][] = [
    ['bundle', (r) => r.bundle],
    ['expected', (r) => (r.expected.length === 0 ? '(healthy)' : r.expected.map((e) => e.slice(0, e.indexOf('('))).join(', '))],
    ['found', (r) => `${r.found.length}/${r.expected.length}`],
    ['missing', (r) => (r.error ? `ERROR ${r.error}` : r.missing.join(', ') || '-')],
    ['forbidden-found', (r) => [...r.forbiddenFound, ...r.noise.map((n) => `noise:${n}`)].join(', ') || '-'],
  ];
  const cells = rows.map((r) => cols.map(([, f]) => f(r)));
  const widths = cols.map(([h], i) => Math.min(70, Math.max(h.length, ...cells.map((c) => c[i]!.length))));
  const fmt = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]!))).join('  ');
  return [fmt(cols.map(([h]) => h)), fmt(widths.map((w) => '-'.repeat(w))), ...cells.map(fmt)].join('\n');
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const verbose = args.includes('--verbose');
  const modelAt = args.indexOf('--model');
  const modelFile = modelAt >= 0 ? args[modelAt + 1] : undefined;
  const dirArg = args.find((a, i) => !a.startsWith('--') && (modelAt < 0 || i !== modelAt + 1));
  if (!dirArg || (modelAt >= 0 && (!modelFile || modelFile.startsWith('--')))) {
    process.stderr.write('usage: node scripts/eval-scenarios.ts DIR [--json] [--verbose] [--model FILE.gguf]\n');
    return 2;
  }
  const root = resolve(dirArg);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    process.stderr.write(`eval-scenarios: not a folder: ${root}\n`);
    return 2;
  }
  const names = readdirSync(root)
    .filter((n) => existsSync(join(root, n, 'expected.json')))
    .sort();
  if (names.length === 0) {
    process.stderr.write(`eval-scenarios: no bundle with an expected.json under ${root}\n`);
    return 2;
  }
  let model: ModelEval | undefined;
  if (modelFile) {
    // The daemon's settings (NODESAGE_LLM_* from the environment), this model; node names come from each bundle.
    const config = loadConfig({ flags: { model: resolve(modelFile), nodeName: 'eval', standalone: true, logLevel: 'silent' } });
    const setup = buildDiagnoser({ config, logger: pino({ level: 'warn' }, process.stderr) });
    if (!setup.engine) throw new Error('model not configured');
    await setup.engine.check();
    model = { setup, promptTokens: config.llm.promptTokens, timeoutMs: config.llm.timeoutSeconds * 1000 };
  }
  const rows: Row[] = [];
  try {
    for (const n of names) rows.push(await evalBundle(join(root, n), n, model));
  } finally {
    await model?.setup.dispose();
  }
  const scores = rows.flatMap((r) => r.diagnoses ?? []);
  const expectedTotal = rows.reduce((s, r) => s + r.expected.length, 0);
  const foundTotal = rows.reduce((s, r) => s + r.found.length, 0);
  const bad = rows.filter((r) => r.error || r.missing.length > 0 || r.forbiddenFound.length > 0 || r.noise.length > 0);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ rows, expected: expectedTotal, found: foundTotal, failedBundles: bad.length, ...(model ? { model: modelSummary(scores) } : {}) }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(`${table(rows)}\n\n`);
    if (verbose) {
      for (const r of rows) if (r.extra.length > 0) process.stdout.write(`${r.bundle}: also reported ${r.extra.join(', ')}\n`);
    }
    const forbiddenTotal = rows.reduce((s, r) => s + r.forbiddenFound.length + r.noise.length, 0);
    process.stdout.write(
      `${rows.length} bundles: ${foundTotal}/${expectedTotal} expected findings found, ${expectedTotal - foundTotal} missing, ${forbiddenTotal} forbidden or healthy-node findings; ${bad.length === 0 ? 'PASS' : `FAIL (${bad.map((r) => r.bundle).join(', ')})`}\n`,
    );
    if (model) process.stdout.write(`\n${modelTable(scores, verbose)}\n`);
  }
  return bad.length === 0 ? 0 : 1;
}

/** Totals of the model's explanations. */
function modelSummary(scores: DiagnosisScore[]) {
  const n = scores.length;
  const share = (p: (s: DiagnosisScore) => boolean) => (n === 0 ? 0 : scores.filter(p).length / n);
  const lat = scores.map((s) => s.latencyMs).sort((a, b) => a - b);
  return {
    diagnoses: n,
    fromModel: share((s) => s.fromModel),
    citesEvidence: share((s) => s.citesEvidence),
    namesSubject: share((s) => s.namesSubject),
    usesEvidence: share((s) => s.evidenceWords.length > 0),
    medianLatencyMs: lat[Math.floor(lat.length / 2)] ?? 0,
    maxLatencyMs: lat[lat.length - 1] ?? 0,
  };
}

function modelTable(scores: DiagnosisScore[], verbose: boolean): string {
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  const out = ['model explanations of the expected findings:', 'finding | from model | cites evidence | names subject | uses evidence | latency'];
  for (const s of scores) {
    out.push(`${s.finding} | ${s.fromModel ? 'yes' : `no (${s.fallback ?? s.diagnoser})`} | ${yes(s.citesEvidence)} | ${yes(s.namesSubject)} | ${s.evidenceWords.length > 0 ? `yes (${s.evidenceWords.slice(0, 3).join(', ')})` : 'no'} | ${(s.latencyMs / 1000).toFixed(1)} s`);
    if (verbose) out.push(`  summary: ${s.summary}\n  cause: ${s.probableCause}`);
  }
  const t = modelSummary(scores);
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  out.push(
    `${t.diagnoses} explanations: ${pct(t.fromModel)} from the model, ${pct(t.citesEvidence)} cite evidence, ${pct(t.namesSubject)} name their subject, ${pct(t.usesEvidence)} use a word of the cited evidence beyond the hint; latency median ${(t.medianLatencyMs / 1000).toFixed(1)} s, max ${(t.maxLatencyMs / 1000).toFixed(1)} s`,
  );
  return out.join('\n');
}

process.exitCode = await main();
