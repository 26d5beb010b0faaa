/**
 * What a loaded model really costs in RAM against the daemon's pre-load
 * estimate (daemon/diagnoser/gguf-check.ts estimateMemory), for the generated
 * `tiny`, `realistic` (Qwen2.5-0.5B shape) and `realistic-1.5b` (Qwen2.5-1.5B
 * shape, Q8_0 with tied embeddings, and Q4_K with a separate output matrix)
 * models, each in fresh child processes:
 *
 * - engine: the daemon's `LlmEngine` with the daemon's defaults (CPU, context
 *   4096, its batch size, mmap off). RSS before load, after load, the peak
 *   (VmHWM, reset just before the call) during a ~700-token prompt plus
 *   generation, and the peak during a second prompt that fills the context
 *   to ~3,500 tokens (the compute buffers' touched part could grow with the
 *   number of cached tokens; it is measured, not assumed).
 * - buffers: plain node-llama-cpp with the same context options and
 *   llama.cpp's log on, for the buffer sizes llama.cpp reports (model, KV,
 *   compute, output) and whether flash attention was turned on.
 *
 *   npm run build && node test/bench/llm-memory.ts [--models tiny,realistic,realistic-1.5b,realistic-1.5b-q4k]
 *
 * Prints a JSON result and the markdown table for test/bench/RESULTS.md.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureBenchModel } from './bench-model.ts';
import { procStatus } from './llm.ts';
import type { ModelShape, PresetName } from '../../scripts/make-test-model.ts';

const HERE = fileURLToPath(import.meta.url);
const DIST = new URL('../../dist/daemon/', import.meta.url);
const MiB = 1024 * 1024;

/** The measured models: generator presets, and the 1.5B shape as Q4_K with a separate output matrix like Qwen's own Q4_K_M file. */
export const MEMORY_MODELS: Readonly<Record<string, { preset: PresetName; override?: Partial<ModelShape> }>> = {
  tiny: { preset: 'tiny' },
  realistic: { preset: 'realistic' },
  'realistic-1.5b': { preset: 'realistic-1.5b' },
  'realistic-1.5b-q4k': { preset: 'realistic-1.5b', override: { weightType: 'q4_k', separateOutput: true } },
};

/** The daemon's defaults (daemon/config.ts llm.contextSize; engine-options.ts batch size). */
export const MEMORY_SETTINGS = Object.freeze({ contextSize: 4096, batchSize: 512, threads: 2, firstPromptTokens: 700, longPromptTokens: 3500, maxTokens: 24 });

type Json = Record<string, unknown>;

/** Resets VmHWM to the current RSS (`echo 5 > /proc/self/clear_refs`); throws when not allowed, since the peak would then be wrong. */
export function resetPeakRss(): void {
  writeFileSync('/proc/self/clear_refs', '5');
}

// Kubernetes-flavoured log lines: the prompt is made of them until it has the wanted token count.
const LOG_LINES = [
  'E1206 10:41:07.118 kubelet.go:2412] "Error syncing pod, skipping" err="failed to \\"StartContainer\\" for \\"api\\" with CrashLoopBackOff: back-off 5m0s restarting failed container=api pod=shop/api-7d9f"',
  'W1206 10:41:09.551 reflector.go:535] failed to list *v1.ConfigMap: Get "https://10.96.0.1:443/api/v1/namespaces/shop/configmaps": dial tcp 10.96.0.1:443: i/o timeout',
  'level=error ts=2026-12-06T10:41:12.004Z caller=main.go:211 msg="connection refused" target=postgres.shop.svc:5432 retries=7',
  '[ 8812.551204] Memory cgroup out of memory: Killed process 31337 (java) total-vm:4194304kB, anon-rss:2097152kB, oom_score_adj:985',
  'time="2026-12-06T10:41:15Z" level=warning msg="readiness probe failed: HTTP probe failed with statuscode: 503" pod=checkout-5c8b',
];

/** A user prompt of about `tokens` tokens under `count`. */
async function promptOf(tokens: number, count: (t: string) => Promise<number>): Promise<string> {
  const lines: string[] = [];
  let text = '';
  for (let i = 0; ; i++) {
    lines.push(`${i} ${LOG_LINES[i % LOG_LINES.length]}`);
    if (lines.length % 2 === 0 || i > 10_000) {
      text = lines.join('\n');
      if ((await count(text)) >= tokens) return text;
    }
  }
}

async function childEngine(modelPath: string): Promise<Json> {
  const { LlmEngine } = (await import(new URL('diagnoser/engine.js', DIST).href)) as typeof import('../../daemon/diagnoser/engine.ts');
  const pino = (await import('pino')).default;
  const beforeLoad = procStatus();
  const engine = new LlmEngine({
    modelPath,
    memoryBudgetBytes: 64 * 1024 ** 3,
    contextSize: MEMORY_SETTINGS.contextSize,
    threads: MEMORY_SETTINGS.threads,
    gpu: false,
    idleUnloadMs: 0,
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });
  await engine.load();
  const afterLoad = procStatus();
  const count = (t: string) => engine.countTokens(t);
  const system = 'You are nodesage. Explain the finding in one JSON object.';
  const first = await promptOf(MEMORY_SETTINGS.firstPromptTokens, count);
  resetPeakRss();
  const r1 = await engine.complete({ systemPrompt: system, userPrompt: first, maxTokens: MEMORY_SETTINGS.maxTokens });
  const afterFirst = procStatus();
  const long = await promptOf(MEMORY_SETTINGS.longPromptTokens, count);
  resetPeakRss();
  const r2 = await engine.complete({ systemPrompt: system, userPrompt: long, maxTokens: MEMORY_SETTINGS.maxTokens });
  const afterLong = procStatus();
  await engine.dispose();
  return {
    engineEstimate: engine.status().memory.estimatedBytes,
    beforeLoad,
    afterLoad,
    peakLoad: afterLoad.VmHWM,
    peakFirst: afterFirst.VmHWM,
    peakLong: afterLong.VmHWM,
    firstTokens: r1.tokens,
    longTokens: r2.tokens,
  };
}

/** llama.cpp's `<device> <kind> buffer size = <n> MiB` lines, summed per kind. */
export function parseBufferSizes(lines: readonly string[]): { model: number; kv: number; compute: number; output: number; flashAttention: boolean | null } {
  const sums = { model: 0, kv: 0, compute: 0, output: 0 };
  let flashAttention: boolean | null = null;
  for (const line of lines) {
    const m = /(\S+)\s+(model|KV|compute|output) buffer size =\s+([\d.]+) MiB/.exec(line);
    if (m) sums[m[2] === 'KV' ? 'kv' : (m[2] as 'model' | 'compute' | 'output')] += Number(m[3]) * MiB;
    if (/Flash Attention (was auto, set to )?enabled/i.test(line)) flashAttention = true;
    if (/Flash Attention (was auto, set to )?disabled/i.test(line)) flashAttention = false;
  }
  return { ...sums, flashAttention };
}

async function childBuffers(modelPath: string): Promise<Json> {
  const nlc = await import('node-llama-cpp');
  const lines: string[] = [];
  const llama = await nlc.getLlama({
    gpu: false,
    build: 'never',
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: nlc.LlamaLogLevel.info,
    logger: (_level, message) => lines.push(message),
  });
  const model = await llama.loadModel({ modelPath, useMmap: false, ignoreMemorySafetyChecks: true });
  const context = await model.createContext({ contextSize: MEMORY_SETTINGS.contextSize, batchSize: MEMORY_SETTINGS.batchSize, sequences: 1, ignoreMemorySafetyChecks: true });
  // The log reaches JavaScript through a thread-safe callback: let the last lines arrive.
  await new Promise((r) => setTimeout(r, 200));
  const reported = parseBufferSizes(lines);
  const out = { ...reported, modelSize: model.size };
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  return out;
}

function runChild(args: string[]): Promise<Json> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [HERE, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('@@RESULT '));
      if (code !== 0 || !line) reject(new Error(`child ${args.join(' ')} exited with ${code}: ${out.slice(-2000)}`));
      else resolvePromise(JSON.parse(line.slice('@@RESULT '.length)) as Json);
    });
  });
}

const mib = (b: number) => Math.round(b / MiB).toLocaleString('en-US');

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { child: { type: 'string' }, model: { type: 'string' }, models: { type: 'string', default: Object.keys(MEMORY_MODELS).join(',') }, out: { type: 'string' } } });
  if (values.child) {
    const result = values.child === 'engine' ? await childEngine(values.model!) : await childBuffers(values.model!);
    process.stdout.write(`@@RESULT ${JSON.stringify(result)}\n`);
    return;
  }
  const { inspectGguf, estimateMemory } = (await import(new URL('diagnoser/gguf-check.js', DIST).href)) as typeof import('../../daemon/diagnoser/gguf-check.ts');
  const rows: Json[] = [];
  const started = new Date().toISOString();
  for (const preset of values.models.split(',')) {
    const spec = MEMORY_MODELS[preset];
    if (!spec) throw new Error(`unknown model ${preset} (${Object.keys(MEMORY_MODELS).join(', ')})`);
    const m = ensureBenchModel(spec.preset, spec.override);
    const load = loadavg()[0];
    const engine = await runChild(['--child', 'engine', '--model', m.path]);
    const buffers = await runChild(['--child', 'buffers', '--model', m.path]);
    const estimate = estimateMemory(await inspectGguf(m.path), MEMORY_SETTINGS.contextSize, MEMORY_SETTINGS.batchSize);
    rows.push({ preset, path: m.path, bytes: m.bytes, load1: load, estimate, engine, buffers });
    process.stderr.write(`[llm-memory] ${preset} done\n`);
  }
  const result = { started, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadEnd: loadavg()[0], rows };
  if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 1));
  console.log(JSON.stringify(result, null, 1));
  console.log();
  console.log('| model | file | before load | model cost after load | peak, ~700-token prompt | peak, ~3,500 tokens | estimate | estimate ÷ peak |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const est = r.estimate as { totalBytes: number };
    const e = r.engine as { beforeLoad: { VmRSS: number }; afterLoad: { VmRSS: number }; peakFirst: number; peakLong: number };
    const base = e.beforeLoad.VmRSS;
    const peak = Math.max(e.peakFirst, e.peakLong) - base;
    console.log(
      `| ${String(r.preset)} | ${mib(r.bytes as number)} MiB | ${mib(base)} MiB | ${mib(e.afterLoad.VmRSS - base)} MiB | ${mib(e.peakFirst - base)} MiB | ${mib(e.peakLong - base)} MiB | ${mib(est.totalBytes)} MiB | ${(est.totalBytes / peak).toFixed(2)} |`,
    );
  }
}

if (process.argv[1] === HERE) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
