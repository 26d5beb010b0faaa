/**
 * Response serialisation with the contract's derived schemas: the API's
 * response schemas are derived from the zod schemas of daemon/core/contract.ts
 * and compiled by fast-json-stringify (as fastify does). This measures, in one
 * interleaved run over the same bodies, µs per body of:
 *   - a finding (GET /v1/findings/:id): the derived schema vs the hand-written
 *     one it replaced (daemon/api/server.ts at BASELINE_COMMIT, read with git);
 *   - a page of 50 findings (GET /v1/findings): the schema's projection plus
 *     JSON.stringify, derived vs hand-written schema;
 *   - the status (GET /v1/status): the derived schema vs JSON.stringify, which
 *     is what the route used before it had a schema;
 * and the one-time cost of deriving every response schema at start.
 *
 *   npm run build && node test/bench/serialize.ts [--rounds N] [--write]
 *
 * Prints a markdown section; `--write` also puts it in test/bench/RESULTS.md
 * (between its `bench:serialize` markers).
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { writeResultsSection } from './results-section.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
/** The last commit with hand-written response schemas in daemon/api/server.ts. */
const BASELINE_COMMIT = 'cab12b6';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, write: { type: 'boolean', default: false } } });
const rounds = Number(args.rounds);

type Json = Record<string, unknown>;
type Serialize = (v: unknown) => string;
const fjs = createRequire(import.meta.url)('fast-json-stringify') as (schema: Json) => Serialize;

// The one-time cost first, in a fresh state: nothing has derived a schema yet.
const contract = (await import(pathToFileURL(join(ROOT, 'dist/daemon/core/contract.js')).href)) as typeof import('../../daemon/core/contract.ts');
const { projectToSchema } = (await import(pathToFileURL(join(ROOT, 'dist/daemon/api/schema-project.js')).href)) as typeof import('../../daemon/api/schema-project.ts');
const all = [
  contract.StatusSchema,
  contract.FindingSchema,
  contract.FindingPageSchema,
  contract.TimelineSchema,
  contract.MetricsHistorySchema,
  contract.FeedbackSchema,
  contract.ApiErrorSchema,
  contract.HealthSchema,
  contract.ReadySchema,
];
const deriveStarted = performance.now();
for (const s of all) contract.responseSchema(s);
const deriveMs = performance.now() - deriveStarted;

/** The hand-written finding and page schemas of the baseline commit, evaluated from its source. */
function baselineSchemas(): { finding: Json; page: Json } {
  const src = execFileSync('git', ['show', `${BASELINE_COMMIT}:daemon/api/server.ts`], { cwd: ROOT, encoding: 'utf8' });
  const start = src.indexOf('const evidenceSchema = {');
  const end = src.indexOf("/** JSON schema of the API's error body. */");
  if (start < 0 || end < 0) throw new Error(`the schemas are not where expected in ${BASELINE_COMMIT}:daemon/api/server.ts`);
  const code = src.slice(start, end).replaceAll(' as const', '').replaceAll('export const', 'const');
  return new Function(`${code}; return { finding: findingSchema, page: findingPageSchema };`)() as { finding: Json; page: Json };
}

const at = '2026-05-04T08:00:00.000Z';
const finding = (i: number) => ({
  id: (0x1000000000000 + i).toString(16).padStart(16, '0'),
  category: 'CrashLoop',
  severity: 'critical',
  subject: { kind: 'Container', name: `web-${i}`, namespace: 'shop', container: 'app' },
  title: 'Container app of pod shop/web is crash-looping',
  message: 'restarted 12 times; last exit code 1 ("connection refused")',
  evidence: Array.from({ length: 8 }, (_, k) => ({
    source: 'podLog',
    at,
    text: `2026-05-04T08:00:0${k}Z ERROR failed to connect to db.shop.svc:5432: connection refused (attempt ${k}) "quoted" \\ path=/var/lib/app`,
  })),
  firstSeen: at,
  lastSeen: at,
  count: 12,
  status: 'open',
  causes: [],
  rootCause: true,
  diagnosis: {
    summary: 'The container app of pod shop/web is crash-looping (12 restarts), last exit code 1.',
    probableCause: 'The container keeps exiting: exit code 1: the application stopped on an error of its own.',
    nextSteps: ['Read the log of the previous run.', 'Check the dependencies it connects to at start.'],
    commands: ['kubectl -n shop logs web -c app --previous --tail=200', 'kubectl -n shop describe pod web'],
    confidence: 'medium',
    diagnoser: 'rule-hint',
    tokens: { prompt: 0, completion: 0 },
    latencyMs: 0.12,
    evidenceRefs: [0, 1],
  },
});
const status = {
  mode: 'in-cluster',
  nodeName: 'edge-1',
  version: '0.1.0',
  startedAt: at,
  sources: ['kubelet', 'kube-api', 'pod-logs', 'journald', 'kmsg', 'host'].map((name) => ({
    name,
    state: 'healthy',
    signals: 123456,
    lastSignalAt: at,
    lastError: null,
    detail: { backend: 'journalctl', dropped: 0, gaps: 1, restarts: 0 },
  })),
  model: { state: 'none', id: null, reason: 'no model configured: rules-only mode (rule hints instead of LLM explanations)' },
  store: { path: '/var/lib/nodesage/nodesage.db', sizeBytes: 123456789, recoveredFrom: null },
  rulesOnly: true,
};
const one = finding(1);
const page = { items: Array.from({ length: 50 }, (_, i) => finding(i)), nextCursor: 'eyJsYXN0U2VlbiI6IjIwMjYifQ' };

const base = baselineSchemas();
const derivedFinding = contract.responseSchema(contract.FindingSchema);
const derivedPage = contract.responseSchema(contract.FindingPageSchema);
const cases: { name: string; baseline: [string, () => string]; derived: [string, () => string]; n: number }[] = [
  { name: 'finding (GET /v1/findings/:id)', baseline: ['hand-written schema', fjs(base.finding).bind(null, one)], derived: ['derived schema', fjs(derivedFinding).bind(null, one)], n: 20_000 },
  {
    name: 'page of 50 findings (GET /v1/findings)',
    baseline: ['hand-written schema', () => JSON.stringify(projectToSchema(page, base.page))],
    derived: ['derived schema', () => JSON.stringify(projectToSchema(page, derivedPage))],
    n: 1_000,
  },
  { name: 'status, 6 sources (GET /v1/status)', baseline: ['no schema (JSON.stringify)', () => JSON.stringify(status)], derived: ['derived schema', fjs(contract.responseSchema(contract.StatusSchema)).bind(null, status)], n: 20_000 },
];

function perCall(fn: () => string, n: number): number {
  for (let i = 0; i < n / 10; i++) fn();
  const t = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - t) * 1000) / n;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const rows: string[] = [];
const ratios: number[] = [];
for (const c of cases) {
  const b: number[] = [];
  const d: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // Interleaved, alternating which goes first, so load on the machine hits both alike.
    if (r % 2 === 0) {
      b.push(perCall(c.baseline[1], c.n));
      d.push(perCall(c.derived[1], c.n));
    } else {
      d.push(perCall(c.derived[1], c.n));
      b.push(perCall(c.baseline[1], c.n));
    }
  }
  const ratio = median(d) / median(b);
  ratios.push(ratio);
  rows.push(
    `| ${c.name} | ${c.baseline[0]} | ${median(b).toFixed(2)} (${Math.min(...b).toFixed(2)}–${Math.max(...b).toFixed(2)}) | ${median(d).toFixed(2)} (${Math.min(...d).toFixed(2)}–${Math.max(...d).toFixed(2)}) | ${ratio.toFixed(2)} |`,
  );
}

const bytes = (c: (typeof cases)[number]) => c.derived[1]().length === c.baseline[1]().length;
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const md = `## Response serialisation with the contract's schemas (test/bench/serialize.ts)

\`node test/bench/serialize.ts --rounds ${rounds}\` — ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} × ${cpu}, Node ${process.version}, load average ${os
  .loadavg()
  .map((l) => l.toFixed(2))
  .join(', ')} at the end.

µs per body, median of ${rounds} interleaved rounds (min–max); ratio = derived ÷ baseline (below 1 is faster).

| body | baseline | baseline µs | derived µs | ratio |
|---|---|---|---|---|
${rows.join('\n')}

Same body length as the baseline: ${cases.map((c) => `${c.name.split(' (')[0]} ${bytes(c) ? 'yes' : 'no'}`).join(', ')} (the finding's keys come out required-first with fast-json-stringify, the same set of keys).
Deriving all ${all.length} response schemas once at start (\`z.toJSONSchema\`, cold): ${deriveMs.toFixed(1)} ms.

**What this means:** the derived schemas serialise a finding and a page at the speed of the hand-written ones they replaced. The status route had no schema before; with one it drops undeclared fields, at a cost of about ${((ratios[2] ?? 1) * 100 - 100).toFixed(0)}% of a few µs per body, almost all of it the sources' open \`detail\` records, which fast-json-stringify hands to JSON.stringify one by one.
`;
process.stdout.write(md);
if (args.write) writeResultsSection(join(HERE, 'RESULTS.md'), 'serialize', md);
