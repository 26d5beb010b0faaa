/**
 * `npm run bench`: runs every benchmark in sequence and writes
 * test/bench/RESULTS.md.
 *
 *   npm run bench [-- --loghub DIR] [--skip llm,cri,loghub] [--cri-runs N] [--out FILE]
 *
 * - llm (test/bench/llm.ts): engine vs plain node-llama-cpp throughput, the
 *   grammar's cost, finding → stored diagnosis cold and warm, prefix-cache
 *   reuse, RSS with mmap off and on. Generates the `realistic` model once into
 *   node_modules/.cache/nodesage-bench-models/.
 * - cri (test/bench/cri.ts): CRI log reading throughput vs readline.
 * - loghub (test/bench/loghub.ts): template mining accuracy and throughput on
 *   the Loghub 2k samples; only with `--loghub DIR` (the data is not in the repository).
 *
 * A skipped or unavailable benchmark keeps its section from the previous
 * RESULTS.md. Takes about 10 minutes on 2 cores.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runLlmBenchmarks } from './llm.ts';
import { renderLlm } from './llm-report.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');

const { values } = parseArgs({
  options: {
    loghub: { type: 'string' },
    skip: { type: 'string', default: '' },
    'cri-runs': { type: 'string', default: '3' },
    out: { type: 'string', default: join(HERE, 'RESULTS.md') },
  },
});
const skip = new Set(
  values.skip
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
for (const s of skip) if (!['llm', 'cri', 'loghub'].includes(s)) throw new Error(`--skip: unknown benchmark ${s} (llm, cri, loghub)`);
const OUT = resolve(values.out);

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return 'n/a';
  }
}

// ---------------------------------------------------------------------------
// Machine and load.

const loadSamples: number[] = [];
const sampler = setInterval(() => loadSamples.push(os.loadavg()[0] ?? 0), 5_000);
sampler.unref();
loadSamples.push(os.loadavg()[0] ?? 0);

function cpuModel(): string {
  const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return m?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
}

function cgroupCpu(): string {
  try {
    return readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim();
  } catch {
    return 'no cgroup v2 cpu.max';
  }
}

const nlcVersion = (JSON.parse(readFileSync(join(ROOT, 'node_modules/node-llama-cpp/package.json'), 'utf8')) as { version: string }).version;
const startedAt = sh('date', []);
const started = performance.now();

// ---------------------------------------------------------------------------
// Sections of the previous RESULTS.md, kept when a benchmark is skipped.

const previous = existsSync(OUT) ? readFileSync(OUT, 'utf8') : '';
function previousSection(name: string): string | null {
  const m = new RegExp(`<!-- bench:${name}:start -->\\n([\\s\\S]*?)<!-- bench:${name}:end -->`).exec(previous);
  return m ? (m[1] as string) : null;
}
function section(name: string, body: string): string {
  return `<!-- bench:${name}:start -->\n${body.trimEnd()}\n<!-- bench:${name}:end -->`;
}

/** A results file written by another benchmark, its headings moved two levels down. */
function embedded(file: string): string {
  const path = join(HERE, file);
  if (!existsSync(path)) return `(\`test/bench/${file}\` not found)`;
  return readFileSync(path, 'utf8')
    .trim()
    .replace(/^(#{1,4}) /gm, (_m, h: string) => `${h}## `);
}

function runScript(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; ms: number }> {
  return new Promise((res) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      stdout += d;
      process.stderr.write(d);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, ms: performance.now() - t0 });
    });
  });
}

// ---------------------------------------------------------------------------

const summary: string[] = [];
const sections: Record<string, string> = {};

if (!skip.has('llm')) {
  log('LLM benchmarks (test/bench/llm.ts)');
  const load0 = os.loadavg();
  const t0 = performance.now();
  const r = await runLlmBenchmarks();
  const { markdown, summary: s } = renderLlm(r);
  summary.push(...s);
  sections.llm = `## LLM: engine throughput, diagnosis latency, prefix cache, memory\n\n\`node test/bench/llm.ts\` — ${startedAt}; ${((performance.now() - t0) / 60_000).toFixed(1)} min; load average ${load0.map((l) => l.toFixed(2)).join(', ')} at its start.\n\n${markdown}`;
}

if (!skip.has('cri')) {
  log('CRI reading benchmark (test/bench/cri.ts)');
  const load0 = os.loadavg();
  const runs = Number(values['cri-runs']);
  const r = await runScript(['test/bench/cri.ts', '--runs', String(runs)], 900_000);
  const lines = r.stdout.split('\n');
  const table = lines.filter((l) => l.startsWith('|')).join('\n');
  const ratio = lines.find((l) => l.startsWith('ratio ')) ?? '';
  const fixture = lines.find((l) => l.startsWith('fixture:')) ?? '';
  const runLines = lines.filter((l) => /^run \d+/.test(l));
  const ratioM = /CriReader\/readline = ([\d.]+) wall, ([\d.]+) CPU/.exec(ratio);
  if (ratioM) summary.push(`| CRI reading: CriReader ÷ bare readline | wall ${ratioM[1]}, CPU ${ratioM[2]} | | ≥ 0.5 | ${Number(ratioM[1]) >= 0.5 ? 'met' : 'not met'} |`);
  sections.cri =
    r.code === 0
      ? `## CRI log reading (test/bench/cri.ts)\n\n\`node test/bench/cri.ts --runs ${runs}\` — this run, ${(r.ms / 1000).toFixed(0)} s; load average ${load0.map((l) => l.toFixed(2)).join(', ')} at its start.\n\n` +
        `${fixture.replace(/ → .*$/, '')}, best of ${runs} runs.\n\n${table}\n\n${ratio}.\n\nEach run (wall/CPU ms):\n\n\`\`\`\n${runLines.join('\n')}\n\`\`\`\n\n` +
        '**What this means:** the pod-log path reads CRI files about as fast as `readline` can only split them into lines; ' +
        'CPU time is the steadier figure on a loaded machine.\n\n' +
        `### Description and an earlier run (test/bench/RESULTS-cri.md, written by \`cri.ts --write\`)\n\n${embedded('RESULTS-cri.md')}`
      : `## CRI log reading (test/bench/cri.ts)\n\nFailed in this run (exit ${r.code}); run it alone: \`npm run build && node test/bench/cri.ts\`.\n\n${embedded('RESULTS-cri.md')}`;
}

if (!skip.has('loghub') && values.loghub) {
  const dir = resolve(values.loghub);
  log(`Loghub template mining (test/bench/loghub.ts ${dir})`);
  const load0 = os.loadavg();
  const r = await runScript(['test/bench/loghub.ts', dir], 600_000);
  const avg = /^average\s+([\d.]+)\s+([\d.]+)/m.exec(r.stdout);
  const thr = /^throughput: ([\d,]+) lines\/s.*?median pass ([\d,]+) lines\/s.*?([\d,]+) lines per CPU-second/m.exec(r.stdout);
  if (avg) summary.push(`| Loghub 2k: template mining grouping accuracy (average of ${r.stdout.split('\n').filter((l) => /^\S+\s+\d+\s+\d+\s+\d+\s+[\d.]+/.test(l)).length} datasets) | ${avg[1]} | | | |`);
  if (thr) summary.push(`| Loghub: template mining throughput | ${thr[1]} lines/s wall, ${thr[3]} lines per CPU-s | | | |`);
  sections.loghub =
    r.code === 0
      ? `## Log template mining on Loghub 2k samples (test/bench/loghub.ts)\n\n\`node test/bench/loghub.ts ${values.loghub}\` — this run, ${(r.ms / 1000).toFixed(0)} s; load average ${load0.map((l) => l.toFixed(2)).join(', ')} at its start.\n\n` +
        `\`\`\`\n${r.stdout.trim()}\n\`\`\`\n\n` +
        '**What this means:** grouping accuracy is deterministic (same numbers every run); throughput is wall clock on a shared machine, the per-CPU-second figure is steadier.\n\n' +
        `### Method, results and notes (test/bench/RESULTS-loghub.md)\n\n${embedded('RESULTS-loghub.md')}`
      : `## Log template mining on Loghub 2k samples (test/bench/loghub.ts)\n\nFailed in this run (exit ${r.code}).\n\n${embedded('RESULTS-loghub.md')}`;
}
if (!sections.loghub && !previousSection('loghub')) {
  sections.loghub =
    '## Log template mining on Loghub 2k samples (test/bench/loghub.ts)\n\n' +
    'Not run: the data is not in this repository. Run `npm run bench -- --loghub DIR` (DIR holds `<D>/<D>_2k.log_structured.csv` folders), ' +
    `or alone: \`npm run bench:loghub -- DIR\`.\n\n${embedded('RESULTS-loghub.md')}`;
}

// ---------------------------------------------------------------------------

clearInterval(sampler);
loadSamples.push(os.loadavg()[0] ?? 0);
const totalMin = (performance.now() - started) / 60_000;
const mean = loadSamples.reduce((a, b) => a + b, 0) / loadSamples.length;
const memGiB = os.totalmem() / 2 ** 30;

const header = `# nodesage benchmarks

Written by \`npm run bench\` (test/bench/run.ts); re-run with \`npm run bench -- --loghub ../shared/data/loghub\`
(\`--skip llm,cri,loghub\` leaves a section as it was). LLM numbers are ratios measured in one run with
interleaved calls wherever two things are compared; absolute times are labelled and depend on the load below.

## Machine and run

| | |
|---|---|
| date | ${startedAt} |
| CPU | ${os.availableParallelism()} cores (nproc ${sh('nproc', [])}), ${cpuModel()} |
| RAM | ${memGiB.toFixed(1)} GiB |
| cgroup CPU quota | ${cgroupCpu()} |
| OS | ${os.type()} ${os.release()} |
| Node | ${process.version} |
| node-llama-cpp | ${nlcVersion} (prebuilt CPU binary, no GPU) |
| load average (1 min) during the run | mean ${mean.toFixed(2)}, min ${Math.min(...loadSamples).toFixed(2)}, max ${Math.max(...loadSamples).toFixed(2)} (sampled every 5 s); \`uptime\` at the end: ${sh('uptime', [])} |
| total time | ${totalMin.toFixed(1)} min |

Other engineers' builds and tests ran on the same 2 cores during the run: the load average above is what
the benchmarks competed with.
`;

const summaryBlock = summary.length
  ? `## Summary of this run\n\n| measure | value | ratio | target | |\n|---|---|---|---|---|\n${summary.join('\n')}\n`
  : '## Summary of this run\n\nNo benchmark ran.\n';

const body = ['llm', 'cri', 'loghub']
  .map((name) => {
    const s = sections[name];
    if (s) return section(name, s);
    const prev = previousSection(name);
    return prev ? section(name, `${prev.trimEnd()}\n\n(Kept from an earlier run: skipped this time.)`.replace(/(\n\n\(Kept from an earlier run: skipped this time\.\))+$/, '\n\n(Kept from an earlier run: skipped this time.)')) : '';
  })
  .filter(Boolean)
  .join('\n\n');

writeFileSync(OUT, `${header}\n${summaryBlock}\n${body}\n`);
log(`wrote ${OUT} in ${totalMin.toFixed(1)} min`);
