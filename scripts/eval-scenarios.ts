/**
 * Scenario evaluation: runs `analyzeBundle` over every bundle folder under DIR
 * that holds an expected.json and scores the findings against it.
 *
 *   npm run eval:scenarios -- DIR [--json] [--verbose]
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
import { analyzeBundle } from '../dist/daemon/analyze.js';

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

interface Row {
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

async function evalBundle(dir: string, name: string): Promise<Row> {
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
  try {
    findings = (await analyzeBundle(dir)).findings as FindingLike[];
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
  const dirArg = args.find((a) => !a.startsWith('--'));
  if (!dirArg) {
    process.stderr.write('usage: node scripts/eval-scenarios.ts DIR [--json] [--verbose]\n');
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
  const rows: Row[] = [];
  for (const n of names) rows.push(await evalBundle(join(root, n), n));
  const expectedTotal = rows.reduce((s, r) => s + r.expected.length, 0);
  const foundTotal = rows.reduce((s, r) => s + r.found.length, 0);
  const bad = rows.filter((r) => r.error || r.missing.length > 0 || r.forbiddenFound.length > 0 || r.noise.length > 0);
  if (json) {
    process.stdout.write(`${JSON.stringify({ rows, expected: expectedTotal, found: foundTotal, failedBundles: bad.length }, null, 2)}\n`);
  } else {
    process.stdout.write(`${table(rows)}\n\n`);
    if (verbose) {
      for (const r of rows) if (r.extra.length > 0) process.stdout.write(`${r.bundle}: also reported ${r.extra.join(', ')}\n`);
    }
    const forbiddenTotal = rows.reduce((s, r) => s + r.forbiddenFound.length + r.noise.length, 0);
    process.stdout.write(
      `${rows.length} bundles: ${foundTotal}/${expectedTotal} expected findings found, ${expectedTotal - foundTotal} missing, ${forbiddenTotal} forbidden or healthy-node findings; ${bad.length === 0 ? 'PASS' : `FAIL (${bad.map((r) => r.bundle).join(', ')})`}\n`,
    );
  }
  return bad.length === 0 ? 0 : 1;
}

process.exitCode = await main();
