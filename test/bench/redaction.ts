/**
 * Redaction throughput: the redactor runs on every log line as it arrives,
 * so its cost per line matters. Measures lines/s of the current redactor and
 * of the one before the families of issue 10 were added (daemon/redact.ts at
 * BASELINE_COMMIT, read with git), interleaved in one run over the same
 * realistic mix, and, for scale, the template miner's lines/s on that mix.
 *
 *   npm run build && node test/bench/redaction.ts [--rounds N] [--write]
 *
 * Prints a markdown section; `--write` also puts it in test/bench/RESULTS.md
 * (between its `bench:redaction` markers). `npm run bench` runs it too.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadLookAlikes, loadPositives } from '../helpers/redaction-corpus.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
/** The last commit before the redaction families of issue 10 (the baseline redactor). */
const BASELINE_COMMIT = 'b78021a';

type Redactor = (text: string) => string;

/** A seeded PRNG (mulberry32), so every run measures the same lines. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Lines in the shapes a node logs, with 3% corpus secrets and 4% look-alikes. */
function mix(n: number): string[] {
  const r = rng(7);
  const int = (k: number) => Math.floor(r() * k);
  const hex = (k: number) => Array.from({ length: k }, () => '0123456789abcdef'[int(16)]).join('');
  const positives = loadPositives().filter((p) => p.source === 'pod').map((p) => p.line);
  const lookAlikes = loadLookAlikes().map((l) => l.line);
  const shapes: [number, () => string][] = [
    [35, () => `I1206 08:14:${String(int(60)).padStart(2, '0')}.${int(999999)}    1733 kubelet.go:2440] "SyncLoop (PLEG): event for pod" pod="shop/checkout-6f9c7d8b5-${hex(5)}" event={"ID":"${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}","Type":"ContainerStarted","Data":"${hex(64)}"}`],
    [20, () => `{"level":"info","ts":"2026-12-06T08:14:03.${int(999)}Z","msg":"request served","method":"GET","path":"/api/v1/cart/${int(100000)}","status":200,"duration_ms":${int(300)},"trace_id":"${hex(32)}"}`],
    [15, () => `time="2026-12-06T08:14:03.${int(999999999)}Z" level=info msg="StartContainer for \\"${hex(64)}\\" returns successfully"`],
    [10, () => `10.0.${int(255)}.${int(255)} - - [06/Dec/2026:08:14:03 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.31"`],
    [8, () => `    at com.acme.orders.OrderService.place(OrderService.java:${int(900)})`],
    [5, () => `level=error msg="dial tcp 10.0.${int(255)}.${int(255)}:5432: connect: connection refused" component=db-pool attempt=${int(9)}`],
    [4, () => lookAlikes[int(lookAlikes.length)]!],
    [3, () => positives[int(positives.length)]!],
  ];
  const total = shapes.reduce((s, [w]) => s + w, 0);
  return Array.from({ length: n }, () => {
    let x = r() * total;
    for (const [w, make] of shapes) {
      x -= w;
      if (x < 0) return make();
    }
    return shapes[0]![1]();
  });
}

/** The baseline redactor: daemon/redact.ts at BASELINE_COMMIT, written to a temp file and imported. */
async function baseline(): Promise<Redactor> {
  const source = execFileSync('git', ['show', `${BASELINE_COMMIT}:daemon/redact.ts`], { cwd: ROOT, encoding: 'utf8' });
  const file = join(mkdtempSync(join(os.tmpdir(), 'nodesage-bench-redact-')), 'redact-baseline.ts');
  writeFileSync(file, source);
  const mod = (await import(pathToFileURL(file).href)) as { createRedactor: () => Redactor };
  return mod.createRedactor();
}

/** CPU milliseconds (user + system) of one call: on a shared machine, time spent descheduled is not counted. */
function timeIt(fn: () => void): number {
  const t = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, lines: { type: 'string', default: '40000' }, write: { type: 'boolean', default: false } } });
const rounds = Number(values.rounds);
const lines = mix(Number(values.lines));
const current = ((await import(pathToFileURL(join(ROOT, 'dist/daemon/redact.js')).href)) as { createRedactor: () => Redactor }).createRedactor();
const { TemplateStats } = (await import(pathToFileURL(join(ROOT, 'dist/daemon/detectors/templates/stats.js')).href)) as typeof import('../../daemon/detectors/templates/stats.ts');
const old = await baseline();
const load = os.loadavg()[0]!;

let sink = 0;
const run = (r: Redactor) => () => {
  for (const l of lines) sink += r(l).length;
};
const mine = () => {
  const stats = new TemplateStats();
  for (const l of lines) stats.observe({ source: 'podLog', at: '2026-12-06T08:14:03.000Z', text: l, container: { namespace: 'shop', pod: 'checkout', uid: 'u', container: 'app' } });
};
// Warm up both (JIT), then interleave: odd rounds run the baseline first.
run(old)();
run(current)();
const oldMs: number[] = [];
const newMs: number[] = [];
const mineMs: number[] = [];
for (let i = 0; i < rounds; i++) {
  if (i % 2) {
    oldMs.push(timeIt(run(old)));
    newMs.push(timeIt(run(current)));
  } else {
    newMs.push(timeIt(run(current)));
    oldMs.push(timeIt(run(old)));
  }
  mineMs.push(timeIt(mine));
}
const perSec = (ms: number) => Math.round((lines.length / ms) * 1000);
const oldRate = perSec(median(oldMs));
const newRate = perSec(median(newMs));
const mineRate = perSec(median(mineMs));
// Each round runs both on the same lines back to back: the median of the per-round ratios is the result.
const ratios = oldMs.map((o, i) => o / newMs[i]!);
const ratio = median(ratios);
const changed = lines.filter((l) => current(l) !== l).length;
const fmt = (n: number) => n.toLocaleString('en-US');

const section = `## Redaction throughput (test/bench/redaction.ts)

\`node test/bench/redaction.ts --rounds ${rounds}\` — ${new Date().toUTCString()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}, load average ${load.toFixed(2)} at its start (the machine is shared).

${fmt(lines.length)} lines in the shapes a node logs (kubelet klog 35%, app JSON 20%, containerd logfmt 15%, access logs 10%, Java frames 8%, Go errors 5%, look-alikes of test/fixtures/redaction 4%, its positives 3%); ${fmt(changed)} of them carry a secret. CPU time (user + system) per pass, ${rounds} interleaved rounds; lines/s from the median pass, the ratio is the median of the per-round ratios.

| redactor | lines/s | |
|---|---|---|
| before issue 10 (daemon/redact.ts at ${BASELINE_COMMIT}: 19 rules) | ${fmt(oldRate)} | baseline |
| now (62 kinds in the corpus, one pre-filter per line) | ${fmt(newRate)} | **${ratio.toFixed(2)}×** (per-round ratios ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}) |
| for scale: template mining (TemplateStats.observe) on the same lines | ${fmt(mineRate)} | redaction costs ${((mineRate / newRate) * 100).toFixed(0)}% of mining's time per line |

**What this means:** every line now passes the redactor as it arrives (before, only evidence and template examples did). The
pre-filter (one regular expression of every rule's trigger words) lets most lines through without running any rule.
`;

console.log(section);
console.log(`RATIO ${ratio.toFixed(3)} new ${newRate} old ${oldRate} mining ${mineRate} sink ${sink % 7}`);
if (values.write) {
  const path = join(HERE, 'RESULTS.md');
  const text = readFileSync(path, 'utf8');
  const block = `<!-- bench:redaction:start -->\n${section.trimEnd()}\n<!-- bench:redaction:end -->`;
  const re = /<!-- bench:redaction:start -->[\s\S]*?<!-- bench:redaction:end -->/;
  writeFileSync(path, re.test(text) ? text.replace(re, block) : `${text.trimEnd()}\n\n${block}\n`);
}
