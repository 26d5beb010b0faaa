/**
 * Renders the results of test/bench/llm.ts as the LLM part of RESULTS.md.
 * Every number comes from the run; the interpretation lines are conditional
 * on what was measured.
 */
import type { CallStats, LlmResults } from './llm.ts';

type Call = Omit<CallStats, 'text'>;

interface PairOut {
  engine: Call;
  plain: Call;
  cachedSystem: boolean;
  sameText: boolean;
}

interface Throughput {
  threads: number;
  engineThreads: number;
  plainThreads: number;
  backend: string;
  llamaCpp?: { repo?: string; release?: string; buildType?: string; cpuMathCores?: number; systemInfo?: string };
  engineLoadMs: number;
  plainLoadMs: number;
  grammarCreateMs: number;
  systemTokens: number;
  systemChars: number;
  promptA: { userTokens: number; droppedEvidence: number; evidenceItems: number; userChars: number };
  promptB: { userTokens: number; droppedEvidence: number; evidenceItems: number; userChars: number };
  promptPairs: PairOut[];
  genPairs: PairOut[];
  grammarPairs: { free: Call; grammar: Call }[];
  grammarSample: string;
  threadRounds?: { one: Call; two: Call }[];
  prefix: { uncached: Call; cached: Call };
  plainPrefix: { uncached: Call; cached: Call };
}

interface Attempt {
  stopReason: string;
  tokens: { prompt: number; completion: number; cachedPrompt: number };
  timings: { queuedMs: number; loadMs: number; promptMs: number; generationMs: number };
  latencyMs: number;
  schema: 'full' | 'compact';
}

interface DiagnosisRun {
  label: string;
  wallMs: number;
  stored: boolean;
  diagnoser: string | null;
  fallback: string | null;
  summary: string | null;
  attempts: Attempt[];
  cutOff: boolean;
}

interface PromptInfo {
  finding: string;
  evidenceLines: number;
  userTokens: number;
  userChars: number;
  evidenceItems: number;
  droppedEvidence: number;
  overBudget: boolean;
  charsPerToken: number;
  allEvidenceUserTokens: number;
  allEvidenceItems: number;
  allEvidenceChars: number;
  estimatedTrainedTokensAllEvidence: number;
  estimatedTrainedEvidenceItems: number;
}

interface Pipeline {
  config: { contextSize: number; maxTokens: number; timeoutSeconds: number; gpu: string; threads: number; memoryBudgetMB: number };
  engine: { threads: number; threadBasis: string; backend: string; contextSize: number; loadMs: number; parameters: number };
  cold: DiagnosisRun;
  warm: DiagnosisRun;
  cacheHitMs: number;
  queue: Record<string, number>;
  systemTokens: number;
  systemChars: number;
  prompts: PromptInfo[];
}

interface Proc {
  VmRSS: number;
  VmHWM: number;
  RssAnon: number;
  RssFile: number;
  RssShmem: number;
}

interface Memory {
  variant: string;
  useMmap: boolean;
  loadMs: number;
  estimatedBytes: number | null;
  beforeLoad: Proc;
  afterLoad: Proc;
  peakDuringGeneration: number;
  peakDuringLoad: number;
  peakResetWorked: boolean;
  afterGeneration: Proc;
  afterUnload: Proc;
}

const f0 = (n: number) => Math.round(n).toLocaleString('en-US');
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const s1 = (msv: number) => `${(msv / 1000).toFixed(1)} s`;
const mb = (b: number | undefined | null) => (b == null ? 'n/a' : `${f0(b / 2 ** 20)} MiB`);
const isError = (x: unknown): x is { error: string } => typeof x === 'object' && x !== null && 'error' in x;

/** Aggregate rate over calls: total tokens / total time. */
function aggPrompt(calls: Call[]): number {
  const tok = calls.reduce((s, c) => s + c.evaluatedTokens, 0);
  const t = calls.reduce((s, c) => s + c.promptMs, 0);
  return tok / (t / 1000);
}
function aggGen(calls: Call[]): number {
  const tok = calls.reduce((s, c) => s + Math.max(0, c.completionTokens - 1), 0);
  const t = calls.reduce((s, c) => s + c.generationMs, 0);
  return tok / (t / 1000);
}
function minMax(xs: number[]): string {
  return `${f2(Math.min(...xs))}–${f2(Math.max(...xs))}`;
}

function renderThroughput(t: Throughput, settings: LlmResults['settings'], out: string[]): { promptRatio: number; genRatio: number; wallRatio: number } {
  const pe = t.promptPairs.map((p) => p.engine);
  const pp = t.promptPairs.map((p) => p.plain);
  const ge = t.genPairs.map((p) => p.engine);
  const gp = t.genPairs.map((p) => p.plain);
  const all = [...t.promptPairs, ...t.genPairs];
  const promptRatio = aggPrompt(pe) / aggPrompt(pp);
  const genRatio = aggGen(ge) / aggGen(gp);
  const wallE = all.reduce((s, x) => s + x.engine.wallMs, 0);
  const wallP = all.reduce((s, x) => s + x.plain.wallMs, 0);
  const wallRatio = wallP / wallE;
  out.push("### 1. Throughput: the daemon's engine vs plain node-llama-cpp");
  out.push('');
  out.push(
    `Same model and settings on both sides: CPU, \`useMmap: false\`, context ${settings.contextSize} tokens, batch ${settings.batchSize}, ` +
      `${t.engineThreads} threads for the engine and ${t.plainThreads} for the plain context, temperature 0, repeat penalty ${settings.repeatPenalty}, no grammar. ` +
      'Engine: `LlmEngine.complete({systemPrompt, userPrompt, maxTokens})` with the real diagnosis prompt (`SYSTEM_PROMPT` + `buildPrompt()` of a CrashLoop finding, counted with the model). ' +
      "Plain: `getLlama({gpu: false, build: 'never'})`, `loadModel({useMmap: false})`, `createContext({contextSize, batchSize, threads})`, " +
      'a new `LlamaChatSession({systemPrompt})` per call, `promptWithMeta(user, {maxTokens, temperature: 0, repeatPenalty, onToken})`. ' +
      'One process, each side on its own context, calls alternating E P, P E, E P…; both sides get the same prompts in the same order, so both reuse the same cached tokens.',
  );
  out.push('');
  out.push(
    `**Prompt evaluation** (${settings.promptMaxTokens} tokens generated per call): pair 0 is a first diagnosis (empty KV cache: the whole prompt is evaluated); ` +
      "pairs 1–2 are the steady state (the fixed system prompt reused from the cache, the next finding's user part evaluated). " +
      'Prompt tok/s = evaluated prompt tokens ÷ time from the start of evaluation to the first generated token.',
  );
  out.push('');
  out.push('| pair | KV cache | side | prompt tokens evaluated / total | time to first token | prompt tok/s | call wall time |');
  out.push('|---|---|---|---:|---:|---:|---:|');
  t.promptPairs.forEach((pair, i) => {
    for (const who of (i % 2 === 0 ? ['engine', 'plain'] : ['plain', 'engine']) as ('engine' | 'plain')[]) {
      const c = pair[who];
      out.push(
        `| ${i} | ${pair.cachedSystem ? 'system prompt cached' : 'empty'} | ${who} | ${f0(c.evaluatedTokens)} / ${f0(c.promptTokens)} | ${f0(c.promptMs)} ms | ${f1(c.promptTps)} | ${f0(c.wallMs)} ms |`,
      );
    }
  });
  out.push('');
  out.push(
    `**Generation** (${settings.throughputMaxTokens} tokens per call, the same prompt again so only its last token is evaluated): ` +
      'gen tok/s = (generated − 1) ÷ time from the first to the last generated token.',
  );
  out.push('');
  out.push('| pair | side | generated | generation time | gen tok/s | call wall time |');
  out.push('|---|---|---:|---:|---:|---:|');
  t.genPairs.forEach((pair, i) => {
    for (const who of (i % 2 === 0 ? ['engine', 'plain'] : ['plain', 'engine']) as ('engine' | 'plain')[]) {
      const c = pair[who];
      out.push(`| ${i} | ${who} | ${c.completionTokens} | ${f0(c.generationMs)} ms | ${f1(c.genTps)} | ${f0(c.wallMs)} ms |`);
    }
  });
  out.push('');
  const perPairPrompt = t.promptPairs.map((x) => x.engine.promptTps / x.plain.promptTps);
  const perPairGen = t.genPairs.map((x) => x.engine.genTps / x.plain.genTps);
  out.push('| | engine | plain | ratio engine ÷ plain | per pair |');
  out.push('|---|---:|---:|---:|---|');
  out.push(`| prompt tok/s (all prompt pairs) | ${f1(aggPrompt(pe))} | ${f1(aggPrompt(pp))} | **${f2(promptRatio)}** | ${minMax(perPairPrompt)} |`);
  out.push(`| gen tok/s (all generation pairs) | ${f1(aggGen(ge))} | ${f1(aggGen(gp))} | **${f2(genRatio)}** | ${minMax(perPairGen)} |`);
  out.push(`| call wall time, all calls (ratio = plain ÷ engine) | ${s1(wallE)} | ${s1(wallP)} | **${f2(wallRatio)}** | |`);
  const perCpu = (calls: Call[], tokens: (c: Call) => number) => calls.reduce((a, c) => a + tokens(c), 0) / (calls.reduce((a, c) => a + c.cpuMs, 0) / 1000);
  const pCpuE = perCpu(pe, (c) => c.evaluatedTokens);
  const pCpuP = perCpu(pp, (c) => c.evaluatedTokens);
  const gCpuE = perCpu(ge, (c) => c.completionTokens);
  const gCpuP = perCpu(gp, (c) => c.completionTokens);
  out.push(`| prompt tokens per CPU-second of the process (prompt pairs) | ${f1(pCpuE)} | ${f1(pCpuP)} | ${f2(pCpuE / pCpuP)} | |`);
  out.push(`| generated tokens per CPU-second of the process (generation pairs) | ${f1(gCpuE)} | ${f1(gCpuP)} | ${f2(gCpuE / gCpuP)} | |`);
  out.push('');
  const same = all.every((x) => x.sameText);
  const equalTokens = all.every((x) => x.engine.evaluatedTokens === x.plain.evaluatedTokens && x.engine.completionTokens === x.plain.completionTokens);
  out.push(
    `Equal work: ${equalTokens ? 'in every pair both sides evaluated the same number of prompt tokens and generated the same number of tokens' : '**token counts differ between the sides in some pair (see the tables)**'}; ` +
      `generated text ${same ? 'identical on both sides (greedy)' : '**differs** between the sides in some pair'}. ` +
      `Load (absolute): engine ${s1(t.engineLoadMs)}, plain ${s1(t.plainLoadMs)} (model + context).`,
  );
  out.push('');
  const meets = promptRatio >= 0.95 && genRatio >= 0.95;
  out.push(
    `**What this means:** ${
      meets
        ? `the engine costs nothing measurable over the library: prompt ${f2(promptRatio)}×, generation ${f2(genRatio)}× the plain speed (target ≥ 0.95).`
        : `the engine measured below the 0.95 target on ${promptRatio < 0.95 ? `prompt evaluation (${f2(promptRatio)}×)` : ''}${promptRatio < 0.95 && genRatio < 0.95 ? ' and ' : ''}${genRatio < 0.95 ? `generation (${f2(genRatio)}×)` : ''}; the per-pair spread (${minMax(perPairPrompt)} prompt, ${minMax(perPairGen)} gen) shows how much of that is noise from the loaded machine: both sides run the same library calls on the same native code.`
    } The engine's own work per call (rendering and tokenising the prompt once more to count prompt and cached tokens, a new chat session) happens before evaluation starts and shows only in the wall-time ratio.`,
  );
  out.push('');

  // Grammar.
  const free = t.grammarPairs.map((g) => g.free);
  const gram = t.grammarPairs.map((g) => g.grammar);
  const gRatio = aggGen(gram) / aggGen(free);
  out.push('#### The JSON grammar\'s cost');
  out.push('');
  out.push(
    'Engine only, the same prompt with and without `jsonSchema: DIAGNOSIS_SCHEMA`, alternating which goes first; the second call of each pair ' +
      'reuses the whole prompt from the cache, so only generation is compared.',
  );
  out.push('');
  out.push('| pair | grammar | generated | gen time | gen tok/s | stop |');
  out.push('|---|---|---:|---:|---:|---|');
  t.grammarPairs.forEach((g, i) => {
    for (const c of i % 2 === 0 ? [g.free, g.grammar] : [g.grammar, g.free]) {
      out.push(`| ${i} | ${c.grammar ? 'yes' : 'no'} | ${c.completionTokens} | ${f0(c.generationMs)} ms | ${f1(c.genTps)} | ${c.stopReason} |`);
    }
  });
  out.push('');
  out.push(
    `Generation with the grammar: **${f1(aggGen(gram))} tok/s vs ${f1(aggGen(free))} tok/s without (${f2(gRatio)}×)**. ` +
      `Building the grammar from the schema: ${f0(t.grammarCreateMs)} ms, once (the engine caches it per schema).`,
  );
  out.push('');
  out.push(
    `**What this means:** ${gRatio >= 0.95 ? 'the grammar costs little per token' : `constrained sampling costs ${f0((1 - gRatio) * 100)}% of the generation speed`} on this model. ` +
      'With a 32k vocabulary each step checks candidate tokens against the grammar on the JS side of node-llama-cpp, which competes with the 2 compute threads for the 2 cores.',
  );
  out.push('');
  return { promptRatio, genRatio, wallRatio };
}

function renderThreads(t: Throughput, settings: LlmResults['settings'], out: string[]): { genRatio: number; promptRatio: number } | null {
  const rounds = t.threadRounds;
  if (!rounds || rounds.length === 0) return null;
  const one = rounds.map((r) => r.one);
  const two = rounds.map((r) => r.two);
  const firstOne = rounds[0]?.one as Call;
  const firstTwo = rounds[0]?.two as Call;
  const genRatio = aggGen(one) / aggGen(two);
  const promptRatio = firstOne.promptTps / firstTwo.promptTps;
  out.push('### 5. One thread vs two, with the machine shared');
  out.push('');
  out.push(
    `A second engine with \`threads: 1\` next to the 2-thread one, the same calls interleaved (2 then 1, 1 then 2, …): round 0 evaluates ` +
      `the ingest-worker finding's user part behind a short system prompt (${f0(firstOne.evaluatedTokens)} tokens), every round generates ${settings.threadMaxTokens} tokens.`,
  );
  out.push('');
  out.push('| round | threads | prompt tokens evaluated | prompt tok/s | gen tok/s | CPU time of the call |');
  out.push('|---|---:|---:|---:|---:|---:|');
  rounds.forEach((r, i) => {
    for (const [n, c] of (i % 2 === 0 ? [[2, r.two], [1, r.one]] : [[1, r.one], [2, r.two]]) as [number, Call][]) {
      out.push(`| ${i} | ${n} | ${f0(c.evaluatedTokens)} | ${c.evaluatedTokens > 1 ? f1(c.promptTps) : '–'} | ${f1(c.genTps)} | ${f0(c.cpuMs)} ms |`);
    }
  });
  out.push('');
  out.push(
    `Generation, all rounds: **1 thread ${f1(aggGen(one))} tok/s, 2 threads ${f1(aggGen(two))} tok/s (1 ÷ 2 = ${f2(genRatio)})**; ` +
      `prompt evaluation in round 0: 1 thread ${f1(firstOne.promptTps)} tok/s, 2 threads ${f1(firstTwo.promptTps)} tok/s (${f2(promptRatio)}).`,
  );
  out.push('');
  out.push(
    `**What this means:** ${
      genRatio > 1
        ? "with other processes competing for the 2 cores, a second llama.cpp thread made generation slower, not faster: the threads meet at a barrier after every operation and spin there, so when the kernel runs another process on one core the other thread waits out that time slice. The engine takes its thread count from the cgroup quota (2 here); on a node whose cores are busy with workloads, fewer threads than the quota can be the faster choice, which the engine cannot see from the quota alone."
        : 'two threads were faster than one in this run: the cores were free enough for both threads to run together.'
    }`,
  );
  out.push('');
  return { genRatio, promptRatio };
}

function attemptRow(a: Attempt, i: number): string {
  const evaluated = a.tokens.prompt - a.tokens.cachedPrompt;
  const pTps = evaluated / (a.timings.promptMs / 1000);
  const gTps = a.tokens.completion > 1 ? (a.tokens.completion - 1) / (a.timings.generationMs / 1000) : 0;
  return `| ${i + 1} (${a.schema} schema) | ${f0(a.tokens.prompt)} | ${f0(a.tokens.cachedPrompt)} | ${f0(evaluated)} | ${f0(a.timings.promptMs)} ms (${f1(pTps)} tok/s) | ${a.tokens.completion} | ${f0(a.timings.generationMs)} ms (${f1(gTps)} tok/s) | ${a.stopReason}${a.stopReason === 'maxTokens' ? ' (cut off)' : ''} | ${a.timings.loadMs ? `${f0(a.timings.loadMs)} ms` : '–'} |`;
}

function renderPipeline(pl: Pipeline, t: Throughput | null, out: string[]): void {
  out.push('### 2. CrashLoop finding → stored diagnosis (the daemon\'s pieces)');
  out.push('');
  out.push(
    `\`loadConfig()\` defaults with only the model and a temp data dir set (context ${pl.config.contextSize}, maxTokens ${pl.config.maxTokens}, ` +
      `gpu \`${pl.config.gpu}\` → backend ${pl.engine.backend}, threads ${pl.config.threads === 0 ? 'auto' : pl.config.threads} → ${pl.engine.threads} (${pl.engine.threadBasis})), ` +
      '`Store.open` in a temp dir, `buildDiagnoser()` (LlmEngine + LlmDiagnoser + rule hint) and `DiagnosisQueue` with the store\'s diagnosis cache, as `daemon/main.ts` wires them. ' +
      'Timed from `store.commit()` of the finding and `queue.enqueue()` to `queue.drain()` with the diagnosis in SQLite. ' +
      'Each finding has 15 evidence lines (2 pod-status lines, the back-off event, 12 log lines before the exit).',
  );
  out.push('');
  out.push('| diagnosis | time to stored diagnosis | model load (inside) | generations | cut off? | stored diagnoser | fallback |');
  out.push('|---|---:|---:|---:|---|---|---|');
  for (const d of [pl.cold, pl.warm]) {
    out.push(
      `| ${d.label} | **${s1(d.wallMs)}** | ${d === pl.cold ? s1(pl.engine.loadMs) : '–'} | ${d.attempts.length} | ${d.cutOff ? `yes (${d.attempts.filter((a) => a.stopReason === 'maxTokens').length} of ${d.attempts.length})` : 'no'} | ${d.diagnoser ?? 'none'} | ${d.fallback ?? '–'} |`,
    );
  }
  out.push(`| same finding again (diagnosis-cache hit) | ${f0(pl.cacheHitMs)} ms | – | 0 | – | | |`);
  out.push('');
  out.push('Each generation of those diagnoses:');
  out.push('');
  out.push('| diagnosis | attempt | prompt tokens | reused from cache | evaluated | prompt time | generated | generation time | stop | load |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---|---:|');
  for (const d of [pl.cold, pl.warm]) {
    d.attempts.forEach((a, i) => {
      out.push(`| ${d === pl.cold ? 'cold' : 'warm'} ${attemptRow(a, i).slice(1)}`);
    });
  }
  out.push('');
  out.push('Prompt size (the model\'s tokenizer; the user part has a 600-token budget, `maxPromptTokens`):');
  out.push('');
  out.push('| finding | user part tokens | chars | chars/token | evidence items kept (of lines) | over budget? | all evidence, no budget: tokens | same, est. trained tokenizer (chars ÷ 3.5) |');
  out.push('|---|---:|---:|---:|---:|---|---:|---:|');
  for (const p of pl.prompts) {
    out.push(
      `| ${p.finding} | **${f0(p.userTokens)}** | ${f0(p.userChars)} | ${f2(p.charsPerToken)} | ${p.evidenceItems} (of ${p.evidenceLines}; ${p.allEvidenceItems} groups) | ${p.overBudget ? 'yes' : 'no'} | ${f0(p.allEvidenceUserTokens)} | ${f0(p.estimatedTrainedTokensAllEvidence)} |`,
    );
  }
  out.push(
    `| system prompt (fixed, cached) | ${f0(pl.systemTokens)} | ${f0(pl.systemChars)} | ${f2(pl.systemChars / pl.systemTokens)} | | | | ${f0(pl.systemChars / 3.5)} |`,
  );
  out.push('');

  const warmFirst = pl.warm.attempts[0];
  const cutCold = pl.cold.cutOff;
  const cutWarm = pl.warm.cutOff;
  const lines: string[] = [];
  lines.push(
    `warm, the finding's diagnosis is stored ${s1(pl.warm.wallMs)} after it was enqueued (target ≤ 10 s); cold adds the model load (${s1(pl.engine.loadMs)}) and the first evaluation of the ${f0(pl.systemTokens)}-token system prompt.`,
  );
  if (cutCold || cutWarm) {
    lines.push(
      `The random-weight model never closes its JSON early: it fills each string up to the schema's maxLength, so the first answer hits maxTokens (${pl.config.maxTokens}) and is cut off; the diagnoser retries with half the evidence and the compact schema${
        pl.warm.fallback ? ` and still falls back to the rule hint (\`${pl.warm.fallback}\`)` : ', which fits'
      }. Most of the time is these ${pl.config.maxTokens}-token generations, which a trained model (answers of ~100–200 tokens that end with \`}\`) does not produce.`,
    );
  }
  if (t && warmFirst) {
    const pTps = aggPrompt(t.promptPairs.filter((x) => x.cachedSystem).map((x) => x.engine));
    const gTps = aggGen(t.genPairs.map((x) => x.engine));
    const user = warmFirst.tokens.prompt - warmFirst.tokens.cachedPrompt;
    const trainedUser = Math.min(600, Math.round((pl.prompts[1]?.userChars ?? 0) / 3.5));
    const est = (tokens: number, answer: number) => tokens / pTps + answer / gTps;
    lines.push(
      `Derived estimate (not measured, from this run's rates: ${f1(pTps)} prompt tok/s with the system prompt cached, ${f1(gTps)} gen tok/s): one warm attempt with an answer of 150 tokens takes ${f1(est(user, 150))} s with this model's ${f0(user)} evaluated prompt tokens, ` +
        `${f1(est(trainedUser, 150))} s with the ~${trainedUser} tokens a trained tokenizer would need for the same user text (chars ÷ 3.5).`,
    );
  }
  lines.push(
    `Token counts: this model's made-up vocabulary (English and log words + letter bigrams/trigrams) averages ${f2(pl.prompts[0]?.charsPerToken ?? 0)} characters per token on the user part and ${f2(pl.systemChars / pl.systemTokens)} on the system prompt (JSON schema punctuation); ` +
      'trained BPE vocabularies of 0.5–1.5B models average about 3–4 on English log text, so the same prompt is ~1.5× fewer tokens there, and the 600-token budget keeps more evidence.',
  );
  out.push(`**What this means:** ${lines.join(' ')}`);
  out.push('');
}

function renderPrefix(t: Throughput, pl: Pipeline | null, out: string[]): void {
  const u = t.prefix.uncached;
  const c = t.prefix.cached;
  const pu = t.plainPrefix.uncached;
  const pc = t.plainPrefix.cached;
  out.push('### 3. Prefix-cache reuse');
  out.push('');
  out.push(
    "The same prompt text (system prompt + the checkout finding's user part) evaluated twice in the throughput run: in prompt pair 0 with an empty cache, " +
      "in prompt pair 2 right after the other finding's prompt, so the system prompt (and the shared start of the user part) is in the KV cache. " +
      'Reused tokens are what the engine reports (`tokens.cachedPrompt`: the common prefix with what the sequence holds, minus the last prompt token, which is always evaluated again).',
  );
  out.push('');
  out.push('| side | prompt tokens | cache empty: evaluated, time | cache warm: reused | evaluated | time | saved |');
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  out.push(
    `| engine | ${f0(c.promptTokens)} | ${f0(u.evaluatedTokens)}, ${f0(u.promptMs)} ms | **${f0(c.cachedTokens)}** | ${f0(c.evaluatedTokens)} | ${f0(c.promptMs)} ms | **${f0(u.promptMs - c.promptMs)} ms (${f0((1 - c.promptMs / u.promptMs) * 100)}%)** |`,
  );
  out.push(
    `| plain | ${f0(pc.promptTokens)} | ${f0(pu.evaluatedTokens)}, ${f0(pu.promptMs)} ms | ${f0(pc.cachedTokens)} | ${f0(pc.evaluatedTokens)} | ${f0(pc.promptMs)} ms | ${f0(pu.promptMs - pc.promptMs)} ms (${f0((1 - pc.promptMs / pu.promptMs) * 100)}%) |`,
  );
  out.push('');
  if (pl) {
    const w = pl.warm.attempts;
    const reused = w.reduce((s, a) => s + a.tokens.cachedPrompt, 0);
    const total = w.reduce((s, a) => s + a.tokens.prompt, 0);
    out.push(
      `In the pipeline's warm diagnosis: ${w.map((a, i) => `attempt ${i + 1} reused ${f0(a.tokens.cachedPrompt)} of ${f0(a.tokens.prompt)} prompt tokens`).join(', ')} (${f0((reused / Math.max(1, total)) * 100)}% overall).`,
    );
    out.push('');
  }
  out.push(
    `**What this means:** keeping one sequence alive makes every diagnosis after the first skip the ${f0(t.systemTokens)}-token system prompt: ` +
      `${f0(u.promptMs - c.promptMs)} ms saved per diagnosis here. The evaluated part is then the user part alone (finding, rule hint, evidence), ` +
      'which the 600-token budget bounds. Reuse is the library\'s own (the plain side reuses the same tokens); the engine only has to keep the system prompt byte-identical and the sequence alive.',
  );
  out.push('');
}

function renderMemory(mem: Memory[], out: string[]): void {
  out.push('### 4. Memory (RSS of a fresh process per variant)');
  out.push('');
  out.push(
    'Each variant in its own child process: RSS from `/proc/self/status` after importing node-llama-cpp and the daemon modules ("before load"), ' +
      'after the model and a 2048-token context are loaded, and the peak (VmHWM, reset through `/proc/self/clear_refs` just before the call) while evaluating ' +
      'a ~550-token prompt (over one 512-token batch) and generating 16 tokens. RssAnon is heap memory; RssFile is pages of mapped files (the model file when mmap is on).',
  );
  out.push('');
  out.push('| variant | useMmap | before load | after load (anon + file) | peak during load | peak during generation | after unload | load time | engine\'s estimate |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const m of mem) {
    const name = m.variant === 'engine' ? 'LlmEngine (daemon)' : m.variant === 'plain' ? 'plain node-llama-cpp' : 'plain node-llama-cpp';
    out.push(
      `| ${name} | ${m.useMmap ? 'true' : 'false'} | ${mb(m.beforeLoad.VmRSS)} | **${mb(m.afterLoad.VmRSS)}** (${mb(m.afterLoad.RssAnon)} + ${mb(m.afterLoad.RssFile)}) | ${mb(m.peakDuringLoad)} | **${mb(m.peakDuringGeneration)}**${m.peakResetWorked ? '' : ' (peak not reset: whole-process peak)'} | ${mb(m.afterUnload.VmRSS)} | ${s1(m.loadMs)} | ${m.estimatedBytes ? mb(m.estimatedBytes) : '–'} |`,
    );
  }
  out.push('');
  const eng = mem.find((m) => m.variant === 'engine');
  const on = mem.find((m) => m.variant === 'plain-mmap');
  const off = mem.find((m) => m.variant === 'plain');
  if (eng && on && off) {
    const delta = (x: Memory) => x.peakDuringGeneration - x.beforeLoad.VmRSS;
    out.push(
      `**What this means:** the model costs the daemon ${mb(delta(eng))} at its peak (${mb(eng.peakDuringGeneration)} process RSS) with mmap off, ` +
        `against ${mb(delta(on))} with mmap on (${f2(delta(on) / delta(eng))}×): ${
          on.afterLoad.RssFile > 2 * off.afterLoad.RssFile
            ? `with mmap the file's pages stay resident (${mb(on.afterLoad.RssFile)} file-backed after load) next to the repacked copy in anonymous memory.`
            : 'here the mapped pages did not stay resident after the repack.'
        } Mapped file pages are reclaimable page cache to the kernel, but they count in RSS and in the container's memory cgroup until reclaimed, so mmap off is the predictable choice on CPU. ` +
        `The engine's memory estimate (${mb(eng.estimatedBytes)}) is ${eng.estimatedBytes && eng.estimatedBytes >= delta(eng) ? 'above' : 'below'} the measured cost.`,
    );
    out.push('');
  }
}

/** Renders the LLM section. Returns the markdown and the headline numbers for the summary table. */
export function renderLlm(r: LlmResults): { markdown: string; summary: string[] } {
  const out: string[] = [];
  const summary: string[] = [];
  const sh = r.model.shape as Record<string, unknown>;
  out.push(
    `Model: \`scripts/make-test-model.ts --preset realistic\` — llama architecture, ${sh.blocks} blocks, embedding ${sh.embedding}, feed-forward ${sh.feedForward}, ` +
      `${sh.heads} heads / ${sh.headsKv} KV heads, vocabulary ${f0(Number(sh.vocab))}, ${String(sh.weightType).toUpperCase()}, separate output matrix, ChatML template; ` +
      `**${f1(r.model.parameters / 1e6)}M parameters, ${f1(r.model.bytes / 1e6)} MB**; random weights (seed 1). ` +
      `Cached in \`node_modules/.cache/nodesage-bench-models/\` (${r.model.generatedMs === null ? 'taken from the cache in this run' : `generated in this run in ${s1(r.model.generatedMs)}`}). ` +
      'Random weights mean real speed and memory but meaningless text: the quality of diagnoses is not measured here.',
  );
  out.push('');
  const t = isError(r.throughput) ? null : (r.throughput as unknown as Throughput);
  const pl = isError(r.pipeline) ? null : (r.pipeline as unknown as Pipeline);
  if (t?.llamaCpp) {
    out.push(`llama.cpp: ${t.llamaCpp.release ?? '?'} (${t.llamaCpp.buildType ?? '?'} binary of node-llama-cpp), ${t.llamaCpp.cpuMathCores ?? '?'} CPU math cores detected.`);
    out.push('');
  }
  if (t) {
    const { promptRatio, genRatio, wallRatio } = renderThroughput(t, r.settings, out);
    const pe = t.promptPairs.map((p) => p.engine);
    const pp = t.promptPairs.map((x) => x.plain);
    const ge = t.genPairs.map((p) => p.engine);
    const gp = t.genPairs.map((x) => x.plain);
    summary.push(`| Engine ÷ plain node-llama-cpp, prompt tok/s | ${f1(aggPrompt(pe))} vs ${f1(aggPrompt(pp))} tok/s | **${f2(promptRatio)}** | ≥ 0.95 | ${promptRatio >= 0.95 ? 'met' : 'not met'} |`);
    summary.push(`| Engine ÷ plain node-llama-cpp, gen tok/s | ${f1(aggGen(ge))} vs ${f1(aggGen(gp))} tok/s | **${f2(genRatio)}** | ≥ 0.95 | ${genRatio >= 0.95 ? 'met' : 'not met'} |`);
    summary.push(`| Engine ÷ plain, whole call (wall) | | ${f2(wallRatio)} | | |`);
    const gram = aggGen(t.grammarPairs.map((g) => g.grammar)) / aggGen(t.grammarPairs.map((g) => g.free));
    summary.push(`| Grammar on ÷ off, gen tok/s | ${f1(aggGen(t.grammarPairs.map((g) => g.grammar)))} vs ${f1(aggGen(t.grammarPairs.map((g) => g.free)))} tok/s | ${f2(gram)} | | |`);
  } else {
    out.push(`### 1. Throughput\n\nFailed: ${(r.throughput as { error: string }).error}\n`);
  }
  if (pl) {
    renderPipeline(pl, t, out);
    summary.push(`| CrashLoop → stored diagnosis, warm | ${s1(pl.warm.wallMs)} | | ≤ 10 s | ${pl.warm.wallMs <= 10_000 ? 'met' : 'not met'} |`);
    summary.push(`| CrashLoop → stored diagnosis, cold (model load ${s1(pl.engine.loadMs)} inside) | ${s1(pl.cold.wallMs)} | | | |`);
    const maxUser = Math.max(...pl.prompts.map((x) => x.userTokens));
    summary.push(`| User part of the prompt | ${pl.prompts.map((x) => f0(x.userTokens)).join(', ')} tokens | | ≤ 600 | ${maxUser <= 600 ? 'met' : 'not met'} |`);
    summary.push(`| Answer cut off (maxTokens ${pl.config.maxTokens}) | cold ${pl.cold.cutOff ? 'yes' : 'no'}, warm ${pl.warm.cutOff ? 'yes' : 'no'}; stored: ${pl.warm.diagnoser}${pl.warm.fallback ? ` (fallback ${pl.warm.fallback})` : ''} | | | |`);
  } else {
    out.push(`### 2. CrashLoop finding → stored diagnosis\n\nFailed: ${(r.pipeline as { error: string }).error}\n`);
  }
  if (t) {
    renderPrefix(t, pl, out);
    const u = t.prefix.uncached;
    const c = t.prefix.cached;
    summary.push(`| Prefix cache: tokens reused, prompt time saved | ${f0(c.cachedTokens)} of ${f0(c.promptTokens)} reused | ${f0(u.promptMs - c.promptMs)} ms saved (${f0((1 - c.promptMs / u.promptMs) * 100)}%) | | |`);
  }
  if (t) {
    const th = renderThreads(t, r.settings, out);
    if (th) summary.push(`| Generation, 1 thread ÷ 2 threads (machine shared) | | ${f2(th.genRatio)} | | |`);
  }
  const mem = r.memory.filter((m) => !isError(m)) as unknown as Memory[];
  if (mem.length > 0) {
    renderMemory(mem, out);
    const eng = mem.find((m) => m.variant === 'engine');
    const on = mem.find((m) => m.variant === 'plain-mmap');
    if (eng) summary.push(`| RSS: before load → after load → peak in generation (engine, mmap off) | ${mb(eng.beforeLoad.VmRSS)} → ${mb(eng.afterLoad.VmRSS)} → ${mb(eng.peakDuringGeneration)} | | | |`);
    if (on) summary.push(`| Same with mmap on (plain, separate process) | ${mb(on.beforeLoad.VmRSS)} → ${mb(on.afterLoad.VmRSS)} → ${mb(on.peakDuringGeneration)} | | | |`);
  }
  for (const m of r.memory) if (isError(m)) out.push(`Memory child failed: ${m.error}\n`);
  out.push(
    `Time of each child process (absolute): ${Object.entries(r.childMs)
      .map(([k, v]) => `${k} ${s1(v)}`)
      .join(', ')}. 1-minute load average when each started: ${r.load.map((l) => `${l.at} ${f2(l.load1)}`).join(', ')}.`,
  );
  out.push('');
  return { markdown: out.join('\n'), summary };
}
