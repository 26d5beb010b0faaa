/**
 * `npm run bench`: runs every benchmark in sequence and writes
 * test/bench/RESULTS.md.
 *
 *   npm run bench [-- --loghub DIR] [--skip llm,cri,loghub,redaction,history,footprint] [--cri-runs N] [--history-baseline DIR] [--out FILE]
 *   node test/bench/run.ts --from FILE     render a saved run again, measuring nothing
 *
 * - llm (test/bench/llm.ts): engine vs plain node-llama-cpp throughput, the
 *   grammar's cost, finding → stored diagnosis cold and warm, prefix-cache
 *   reuse, 1 vs 2 threads, RSS with mmap off and on. Generates the `realistic`
 *   model once into node_modules/.cache/nodesage-bench-models/.
 * - cri (test/bench/cri.ts): CRI log reading throughput vs readline.
 * - redaction (test/bench/redaction.ts): redactor lines/s vs the redactor before issue 10.
 * - loghub (test/bench/template-mining.ts): template mining accuracy and throughput on
 *   the Loghub 2k samples; only with `--loghub DIR` (the data is not in the repository).
 * - history (test/bench/history.ts): every read route with 100,000 findings in the store
 *   at a fixed 500 req/s, event-loop delay, RSS, commit rate; `--history-baseline DIR`
 *   measures another checkout's build (its own dist/) in the same run for a before/after ratio.
 * - footprint (test/bench/footprint.ts): the daemon's idle RSS and CPU in host and cluster
 *   mode against bare Node with the same imports, then RSS under a steady log load and a flood.
 *
 * A skipped or unavailable benchmark keeps its section from the previous
 * RESULTS.md. Everything measured is also saved as JSON to
 * node_modules/.cache/nodesage-bench-models/last-run.json (not committed),
 * which `--from` renders again. Takes 10-15 minutes on 2 cores, more when
 * other work shares them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BENCH_MODEL_CACHE } from './bench-model.ts';
import { type LlmResults, runLlmBenchmarks } from './llm.ts';
import { renderLlm } from './llm-report.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const LAST_RUN = join(BENCH_MODEL_CACHE, 'last-run.json');

/** Output of a script run by the runner. */
interface ScriptRun {
  args: string[];
  code: number | null;
  stdout: string;
  ms: number;
  load: number[];
}

/** Everything one `npm run bench` measured; RESULTS.md is rendered from it. */
interface RunRecord {
  startedAt: string;
  machine: { cores: number; nproc: string; cpu: string; ramBytes: number; cgroupCpu: string; os: string; node: string; nodeLlamaCpp: string };
  llm?: { results: LlmResults; minutes: number; load: number[] };
  cri?: ScriptRun & { runs: number };
  loghub?: ScriptRun & { dir: string };
  redaction?: ScriptRun;
  history?: ScriptRun;
  footprint?: ScriptRun;
  loadSamples: number[];
  uptimeAtEnd: string;
  totalMinutes: number;
}

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

function cpuModel(): string {
  const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return m?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
}

function cgroupCpu(): string {
  try {
    return readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim();
  } catch {
    return 'none (no /sys/fs/cgroup/cpu.max)';
  }
}

function runScript(args: string[], timeoutMs: number): Promise<ScriptRun> {
  return new Promise((res) => {
    const load = os.loadavg();
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
      res({ args, code, stdout, ms: performance.now() - t0, load });
    });
  });
}

// ---------------------------------------------------------------------------
// Measuring.

async function measure(opts: { skip: Set<string>; loghub?: string; criRuns: number; historyBaseline?: string }): Promise<RunRecord> {
  const loadSamples: number[] = [os.loadavg()[0] ?? 0];
  const sampler = setInterval(() => loadSamples.push(os.loadavg()[0] ?? 0), 5_000);
  sampler.unref();
  const started = performance.now();
  const record: RunRecord = {
    startedAt: sh('date', []),
    machine: {
      cores: os.availableParallelism(),
      nproc: sh('nproc', []),
      cpu: cpuModel(),
      ramBytes: os.totalmem(),
      cgroupCpu: cgroupCpu(),
      os: `${os.type()} ${os.release()}`,
      node: process.version,
      nodeLlamaCpp: (JSON.parse(readFileSync(join(ROOT, 'node_modules/node-llama-cpp/package.json'), 'utf8')) as { version: string }).version,
    },
    loadSamples,
    uptimeAtEnd: '',
    totalMinutes: 0,
  };
  if (!opts.skip.has('llm')) {
    log('LLM benchmarks (test/bench/llm.ts)');
    const load = os.loadavg();
    const t0 = performance.now();
    const results = await runLlmBenchmarks();
    record.llm = { results, minutes: (performance.now() - t0) / 60_000, load };
  }
  if (!opts.skip.has('cri')) {
    log('CRI reading benchmark (test/bench/cri.ts)');
    record.cri = { ...(await runScript(['test/bench/cri.ts', '--runs', String(opts.criRuns)], 900_000)), runs: opts.criRuns };
  }
  if (!opts.skip.has('loghub') && opts.loghub) {
    const dir = resolve(opts.loghub);
    log(`Loghub template mining (test/bench/template-mining.ts ${dir})`);
    record.loghub = { ...(await runScript(['test/bench/template-mining.ts', dir], 600_000)), dir: opts.loghub };
  }
  if (!opts.skip.has('redaction')) {
    log('Redaction throughput (test/bench/redaction.ts)');
    record.redaction = await runScript(['test/bench/redaction.ts'], 600_000);
  }
  if (!opts.skip.has('history')) {
    log('History at scale (test/bench/history.ts)');
    const args = ['test/bench/history.ts', ...(opts.historyBaseline ? ['--baseline', resolve(opts.historyBaseline)] : [])];
    record.history = await runScript(args, 1_800_000);
  }
  if (!opts.skip.has('footprint')) {
    log('Footprint (test/bench/footprint.ts)');
    record.footprint = await runScript(['test/bench/footprint.ts'], 900_000);
  }
  clearInterval(sampler);
  loadSamples.push(os.loadavg()[0] ?? 0);
  record.uptimeAtEnd = sh('uptime', []);
  record.totalMinutes = (performance.now() - started) / 60_000;
  return record;
}

// ---------------------------------------------------------------------------
// Rendering.

function previousSection(previous: string, name: string): string | null {
  const m = new RegExp(`<!-- bench:${name}:start -->\\n([\\s\\S]*?)<!-- bench:${name}:end -->`).exec(previous);
  return m ? (m[1] as string) : null;
}

function section(name: string, body: string): string {
  return `<!-- bench:${name}:start -->\n${body.trimEnd()}\n<!-- bench:${name}:end -->`;
}

/** A results file written by another benchmark, its headings moved two levels down, with a line naming it. */
function embedded(file: string, what: string): string {
  const path = join(HERE, file);
  if (!existsSync(path)) return `(\`test/bench/${file}\` not found)`;
  const text = readFileSync(path, 'utf8')
    .trim()
    .replace(/^(#{1,4}) /gm, (_m, h: string) => `${h}## `);
  return `The rest of this section is \`test/bench/${file}\` as its author wrote it (${what}):\n\n${text}`;
}

const loads = (l: number[]) => l.map((x) => x.toFixed(2)).join(', ');

function render(rec: RunRecord, previous: string): string {
  const summary: string[] = [];
  const sections: Record<string, string> = {};

  if (rec.llm) {
    const { markdown, summary: s } = renderLlm(rec.llm.results);
    summary.push(...s);
    sections.llm =
      '## LLM: engine throughput, diagnosis latency, prefix cache, threads, memory\n\n' +
      `\`node test/bench/llm.ts\` — ${rec.startedAt}; ${rec.llm.minutes.toFixed(1)} min; load average ${loads(rec.llm.load)} at its start.\n\n${markdown}`;
  }

  if (rec.redaction) {
    const r = rec.redaction;
    const m = /^RATIO ([\d.]+)/m.exec(r.stdout);
    if (m) summary.push(`| Redaction: redactor now ÷ before issue 10 (lines/s) | | ${m[1]} | | |`);
    sections.redaction =
      r.code === 0 ? r.stdout.replace(/^RATIO .*$/m, '').trim() : `## Redaction throughput (test/bench/redaction.ts)\n\nFailed in this run (exit ${r.code}); run it alone: \`npm run build && node test/bench/redaction.ts\`.`;
  }
  if (rec.cri) {
    const r = rec.cri;
    const lines = r.stdout.split('\n');
    const table = lines.filter((l) => l.startsWith('|')).join('\n');
    const ratio = lines.find((l) => l.startsWith('ratio ')) ?? '';
    const fixture = (lines.find((l) => l.startsWith('fixture:')) ?? '').replace(/ → .*$/, '');
    const runLines = lines.filter((l) => /^run \d+/.test(l));
    const m = /CriReader\/readline = ([\d.]+) wall, ([\d.]+) CPU/.exec(ratio);
    if (m) summary.push(`| CRI reading: CriReader ÷ bare readline (lines/s) | | wall ${m[1]}, CPU ${m[2]} | ≥ 0.5 | ${Number(m[1]) >= 0.5 ? 'met' : 'not met'} |`);
    sections.cri =
      r.code === 0
        ? '## CRI log reading (test/bench/cri.ts)\n\n' +
          `\`node test/bench/cri.ts --runs ${r.runs}\` — this run, ${(r.ms / 1000).toFixed(0)} s; load average ${loads(r.load)} at its start.\n\n` +
          `${fixture}; best of ${r.runs} runs.\n\n${table}\n\n${ratio}.\n\nEach run (wall/CPU ms):\n\n\`\`\`\n${runLines.join('\n')}\n\`\`\`\n\n` +
          `**What this means:** the pod-log collector's reader turns CRI files into \`LogLine\`s at ${m ? `${m[1]}× (wall) and ${m[2]}× (CPU)` : 'a fraction of'} the speed of a \`readline\` loop that only splits them into lines; ` +
          'the CPU-time ratio is the steadier figure on a shared machine.\n\n' +
          embedded('RESULTS-cri.md', 'an earlier run with `cri.ts --write`, and what each reader does')
        : `## CRI log reading (test/bench/cri.ts)\n\nFailed in this run (exit ${r.code}); run it alone: \`npm run build && node test/bench/cri.ts\`.\n\n${embedded('RESULTS-cri.md', 'an earlier run')}`;
  }

  if (rec.loghub) {
    const r = rec.loghub;
    const avg = /^average\s+([\d.]+)\s+([\d.]+)/m.exec(r.stdout);
    const thr = /^throughput: ([\d,]+) lines\/s.*?median pass ([\d,]+) lines\/s.*?([\d,]+) lines per CPU-second/m.exec(r.stdout);
    const datasets = r.stdout.split('\n').filter((l) => /^\S+\s+\d+\s+\d+\s+\d+\s+[\d.]+/.test(l)).length;
    if (avg) summary.push(`| Loghub 2k: template mining grouping accuracy, average of ${datasets} datasets | ${avg[1]} | | | |`);
    if (thr) summary.push(`| Loghub: template mining throughput (absolute) | ${thr[1]} lines/s wall, ${thr[3]} lines per CPU-s | | | |`);
    sections.loghub =
      r.code === 0
        ? '## Log template mining on Loghub 2k samples (test/bench/template-mining.ts)\n\n' +
          `\`node test/bench/template-mining.ts ${r.dir}\` — this run, ${(r.ms / 1000).toFixed(0)} s; load average ${loads(r.load)} at its start.\n\n` +
          `\`\`\`\n${r.stdout.trim()}\n\`\`\`\n\n` +
          '**What this means:** grouping accuracy is deterministic (the same every run); throughput is wall clock on a shared machine, the per-CPU-second figure is steadier.\n\n' +
          embedded('RESULTS-template-mining.md', 'the method, what changed the accuracy, and earlier throughput runs')
        : `## Log template mining on Loghub 2k samples (test/bench/template-mining.ts)\n\nFailed in this run (exit ${r.code}).\n\n${embedded('RESULTS-template-mining.md', 'an earlier run')}`;
  } else if (!previousSection(previous, 'loghub')) {
    sections.loghub =
      '## Log template mining on Loghub 2k samples (test/bench/template-mining.ts)\n\n' +
      'Not run: the data is not in this repository. Run `npm run bench -- --loghub DIR` (DIR holds `<D>/<D>_2k.log_structured.csv` folders), ' +
      `or alone: \`npm run bench:loghub -- DIR\`.\n\n${embedded('RESULTS-template-mining.md', 'an earlier run')}`;
  }

  if (rec.history) {
    const r = rec.history;
    // The script prints its own section; its summary rows are the ones with a target.
    sections.history =
      r.code === 0
        ? r.stdout
        : `## History at scale (test/bench/history.ts)\n\nFailed in this run (exit ${r.code}); run it alone: \`npm run bench:history\`.\n`;
    for (const line of r.stdout.split('\n')) {
      const m = /^\| (event-loop delay p99, worst route|RSS \d+ s after the last route) \|.*\| (≤[^|]+) \| (met|\*\*not met\*\*) \|$/.exec(line);
      if (m) summary.push(`| History at scale: ${m[1]} | ${line.split('|').slice(-4, -3)[0]!.trim()} | | ${m[2]!.trim()} | ${m[3]} |`);
    }
  }

  if (rec.footprint) {
    const r = rec.footprint;
    sections.footprint =
      r.code === 0 ? r.stdout : `## Footprint (test/bench/footprint.ts)\n\nFailed in this run (exit ${r.code}); run it alone: \`npm run bench:footprint\`.\n`;
    // Its rows with a target: the idle daemons and the steady log load.
    for (const line of r.stdout.split('\n')) {
      const cells = line.split('|').map((c) => c.trim());
      if (/^(daemon, |steady, )/.test(cells[1] ?? '') && /met/.test(cells.at(-2) ?? '')) {
        const value = cells[1]!.startsWith('steady') ? `RSS max ${cells[5]} MiB` : `RSS ${cells[2]} MiB, ${cells[4]} millicores`;
        summary.push(`| Footprint: ${cells[1]} | ${value} | ${cells.at(-4)} | ${cells.at(-3)} | ${cells.at(-2)} |`);
      }
    }
  }

  const m = rec.machine;
  const ls = rec.loadSamples;
  const header = `# nodesage benchmarks

Written by \`npm run bench\` (test/bench/run.ts); re-run with \`npm run bench -- --loghub ../shared/data/loghub\`
(\`-- --skip llm,cri,loghub,redaction,history,footprint\` leaves a section as it was). Where two things are compared, the calls are interleaved
in one run and the ratio is the result; absolute times are labelled as such and depend on the load below.

## Machine and run

| | |
|---|---|
| date | ${rec.startedAt} |
| CPU | ${m.cores} cores (nproc ${m.nproc}), ${m.cpu} |
| RAM | ${(m.ramBytes / 2 ** 30).toFixed(1)} GiB |
| cgroup CPU quota | ${m.cgroupCpu} |
| OS | ${m.os} |
| Node | ${m.node} |
| node-llama-cpp | ${m.nodeLlamaCpp} (prebuilt CPU binary, no GPU) |
| load average (1 min) during the run | mean ${(ls.reduce((a, b) => a + b, 0) / ls.length).toFixed(2)}, min ${Math.min(...ls).toFixed(2)}, max ${Math.max(...ls).toFixed(2)} (sampled every 5 s) |
| \`uptime\` at the end | ${rec.uptimeAtEnd} |
| total time | ${rec.totalMinutes.toFixed(1)} min |

The machine is shared: the load average above, whatever its source, is what the benchmarks competed with.
`;

  const summaryBlock = summary.length
    ? `## Summary of this run\n\n| measure | value | ratio | target | |\n|---|---|---|---|---|\n${summary.join('\n')}\n`
    : '## Summary of this run\n\nNo benchmark ran.\n';

  // Sections written by benchmarks `npm run bench` does not run (each says its own command) are kept as they are.
  const standalone = ['llm-memory', 'serialize'];
  const body = ['llm', 'llm-memory', 'cri', 'loghub', 'redaction', 'history', 'footprint', 'serialize']
    .map((name) => {
      if (standalone.includes(name)) {
        const kept = previousSection(previous, name);
        return kept ? section(name, kept) : '';
      }
      const s = sections[name];
      if (s) return section(name, s);
      const prev = previousSection(previous, name);
      if (!prev) return '';
      const note = '(Kept from an earlier run: skipped this time.)';
      return section(name, prev.includes(note) ? prev : `${prev.trimEnd()}\n\n${note}`);
    })
    .filter(Boolean)
    .join('\n\n');

  return `${header}\n${summaryBlock}\n${NOTES}\n${body}\n`;
}

/** What the numbers cannot show; fixed text. */
const NOTES = `## Limits of these measurements

- **Random weights.** The LLM numbers use a generated model: speed and memory are real for its shape
  (Qwen2.5-0.5B-Instruct's, Q8_0), but the text is noise. Random weights never end a sentence, so every
  free-text field of a diagnosis runs to its token cap: the latencies in section 2 are those of the longest
  answer the diagnoser allows (a trained model that ends its sentences sooner is faster), and answer
  quality is not measured at all (\`npm run eval:scenarios\` and a real GGUF do that).
- **Its tokenizer is the real one.** The model carries Qwen2.5's trained BPE tokenizer, so prompt token
  counts are those of the recommended model; only the answers' lengths are not.
- **A shared machine.** Other work can run on the same 2 cores. With 2 llama.cpp threads on 2 cores, a
  competing process can slow a single call by 10×: in an earlier run on this machine (load average 4–6
  from other model tests), 2-thread generation fell from ~9–13 tok/s to 0.3–1 tok/s for
  minutes, and a 1-thread engine generated 8–12 tok/s against 1–6 for the 2-thread one. So single
  measurements vary a lot; the comparisons alternate many short calls and report the median of the
  per-pair ratios, and section 5 shows which thread count won during this run.
- **One run.** Nothing here is averaged over runs; re-running gives other absolute numbers, and the
  ratios move by a few percent.
`;

// ---------------------------------------------------------------------------

const { values } = parseArgs({
  options: {
    loghub: { type: 'string' },
    skip: { type: 'string', default: '' },
    'cri-runs': { type: 'string', default: '3' },
    'history-baseline': { type: 'string' },
    out: { type: 'string', default: join(HERE, 'RESULTS.md') },
    from: { type: 'string' },
  },
});
const skip = new Set(
  values.skip
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
for (const s of skip) if (!['llm', 'cri', 'loghub', 'redaction', 'history', 'footprint'].includes(s)) throw new Error(`--skip: unknown benchmark ${s} (llm, cri, loghub, redaction, history, footprint)`);
const out = resolve(values.out);
const previous = existsSync(out) ? readFileSync(out, 'utf8') : '';

let record: RunRecord;
if (values.from) {
  record = JSON.parse(readFileSync(values.from, 'utf8')) as RunRecord;
} else {
  record = await measure({
    skip,
    criRuns: Number(values['cri-runs']),
    ...(values.loghub ? { loghub: values.loghub } : {}),
    ...(values['history-baseline'] ? { historyBaseline: values['history-baseline'] } : {}),
  });
  mkdirSync(BENCH_MODEL_CACHE, { recursive: true });
  writeFileSync(LAST_RUN, JSON.stringify(record, null, 2));
  log(`raw results: ${LAST_RUN}`);
}
writeFileSync(out, render(record, previous));
log(`wrote ${out}${values.from ? '' : ` in ${record.totalMinutes.toFixed(1)} min`}`);
